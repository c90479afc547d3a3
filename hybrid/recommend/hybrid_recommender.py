"""The single-network recommender: one Keras model of the family (``hybrid.models.keras.networks``)
scores every (user, product) pair, its text vector included; the recommender contract of
``hybrid.recommend.base`` over it.

Example:
    >>> rec = HybridRecommender(model="hybrid").fit(ratings, items)   # doctest: +SKIP
    >>> rec.frame(*rec.recommend("user_42", N=10))                     # doctest: +SKIP
    >>> rec.recommend_for_new_user(liked_items=["B001"], text="quiet wireless mouse")  # doctest: +SKIP
    >>> rec.similar_items("B001"); rec.similar_to_text("usb c cable")  # doctest: +SKIP
    >>> rec.add_items(new_items); rec.save("models/rec"); HybridRecommender.load("models/rec")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from hybrid.content.frames import (
    encode_query,
    frame_ids,
    frame_titles,
    item_text_vectors,
    new_item_vectors,
    require_columns,
)
from hybrid.content.vectors import TextEncoder, unit_rows
from hybrid.core.config import ModelConfig, TrainConfig, check_count, check_model_name, check_settings
from hybrid.core.errors import ArgumentError, NotFittedError
from hybrid.core.numeric import id_rows, zscore
from hybrid.core.persistence import load_arrays, read_manifest, reading_folder, save_arrays, write_manifest
from hybrid.data.dataset import EncodedDataset
from hybrid.data.ids import IdMap
from hybrid.data.text import TextConfig
from hybrid.recommend.base import Recommender, is_single, padded_answer, renamed
from hybrid.recommend.shaping import Shaping, popularity_scores, shaped
from hybrid.recommend.catalogue import Catalogue

KIND = "hybrid"  # the manifest's kind (``hybrid.load`` dispatches on it)
FORMAT_VERSION = 3


class HybridRecommender(Recommender):
    """Hybrid content + collaborative recommender built on the Keras model family.

    Parameters: ``model`` (one of ``MODEL_NAMES``; default ``hybrid``), ``model_config`` and
    ``train_config`` (dicts or the dataclasses), ``text`` (which item fields make the text),
    ``pretrained`` (word vectors for the text encoder when item vectors are not given), ``log``
    (a function that receives a progress line per training epoch).
    """

    def __init__(self, model: str = "hybrid", model_config: dict | ModelConfig | None = None,
                 train_config: dict | None = None, text: TextConfig = TextConfig(),
                 pretrained: str | None = "glove-6b-50d", seed: int = 42, log=None):
        self.log = log
        check_model_name(model)
        if isinstance(model_config, ModelConfig):
            self.model_config = dataclasses.replace(model_config, name=model)  # never mutate the caller's
        else:
            self.model_config = ModelConfig(
                model, seed=seed, **check_settings(model_config, ModelConfig, "model_config"))
        self.train_config = dataclasses.replace(train_config) if isinstance(train_config, TrainConfig) \
            else TrainConfig(seed=seed, **check_settings(train_config, TrainConfig, "train_config"))
        self.text_config = text
        self.pretrained = pretrained
        self.encoder: TextEncoder | None = None
        self.model = None
        self.catalogue: Catalogue | None = None
        self.blend = None  # hybrid.models.blend.RatingBlend, fitted with a rating model
        self.training: dict = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, ratings: pd.DataFrame, items: pd.DataFrame | None = None,
            item_vectors: pd.DataFrame | np.ndarray | None = None,
            encoder: TextEncoder | None = None) -> "HybridRecommender":
        """Train on a ratings DataFrame (``user_id, item_id, rating``) plus item text.

        ``items`` has ``item_id``, optional ``title`` and either a free-text ``text`` column or
        the canonical fields (``feature``, ``description``, ``category``...). Item vectors are
        then computed with a Word2Vec encoder fitted on that text (from ``pretrained``), unless
        ``item_vectors`` are given: a DataFrame with ``item_id`` and ``vector``, or an array
        aligned with ``items``' rows. Items in ``items`` without ratings become cold-start
        candidates; rated items missing from ``items`` get a zero text vector.
        """
        user_map, item_map = frame_ids(ratings, items)
        vectors, self.encoder = item_text_vectors(items, item_vectors, encoder, item_map, self.text_config,
                                                  self.pretrained, self.model_config.seed)
        self._fit_encoded(user_map.index(ratings["user_id"].astype(str)),
                          item_map.index(ratings["item_id"].astype(str)), ratings["rating"].to_numpy(np.float32),
                          user_map, Catalogue(item_map, vectors, frame_titles(items, item_map)))
        return self

    def fit_dataset(self, data: EncodedDataset, rows: np.ndarray | None = None,
                    encoder: TextEncoder | None = None) -> "HybridRecommender":
        """Train on the pipeline's encoded dataset (``rows``: the training rows, default all)."""
        rows = np.arange(len(data.rating)) if rows is None else np.asarray(rows)
        self.encoder = encoder
        self._fit_encoded(data.user_index[rows], data.item_index[rows], data.rating[rows],
                          data.users, Catalogue(data.items, data.item_vectors, data.item_titles))
        return self

    def _fit_encoded(self, user_index, item_index, rating, users: IdMap, catalogue: Catalogue) -> None:
        from hybrid.models.keras.training import fit_model

        self.users, self.catalogue = users, catalogue
        self.n_model_items = len(catalogue)  # embedding rows; index n_model_items = unknown item
        catalogue.trained = np.bincount(item_index, minlength=len(catalogue)) > 0
        config = self.model_config
        config.min_rating, config.max_rating = float(rating.min()), float(rating.max())
        config.global_mean = float(rating.mean())
        if config.min_rating == config.max_rating:
            config.max_rating = config.min_rating + 1.0
        self._set_training_pairs(np.asarray(user_index), np.asarray(item_index))
        self.model, self.training = fit_model(config, self.train_config, user_index, item_index,
                                              rating, self._vectors_with_unknown(), len(users),
                                              self.n_model_items, log=self.log)
        self.blend = None
        if config.blend and config.name != "implicit":
            self._fit_blend(np.asarray(user_index), np.asarray(item_index), np.asarray(rating))

    def _fit_blend(self, user_index, item_index, rating) -> None:
        """Weights of the network and the neighbourhood models on the validation rows that
        early stopping used (``hybrid.models.blend``)."""
        from hybrid.models.blend import RatingBlend
        from hybrid.models.keras.training import validation_split

        fit_rows, val_rows = validation_split(len(user_index), self.train_config.validation_share,
                                              self.train_config.seed)
        if not len(val_rows):
            return
        if self.log is not None:  # the network's validation predictions and the neighbourhoods' fits take
            # a minute or more at millions of ratings before the similarities report progress
            self.log(f"{self.model_config.name}: blending with the KNNBaseline neighbourhood models on "
                     f"{len(val_rows):,} validation ratings")
        network = self._network(user_index[val_rows], item_index[val_rows])
        self.blend = RatingBlend().fit(network, user_index, item_index, rating, fit_rows, val_rows,
                                       len(self.users), len(self.catalogue))
        self.training["blend"] = self.blend.describe()
        if self.log is not None:
            sides = " and ".join(part.name.split("-")[0] for part in self.blend.parts) or "no"
            line = (f"{self.model_config.name}: blended with {sides} KNNBaseline, validation RMSE "
                    f"{self.blend.validation['rmse_network']:.4f} -> {self.blend.validation['rmse_blend']:.4f}")
            self.log(line + "".join(f"; {name} left out: {why}" for name, why in self.blend.skipped.items()))

    def _set_training_pairs(self, user_index: np.ndarray, item_index: np.ndarray) -> None:
        """Who rated what in training, grouped by user (for exclusion and neighbours)."""
        order = np.argsort(user_index, kind="stable")
        self._train_users = user_index[order]
        self._train_items = item_index[order]
        self._user_bounds = np.searchsorted(self._train_users, np.arange(len(self.users) + 1))

    def _vectors_with_unknown(self) -> np.ndarray:
        return np.vstack([self.catalogue.vectors[: self.n_model_items],
                          np.zeros((1, self.catalogue.dim), np.float32)])

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if self.model is None or self.catalogue is None:
            raise NotFittedError("the recommender is not fitted: call fit() or load() first")

    def _model_items(self, item_index: np.ndarray) -> np.ndarray:
        """Item ids as the network sees them: items without training ratings (cold, or added
        later) are the unknown item and are scored from their text vector."""
        return id_rows(item_index, self.catalogue.trained, self.n_model_items)

    def score_index(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Scores for aligned arrays of user and item indices: the network's, blended with the
        neighbourhood models' for items with training ratings when the model has a blend."""
        self._check_fitted()
        out = self._network(user_index, item_index)
        if self.blend is not None and len(out):
            user_index, item_index = np.asarray(user_index, np.int64), np.asarray(item_index, np.int64)
            warm = self._model_items(item_index) < self.n_model_items
            out[warm] = self.blend.predict(out[warm], user_index[warm], item_index[warm])
            out = np.clip(out, self.model_config.min_rating, self.model_config.max_rating)
        return out

    def _network(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """The Keras network's scores for aligned arrays of user and item indices."""
        item_index = np.asarray(item_index, np.int64)
        if len(item_index) == 0:  # Keras cannot predict on zero rows
            return np.zeros(0, np.float64)
        out = self.model.predict({"user": np.asarray(user_index, np.int32),
                                  "item": self._model_items(item_index),
                                  "text": self.catalogue.vectors[item_index]},
                                 batch_size=65_536, verbose=0)
        return np.asarray(out, np.float64).ravel()

    #: (user, item) pairs sent through the network at once: bounds the memory of the gathered
    #: text vectors (pairs x dim floats) whatever the numbers of users and candidates.
    pair_chunk = 1 << 20

    def score_matrix(self, user_index: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """users x candidates score matrix (for ranking): the network's in chunks of pairs, then
        the blend over the items with training ratings as one block per chunk of users (the
        same numbers as ``score_index`` on the pairs)."""
        self._check_fitted()
        user_index, candidates = np.asarray(user_index, np.int64), np.asarray(candidates, np.int64)
        out = np.empty((len(user_index), len(candidates)), np.float64)
        rows = max(1, self.pair_chunk // max(1, len(candidates)))  # users per chunk
        columns = min(len(candidates), self.pair_chunk) or 1
        warm = np.flatnonzero(self._model_items(candidates) < self.n_model_items) if self.blend is not None else None
        for u in range(0, len(user_index), rows):
            users = user_index[u:u + rows]
            for c in range(0, len(candidates), columns):
                block = candidates[c:c + columns]
                scores = self._network(np.repeat(users, len(block)), np.tile(block, len(users)))
                out[u:u + rows, c:c + columns] = scores.reshape(len(users), len(block))
            if warm is not None and len(warm):
                blended = self.blend.score(out[u:u + rows][:, warm], users, candidates[warm])
                out[u:u + rows, warm] = np.clip(blended, self.model_config.min_rating, self.model_config.max_rating)
        return out

    #: the scorer protocol every model and baseline follows (``hybrid.evaluation.metrics``)
    score = score_matrix

    def rated_items(self, user_index: int) -> np.ndarray:
        """Item indices the user rated in training."""
        return self._train_items[self._user_bounds[user_index]:self._user_bounds[user_index + 1]]

    def predict(self, user_ids: Iterable, item_ids: Iterable) -> np.ndarray:
        """Predicted ratings (probabilities for the implicit model) for (user, item) pairs.

        Unknown ids raise ``UnknownIdError`` naming them.

        Example:
            >>> rec.predict(["196", "186"], ["242", "302"])  # doctest: +SKIP
            array([3.9, 3.7])
        """
        self._check_fitted()
        users = self.users.index([str(u) for u in user_ids])
        items = self.catalogue.index(item_ids)
        if len(users) != len(items):
            raise ArgumentError(f"{len(users)} users but {len(items)} items: give aligned pairs")
        return self.score_index(users, items)

    def _candidates(self, candidates, include_cold: bool) -> np.ndarray:
        """Item indices to choose from: ``candidates`` (ids) or the catalogue; without
        ``include_cold`` the items the model has no training ratings for are left out."""
        chosen = np.arange(len(self.catalogue)) if candidates is None else self.catalogue.index(candidates)
        return chosen if include_cold else chosen[self.catalogue.trained[chosen]]

    def _top(self, items: np.ndarray, scores: np.ndarray, n: int,
             shaping: Shaping = Shaping()) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``n`` best of ``items`` by ``scores`` (shaped) and their scores, padded with -1."""
        if not len(items):
            return np.full(n, -1, np.int64), np.full(n, -np.inf)
        popularity = self._popularity() if shaping.popularity_penalty > 0 else None
        rows, best = shaped(np.asarray(scores)[None, :], np.asarray(items)[None, :], np.ones((1, len(items)), bool), n,
                            shaping, self.catalogue.vectors, popularity)
        return rows[0], best[0]

    def _popularity(self) -> np.ndarray:
        """Every product's ``popularity_scores`` of its training ratings."""
        return popularity_scores(np.bincount(self._train_items, minlength=len(self.catalogue)))

    def _filtered(self, items: np.ndarray, filter_items) -> np.ndarray:
        return items if filter_items is None else items[~np.isin(items, self._item_rows(filter_items))]

    @renamed(n="N", exclude_rated="filter_already_liked_items", candidates="items")
    def recommend(self, user_ids, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: Iterable | None = None, items: Iterable | None = None,
                  include_cold: bool = True, diversity: float = 0.0, popularity_penalty: float = 0.0):
        self._check_fitted()
        n = check_count(N, "N")
        shaping = Shaping(diversity, popularity_penalty)
        users, single = self._user_rows(user_ids)
        chosen = self._filtered(self._candidates(items, include_cold), filter_items)
        rows, scores = np.full((len(users), n), -1, np.int64), np.full((len(users), n), np.nan)
        for k, user in enumerate(users):
            mine = chosen[~np.isin(chosen, self.rated_items(user))] if filter_already_liked_items else chosen
            rows[k], scores[k] = self._top(mine, self.score_matrix(np.array([user]), mine)[0], n, shaping)
        return padded_answer(rows, scores, self.catalogue.ids, single)

    def _profile(self, liked: np.ndarray, text: str | None) -> np.ndarray | None:
        parts = []
        if len(liked):
            parts.append(self.catalogue.vectors[liked].mean(axis=0))
        if text is not None and text.strip():
            parts.append(encode_query(self.encoder, text))
        if not parts:
            return None
        profile = unit_rows(np.mean(parts, axis=0))
        return profile if profile.any() else None

    def _cosine(self, profile: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Cosine between a unit-length profile and the items' text vectors."""
        return unit_rows(self.catalogue.vectors[items]) @ profile

    @renamed(n="N", candidates="items")
    def recommend_for_new_user(self, liked_items: Iterable | None = None, text: str | None = None,
                               N: int = 10, filter_items: Iterable | None = None,
                               items: Iterable | None = None, include_cold: bool = True,
                               diversity: float = 0.0, popularity_penalty: float = 0.0,
                               content_weight: float = 0.5, neighbours: int = 50):
        """Top-``N`` for someone the model never saw, from a few liked items and/or a free-text
        description, without retraining.

        Collaborative part: the known users who rated the most of the liked items ("people who
        also chose these") are the neighbours; their predicted scores are averaged. Content part:
        cosine between every item's text vector and the profile (mean vector of the liked items
        and the encoded text). The two are standardised and mixed with ``content_weight``.
        With text only, the collaborative part is the mean prediction of a sample of users.
        Liked items themselves are left out.
        """
        self._check_fitted()
        n = check_count(N, "N")
        shaping = Shaping(diversity, popularity_penalty)
        liked = self.catalogue.index(liked_items if liked_items is not None else [])
        if not len(liked) and not (text and text.strip()):
            raise ArgumentError("give liked_items and/or text for a new user")
        chosen = self._filtered(self._candidates(items, include_cold), filter_items)
        chosen = chosen[~np.isin(chosen, liked)]
        profile = self._profile(liked, text)  # first: a text without known words is an error
        helpers = self._neighbour_users(liked, neighbours)
        collaborative = self.score_matrix(helpers, chosen).mean(axis=0)
        if profile is None:
            scores = zscore(collaborative)
        else:
            scores = (1 - content_weight) * zscore(collaborative) + content_weight * zscore(self._cosine(profile, chosen))
        rows, best = self._top(chosen, scores, n, shaping)
        return padded_answer(rows[None, :], best[None, :], self.catalogue.ids, True)

    def _neighbour_users(self, liked: np.ndarray, neighbours: int) -> np.ndarray:
        if len(liked):
            # how many of the liked items each known user rated
            weight = np.bincount(self._train_users[np.isin(self._train_items, liked)],
                                 minlength=len(self.users)).astype(float)
            if weight.max() > 0:
                k = min(neighbours, int((weight > 0).sum()))
                return np.argsort(-weight, kind="stable")[:k]
        rng = np.random.default_rng(0)
        return rng.choice(len(self.users), min(neighbours * 4, len(self.users)), replace=False)

    @renamed(n="N")
    def similar_items(self, item_ids, N: int = 10, by: str = "content", filter_items: Iterable | None = None):
        self._check_fitted()
        n = check_count(N, "N")
        if by != "content":
            raise ArgumentError(f"a HybridRecommender finds similar items by content only, not {by!r}; "
                                "by='collaborative' needs the two-stage recommender")
        single = is_single(item_ids)
        queries = self._item_rows(item_ids)
        vectors = unit_rows(self.catalogue.vectors[queries])
        empty = queries[~vectors.any(axis=1)]
        if len(empty):
            raise ArgumentError(f"item(s) {self.catalogue.ids.ids(empty[:5]).tolist()} have no text vector "
                                "(no known word in their text)")
        everything = self._filtered(np.arange(len(self.catalogue)), filter_items)
        rows, scores = np.full((len(queries), n), -1, np.int64), np.full((len(queries), n), np.nan)
        for k, (item, vector) in enumerate(zip(queries, vectors)):
            others = everything[everything != item]
            rows[k], scores[k] = self._top(others, self._cosine(vector, others), n)
        return padded_answer(rows, scores, self.catalogue.ids, single)

    @renamed(n="N")
    def similar_to_text(self, text: str, N: int = 10, filter_items: Iterable | None = None):
        self._check_fitted()
        n = check_count(N, "N")
        if not text or not text.strip():
            raise ArgumentError("give a non-empty text")
        profile = self._profile(np.array([], np.int64), text)
        everything = self._filtered(np.arange(len(self.catalogue)), filter_items)
        rows, scores = self._top(everything, self._cosine(profile, everything), n)
        return padded_answer(rows[None, :], scores[None, :], self.catalogue.ids, True)

    @renamed(n="N")
    def similar_users(self, user_ids, N: int = 10):
        """Known users nearest by cosine of their learned user embeddings (the network's
        ``user_embedding`` table)."""
        self._check_fitted()
        n = check_count(N, "N")
        single = is_single(user_ids)
        users = self.users.index([str(user_ids)] if single else [str(u) for u in user_ids])
        try:
            table = unit_rows(np.asarray(self.model.get_layer("user_embedding").get_weights()[0], np.float32))
        except ValueError:
            raise ArgumentError(f"the {self.model_config.name!r} model has no user embedding to compare "
                                "users by") from None
        everyone = np.arange(len(self.users))
        rows, scores = np.full((len(users), n), -1, np.int64), np.full((len(users), n), np.nan)
        for k, user in enumerate(users):
            others = everyone[everyone != user]
            rows[k], scores[k] = self._top(others, table[others] @ table[user], n)
        return padded_answer(rows, scores, self.users, single)

    # ------------------------------------------------------------------ new items
    def add_items(self, items: pd.DataFrame, item_vectors: np.ndarray | None = None) -> int:
        """Make new items (metadata only) recommendable at once: their text is encoded with the
        fitted encoder (or ``item_vectors`` given) and they are scored as cold items.
        Returns how many were added; ids already known raise ``ArgumentError``.

        Example:
            >>> rec.add_items(pd.DataFrame({"item_id": ["N1"], "title": ["New"], "text": ["a robot film"]}))  # doctest: +SKIP
            1
        """
        self._check_fitted()
        require_columns(items, ["item_id"], "items")
        self.catalogue.check_new(items["item_id"])  # before any text work
        vectors, _ = new_item_vectors(items, self.encoder, self.text_config, item_vectors)
        return len(self.catalogue.append(items["item_id"].astype(str), vectors, frame_titles(items)))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> None:
        """Write everything needed to recommend to ``directory`` (created if missing)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "model.keras")
        self.users.save(directory / "users.parquet")
        self.catalogue.save(directory)
        save_arrays(directory / "train_items.npz", users=self._train_users, items=self._train_items)
        if self.encoder is not None:
            self.encoder.save(directory / "text_encoder.npz")
        if self.blend is not None:
            self.blend.save(directory / "blend")
        meta = {"model_config": self.model_config.to_dict(),
                "train_config": self.train_config.to_dict(), "n_model_items": self.n_model_items,
                "text_config": {"fields": list(self.text_config.fields), "title": self.text_config.title,
                                "brand": self.text_config.brand},
                "pretrained": self.pretrained, "training": self.training, "blend": self.blend is not None}
        write_manifest(directory, KIND, FORMAT_VERSION, meta)  # last: a folder with it is whole

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "HybridRecommender":
        """Load a recommender written by ``save``."""
        from hybrid.models.keras import networks  # noqa: F401  (registers the custom layers; first: TensorFlow quiet)
        from hybrid.models.keras.training import for_inference

        import keras
        directory = Path(directory)
        meta = read_manifest(directory, KIND, FORMAT_VERSION)
        with reading_folder(directory):
            config = ModelConfig.from_dict(meta["model_config"])
            rec = cls(config.name, config, TrainConfig(**meta["train_config"]),
                      TextConfig(tuple(meta["text_config"]["fields"]), meta["text_config"]["title"],
                                 meta["text_config"]["brand"]), meta["pretrained"], config.seed)
            rec.model = for_inference(keras.models.load_model(directory / "model.keras", compile=False))
            rec.users = IdMap.load(directory / "users.parquet", "user")
            rec.catalogue = Catalogue.load(directory)
            stored = load_arrays(directory / "train_items.npz")
            rec._set_training_pairs(stored["users"], stored["items"])
            rec.n_model_items = int(meta["n_model_items"])
            encoder_path = directory / "text_encoder.npz"
            rec.encoder = TextEncoder.load(encoder_path) if encoder_path.is_file() else None
            if meta.get("blend"):
                from hybrid.models.blend import RatingBlend

                rec.blend = RatingBlend.load(directory / "blend")
            rec.training = meta.get("training", {})
        return rec


def plot_learning_curve(history: dict, path: str | os.PathLike, title: str = "") -> None:
    """Training and validation loss per epoch, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    axis.plot(epochs, history["loss"], label="training loss")
    if "val_loss" in history:
        axis.plot(epochs, history["val_loss"], label="validation loss")
        best = int(np.argmin(history["val_loss"])) + 1
        axis.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.set_title(f"learning curve {title}".strip())
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
