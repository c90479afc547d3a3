"""The re-ranking blend of the two-stage recommender, as a plain value: weights per case, the
scales that standardise each part's score, and the offset of products nobody liked.

A case is the set of parts a request has (``cases``): ``full`` (a known user), ``no_network``
(a new user with liked products), ``retrieval_only`` (a new user from words alone), and
``unliked`` / ``unliked_no_network`` for products nobody liked in training (cold products, and
rated products without a like), which have no item-item score. A product's score is the weighted sum of its parts' standardised scores; a pointwise
score, the same whatever else is ranked with it. A new user who gives liked products and words has
one more part, ``words`` (the share of the sentence's term weight the product's text has:
``TermWeights.coverage``), weighted ``words`` on top of their case: products that have the words
rise together and keep the order their other parts give them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

SENTENCE_PARTS = ("words",)  # the parts a new user's sentence adds to their likes (ScoringParts)


def cases(network: bool, content: bool) -> dict[str, tuple[str, ...]]:
    """The parts each case's blend reads, given which optional parts the recommender has.

    Example:
        >>> cases(network=False, content=True)["full"]
        ('retrieval', 'item_item', 'content')
    """
    net = ("network",) if network else ()
    text = ("content",) if content else ()
    return {"full": ("retrieval", "item_item") + net + text, "no_network": ("retrieval", "item_item") + text,
            "retrieval_only": ("retrieval",) + text, "unliked": ("retrieval",) + net + text,
            "unliked_no_network": ("retrieval",) + text}


def equal_weights(parts_of: dict[str, tuple[str, ...]]) -> dict[str, dict[str, float]]:
    """Every case's parts weighted alike."""
    return {case: {p: 1 / len(parts) for p in parts} for case, parts in parts_of.items()}


def weight_grid(parts: tuple[str, ...], step: float) -> list[dict]:
    """Every blend of ``parts`` with weights on a grid of ``step`` that sum to 1.

    Example:
        >>> weight_grid(("a", "b"), 0.5)
        [{'a': 0.0, 'b': 1.0}, {'a': 0.5, 'b': 0.5}, {'a': 1.0, 'b': 0.0}]
    """
    ticks = int(round(1 / step))
    grid = []
    for cut in itertools.product(range(ticks + 1), repeat=len(parts)):
        if sum(cut) == ticks:
            grid.append({p: c / ticks for p, c in zip(parts, cut)})
    return grid


@dataclass
class Blend:
    """``weights[case][part]``, ``scales[part] = (mean, spread)``, ``unliked_offset`` added to the
    score of products without training likes (when the weights have an unliked case)."""

    weights: dict[str, dict[str, float]]
    scales: dict[str, tuple[float, float]] = field(default_factory=dict)
    unliked_offset: float = 0.0
    words: float = 0.0

    def with_case(self, case: str, weights: dict[str, float]) -> "Blend":
        """This blend with one case's weights replaced (a new value; this one is unchanged)."""
        return replace(self, weights={**self.weights, case: weights})

    @staticmethod
    def case_of(features: dict) -> str:
        """The warm case of a request from the parts it has scores for."""
        if "item_item" not in features:
            return "retrieval_only"
        return "full" if "network" in features else "no_network"

    def score(self, features: dict, rows: np.ndarray, liked_products: np.ndarray) -> np.ndarray:
        """The blended score of every (request, product row) in ``features`` (part -> scores,
        shaped like ``rows``); products that ``liked_products`` does not mark get the unliked
        blend plus the offset, when there is one."""
        warm = self.weighted(features, self.weights[self.case_of(features)])
        unliked_case, unliked = self._unliked(features, rows, liked_products)
        if unliked.any():
            warm = np.where(unliked, self.weighted(features, self.weights[unliked_case]) + self.unliked_offset, warm)
        if self.words:
            sentence = {part: self.words for part in SENTENCE_PARTS if part in features}
            if sentence:
                warm = warm + self.weighted(features, sentence)
        return warm

    def _unliked(self, features: dict, rows: np.ndarray, liked_products: np.ndarray) -> tuple[str, np.ndarray]:
        """The unliked case of a request and which of its products take it (none when the
        weights have no such case)."""
        case = "unliked" if "network" in features else "unliked_no_network"
        if case not in self.weights:
            return case, np.zeros(rows.shape, bool)
        return case, ~liked_products[np.maximum(rows, 0)]

    def contributions(self, features: dict, rows: np.ndarray, liked_products: np.ndarray) -> tuple[dict, np.ndarray]:
        """What makes up ``score``: ``({part: weight x standardised score}, offset)``, each shaped
        like ``rows``; the parts and the offset add up to ``score(features, rows, liked_products)``."""
        unliked_case, unliked = self._unliked(features, rows, liked_products)
        warm, cold = self.weights[self.case_of(features)], self.weights.get(unliked_case, {})
        shares = {}
        for part in features:
            mean, spread = self.scales.get(part, (0.0, 1.0))
            weight = np.where(unliked, cold.get(part, 0.0), warm.get(part, 0.0)) if part not in SENTENCE_PARTS \
                else np.full(rows.shape, self.words)
            if weight.any():
                shares[part] = weight * (features[part] - mean) / spread
        return shares, np.where(unliked, self.unliked_offset, 0.0)

    def weighted(self, features: dict, weights: dict) -> np.ndarray:
        """The weighted sum of the standardised part scores."""
        out = 0.0
        for part, weight in weights.items():
            if weight and part in features:
                mean, spread = self.scales[part]
                out = out + weight * (features[part] - mean) / spread
        shape = next(iter(features.values())).shape
        return np.full(shape, out, np.float64) if np.isscalar(out) else out

    def to_dict(self) -> dict:
        return {"weights": self.weights, "unliked_offset": self.unliked_offset, "words": self.words,
                "scales": {part: list(value) for part, value in self.scales.items()}}

    @classmethod
    def from_dict(cls, saved: dict) -> "Blend":
        return cls(saved["weights"], {part: tuple(value) for part, value in saved["scales"].items()},
                   float(saved["unliked_offset"]), float(saved.get("words", 0.0)))
