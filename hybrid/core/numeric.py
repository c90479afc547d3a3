"""Small numeric helpers shared by every layer."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, rows: np.ndarray, valid: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best valid entries of every row of ``scores``: ``(rows, scores)``, ``n`` wide,
    best first (ties in column order), -1 / -inf where fewer than ``n`` are valid.

    Example:
        >>> chosen, best = top_k(np.array([[0.1, 0.9, 0.5]]), np.array([[7, 8, 9]]), np.array([[True, True, False]]), 3)
        >>> chosen.tolist(), best.tolist()
        ([[8, 7, -1]], [[0.9, 0.1, -inf]])
    """
    wanted = n
    scores = np.where(valid, scores, -np.inf)
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < scores.shape[1] else \
        np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    best = np.take_along_axis(scores, part, 1)
    order = np.argsort(-best, axis=1, kind="stable")
    part, best = np.take_along_axis(part, order, 1), np.take_along_axis(best, order, 1)
    chosen = np.where(np.isfinite(best), np.take_along_axis(rows, part, 1), -1)
    if n < wanted:  # fewer entries than asked for: the answer keeps its width
        chosen = np.pad(chosen, ((0, 0), (0, wanted - n)), constant_values=-1)
        best = np.pad(best, ((0, 0), (0, wanted - n)), constant_values=-np.inf)
    return chosen, best


def id_rows(index: np.ndarray, learnt: np.ndarray, unknown: int) -> np.ndarray:
    """Rows of an id-embedding table for entity indices: the entity's own row where
    ``learnt[index]`` (indices past the end of ``learnt`` were never learnt), else the shared
    ``unknown`` row, which a model trained with id dropout scores from the entity's text alone.

    Example:
        >>> id_rows(np.array([0, 1, 2, 5]), np.array([True, False, True]), 3).tolist()
        [0, 3, 2, 3]
    """
    index = np.asarray(index, np.int64)
    learnt = np.asarray(learnt, bool)
    inside = index < len(learnt)
    known = np.zeros(index.shape, bool)
    known[inside] = learnt[index[inside]]
    return np.where(known, index, unknown).astype(np.int32)


def zscore(values: np.ndarray) -> np.ndarray:
    """Values standardised to mean 0 and spread 1 (all zero when they do not vary, or are none).

    Example:
        >>> zscore(np.array([1.0, 3.0])).tolist(), zscore(np.array([2.0, 2.0])).tolist()
        ([-1.0, 1.0], [0.0, 0.0])
    """
    values = np.asarray(values, np.float64)
    spread = values.std() if len(values) else 0.0
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
