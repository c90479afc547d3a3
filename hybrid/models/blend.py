"""Rating blend: the network's predicted ratings and the neighbourhood models' (KNNBaseline,
item- and user-based; ``hybrid.models.baselines``), combined linearly with weights fitted on the
validation split carved from the training data, as the Netflix Prize teams blended their models.

The network and the neighbourhoods err differently (the network generalises through embeddings
and text, a neighbourhood through a few very similar items the user rated), so the blend beats
each part (``benchmarks/results/models.md``).

Fitting: the neighbourhood models are fitted on the rows the network fitted, their predictions
and the network's on the validation rows give the weights (least squares with a small ridge),
then the neighbourhood models are fitted again on every training row (the network keeps its
early-stopped weights; keeping the first similarities instead saves 1.7 s on ml-100k and costs
0.0015 RMSE). Above ``refit_max_ratings`` training ratings the similarities of the first fit
are kept and only the baselines and residuals are refitted on every row (``ItemKNN.update``):
the similarities are the expensive part, 3-4 minutes at 3.8M ratings on 2 cores. Nothing here
sees a test row. A neighbourhood model too large for the training
rows (``Baseline.too_large``: the user-based one when popular items have tens of thousands of
raters) is left out of the blend, and ``skipped`` says why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hybrid.core.errors import InputFormatError
from hybrid.core.persistence import load_bundle, save_bundle
from hybrid.evaluation.metrics import rmse
from hybrid.models.baselines import ItemKNN, UserKNN

_PARTS = {part.name: part for part in (ItemKNN, UserKNN)}


class RatingBlend:
    """``w0 + w1 * network + w2 * item-knn + w3 * user-knn`` for items with training ratings."""

    def __init__(self, ridge: float = 1e-3, refit_max_ratings: int = 1_000_000):
        self.ridge, self.refit_max_ratings = ridge, refit_max_ratings
        self.parts = (ItemKNN(), UserKNN())
        self.weights = np.array([0.0, 1.0] + [0.0] * len(self.parts))
        self.validation: dict = {}
        self.skipped: dict = {}  # part name -> why it was left out

    def _features(self, network, users, items) -> np.ndarray:
        columns = [np.ones(len(users)), np.asarray(network, np.float64)]
        return np.column_stack(columns + [part.predict(users, items) for part in self.parts])

    def fit(self, network_validation: np.ndarray, user_index, item_index, rating, fit_rows, val_rows,
            n_users: int, n_items: int) -> "RatingBlend":
        """``network_validation``: the network's predictions for the ``val_rows``."""
        user_index, item_index = np.asarray(user_index), np.asarray(item_index)
        rating = np.asarray(rating, np.float64)
        reasons = {part.name: part.too_large(user_index, item_index, n_users, n_items) for part in self.parts}
        self.skipped = {name: reason for name, reason in reasons.items() if reason}
        self.parts = tuple(part for part in self.parts if part.name not in self.skipped)
        for part in self.parts:
            part.fit(user_index[fit_rows], item_index[fit_rows], rating[fit_rows], n_users, n_items)
        features = self._features(network_validation, user_index[val_rows], item_index[val_rows])
        target = rating[val_rows]
        penalty = self.ridge * len(target) * np.eye(features.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        self.weights = np.linalg.solve(features.T @ features + penalty, features.T @ target)
        names = ["network"] + [part.name for part in self.parts]
        self.validation = {f"rmse_{name}": rmse(target, features[:, k + 1]) for k, name in enumerate(names)}
        self.validation["rmse_blend"] = rmse(target, features @ self.weights)
        refit = len(rating) <= self.refit_max_ratings
        for part in self.parts:
            (part.fit if refit else part.update)(user_index, item_index, rating, n_users, n_items)
        self.similarities_from = "every training row" if refit else "the rows the network fitted"
        return self

    def predict(self, network: np.ndarray, users, items) -> np.ndarray:
        return self._features(network, np.asarray(users), np.asarray(items)) @ self.weights

    def score(self, network: np.ndarray, users, items) -> np.ndarray:
        """The blend of a users x items block (``network``: the network's scores of that block),
        each neighbourhood model scoring the block at once (``Baseline.score``; the same numbers
        as ``predict`` on its pairs, several times faster for a user over many items)."""
        out = self.weights[0] + self.weights[1] * np.asarray(network, np.float64)
        for weight, part in zip(self.weights[2:], self.parts):
            out = out + weight * part.score(users, items)
        return out

    def save(self, directory: str | os.PathLike) -> None:
        """The weights (``weights.npz``) and each neighbourhood model's files in ``directory``,
        created if missing (arrays and JSON, no pickle)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        meta = {"ridge": self.ridge, "refit_max_ratings": self.refit_max_ratings,
                "parts": [part.name for part in self.parts], "validation": self.validation,
                "skipped": self.skipped, "similarities_from": getattr(self, "similarities_from", None)}
        save_bundle(Path(directory) / "weights.npz", meta, weights=self.weights)
        for part in self.parts:
            part.save(directory, part.name)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "RatingBlend":
        """A blend ``save`` wrote (a recommender's load reports a damaged folder:
        ``persistence.reading_folder``)."""
        meta, _, arrays = load_bundle(Path(directory) / "weights.npz")
        blend = cls(meta["ridge"], meta["refit_max_ratings"])
        blend.parts = tuple(_PARTS[name].load(directory, name) for name in meta["parts"])
        blend.weights = np.asarray(arrays["weights"], np.float64)
        blend.validation, blend.skipped = dict(meta["validation"]), dict(meta["skipped"])
        if len(blend.weights) != 2 + len(blend.parts):
            raise InputFormatError(f"{directory}: the rating blend's weights do not match its parts")
        if meta.get("similarities_from") is not None:
            blend.similarities_from = meta["similarities_from"]
        return blend

    def describe(self) -> dict:
        names = ["intercept", "network"] + [part.name for part in self.parts]
        described = {"weights": dict(zip(names, np.round(self.weights, 4).tolist())), **self.validation}
        if hasattr(self, "similarities_from"):
            described["similarities_from"] = self.similarities_from
        if getattr(self, "skipped", None):
            described["skipped"] = dict(self.skipped)
        return described
