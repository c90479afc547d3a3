"""Vector search behind one small adapter (as implicit keeps faiss/annoy in ``ann/``).

``VectorIndex`` holds vectors in index order (row i = item index i) and answers
maximum-inner-product queries: exact (faiss ``IndexFlatIP``) below ``exact_below`` vectors, HNSW
above it (``IndexHNSWFlat`` with the inner-product metric; ``hnsw_m``, ``ef_construction`` and
``ef_search`` exposed; ``what``: progress lines, under that name, while a graph is built).
Vectors can be appended (new items), and the index is saved and loaded with its settings. Nothing else in the package talks to faiss.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hybrid.core.errors import ArgumentError, InputFormatError


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        raise ArgumentError("vector search needs faiss-cpu: pip install faiss-cpu") from None
    return faiss


class VectorIndex:
    """Maximum-inner-product search over rows of a float32 matrix.

    Example:
        >>> index = VectorIndex(np.eye(3, dtype=np.float32))
        >>> scores, rows = index.search(np.array([[0.0, 1.0, 0.0]], np.float32), 2)
        >>> rows[0].tolist()[0], index.kind
        (1, 'exact')
    """

    def __init__(self, vectors: np.ndarray, exact_below: int = 50_000, hnsw_m: int = 32,
                 ef_construction: int = 100, ef_search: int = 256, threads: int | None = None,
                 what: str = ""):
        vectors = _matrix(vectors)
        self.dim = vectors.shape[1]
        self.settings = {"exact_below": exact_below, "hnsw_m": hnsw_m,
                         "ef_construction": ef_construction, "ef_search": ef_search}
        faiss = _faiss()
        if threads:
            faiss.omp_set_num_threads(threads)
        if len(vectors) < exact_below:
            self.kind = "exact"
            self._index = faiss.IndexFlatIP(self.dim)
        else:
            self.kind = "hnsw"
            self._index = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = ef_construction
            self._index.hnsw.efSearch = ef_search
        if self.kind == "exact" or not what:
            self._index.add(vectors)
            return
        from hybrid.core.progress import Heartbeat

        # an HNSW graph is built some ten thousand vectors a second: a minute or more at 800k
        # products. In one call, not in parts: faiss grows its storage and link arrays at each
        # part, copying them as they grow, and at 800k products those copies were the
        # recommender stage's memory peak
        with Heartbeat(f"{what}: building an HNSW graph of {len(vectors):,} vectors"):
            self._index.add(vectors)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def vectors(self) -> np.ndarray:
        """The stored vectors (row ``i`` = the ``i``-th added), read-only and without a copy: a
        view of the index's own storage, which keeps the index alive. Take it again after
        ``add`` (adding may move the storage).

        Example:
            >>> index = VectorIndex(np.eye(2, dtype=np.float32))
            >>> index.vectors().tolist(), index.vectors().flags.writeable
            ([[1.0, 0.0], [0.0, 1.0]], False)
        """
        faiss = _faiss()
        flat = self._index if self.kind == "exact" else faiss.downcast_index(self._index.storage)
        if len(self) == 0:
            return np.zeros((0, self.dim), np.float32)
        address = faiss.rev_swig_ptr(flat.get_xb(), len(self) * self.dim).ctypes.data
        return np.asarray(_Storage(self, address, (len(self), self.dim)))

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append vectors; returns their row numbers."""
        vectors = _matrix(vectors, self.dim)
        start = len(self)
        self._index.add(vectors)
        return np.arange(start, start + len(vectors))

    def search(self, queries: np.ndarray, k: int, exclude: list | None = None):
        """Top-``k`` rows by inner product for each query: ``(scores, rows)``, both (n, k).

        ``exclude[q]`` (row numbers) are left out of query q's answer; rows beyond what exists
        are -1 with score -inf.
        """
        if k <= 0:
            raise ArgumentError(f"k must be positive, got {k}")
        queries = _matrix(queries, self.dim)
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        fetch = min(len(self), k + extra)
        if fetch == 0:
            return (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        scores, rows = self._index.search(queries, fetch)
        if exclude is not None:
            for q, excluded in enumerate(exclude):
                if len(excluded):
                    drop = np.isin(rows[q], np.asarray(excluded))
                    kept = np.r_[rows[q][~drop], np.full(drop.sum(), -1)]
                    kept_scores = np.r_[scores[q][~drop], np.full(drop.sum(), -np.inf)]
                    rows[q], scores[q] = kept, kept_scores
        scores, rows = scores[:, :k], rows[:, :k]
        if rows.shape[1] < k:
            pad = k - rows.shape[1]
            rows = np.hstack([rows, np.full((len(rows), pad), -1, rows.dtype)])
            scores = np.hstack([scores, np.full((len(scores), pad), -np.inf, scores.dtype)])
        scores[rows < 0] = -np.inf
        return scores, rows

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self._index, str(directory / "index.faiss"))
        (directory / "index.json").write_text(json.dumps({"kind": self.kind, "dim": self.dim,
                                                          "size": len(self), **self.settings}))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "VectorIndex":
        directory = Path(directory)
        try:
            meta = json.loads((directory / "index.json").read_text())
            index = _faiss().read_index(str(directory / "index.faiss"))
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputFormatError(f"{directory}: not a saved vector index ({exc})") from None
        self = cls.__new__(cls)
        self.dim, self.kind = meta["dim"], meta["kind"]
        self.settings = {k: meta[k] for k in ("exact_below", "hnsw_m", "ef_construction", "ef_search")}
        self._index = index
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.settings["ef_search"]
        return self


class _Storage:
    """A read-only float32 array interface over faiss-owned memory that holds its owner."""

    def __init__(self, owner, address: int, shape: tuple[int, int]):
        self.owner = owner
        self.__array_interface__ = {"shape": shape, "typestr": "<f4", "data": (address, True), "version": 3}


def _matrix(vectors, dim: int | None = None) -> np.ndarray:
    vectors = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
    if vectors.ndim != 2 or (dim is not None and vectors.shape[1] != dim):
        raise ArgumentError(f"expected vectors of {dim or 'one'} dimension(s) per row, got shape {vectors.shape}")
    return vectors
