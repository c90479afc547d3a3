"""Sparse item-item neighbour kernels: the collaborative signal of two-stage recommending at any
size (``hybrid.models.item_item.item_neighbours`` chooses among them).

``item_neighbours(likes, k)`` returns an items x items CSR matrix ``S`` with at most ``k``
entries per row: row ``i`` holds the items that people who liked ``i`` also liked, weighted.
A user's item-item score for item ``j`` is ``sum over liked i of S[i, j]`` (``likes[u] @ S``), and
the top entries of that row are candidates of their own.

Three weightings, one output:

    ease     EASE's closed-form weights (Steck 2019), then the top ``k`` of every row: the best
             item-item model there is, dense while it is computed, so below ``dense_below`` items
    cosine   co-occurrence over sqrt(n_i n_j) + shrinkage, computed in blocks of rows of the
             sparse product ``X' X`` with only the top ``k`` of each row ever kept: memory in
             O(items x k), for catalogues of millions of products
    pearson  (``pearson_baseline_neighbours``, for rating prediction) Pearson correlation of
             baseline residuals over co-rated users, shrunk by support, as KNNBaseline does it;
             computed in the same blocks
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hybrid.core.progress import Progress


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
    counts = np.diff(matrix.indptr)
    if not len(counts) or counts.max() <= k:  # every row short enough: all of it is the top
        out = matrix.copy()
        out.sort_indices()
        return out
    # (memory: these arrays are the neighbour blocks' peak; rows are int32 and each temporary
    # goes as soon as it is used)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int32), counts)
    key = -np.abs(matrix.data) if magnitude else -matrix.data
    order = np.lexsort((matrix.indices, key, rows))  # by row, then value descending
    del key
    rank = np.arange(len(order), dtype=np.int64)
    rank -= matrix.indptr[rows[order]]
    keep = order[rank < k]
    del order, rank
    keep.sort()  # row-major again, then columns ascending within each row
    kept = np.bincount(rows[keep], minlength=matrix.shape[0])
    out = sp.csr_matrix((matrix.data[keep], matrix.indices[keep],
                         np.concatenate([[0], np.cumsum(kept)]).astype(matrix.indptr.dtype)), shape=matrix.shape)
    out.sort_indices()
    return out


def budget_blocks(costs: np.ndarray, budget: int):
    """``(start, stop)`` ranges of consecutive rows whose ``costs`` add up to at most
    ``budget`` (a row costlier than the budget alone is a block of its own): the memory of one
    block's work bounded, however the costs are spread.

    Example:
        >>> list(budget_blocks(np.array([4, 2, 3, 1, 9]), budget=5))
        [(0, 1), (1, 3), (3, 4), (4, 5)]
    """
    ends = np.cumsum(np.asarray(costs, np.int64))
    start = 0
    while start < len(ends):
        before = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, before + budget, side="right")), start + 1)
        yield start, stop
        start = stop


def item_blocks(by_item: sp.csr_matrix, by_user: sp.csr_matrix, budget: int = 20_000_000, what: str = ""):
    """``(start, stop)`` ranges of items whose co-occurrence rows (``by_item[start:stop] @
    by_user``) hold at most about ``budget`` entries together (``budget_blocks``): an item's row
    has at most ``sum over its users of their counts`` entries, so a block of popular items is
    short and a block of rare ones long, and the memory of one block is bounded whatever the
    catalogue. With ``what``, progress (items done) is reported under that name as the blocks are taken.

    Example:
        >>> x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 0, 1]], np.float32))
        >>> list(item_blocks(x.T.tocsr(), x, budget=4))
        [(0, 1), (1, 2), (2, 3)]
    """
    per_user = np.diff(by_user.indptr).astype(np.int64)
    rows = np.repeat(np.arange(by_item.shape[0]), np.diff(by_item.indptr))
    cost = np.bincount(rows, per_user[by_item.indices], by_item.shape[0]).astype(np.int64)
    progress = Progress(len(cost), what, "items") if what else None
    try:
        for start, stop in budget_blocks(cost, budget):
            yield start, stop
            if progress is not None:
                progress.update(stop - start)
    finally:  # also when the caller stops early
        if progress is not None:
            progress.close()


def cosine_neighbours(likes: sp.csr_matrix, k: int = 100, shrinkage: float = 10.0,
                      budget: int = 4_000_000) -> sp.csr_matrix:
    """Top-``k`` co-occurrence cosine neighbours of every item, in ``item_blocks``."""
    likes = sp.csr_matrix(likes, dtype=np.float32)
    likes.data[:] = 1.0
    by_item = likes.T.tocsr()
    norms = np.sqrt(np.asarray(by_item.sum(axis=1)).ravel()).astype(np.float32)
    parts = []
    for start, stop in item_blocks(by_item, likes, budget, "item-item neighbours (cosine)"):
        counts = (by_item[start:stop] @ likes).tocsr()  # block x items co-occurrences
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        counts.data /= norms[start + rows] * norms[counts.indices] + shrinkage
        counts.data[counts.indices == start + rows] = 0.0  # an item is not its own neighbour
        parts.append(top_k_per_row(counts, k))
    return _stacked(parts, likes.shape[1])


def _stacked(parts: list, n_items: int) -> sp.csr_matrix:
    """The blocks' rows as one float32 matrix, built array by array with each block's arrays
    released once copied: the blocks and the largest one array of the result in memory at a
    time (``sp.vstack`` holds the blocks and the whole result: at 800k products some 0.2 GB more)."""
    if not parts:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    counts = np.concatenate([np.diff(p.indptr) for p in parts])
    data = [p.data.astype(np.float32, copy=False) for p in parts]
    indices = [p.indices for p in parts]
    parts.clear()
    data_out = np.concatenate(data)
    data.clear()
    index_type = np.int32 if len(data_out) < 2**31 else np.int64
    indices_out = np.concatenate(indices).astype(index_type, copy=False)
    indices.clear()
    indptr = np.zeros(len(counts) + 1, index_type)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((data_out, indices_out, indptr), shape=(len(counts), n_items))


def _at(pattern: sp.csr_matrix, values: sp.csr_matrix) -> np.ndarray:
    """``values`` read at the entries of ``pattern`` (0 where ``values`` has none): sparse
    products drop sums that cancel to exactly 0, so products of one pattern can differ.
    Both are read with their indices sorted, so their row-major keys are sorted too."""
    values.sort_indices()
    pattern.sort_indices()
    if values.nnz == pattern.nnz and np.array_equal(values.indices, pattern.indices) \
            and np.array_equal(values.indptr, pattern.indptr):
        return values.data
    width = np.int64(pattern.shape[1])
    pattern_keys = np.repeat(np.arange(pattern.shape[0], dtype=np.int64), np.diff(pattern.indptr)) * width \
        + pattern.indices
    value_keys = np.repeat(np.arange(values.shape[0], dtype=np.int64), np.diff(values.indptr)) * width \
        + values.indices
    if not len(value_keys):
        return np.zeros(len(pattern_keys))
    at = np.minimum(np.searchsorted(value_keys, pattern_keys), len(value_keys) - 1)
    return np.where(value_keys[at] == pattern_keys, values.data[at], 0.0)


def pearson_baseline_neighbours(residuals: sp.csr_matrix, keep: int = 200, shrinkage: float = 100.0,
                                min_support: int = 1, budget: int = 4_000_000,
                                what: str = "") -> sp.csr_matrix:
    """Pearson-baseline similarities between the columns of a users x items matrix of
    baseline residuals ``r_ui - b_ui`` (every rating an entry, a residual of 0 included):

        s_ij = sum_u e_ui e_uj / sqrt(sum_u e_ui^2 * sum_u e_uj^2)   over users who rated both
        s_ij *= (n_ij - 1) / (n_ij - 1 + shrinkage)                  n_ij: how many rated both

    (Koren 2010; KNNBaseline's ``pearson_baseline``). Pairs rated together by fewer than
    ``min_support`` users get 0. A pair is kept when it is among the ``keep`` largest positive
    similarities of either item (prediction uses positive ones only; the result is symmetric,
    so an item's neighbours are its row and its column), computed in ``item_blocks`` of the
    sparse products: memory in O(items x keep), never an items x items array. ``what`` names
    the progress lines (none without it).

    Example:
        >>> e = sp.csr_matrix(np.array([[1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [0.5, 0.5, 0.0]]))
        >>> s = pearson_baseline_neighbours(e, shrinkage=0.0).toarray()
        >>> round(float(s[0, 1]), 6), float(s[0, 2])
        (1.0, 0.0)
    """
    residuals = sp.csr_matrix(residuals, dtype=np.float64)
    rated = residuals.copy()
    rated.data = np.ones_like(rated.data)
    squares = residuals.copy()
    squares.data = squares.data ** 2
    by_item, squares_by_item, rated_by_item = (m.T.tocsr() for m in (residuals, squares, rated))
    parts = []
    for start, stop in item_blocks(rated_by_item, rated, budget, what):
        support = (rated_by_item[start:stop] @ rated).tocsr()  # every co-rated pair, count >= 1
        products = _at(support, (by_item[start:stop] @ residuals).tocsr())
        own = _at(support, (squares_by_item[start:stop] @ rated).tocsr())  # sum of e_ui^2
        other = _at(support, (rated_by_item[start:stop] @ squares).tocsr())  # sum of e_uj^2
        n = support.data
        denominator = np.sqrt(own * other)
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = np.where(denominator > 0, products / denominator, 0.0)
        similarity *= np.where(n > 1, (n - 1) / (n - 1 + shrinkage), 0.0) if shrinkage else 1.0
        rows = np.repeat(np.arange(support.shape[0]), np.diff(support.indptr))
        similarity[(n < min_support) | (support.indices == start + rows) | (similarity < 0)] = 0.0
        parts.append(top_k_per_row(sp.csr_matrix((similarity, support.indices, support.indptr),
                                                 shape=support.shape), keep).astype(np.float32))
        del support, products, own, other, similarity, rows, n, denominator  # before the next block's
    top = _stacked(parts, residuals.shape[1])
    return top.maximum(top.T).tocsr()  # symmetric: row i and column i are both i's neighbours


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
