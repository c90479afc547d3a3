"""The retrieval stage's vectors, as ranking reads them: unit user and item vectors of a fitted
two-tower model (``hybrid.models.keras.retrieval``), and the towers themselves for users and
products the model never saw.

Known users and products are answered from the precomputed vectors alone. A loaded recommender
runs the towers' paths for a new user or a product known by its text in NumPy from the saved
weights (``UnknownTowers``): serving never imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from hybrid.content.vectors import unit_rows
from hybrid.core.config import RetrievalConfig
from hybrid.core.errors import ArgumentError, InputFormatError
from hybrid.core.numeric import id_rows
from hybrid.core.persistence import load_array, save_array

_TOWER_DIR = "retrieval"


class RetrievalScorer:
    """Unit user and item vectors of a fitted two-tower model, for scoring and indexing.

    ``from_model`` computes them: items without a like in training are represented through the
    unknown-item row (their text alone), exactly as the model learnt them with item-id dropout.
    ``arrays`` (``tower_arrays``) are what ``save_two_tower`` writes; a scorer loaded for serving
    holds them memory-mapped and makes its ``serving_tower`` from them when first needed
    (``load_scorer``): ``model`` None and ``make_model`` the function that makes it.
    """

    def __init__(self, model, item_matrix: np.ndarray, user_matrix: np.ndarray,
                 arrays: dict[str, np.ndarray] | None = None, make_model: Callable | None = None):
        self._model, self._make_model = model, make_model
        self.item_matrix, self.user_matrix = item_matrix, user_matrix
        self._arrays = arrays
        self._functions = None

    @property
    def model(self):
        """The towers (a ``TwoTower``), made on first use for a loaded scorer."""
        if self._model is None:
            self._model = self._make_model()
        return self._model

    @classmethod
    def from_model(cls, model, trained_items: np.ndarray, batch: int = 8192) -> "RetrievalScorer":
        n_items = model.n_items
        ids = id_rows(np.arange(n_items), trained_items, n_items)
        text = model.text.numpy()[:n_items]
        items = np.vstack([np.asarray(model.item_vectors(ids[s:s + batch], text[s:s + batch]))
                           for s in range(0, n_items, batch)] or [np.zeros((0, model.config.dim))])
        users = np.vstack([
            np.asarray(model.user_vectors(np.arange(s, min(s + batch, model.n_users), dtype=np.int32),
                                          model.pooled(model.histories[s:s + batch])))
            for s in range(0, model.n_users, batch)] or [np.zeros((0, model.config.dim))])
        return cls(model, items.astype(np.float32), users.astype(np.float32))

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The towers' weights and tables, as ``save_two_tower`` writes them."""
        if self._arrays is not None:
            return self._arrays
        from hybrid.models.keras.retrieval import tower_arrays

        return tower_arrays(self.model)

    @property
    def n_model_items(self) -> int:
        """The items the towers learnt ids for (a serving tower keeps only the unknown rows)."""
        return len(self._arrays["text"]) if self._arrays is not None else self.model.n_items

    def _tower_functions(self):
        """``(text_items, new_users)``: NumPy from the saved weights for a loaded scorer, the
        model's compiled graphs for one fitted here."""
        if self._functions is None:
            if self._arrays is not None:
                towers = UnknownTowers.from_arrays(self._arrays)
                self._functions = towers.text_items, towers.new_users
            else:
                from hybrid.models.keras.retrieval import tower_functions

                self._functions = tower_functions(self.model)
        return self._functions

    def score(self, users, candidates) -> np.ndarray:
        return self.user_matrix[np.asarray(users)] @ self.item_matrix[np.asarray(candidates)].T

    def text_items(self, text_vectors: np.ndarray, batch: int = 8192) -> np.ndarray:
        """Item-tower vectors of products known by their text alone (new or cold items)."""
        text_vectors = np.asarray(text_vectors, np.float32)
        if not len(text_vectors):
            return np.zeros((0, self.item_matrix.shape[1]), np.float32)
        text_items = self._tower_functions()[0]
        return np.vstack([np.asarray(text_items(text_vectors[s:s + batch]))
                          for s in range(0, len(text_vectors), batch)]).astype(np.float32)

    def new_user(self, liked_items=(), text_vector: np.ndarray | None = None) -> np.ndarray:
        """The vector of a user the model never saw: liked item indices and/or a text vector."""
        parts = [self.item_matrix[np.asarray(liked_items, np.int64)]] if len(liked_items) else []
        if text_vector is not None:
            parts.append(self.text_items(text_vector[None, :]))
        if not parts:
            raise ArgumentError("a new user needs liked items or a text vector")
        pooled = np.vstack(parts).mean(axis=0, keepdims=True).astype(np.float32)
        return np.asarray(self._tower_functions()[1](pooled))[0]


class UnknownTowers:
    """The two towers' paths for a product known by its text alone and for a user the model never
    saw, in NumPy, from the weights ``tower_arrays`` saves (``w000``... in the towers' order: the
    item and user id tables, the text projection, the item and the user output layers). Only the
    id tables' unknown rows are read: an item id table's second-to-last row (the last is
    padding), a user id table's last."""

    def __init__(self, weights: list[np.ndarray], where: str = "the retrieval towers"):
        if len(weights) != 8:
            raise InputFormatError(f"{where}: {len(weights)} saved tower weights, the towers have 8")
        items, users, text_kernel, text_bias, item_kernel, item_bias, user_kernel, user_bias = \
            [np.asarray(w, np.float32) for w in weights]
        dim = items.shape[-1]
        shapes_agree = (items.ndim == users.ndim == 2 and len(items) >= 2 and len(users) >= 1
                        and users.shape[1] == dim and text_bias.shape == (text_kernel.shape[1],)
                        and item_kernel.shape == (dim + text_kernel.shape[1], dim) and item_bias.shape == (dim,)
                        and user_kernel.shape == (2 * dim, dim) and user_bias.shape == (dim,))
        if not shapes_agree:
            raise InputFormatError(f"{where}: the saved tower weights' shapes do not fit together")
        self.unknown_item, self.unknown_user = items[-2].copy(), users[-1].copy()
        self.text_kernel, self.text_bias = text_kernel, text_bias
        self.item_kernel, self.item_bias = item_kernel, item_bias
        self.user_kernel, self.user_bias = user_kernel, user_bias

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "UnknownTowers":
        return cls([arrays[name] for name in sorted(name for name in arrays if name.startswith("w"))])

    def text_items(self, text_vectors: np.ndarray) -> np.ndarray:
        """Unit item vectors of products from their text vectors (n x text dim)."""
        text = np.maximum(np.asarray(text_vectors, np.float32) @ self.text_kernel + self.text_bias, 0)
        ids = np.broadcast_to(self.unknown_item, (len(text), len(self.unknown_item)))
        return unit_rows(np.concatenate([ids, text], axis=1) @ self.item_kernel + self.item_bias).astype(np.float32)

    def new_users(self, pooled: np.ndarray) -> np.ndarray:
        """Unit user vectors from pooled item vectors (n x dim)."""
        pooled = np.asarray(pooled, np.float32)
        ids = np.broadcast_to(self.unknown_user, (len(pooled), len(self.unknown_user)))
        return unit_rows(np.concatenate([ids, pooled], axis=1) @ self.user_kernel + self.user_bias).astype(np.float32)


def save_two_tower(scorer: RetrievalScorer, directory) -> None:
    """The towers' weights and tables, one ``.npy`` each (memory-mapped when loaded)."""
    folder = Path(directory) / _TOWER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in scorer.arrays.items():
        save_array(folder / f"{name}.npy", array)


def load_scorer(directory, config: RetrievalConfig, item_matrix: np.ndarray, user_matrix: np.ndarray) -> RetrievalScorer:
    """A scorer for serving: the saved arrays, memory-mapped, and a ``serving_tower`` made from
    them on first use."""
    folder = Path(directory) / _TOWER_DIR
    arrays = {path.stem: load_array(path) for path in sorted(folder.glob("*.npy"))}
    missing = [name for name in ("text", "histories", "log_q", "w000") if name not in arrays]
    if missing:
        raise InputFormatError(f"{folder}: the retrieval towers lack {', '.join(missing)}")

    def tower():
        from hybrid.models.keras.retrieval import serving_tower

        try:
            return serving_tower(arrays, config)
        except InputFormatError as exc:  # named by the folder, as a damage found at load is
            raise InputFormatError(f"{folder}: {exc}") from None

    return RetrievalScorer(None, item_matrix, user_matrix, arrays, make_model=tower)
