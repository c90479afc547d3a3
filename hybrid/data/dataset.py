"""Merge, filter, encode: canonical ratings + item text + item vectors -> the encoded dataset
the models train on.

The catalogue is every item with usable text, sorted by id (a stable mapping); the encoded
ratings keep the order of the ratings table. Ratings of items
without usable text are dropped (counted); minimum counts per user and per item apply, once or
iterated to a fixpoint (k-core). Catalogue items left without ratings are the cold-start
candidates and keep their index and vector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybrid.core.errors import InputFormatError, StageError
from hybrid.data.ids import IdMap
from hybrid.data.io import release_arrow_pages


def min_count_mask(user_codes: np.ndarray, item_codes: np.ndarray, min_user_ratings: int,
                   min_item_ratings: int, iterate: bool = False) -> np.ndarray:
    """Rows whose user and item both have at least the minimum number of ratings.

    With ``iterate`` the filter repeats until nothing changes (a k-core), since dropping an
    item can take a user below the minimum and the other way round.

    Example:
        >>> users = np.array([0, 0, 1, 1, 2]); items = np.array([0, 1, 0, 1, 0])
        >>> min_count_mask(users, items, 2, 2).tolist()
        [True, True, True, True, False]
    """
    keep = np.ones(len(user_codes), dtype=bool)
    if len(keep) == 0:
        return keep
    n_users = int(user_codes.max()) + 1
    n_items = int(item_codes.max()) + 1
    while True:
        users_ok = np.bincount(user_codes[keep], minlength=n_users) >= min_user_ratings
        items_ok = np.bincount(item_codes[keep], minlength=n_items) >= min_item_ratings
        new_keep = keep & users_ok[user_codes] & items_ok[item_codes]
        changed = new_keep.sum() != keep.sum()
        keep = new_keep
        if not iterate or not changed:
            return keep


@dataclass
class EncodedDataset:
    """Everything a model needs, aligned by integer index.

    ``item_vectors[i]`` is the text vector of ``items.ids([i])``; ``item_ratings[i] == 0``
    marks a cold-start candidate.
    """

    user_index: np.ndarray  # int32 per rating
    item_index: np.ndarray  # int32 per rating
    rating: np.ndarray  # float32 per rating
    timestamp: np.ndarray  # int64 per rating, -1 when unknown
    users: IdMap
    items: IdMap
    item_vectors: np.ndarray  # (n_items, dim) float32
    item_known: np.ndarray  # bool per item: the vector came from known words
    item_titles: np.ndarray  # object per item (None when unknown)
    item_ratings: np.ndarray  # int per item: ratings in the filtered data

    @property
    def cold_items(self) -> np.ndarray:
        return np.flatnonzero(self.item_ratings == 0)


def _sorted_users(ids: pa.Array, used_codes: np.ndarray) -> tuple[IdMap, np.ndarray]:
    """The users of the kept ratings as an ``IdMap`` of their sorted ids (a mapping stable across
    runs), and each dictionary code's new index (-1: no kept rating)."""
    used = np.unique(used_codes)
    used_ids = ids.take(pa.array(used))
    order = pc.sort_indices(used_ids).to_numpy()
    new_code = np.full(len(ids), -1, dtype=np.int64)
    new_code[used[order]] = np.arange(len(used))
    return IdMap(used_ids.take(pa.array(order)).to_pylist(), "user"), new_code


def encode(ratings: pa.Table, item_text: pa.Table, item_vectors: pa.Table, titles: pa.Table,
           min_user_ratings: int = 1, min_item_ratings: int = 1,
           iterate: bool = False) -> tuple[EncodedDataset, dict]:
    """Tables in, encoded dataset and report out (no files).

    ``item_text`` needs ``item_id`` and either ``text`` or a boolean ``has_text`` column.
    """
    if "has_text" in item_text.column_names:
        has_text = item_text.column("has_text")
    else:
        has_text = pc.not_equal(item_text.column("text"), "")
    with_text = item_text.filter(has_text).column("item_id")
    catalogue = with_text.take(pc.sort_indices(with_text)).combine_chunks()
    report: dict = {"ratings_in": ratings.num_rows, "items_with_text": len(catalogue),
                    "items_without_text": item_text.num_rows - len(catalogue)}

    # Work on code arrays, never on filtered copies of the (string-heavy) table.
    item_codes = pc.index_in(ratings.column("item_id"), value_set=catalogue)
    with_text = pc.is_valid(item_codes).to_numpy(zero_copy_only=False)
    # of the ratings dropped, those of items that have metadata but no text (usually none)
    textless = item_text.filter(pc.invert(has_text)).column("item_id").combine_chunks()
    no_text = 0
    if len(textless):
        no_text = int(pc.sum(pc.is_in(ratings.column("item_id"), value_set=textless)).as_py() or 0)
    report["ratings_dropped_no_metadata"] = int((~with_text).sum()) - no_text
    report["ratings_dropped_no_text"] = no_text
    # int32 codes, filtered before any widening: at 40M ratings every int64 copy is 320 MB
    item_codes = item_codes.fill_null(0).to_numpy(zero_copy_only=False)[with_text]
    user_dict = pc.dictionary_encode(ratings.column("user_id")).combine_chunks()
    user_codes = user_dict.indices.to_numpy(zero_copy_only=False)[with_text]
    keep = min_count_mask(user_codes, item_codes, min_user_ratings, min_item_ratings, iterate)
    report["ratings_dropped_min_counts"] = int((~keep).sum())
    if not keep.any():
        raise StageError(_nothing_left(report, ratings.num_rows, item_text.num_rows,
                                       min_user_ratings, min_item_ratings))

    users, new_code = _sorted_users(user_dict.dictionary, user_codes[keep])
    items = IdMap(catalogue.to_pylist(), "item")
    user_index = new_code[user_codes[keep]].astype(np.int32)
    item_index = item_codes[keep].astype(np.int32)
    rows = np.flatnonzero(with_text)[keep]
    kept_rows = pa.array(rows)  # the kept rows' values only, not a converted copy of each column
    timestamps = ratings.column("timestamp").take(kept_rows).fill_null(-1).to_numpy(
        zero_copy_only=False).astype(np.int64, copy=False)
    rating = ratings.column("rating").take(kept_rows).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)

    vectors, known, item_titles = catalogue_columns(catalogue, item_vectors, titles)
    item_ratings = np.bincount(item_index, minlength=len(items))
    report.update(ratings_out=int(keep.sum()), users=len(users), items=len(items),
                  rated_items=int((item_ratings > 0).sum()),
                  cold_items=int((item_ratings == 0).sum()),
                  items_without_known_words=int((~known).sum()))
    dataset = EncodedDataset(user_index, item_index, rating, timestamps, users, items, vectors,
                             known, item_titles, item_ratings)
    return dataset, report


def _nothing_left(report: dict, ratings: int, items: int, min_user: int, min_item: int) -> str:
    """Why no rating survived, and what to check."""
    if ratings == 0:
        return "no ratings to work with: the ratings table is empty (see the ingest report and quarantine)"
    if items == 0:
        return "no item metadata to work with: the items table is empty (see the ingest report and quarantine)"
    if report["ratings_dropped_no_metadata"] == ratings:
        return (f"none of the {ratings} ratings is of an item in the metadata ({items} items): "
                "the two files share no item id - check that they are of the same catalogue "
                "and that the ids are written alike (e.g. asin vs parent_asin)")
    if report["ratings_dropped_no_metadata"] + report["ratings_dropped_no_text"] == ratings:
        return (f"every rated item lacks usable text ({report['ratings_dropped_no_text']} ratings "
                "of items whose text fields are empty, "
                f"{report['ratings_dropped_no_metadata']} of items without metadata): check "
                "--text-fields and the text report")
    return (f"no rating is left after the minimum counts (--min-user-ratings {min_user}, "
            f"--min-item-ratings {min_item}): lower them")


def catalogue_columns(catalogue: pa.Array, item_vectors: pa.Table,
                      titles: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The catalogue's vectors, known-vector flags and titles, in catalogue (index) order."""
    vectors, known = align_vectors(item_vectors, catalogue)
    title_pos = pc.index_in(catalogue, value_set=titles.column("item_id").combine_chunks())
    return vectors, known, titles.column("title").take(title_pos).to_numpy(zero_copy_only=False)


def align_vectors(item_vectors: pa.Table, catalogue: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``item_vectors`` reordered to the catalogue's index order."""
    dim = item_vectors.schema.field("vector").type.list_size
    positions = pc.index_in(catalogue, value_set=item_vectors.column("item_id").combine_chunks())
    if positions.null_count:
        missing = catalogue.filter(pc.is_null(positions)).to_pylist()[:5]
        raise InputFormatError(f"item vectors missing for catalogue items {missing}")
    flat = item_vectors.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    matrix = flat.reshape(-1, dim).astype(np.float32, copy=False)
    rows = positions.to_numpy(zero_copy_only=False).astype(np.int64)
    known = item_vectors.column("known").to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(matrix[rows]), known[rows].astype(bool)


# ---------------------------------------------------------------- files
DATASET_FILES = ("ratings.parquet", "users.parquet", "items.parquet", "item_vectors.npy")


ENCODED_RATINGS_SCHEMA = pa.schema([("user_index", pa.int32()), ("item_index", pa.int32()),
                                    ("rating", pa.float32()), ("timestamp", pa.int64())])


def save_dataset(dataset: EncodedDataset, ratings_path, users_path, items_path, vectors_path) -> None:
    pq.write_table(pa.table({"user_index": dataset.user_index, "item_index": dataset.item_index,
                             "rating": dataset.rating, "timestamp": dataset.timestamp},
                            schema=ENCODED_RATINGS_SCHEMA), ratings_path, compression="zstd")
    save_catalogue(dataset.users, np.bincount(dataset.user_index, minlength=len(dataset.users)),
                   dataset.items, dataset.item_ratings, dataset.item_titles, dataset.item_known,
                   dataset.item_vectors, users_path, items_path, vectors_path)


def save_catalogue(users: IdMap, user_ratings: np.ndarray, items: IdMap, item_ratings: np.ndarray,
                   item_titles: np.ndarray, item_known: np.ndarray, item_vectors: np.ndarray,
                   users_path, items_path, vectors_path) -> None:
    """The dataset's files other than its ratings: the user and item id maps with their counts,
    and the item vectors in index order."""
    users.save(users_path, n_ratings=user_ratings)
    items.save(items_path, title=pa.array(item_titles.tolist(), pa.string()),
               n_ratings=item_ratings, known_vector=item_known)
    with open(vectors_path, "wb") as handle:
        np.save(handle, item_vectors)


def load_dataset(directory: str | os.PathLike) -> EncodedDataset:
    """Load the encoded dataset written by the pipeline's ``dataset`` stage.

    Example:
        >>> data = load_dataset("artifacts/dataset")  # doctest: +SKIP
        >>> data.item_vectors.shape[0] == len(data.items)  # doctest: +SKIP
        True
    """
    directory = Path(directory)
    missing = [f for f in DATASET_FILES if not (directory / f).exists()]
    if missing:
        raise InputFormatError(f"{directory}: not an encoded dataset (missing {missing}); "
                               "run `hybrid run` first")
    ratings = pq.read_table(directory / "ratings.parquet")
    items_table = pq.read_table(directory / "items.parquet")
    data = EncodedDataset(
        ratings.column("user_index").to_numpy(), ratings.column("item_index").to_numpy(),
        ratings.column("rating").to_numpy(), ratings.column("timestamp").to_numpy(),
        IdMap.load(directory / "users.parquet", "user"),
        IdMap.load(directory / "items.parquet", "item"),
        np.load(directory / "item_vectors.npy"),
        items_table.column("known_vector").to_numpy(zero_copy_only=False),
        np.array(items_table.column("title").to_pylist(), dtype=object),
        items_table.column("n_ratings").to_numpy(),
    )
    del items_table  # (the ratings' columns stay: the arrays are views of them)
    release_arrow_pages()
    return data
