"""The recommender: one object a data scientist uses with or without the pipeline.

Example:
    >>> rec = HybridRecommender(model="hybrid").fit(ratings, items)   # doctest: +SKIP
    >>> rec.recommend("user_42", n=10)                                 # doctest: +SKIP
    >>> rec.recommend_for_new_user(liked_items=["B001"], text="quiet wireless mouse")  # doctest: +SKIP
    >>> rec.similar_items("B001"); rec.similar_to_text("usb c cable")  # doctest: +SKIP
    >>> rec.add_items(new_items); rec.save("models/rec"); HybridRecommender.load("models/rec")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import joblib
import numpy as np
import pandas as pd

from .config import ModelConfig, TrainConfig, check_count, check_model_name, check_settings
from .dataset import EncodedDataset
from .errors import ArgumentError, InputFormatError, NotFittedError, UnknownIdError
from .ids import IdMap
from .text import TextConfig, product_tokens, stop_words, tokenize
from .vectors import TextEncoder, fit_word2vec_encoder, unit_rows

FORMAT_VERSION = 1


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputFormatError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def item_token_strings(items: pd.DataFrame, config: TextConfig = TextConfig()) -> list[str]:
    """Cleaned token strings for an items DataFrame: per row its ``text`` (free text) when it has
    one, else its canonical fields (feature, description, category, title...)."""
    stop = stop_words()[0]
    out = []
    for record in items.to_dict("records"):
        text = record.get("text")
        if isinstance(text, str) and text.strip():  # free text wins; else the canonical fields
            out.append(" ".join(tokenize(text)))
        else:
            out.append(" ".join(product_tokens({k: v for k, v in record.items() if _present(v)}, config, stop)[0]))
    return out


def _present(value) -> bool:
    """A DataFrame cell that holds something (not NaN/None from a column other rows filled)."""
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def frame_ids(ratings: pd.DataFrame, items: pd.DataFrame | None) -> tuple[IdMap, IdMap]:
    """User and item id maps of ratings and items DataFrames: items in the order of ``items``,
    then the rated items it lacks (sorted); users sorted."""
    _require_columns(ratings, ["user_id", "item_id", "rating"], "ratings")
    if len(ratings) == 0:
        raise ArgumentError("ratings is empty")
    if items is not None:
        _require_columns(items, ["item_id"], "items")
    catalogue_ids = list(dict.fromkeys(
        ([str(i) for i in items["item_id"]] if items is not None else [])
        + sorted(set(map(str, ratings["item_id"])))))
    return IdMap.from_values(map(str, ratings["user_id"]), "user"), IdMap(catalogue_ids, "item")


def frame_titles(items: pd.DataFrame | None, item_map: IdMap | None = None) -> np.ndarray | None:
    """Titles of ``items`` in ``item_map`` order (or the frame's own without a map); None for
    missing ones (NaN included), and None for all when there is no title column."""
    if items is None or "title" not in items.columns:
        return None if item_map is None else np.full(len(item_map), None, dtype=object)
    column = np.array([t if isinstance(t, str) else None for t in items["title"]], dtype=object)
    if item_map is None:
        return column
    titles = np.full(len(item_map), None, dtype=object)
    titles[item_map.index(items["item_id"].astype(str))] = column
    return titles


def item_text_vectors(items: pd.DataFrame | None, item_vectors, encoder: TextEncoder | None,
                      item_map: IdMap, text_config: TextConfig, pretrained: str | None,
                      seed: int) -> tuple[np.ndarray, TextEncoder | None]:
    """Text vectors aligned with ``item_map`` and the encoder that reads new text.

    ``item_vectors`` (a DataFrame with ``item_id`` and ``vector``, or an array aligned with
    ``items``' rows) are taken as they are; otherwise a Word2Vec encoder is fitted on the items'
    text (initialised from ``pretrained``) unless ``encoder`` is given. Items without text or
    vectors get zeros.
    """
    if item_vectors is not None:
        if isinstance(item_vectors, pd.DataFrame):
            _require_columns(item_vectors, ["item_id", "vector"], "item_vectors")
            matrix = np.vstack(item_vectors["vector"].to_numpy()).astype(np.float32)
            ids = item_vectors["item_id"].astype(str)
        else:
            if items is None:
                raise ArgumentError("an item_vectors array needs the items DataFrame it is aligned with")
            matrix = np.asarray(item_vectors, np.float32)
            ids = items["item_id"].astype(str)
            if len(matrix) != len(ids):
                raise ArgumentError(f"item_vectors has {len(matrix)} rows but items has {len(ids)}")
        out = np.zeros((len(item_map), matrix.shape[1]), np.float32)
        out[item_map.index(ids)] = matrix
        return out, encoder
    if items is None:
        raise ArgumentError("give items (with text) or item_vectors: the hybrid needs item text")
    texts = item_token_strings(items, text_config)
    encoder = encoder or fit_word2vec_encoder(
        lambda: (t.split() for t in texts if t), pretrained=pretrained,
        epochs=5, min_count=1, seed=seed, workers=1)
    matrix, _ = encoder.transform(texts)
    out = np.zeros((len(item_map), matrix.shape[1]), np.float32)
    out[item_map.index(items["item_id"].astype(str))] = matrix
    return out, encoder



def encode_query(encoder: TextEncoder | None, text: str) -> np.ndarray:
    """The text vector of a free-text query, or an ``ArgumentError`` saying why there is none."""
    if encoder is None:
        raise ArgumentError("this recommender has no text encoder (it was fitted with item_vectors "
                            "only), so it cannot read free text")
    vector = encoder.encode(text)
    if not np.any(vector):
        raise ArgumentError(f"no known word in the text {text!r} (after cleaning and stop words): "
                            "describe it with other words")
    return vector

class HybridRecommender:
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
        self.blend = None  # hybrid.blend.RatingBlend, fitted with a rating model
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
        vectors = self._item_vectors(items, item_vectors, encoder, item_map)
        titles = frame_titles(items, item_map)
        self._fit_encoded(user_map.index(ratings["user_id"].astype(str)),
                          item_map.index(ratings["item_id"].astype(str)),
                          ratings["rating"].to_numpy(np.float32), user_map, item_map, vectors, titles)
        return self

    def _item_vectors(self, items, item_vectors, encoder, item_map: IdMap) -> np.ndarray:
        matrix, self.encoder = item_text_vectors(items, item_vectors, encoder, item_map, self.text_config,
                                                 self.pretrained, self.model_config.seed)
        return matrix

    def fit_dataset(self, data: EncodedDataset, rows: np.ndarray | None = None,
                    encoder: TextEncoder | None = None) -> "HybridRecommender":
        """Train on the pipeline's encoded dataset (``rows``: the training rows, default all)."""
        rows = np.arange(len(data.rating)) if rows is None else np.asarray(rows)
        self.encoder = encoder
        self._fit_encoded(data.user_index[rows], data.item_index[rows], data.rating[rows],
                          data.users, data.items, data.item_vectors, data.item_titles)
        return self

    def _fit_encoded(self, user_index, item_index, rating, users: IdMap, items: IdMap,
                     vectors: np.ndarray, titles: np.ndarray) -> None:
        from .training import fit_model

        self.users, self.items = users, items
        self.item_vectors = np.asarray(vectors, np.float32)
        self.item_titles = np.asarray(titles, dtype=object)
        self.n_model_items = len(items)  # embedding rows; index n_model_items = unknown item
        self.item_trained = np.bincount(item_index, minlength=len(items)) > 0
        self.item_popularity = np.bincount(item_index, minlength=len(items)).astype(np.int64)
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
        early stopping used (``hybrid.blend``)."""
        from .blend import RatingBlend
        from .training import validation_split

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
                                       len(self.users), len(self.items))
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
        return np.vstack([self.item_vectors[: self.n_model_items],
                          np.zeros((1, self.item_vectors.shape[1]), np.float32)])

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if self.model is None:
            raise NotFittedError("the recommender is not fitted: call fit() or load() first")

    def _model_items(self, item_index: np.ndarray) -> np.ndarray:
        """Item ids as the network sees them: items without training ratings (cold, or added
        later) are the unknown item and are scored from their text vector."""
        item_index = np.asarray(item_index, np.int64)
        known = item_index < self.n_model_items
        known[known] = self.item_trained[item_index[known]]
        return np.where(known, item_index, self.n_model_items).astype(np.int32)

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
                                  "text": self.item_vectors[item_index]},
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

    #: the scorer protocol every model and baseline follows (``hybrid.evaluation``)
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
        items = self.items.index([str(i) for i in item_ids])
        if len(users) != len(items):
            raise ArgumentError(f"{len(users)} users but {len(items)} items: give aligned pairs")
        return self.score_index(users, items)

    def _candidates(self, candidates, include_cold: bool) -> np.ndarray:
        """Item indices to choose from: ``candidates`` (ids) or the catalogue; without
        ``include_cold`` the items the model has no training ratings for are left out."""
        if candidates is not None:
            chosen = self.items.index([str(c) for c in candidates])
            if include_cold:
                return chosen
            return chosen[self._model_items(chosen) != self.n_model_items]
        everything = np.arange(len(self.items))
        if include_cold:
            return everything
        return everything[: self.n_model_items][self.item_trained]

    def _result(self, items: np.ndarray, scores: np.ndarray, n: int) -> pd.DataFrame:
        n = min(int(n), len(items))  # n was checked by the public method
        if n <= 0:
            return pd.DataFrame({"item_id": [], "score": [], "title": [], "cold": []})
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        chosen = items[top]
        cold = self._model_items(chosen) == self.n_model_items  # scored through the unknown row
        return pd.DataFrame({"item_id": self.items.ids(chosen), "score": scores[top],
                             "title": self.item_titles[chosen], "cold": cold})

    def recommend(self, user_id, n: int = 10, exclude_rated: bool = True,
                  candidates: Iterable | None = None, include_cold: bool = True) -> pd.DataFrame:
        """Top-``n`` items for a known user: ``item_id, score, title, cold``.

        Rated items are left out unless ``exclude_rated=False``; ``candidates`` restricts the
        items considered (when every candidate is left out the result is an empty frame); cold-start items (no training ratings, or added with ``add_items``)
        are scored from their text unless ``include_cold=False``. An unknown user raises
        ``UnknownIdError``: use ``recommend_for_new_user`` for people the model never saw.

        Example:
            >>> rec.recommend("196", n=5)  # doctest: +SKIP
        """
        self._check_fitted()
        check_count(n)
        if str(user_id) not in self.users:
            raise UnknownIdError(f"unknown user id {user_id!r}; for a new user call "
                                 "recommend_for_new_user(liked_items=..., text=...)")
        user = int(self.users.index([str(user_id)])[0])
        items = self._candidates(candidates, include_cold)
        if exclude_rated:
            items = items[~np.isin(items, self.rated_items(user))]
        scores = self.score_matrix(np.array([user]), items)[0]
        return self._result(items, scores, n)

    def _profile(self, liked: np.ndarray, text: str | None) -> np.ndarray | None:
        parts = []
        if len(liked):
            parts.append(self.item_vectors[liked].mean(axis=0))
        if text is not None and text.strip():
            parts.append(encode_query(self.encoder, text))
        if not parts:
            return None
        profile = unit_rows(np.mean(parts, axis=0))
        return profile if profile.any() else None

    def _cosine(self, profile: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Cosine between a unit-length profile and the items' text vectors."""
        return unit_rows(self.item_vectors[items]) @ profile

    def recommend_for_new_user(self, liked_items: Iterable | None = None, text: str | None = None,
                               n: int = 10, candidates: Iterable | None = None,
                               include_cold: bool = True, content_weight: float = 0.5,
                               neighbours: int = 50) -> pd.DataFrame:
        """Top-``n`` for someone the model never saw, from a few liked items and/or a free-text
        description, without retraining.

        Collaborative part: the known users who rated the most of the liked items ("people who
        also chose these") are the neighbours; their predicted scores are averaged. Content part:
        cosine between every item's text vector and the profile (mean vector of the liked items
        and the encoded text). The two are standardised and mixed with ``content_weight``.
        With text only, the collaborative part is the mean prediction of a sample of users.
        Liked items themselves are left out.

        Example:
            >>> rec.recommend_for_new_user(liked_items=["50", "172"], text="space adventure")  # doctest: +SKIP
        """
        self._check_fitted()
        check_count(n)
        liked = self.items.index([str(i) for i in (liked_items or [])])
        if not len(liked) and not (text and text.strip()):
            raise ArgumentError("give liked_items and/or text for a new user")
        items = self._candidates(candidates, include_cold)
        items = items[~np.isin(items, liked)]
        profile = self._profile(liked, text)  # first: a text without known words is an error
        helpers = self._neighbour_users(liked, neighbours)
        collaborative = self.score_matrix(helpers, items).mean(axis=0)
        if profile is None:
            scores = _zscore(collaborative)
        else:
            scores = (1 - content_weight) * _zscore(collaborative) + content_weight * _zscore(self._cosine(profile, items))
        return self._result(items, scores, n)

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

    def similar_items(self, item_id, n: int = 10, candidates: Iterable | None = None) -> pd.DataFrame:
        """Items closest in content (cosine of text vectors) to ``item_id``.

        Example:
            >>> rec.similar_items("1", n=5)  # doctest: +SKIP
        """
        self._check_fitted()
        check_count(n)
        item = int(self.items.index([str(item_id)])[0])
        items = self._candidates(candidates, True)
        items = items[items != item]
        vector = unit_rows(self.item_vectors[item])
        if not vector.any():
            raise ArgumentError(f"item {item_id!r} has no text vector (no known word in its text)")
        return self._result(items, self._cosine(vector, items), n)

    def similar_to_text(self, text: str, n: int = 10, candidates: Iterable | None = None) -> pd.DataFrame:
        """Items closest in content to free text (cleaned like product text)."""
        self._check_fitted()
        check_count(n)
        if not text or not text.strip():
            raise ArgumentError("give a non-empty text")
        profile = self._profile(np.array([], np.int64), text)
        items = self._candidates(candidates, True)
        return self._result(items, self._cosine(profile, items), n)

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
        _require_columns(items, ["item_id"], "items")
        ids = [str(i) for i in items["item_id"]]
        known = [i for i in ids if i in self.items]
        if known or len(set(ids)) != len(ids):
            raise ArgumentError(f"items already known or repeated: {(known or ids)[:5]}")
        if item_vectors is None:
            if self.encoder is None:
                raise ArgumentError("no text encoder: pass item_vectors for the new items")
            item_vectors, _ = self.encoder.transform(item_token_strings(items, self.text_config))
        item_vectors = np.asarray(item_vectors, np.float32)
        if item_vectors.shape != (len(ids), self.item_vectors.shape[1]):
            raise ArgumentError(f"item_vectors must be {len(ids)} x {self.item_vectors.shape[1]}")
        self.items = IdMap(list(self.items.values) + ids, "item")
        self.item_vectors = np.vstack([self.item_vectors, item_vectors])
        titles = frame_titles(items)
        titles = np.full(len(ids), None, object) if titles is None else titles
        self.item_titles = np.concatenate([self.item_titles, titles])
        self.item_popularity = np.concatenate([self.item_popularity, np.zeros(len(ids), np.int64)])
        return len(ids)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> None:
        """Write everything needed to recommend to ``directory`` (created if missing)."""
        import pyarrow as pa

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "model.keras")
        self.users.save(directory / "users.parquet")
        self.items.save(directory / "items.parquet",
                        title=pa.array([t if t is None else str(t) for t in self.item_titles], pa.string()),
                        popularity=self.item_popularity)
        np.save(directory / "item_vectors.npy", self.item_vectors)
        np.savez_compressed(directory / "train_items.npz", users=self._train_users,
                            items=self._train_items, trained=self.item_trained)
        if self.encoder is not None:
            self.encoder.save(directory / "text_encoder.joblib")
        if self.blend is not None:
            joblib.dump(self.blend, directory / "blend.joblib")
        meta = {"format_version": FORMAT_VERSION, "model_config": self.model_config.to_dict(),
                "train_config": self.train_config.to_dict(), "n_model_items": self.n_model_items,
                "text_config": {"fields": list(self.text_config.fields), "title": self.text_config.title,
                                "brand": self.text_config.brand},
                "pretrained": self.pretrained, "training": self.training}
        (directory / "recommender.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "HybridRecommender":
        """Load a recommender written by ``save``."""
        import keras
        import pyarrow.parquet as pq

        from . import models  # noqa: F401  (registers the custom layers)
        from .training import for_inference
        directory = Path(directory)
        meta_path = directory / "recommender.json"
        if not meta_path.is_file():
            raise InputFormatError(f"{directory}: not a saved recommender (no recommender.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputFormatError(f"{directory}: saved with format {meta.get('format_version')}, "
                                   f"this version reads {FORMAT_VERSION}")
        config = ModelConfig.from_dict(meta["model_config"])
        rec = cls(config.name, config, TrainConfig(**meta["train_config"]),
                  TextConfig(tuple(meta["text_config"]["fields"]), meta["text_config"]["title"],
                             meta["text_config"]["brand"]), meta["pretrained"], config.seed)
        rec.model = for_inference(keras.models.load_model(directory / "model.keras", compile=False))
        rec.users = IdMap.load(directory / "users.parquet", "user")
        rec.items = IdMap.load(directory / "items.parquet", "item")
        table = pq.read_table(directory / "items.parquet")
        rec.item_titles = np.array(table.column("title").to_pylist(), dtype=object)
        rec.item_popularity = table.column("popularity").to_numpy()
        rec.item_vectors = np.load(directory / "item_vectors.npy")
        stored = np.load(directory / "train_items.npz")
        rec._set_training_pairs(stored["users"], stored["items"])
        rec.item_trained = stored["trained"]
        rec.n_model_items = int(meta["n_model_items"])
        encoder_path = directory / "text_encoder.joblib"
        rec.encoder = TextEncoder.load(encoder_path) if encoder_path.is_file() else None
        rec.blend = joblib.load(directory / "blend.joblib") if (directory / "blend.joblib").is_file() else None
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
