"""The retrieval stage's vectors, as ranking reads them: unit user and item vectors of a fitted
two-tower model (``hybrid.models.keras.retrieval``), and the towers themselves for users and
products the model never saw.

Known users and products are answered from the precomputed vectors alone; the towers (and
TensorFlow) are made on the first request for a new user or a product known by its text, so a
loaded recommender answers its known users without importing TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

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
        if self._functions is None:
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
