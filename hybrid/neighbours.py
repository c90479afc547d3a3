"""Sparse item-item neighbours: the collaborative signal of two-stage recommending at any size.

``item_neighbours(likes, k)`` returns an items x items CSR matrix ``S`` with at most ``k``
entries per row: row ``i`` holds the items that people who liked ``i`` also liked, weighted.
A user's item-item score for item ``j`` is ``sum over liked i of S[i, j]`` (``likes[u] @ S``), and
the top entries of that row are candidates of their own.

Two weightings, one output:

    ease     EASE's closed-form weights (Steck 2019), then the top ``k`` of every row: the best
             item-item model there is, dense while it is computed, so below ``dense_below`` items
    cosine   co-occurrence over sqrt(n_i n_j) + shrinkage, computed in blocks of rows of the
             sparse product ``X' X`` with only the top ``k`` of each row ever kept: memory in
             O(items x k), for catalogues of millions of products
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k_per_row(matrix: sp.csr_matrix, k: int, magnitude: bool = False) -> sp.csr_matrix:
    """The ``k`` largest entries of every row of a sparse matrix (``magnitude``: largest in
    absolute value, negative weights kept); ties: lower column first.

    Example:
        >>> m = sp.csr_matrix(np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0]]))
        >>> top_k_per_row(m, 2).toarray().tolist()
        [[0.0, 3.0, 0.0, 2.0], [5.0, 0.0, 0.0, 0.0]]
        >>> top_k_per_row(sp.csr_matrix(np.array([[1.0, -4.0, 2.0]])), 2, magnitude=True).toarray().tolist()
        [[0.0, -4.0, 2.0]]
    """
    matrix = sp.csr_matrix(matrix)
    matrix.eliminate_zeros()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    key = -np.abs(matrix.data) if magnitude else -matrix.data
    order = np.lexsort((matrix.indices, key, rows))  # by row, then value descending
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    keep = order[rank < k]
    out = sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)
    out.sort_indices()
    return out


def cosine_neighbours(likes: sp.csr_matrix, k: int = 100, shrinkage: float = 10.0,
                      block: int = 4096) -> sp.csr_matrix:
    """Top-``k`` co-occurrence cosine neighbours of every item, in blocks of ``block`` items."""
    likes = sp.csr_matrix(likes, dtype=np.float32)
    likes.data[:] = 1.0
    by_item = likes.T.tocsr()
    norms = np.sqrt(np.asarray(by_item.sum(axis=1)).ravel()).astype(np.float32)
    parts = []
    for start in range(0, by_item.shape[0], block):
        counts = (by_item[start:start + block] @ likes).tocsr()  # block x items co-occurrences
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        counts.data /= norms[start + rows] * norms[counts.indices] + shrinkage
        counts.data[counts.indices == start + rows] = 0.0  # an item is not its own neighbour
        parts.append(top_k_per_row(counts, k))
    if not parts:
        return sp.csr_matrix((0, 0), dtype=np.float32)
    return sp.vstack(parts, format="csr").astype(np.float32)


def ease_neighbours(likes: sp.csr_matrix, l2: float | None = None, k: int = 100,
                    seed: int = 0) -> sp.csr_matrix:
    """EASE's item-item weights, top ``k`` per row kept (dense while computed); ``l2=None``
    chooses the regularisation on a validation share of the likes (``EASE.fit``)."""
    from .baselines import EASE

    users, items = sp.csr_matrix(likes).nonzero()
    ease = EASE(l2=l2, threshold=1.0, seed=seed).fit(users, items, np.ones(len(users)), *likes.shape)
    # by magnitude: EASE's negative weights carry as much as its positive ones (on
    # MovieLens-100k, top 200 of 1,682 by magnitude loses 0.003 NDCG@10, by value 0.011)
    return top_k_per_row(sp.csr_matrix(ease.B), k, magnitude=True)


def item_neighbours(likes: sp.csr_matrix, k: int = 100, method: str = "auto", l2: float | None = None,
                    shrinkage: float = 10.0, dense_below: int = 20_000,
                    seed: int = 0) -> tuple[sp.csr_matrix, str]:
    """The sparse item-item matrix and the method used (``auto``: EASE below ``dense_below``
    items, cosine above)."""
    if method == "auto":
        method = "ease" if likes.shape[1] < dense_below else "cosine"
    if method == "ease":
        return ease_neighbours(likes, l2, k, seed), method
    if method == "cosine":
        return cosine_neighbours(likes, k, shrinkage), method
    from .errors import ArgumentError

    raise ArgumentError(f"unknown item-item method {method!r}; choose auto, ease or cosine")


def row_values(matrix: sp.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """``matrix[b, columns[b]]`` for every row b (a rows x c array; absent entries are 0).

    Example:
        >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 4.0]]))
        >>> row_values(m, np.array([[1, 2], [2, 0]])).tolist()
        [[2.0, 0.0], [4.0, 1.0]]
    """
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    columns = np.asarray(columns)
    out = np.zeros(columns.shape, np.float32)
    for b in range(columns.shape[0]):
        lo, hi = matrix.indptr[b], matrix.indptr[b + 1]
        if hi == lo:
            continue
        indices = matrix.indices[lo:hi]
        at = np.minimum(np.searchsorted(indices, columns[b]), len(indices) - 1)
        found = indices[at] == columns[b]
        out[b, found] = matrix.data[lo:hi][at[found]]
    return out
