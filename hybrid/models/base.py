"""The interface every index-level scorer implements: fit on integer-encoded ratings, then
``predict(users, items)`` for rating pairs and ``score(users, candidates)`` for ranking."""

from __future__ import annotations

import numpy as np


class Baseline:
    name = "baseline"
    predicts_ratings = True

    def fit(self, users, items, ratings, n_users: int, n_items: int, item_vectors=None):
        raise NotImplementedError

    def too_large(self, users, items, n_users: int, n_items: int) -> str | None:
        """Why fitting on these training rows would take more memory or time than this
        baseline is meant for (the evaluate stage and the blend then leave it out, saying
        so); None when it fits."""
        return None

    def predict(self, users, items) -> np.ndarray:
        users, items = np.asarray(users), np.asarray(items)
        return np.array([self.score(np.array([u]), np.array([i]))[0, 0] for u, i in zip(users, items)])

    def score(self, users, candidates) -> np.ndarray:
        raise NotImplementedError
