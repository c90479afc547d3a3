"""Splits of integer-encoded rating rows (``hybrid.data.dataset``): each returns
``(train_rows, test_rows)``, arrays of row numbers into the rating arrays. Random held-out shares,
wherever they are drawn (test splits, validation splits inside a fit), follow ``held_out``."""

from __future__ import annotations

import numpy as np

from hybrid.core.errors import ArgumentError


def held_out(n: int, share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The one rule every random held-out share follows: rows ``0..n-1`` in a seeded
    permutation, the first ``round(n * share)`` of it held out. Returns ``(kept, held)``, each
    sorted.

    Example:
        >>> kept, held = held_out(10, 0.2, seed=1)
        >>> len(kept), len(held), sorted(set(kept) | set(held)) == list(range(10))
        (8, 2, True)
    """
    order = np.random.default_rng(seed).permutation(n)
    n_held = int(round(n * share))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def random_split(n: int, test_share: float = 0.2, seed: int = 0):
    """``test_share`` of the rows, at random, for test: ``(train_rows, test_rows)`` (``held_out``)."""
    return held_out(n, test_share, seed)


def validation_folds(n: int, share: float, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` disjoint held-out shares of ``n`` rows, ``share`` of them each, from one seeded
    permutation: ``[(kept, held), ...]``; the first is ``random_split(n, share, seed)``.

    Example:
        >>> [(len(kept), len(held)) for kept, held in validation_folds(10, 0.2, 3, seed=1)]
        [(8, 2), (8, 2), (8, 2)]
        >>> validation_folds(10, 0.2, 1, seed=1)[0][1].tolist() == random_split(10, 0.2, seed=1)[1].tolist()
        True
    """
    n_held = int(round(n * share))
    if folds < 1 or folds * n_held > n:
        raise ArgumentError(f"{folds} folds of {n_held} rows each do not fit in {n} rows")
    order = np.random.default_rng(seed).permutation(n)  # held_out's permutation: fold 0 is its share
    out = []
    for k in range(folds):
        held = np.zeros(n, bool)
        held[order[k * n_held:(k + 1) * n_held]] = True
        out.append((np.flatnonzero(~held), np.flatnonzero(held)))
    return out


def stratified_split(user_index: np.ndarray, test_share: float = 0.2, seed: int = 0):
    """``test_share`` of every user's ratings go to test (at least one stays in train)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(user_index))
    order = order[np.argsort(user_index[order], kind="stable")]  # grouped by user, shuffled inside
    users, starts, counts = np.unique(user_index[order], return_index=True, return_counts=True)
    n_test = np.minimum(np.floor(counts * test_share + rng.random(len(counts))).astype(int), counts - 1)
    position = np.arange(len(order)) - np.repeat(starts, counts)
    is_test = position < np.repeat(n_test, counts)
    return np.sort(order[~is_test]), np.sort(order[is_test])


def chronological_split(user_index: np.ndarray, timestamp: np.ndarray, last_n: int | None = 1,
                        cutoff: int | None = None):
    """Leave each user's last ``last_n`` ratings for test, or everything after ``cutoff``.

    Example:
        >>> chronological_split(np.array([0, 0, 0, 1, 1]), np.array([5, 1, 3, 2, 9]))
        (array([1, 2, 3]), array([0, 4]))
    """
    if cutoff is not None:
        is_test = timestamp > cutoff
    else:
        order = np.lexsort((np.arange(len(user_index)), timestamp, user_index))  # user, then time
        sorted_users = user_index[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
        counts = np.diff(np.r_[starts, len(order)])
        from_end = np.repeat(starts + counts, counts) - np.arange(len(order))  # 1 = the last
        is_test = np.zeros(len(order), dtype=bool)
        # a user with no more than last_n ratings keeps them all in train
        is_test[order] = (from_end <= last_n) & (np.repeat(counts, counts) > last_n)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def cold_item_split(item_index: np.ndarray, item_share: float = 0.2, seed: int = 0):
    """Hold out ``item_share`` of the rated items with all their ratings (cold-start items).

    Returns ``(train_rows, test_rows, cold_items)``.
    """
    items = np.unique(item_index)
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(items, int(round(len(items) * item_share)), replace=False))
    is_test = np.isin(item_index, cold)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test), cold


def pairs_split(user_index, item_index, test_users, test_items):
    """Test rows are the (user, item) pairs given, e.g. from MovieLens' u1.test."""
    key = user_index.astype(np.int64) * (int(item_index.max()) + 1) + item_index
    test_key = np.asarray(test_users, np.int64) * (int(item_index.max()) + 1) + np.asarray(test_items)
    is_test = np.isin(key, test_key)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
