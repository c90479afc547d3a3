"""Shaping a ranked list: a popularity penalty and diversity by maximal marginal relevance.

Both act on one request's scored products (the re-ranked candidates, or every product when a
list is ranked exactly) and change only the order: the scores answered stay the recommender's.

- ``popularity_penalty`` p >= 0: a product's relevance is its score standardised over the
  request's products minus p times its popularity standardised over the catalogue (popularity:
  log(1 + training ratings)). At p = 1 a product one standard deviation more popular needs one
  standard deviation more score to keep its place.
- ``diversity`` λ in [0, 1]: maximal marginal relevance (Carbonell and Goldstein, 1998) over the
  products' text vectors. The first product is the most relevant; each next one maximises
  ``(1 - λ) · relevance - λ · (its highest cosine to a product already chosen)``, relevance
  scaled to [0, 1] over the ``pool_size`` most relevant products, which are the ones it chooses
  from. λ = 0 is the plain ranking, λ = 1 ignores relevance after the first product.

``Shaping()`` (both 0) leaves every answer as it is, and costs nothing.

Example:
    >>> rows, scores = shaped(np.array([[3.0, 2.9, 1.0]]), np.array([[0, 1, 2]]), np.ones((1, 3), bool), 2,
    ...                       Shaping(diversity=0.9), np.array([[1.0, 0], [1, 0], [0, 1]]), None)
    >>> rows.tolist(), scores.tolist()  # product 1 is a copy of product 0: product 2 comes second
    ([[0, 2]], [[3.0, 1.0]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hybrid.content.vectors import unit_rows
from hybrid.core.errors import ArgumentError
from hybrid.core.numeric import top_k, zscore


@dataclass(frozen=True)
class Shaping:
    """How a list is shaped after scoring (see the module's docstring); checked on creation."""

    diversity: float = 0.0
    popularity_penalty: float = 0.0

    def __post_init__(self):
        for name, low, high in (("diversity", 0.0, 1.0), ("popularity_penalty", 0.0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not low <= float(value) <= high or math.isnan(float(value)):
                bounds = "between 0 and 1" if high == 1.0 else "0 or more (finite)"
                raise ArgumentError(f"{name} must be a number {bounds}, got {value!r}")
            object.__setattr__(self, name, float(value))
        if math.isinf(self.popularity_penalty):
            raise ArgumentError("popularity_penalty must be a number 0 or more (finite), got inf")

    @property
    def active(self) -> bool:
        return self.diversity > 0 or self.popularity_penalty > 0

    def pool_size(self, n: int) -> int:
        """How many of the most relevant products diversity chooses ``n`` from."""
        return n if self.diversity == 0 else max(5 * n, 50)


def popularity_scores(counts: np.ndarray) -> np.ndarray:
    """log(1 + count) standardised over the catalogue (all zero when every count is equal)."""
    return zscore(np.log1p(np.asarray(counts, np.float64)))


def shaped(scores: np.ndarray, rows: np.ndarray, valid: np.ndarray, n: int, shaping: Shaping,
           vectors: np.ndarray, popularity: np.ndarray | None):
    """``top_k`` of every request after shaping: ``(rows, scores)``, ``n`` wide, -1 / -inf
    padding, the recommender's scores in the shaped order.

    ``vectors``: every product's text vector (by row); ``popularity``: every product's
    ``popularity_scores`` (by row; only read with a popularity penalty)."""
    if not shaping.active:
        return top_k(scores, rows, valid, n)
    scores = np.where(valid, np.asarray(scores, np.float64), -np.inf)
    relevance = scores
    if shaping.popularity_penalty > 0:
        relevance = _standardised(scores, valid) - shaping.popularity_penalty * popularity[np.maximum(rows, 0)]
    columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    pool, pool_relevance = top_k(relevance, columns, valid, min(shaping.pool_size(n), scores.shape[1]))
    out_rows, out_scores = np.full((len(rows), n), -1, np.int64), np.full((len(rows), n), -np.inf)
    for b in range(len(rows)):
        mine = pool[b] >= 0
        chosen = pool[b][mine]
        if shaping.diversity > 0 and len(chosen) > 1:
            chosen = chosen[_mmr(pool_relevance[b][mine], vectors[rows[b, chosen]], n, shaping.diversity)]
        chosen = chosen[:n]
        out_rows[b, :len(chosen)], out_scores[b, :len(chosen)] = rows[b, chosen], scores[b, chosen]
    return out_rows, out_scores


def _standardised(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each request's valid scores standardised over themselves (spread 0: centred only)."""
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    finite = np.where(valid, scores, 0.0)
    mean = finite.sum(axis=1, keepdims=True) / count
    spread = np.sqrt((np.where(valid, scores - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / count)
    return np.where(valid, (finite - mean) / np.where(spread > 0, spread, 1.0), -np.inf)


def _mmr(relevance: np.ndarray, vectors: np.ndarray, n: int, diversity: float) -> np.ndarray:
    """Positions of the ``n`` products maximal marginal relevance picks, in order (relevance
    sorted best first)."""
    low, high = relevance.min(), relevance.max()
    scaled = (relevance - low) / (high - low) if high > low else np.ones_like(relevance)
    unit = unit_rows(vectors)
    similarity = unit @ unit.T
    picked = [0]
    closest = similarity[0].copy()
    taken = np.zeros(len(relevance), bool)
    taken[0] = True
    for _ in range(min(n, len(relevance)) - 1):
        gain = np.where(taken, -np.inf, (1 - diversity) * scaled - diversity * closest)
        best = int(np.argmax(gain))
        picked.append(best)
        taken[best] = True
        closest = np.maximum(closest, similarity[best])
    return np.asarray(picked)

