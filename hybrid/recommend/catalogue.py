"""The catalogue: item ids, text vectors, titles, display texts and which items had training
likes, in one place with one way to grow (``append``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid.core.errors import ArgumentError
from hybrid.core.persistence import load_array, load_table, save_array, save_table
from hybrid.data.ids import IdMap


class Catalogue:
    """Items in index order: row ``i`` of ``vectors``/``titles``/``trained`` is item ``i``.

    ``trained`` marks items the collaborative models learnt an id for; the others (cold
    products, items appended later) are known by their text only. ``texts`` (optional) is the
    product text shown to people; it is kept as an Arrow string array, so a catalogue of a
    million long texts costs no Python object per text.

    Example:
        >>> cat = Catalogue(IdMap(["a", "b"], "item"), np.eye(2, dtype=np.float32), trained=[True, False])
        >>> cat.append(["c"], np.ones((1, 2), np.float32), ["New"]).tolist(), len(cat), cat.cold.tolist()
        ([2], 3, [False, True, True])
    """

    def __init__(self, ids: IdMap, vectors: np.ndarray, titles=None, trained=None, texts=None):
        self.ids = ids
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(self.vectors) != len(ids):
            raise ArgumentError(f"{len(ids)} item ids but {len(self.vectors)} text vectors")
        self.titles = np.full(len(ids), None, object) if titles is None else np.asarray(titles, object)
        self.trained = np.zeros(len(ids), bool) if trained is None else np.asarray(trained, bool)
        self.texts = None if texts is None else _strings(texts, len(ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def cold(self) -> np.ndarray:
        return ~self.trained

    def text(self, row: int) -> str | None:
        """The display text of the item at ``row`` (None when none was kept)."""
        return None if self.texts is None else self.texts[int(row)].as_py()

    def index(self, ids) -> np.ndarray:
        """Rows of item ids (``UnknownIdError`` naming unknown ones)."""
        return self.ids.index([str(i) for i in ids])

    def check_new(self, ids) -> list[str]:
        """``ids`` as strings, when none is known or repeated; else ``ArgumentError`` naming them."""
        ids = [str(i) for i in ids]
        known = [i for i in ids if i in self.ids]
        if known or len(set(ids)) != len(ids):
            raise ArgumentError(f"items already known or repeated: {(known or ids)[:5]}")
        return ids

    def append(self, ids, vectors: np.ndarray, titles=None, texts=None) -> np.ndarray:
        """Add items (untrained); returns their rows. Known or repeated ids are refused."""
        ids = self.check_new(ids)
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ArgumentError(f"the new items' vectors must be {len(ids)} x {self.dim}, got {vectors.shape}")
        start = len(self)
        self.ids = IdMap(list(self.ids.values) + ids, "item")
        self.vectors = np.vstack([self.vectors, vectors])
        titles = np.full(len(ids), None, object) if titles is None else np.asarray(titles, object)
        self.titles = np.concatenate([self.titles, titles])
        self.trained = np.concatenate([self.trained, np.zeros(len(ids), bool)])
        if self.texts is not None:
            added = _strings([None] * len(ids) if texts is None else texts, len(ids))
            self.texts = pa.chunked_array(self.texts.chunks + added.chunks, pa.string())
        return np.arange(start, len(self))

    def save(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        self.ids.save(directory / "items.parquet",
                      title=pa.array([t if t is None else str(t) for t in self.titles], pa.string()),
                      trained=self.trained)
        save_array(directory / "item_text_vectors.npy", self.vectors)
        if self.texts is not None:
            save_table(directory / "item_texts.arrow", pa.table({"text": self.texts}))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Catalogue":
        """A catalogue written by ``save``: vectors and texts memory-mapped, not read."""
        directory = Path(directory)
        table = pq.read_table(directory / "items.parquet")
        texts = None
        if (directory / "item_texts.arrow").is_file():  # (none when the catalogue has no texts)
            texts = load_table(directory / "item_texts.arrow").column("text")
        return cls(IdMap.load(directory / "items.parquet", "item"), load_array(directory / "item_text_vectors.npy"),
                   np.array(table.column("title").to_pylist(), object), table.column("trained").to_numpy(), texts)


def _strings(texts, n: int) -> pa.ChunkedArray:
    """``texts`` (a sequence or Arrow array of str/None) as a chunked Arrow string array of ``n``."""
    if isinstance(texts, pa.Array):
        texts = pa.chunked_array([texts])
    elif not isinstance(texts, pa.ChunkedArray):
        texts = pa.chunked_array([pa.array([t if t is None else str(t) for t in texts], pa.string())])
    if len(texts) != n:
        raise ArgumentError(f"{n} items but {len(texts)} texts")
    return texts.cast(pa.string())
