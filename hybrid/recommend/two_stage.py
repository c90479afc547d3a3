"""Two-stage recommending: retrieve a few hundred candidates from indexes, then re-rank them.

``TwoStageRecommender`` orchestrates named parts, each owning its state and its files:

- ``Catalogue`` (products: ids, text vectors, titles, texts) and the users' ``IdMap``;
- ``ScoringParts`` (``hybrid.recommend.parts``): the interactions, the candidate sources (the
  two-tower retrieval model and its index, sparse item-item neighbours) and the scoring parts
  (retrieval, item-item, the ``implicit`` network, TF-IDF content);
- ``Blend`` (``hybrid.recommend.blend``): weights per case, scales and the cold offset, a value;
- ``choose_blend`` (``hybrid.recommend.blend_choice``): the blend chosen on validation likes carved
  from the training rows, outside the model;
- ``rank`` (``hybrid.recommend.ranking``): the blended candidates, or an exact ranking.

``docs/two-stage.md`` describes the method.

Example:
    >>> rec = TwoStageRecommender().fit(ratings, items)                            # doctest: +SKIP
    >>> ids, scores = rec.recommend(["u1", "u2"], N=10)                            # doctest: +SKIP
    >>> rec.frame(*rec.recommend_for_new_user(liked_items=["B01"], text="usb c hub"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hybrid.content.frames import (
    display_texts,
    encode_query,
    frame_ids,
    frame_titles,
    item_text_vectors,
    item_fields,
    item_token_strings,
    new_item_vectors,
    require_columns,
)
from hybrid.content.terms import FieldCounts, TermWeights, unit_sparse_rows
from hybrid.content.vectors import TextEncoder, unit_rows
from hybrid.core.config import ModelConfig, RetrievalConfig, TrainConfig, TwoStageConfig, check_count, check_settings
from hybrid.core.errors import ArgumentError, NotFittedError
from hybrid.core.persistence import load_csr, read_manifest, reading_folder, save_csr, write_manifest
from hybrid.data.dataset import EncodedDataset
from hybrid.data.ids import IdMap
from hybrid.data.io import release_arrow_pages
from hybrid.data.text import TextConfig, tokenize
from hybrid.recommend.base import Recommender, is_single, padded_answer
from hybrid.recommend.blend import Blend, cases, equal_weights
from hybrid.recommend.blend_choice import choose_blend
from hybrid.recommend.field_choice import choose_field_weights
from hybrid.recommend.catalogue import Catalogue
from hybrid.recommend.parts import ScoringParts, Sentence
from hybrid.recommend.ranking import pair_scores, rank
from hybrid.recommend.shaping import Shaping

KIND = "two-stage"  # the manifest's kind (``hybrid.load`` dispatches on it)
FORMAT_VERSION = 4  # 4: the re-ranking network saved as arrays (network/), not network.keras
RATED_AT = "rated_at"  # when each training rating was given (optional: absent when not known)


def latest_times(user_index, item_index, times, shape) -> sp.csr_matrix | None:
    """users x products, each rated pair's latest known time (the rated matrix's pattern; a pair
    with no known time holds -1); None when no time is known."""
    times = np.asarray(times, np.int64)
    if not (times >= 0).any():
        return None
    keys = np.asarray(user_index, np.int64) * shape[1] + np.asarray(item_index, np.int64)
    order = np.lexsort((times, keys))
    last = order[np.r_[keys[order][1:] != keys[order][:-1], True]]  # the latest of each pair
    return sp.csr_matrix((times[last], (keys[last] // shape[1], keys[last] % shape[1])), shape=shape)


def _config(value, cls, what: str, seed: int, **fixed):
    """A fresh config from a dict (keys checked) or a copy of a dataclass: never the caller's."""
    if isinstance(value, cls):
        return dataclasses.replace(value, **fixed)
    return cls(seed=seed, **fixed, **check_settings(value, cls, what))


def _part(name: str) -> property:
    return property(lambda self: getattr(self.parts, name), doc=f"The fitted parts' ``{name}``.")


class TwoStageRecommender(Recommender):
    """Retrieval (two-tower model + indexes, item-item neighbours), then re-ranking.

    Parameters: ``retrieval`` (``RetrievalConfig`` or a dict of its fields), ``network``
    (``ModelConfig`` fields of the re-ranking network, trained as the ``implicit`` model),
    ``train`` (its ``TrainConfig``), ``config`` (``TwoStageConfig``: candidates, neighbours,
    blend grid, index settings), ``text``/``pretrained`` (the text encoder fitted when item
    vectors are not given), ``seed``, ``log`` (receives a line per training epoch).
    """

    def __init__(self, retrieval: dict | RetrievalConfig | None = None,
                 network: dict | ModelConfig | None = None, train: dict | TrainConfig | None = None,
                 config: dict | TwoStageConfig | None = None, text: TextConfig = TextConfig(),
                 pretrained: str | None = "glove-6b-50d", seed: int = 42, log=None):
        self.config = _config(config, TwoStageConfig, "config", seed)
        self.retrieval_config = _config(retrieval, RetrievalConfig, "retrieval", seed,
                                        threshold=self.config.threshold)
        self.network_config = _config(network, ModelConfig, "network", seed, name="implicit")
        self.train_config = _config(train, TrainConfig, "train", seed)
        self.text_config, self.pretrained, self.log = text, pretrained, log
        self.encoder: TextEncoder | None = None
        self.catalogue: Catalogue | None = None
        self.parts: ScoringParts | None = None
        self.blend = Blend({})
        self.validation: dict = {}
        self._terms: TermWeights | None = None
        self._rated_at: sp.csr_matrix | None = None

    weights = property(lambda self: self.blend.weights, doc="The blend's weights per case.")
    unliked_offset = property(lambda self: self.blend.unliked_offset,
                              doc="The blend's offset of products nobody liked in training.")
    scales = property(lambda self: self.blend.scales, doc="Each part's score mean and spread.")
    terms = property(lambda self: self._terms, doc="The catalogue's TF-IDF terms (None: no content part).")

    # the fitted parts' tables, read as the recommender's own
    scorer, likes, rated, neighbours = (_part(n) for n in ("scorer", "likes", "rated", "neighbours"))
    retrieval_index, content_index = _part("retrieval_index"), _part("content_index")
    network_items, info = _part("network_items"), _part("info")

    # ================================================================== fitting
    def fit(self, ratings: pd.DataFrame, items: pd.DataFrame | None = None,
            item_vectors: pd.DataFrame | np.ndarray | None = None,
            encoder: TextEncoder | None = None) -> "TwoStageRecommender":
        """Train on ratings (``user_id, item_id, rating``) and item text.

        ``items``: ``item_id``, optional ``title``, and a free-text ``text`` column or the
        canonical fields (feature, description, category...); unless ``item_vectors`` are given
        (a DataFrame ``item_id, vector`` or an array aligned with ``items``), a Word2Vec encoder
        is fitted on that text. Items nobody rated are in the catalogue as cold products.
        """
        users, items_map = frame_ids(ratings, items)
        vectors, self.encoder = item_text_vectors(items, item_vectors, encoder, items_map, self.text_config,
                                                  self.pretrained, self.config.seed)
        catalogue = Catalogue(items_map, vectors, frame_titles(items, items_map), texts=display_texts(items, items_map))
        self._terms = None
        user_index, item_index = users.index(ratings["user_id"].astype(str)), items_map.index(ratings["item_id"].astype(str))
        rating = ratings["rating"].to_numpy(np.float32)
        chosen: tuple = (None, None)
        if items is not None:
            order = np.argsort(items_map.index(items["item_id"].astype(str)), kind="stable")
            fields = item_fields(items)
            if fields is not None:
                fields = {name: [texts[k] for k in order] for name, texts in fields.items()}
            texts = item_token_strings(items, self.text_config)
            chosen = self._fit_terms([texts[k] for k in order], fields, user_index, item_index, rating)
        times = None
        if "timestamp" in ratings.columns:  # seconds; missing ones unknown (-1)
            times = pd.to_numeric(ratings["timestamp"], errors="coerce").fillna(-1).to_numpy(np.int64)
        return self._fit(user_index, item_index, rating, users, catalogue, times, *chosen)

    def fit_dataset(self, data: EncodedDataset, rows: np.ndarray | None = None,
                    encoder: TextEncoder | None = None, texts=None,
                    fields: dict[str, list[str]] | None = None) -> "TwoStageRecommender":
        """Train on the pipeline's encoded dataset (``rows``: the training rows, default all;
        ``texts``: the products' cleaned one-field texts in catalogue order, as the text stage
        writes them: shown for each product and, without ``fields`` or with ``content_fields``
        "one", read for the content part's TF-IDF terms; ``fields``: each text field's cleaned
        texts in catalogue order (the text stage's ``fields`` column: ``catalogue_fields``);
        with neither the recommender has no content part)."""
        rows = np.arange(len(data.rating)) if rows is None else np.asarray(rows)
        self.encoder, self._terms = encoder, None
        catalogue = Catalogue(data.items, data.item_vectors, data.item_titles, texts=texts)
        user_index, item_index, rating = data.user_index[rows], data.item_index[rows], data.rating[rows]
        chosen: tuple = (None, None)
        if texts is not None or fields is not None:
            chosen = self._fit_terms(None if texts is None else catalogue.texts.to_pylist(), fields, user_index,
                                     item_index, rating)
        return self._fit(user_index, item_index, rating, data.users, catalogue, data.timestamp[rows], *chosen)

    def _validated(self, rating) -> bool:
        """Whether ``fit`` chooses its settings on validation data: enough likes to carve it from."""
        return self.config.validation_share > 0 and int((rating >= self.config.threshold).sum()) >= 200

    def _fit_terms(self, token_strings, fields, user_index, item_index, rating) -> tuple:
        """The content part's TF-IDF terms of the catalogue's products (unless switched off): of
        every field, weighted as validation chooses, when ``fields`` are given and the config
        reads all fields; else of the one-field ``token_strings``. Returns ``(word_rows,
        field_figures)`` for ``_fit``: the products' category terms (validation new users' words
        are drawn from them) and how the field weights were chosen (None where not)."""
        word_rows = figures = None
        if self.config.content_terms <= 0:
            return word_rows, figures
        started = time.perf_counter()
        if fields is not None and (self.config.content_fields == "all" or token_strings is None):
            counts = FieldCounts.count(fields)
            weights = {name: 1.0 for name in fields}
            if self._validated(rating):
                weights, figures = choose_field_weights(self.config, counts, user_index, item_index, rating)
            self._terms = TermWeights.from_fields(counts, weights, self.config.content_terms)
            word_rows = counts.in_vocabulary("category", self._terms)
            del counts
            what = "fields " + ", ".join(f"{name} {weight:g}" for name, weight in weights.items())
        else:
            self._terms = TermWeights.fit(token_strings, self.config.content_terms)
            what = "one-field text"
        self._log(f"recommender: TF-IDF terms of {self._terms.rows.shape[0]:,} products ({self._terms.vocabulary:,} "
                  f"terms; {what}), {time.perf_counter() - started:.0f} s")
        return word_rows, figures

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def _encode_or_none(self, text: str):
        """A sentence's text vector, or None (no encoder, or no known word)."""
        if self.encoder is None:
            return None
        try:
            return encode_query(self.encoder, text)
        except ArgumentError:
            return None

    def _new_parts(self, catalogue: Catalogue) -> ScoringParts:
        return ScoringParts(self.config, self.retrieval_config, self.network_config, self.train_config, self.users,
                            catalogue, self._terms, self.log)

    def _fit(self, user_index, item_index, rating, users: IdMap, catalogue: Catalogue, times=None,
             word_rows: sp.csr_matrix | None = None, field_figures: dict | None = None):
        user_index, item_index = np.asarray(user_index, np.int64), np.asarray(item_index, np.int64)
        rating = np.asarray(rating, np.float32)
        if not (rating >= self.config.threshold).any():
            raise ArgumentError(f"no rating reaches the like threshold {self.config.threshold}: "
                                "nothing to learn from (set config threshold)")
        self.users, self.catalogue, self.parts = users, catalogue, None
        parts_of = cases(self.config.network, self._terms is not None)
        blend = Blend({case: w for case, w in equal_weights(parts_of).items() if not case.startswith("unliked")})
        n_likes = int((rating >= self.config.threshold).sum())
        validated = self._validated(rating)
        keep = validated and n_likes > self.config.refit_max_likes
        epochs = None
        if validated:
            # parts fitted to choose the blend have a catalogue of their own (they mark which
            # products they learnt), unless they are kept
            new_parts = (lambda: self._new_parts(catalogue)) if keep else \
                (lambda: self._new_parts(Catalogue(catalogue.ids, catalogue.vectors, catalogue.titles)))
            choice = choose_blend(self.config, parts_of, new_parts, user_index, item_index, rating, keep,
                                  self._encode_or_none, word_rows)
            blend, self.validation, epochs = choice.blend, choice.figures, choice.epochs
            if field_figures is not None:
                self.validation["fields"] = field_figures
            if keep:  # the parts stay as fitted; the held likes join the tables they read
                self._log(f"recommender: {n_likes:,} likes, above refit_max_likes "
                          f"({self.config.refit_max_likes:,}): the models fitted on "
                          f"{1 - self.config.validation_share:.0%} of them are kept, not refitted on all "
                          f"(the products held out as new stay known by their text)")
                self.parts = choice.kept
                self.parts.derive_tables(user_index, item_index, rating)
        if self.parts is None:  # refitted on every row, each model as long as validation chose
            self.parts = self._new_parts(catalogue).fit(user_index, item_index, rating, epochs=epochs)
        self.blend = Blend(blend.weights, {**self.parts.scales, **blend.scales}, blend.unliked_offset, blend.words)
        self.parts.info["refit"] = validated and not keep
        self._rated_at = None if times is None else latest_times(user_index, item_index, times, self.parts.rated.shape)
        return self

    # ================================================================== the scorer protocol
    def score(self, users, candidates) -> np.ndarray:
        """users x candidates blended scores, every pair scored: a pointwise score, the same
        whatever else is asked (the protocol every model and baseline follows). What serving
        ranks, the retrieved candidates, is ``recommend``'s (``top_rows`` by row)."""
        users, candidates = np.asarray(users, np.int64), np.asarray(candidates, np.int64)
        self._check_fitted()
        return pair_scores(self.parts, self.blend, users, candidates)

    # ================================================================== answering
    def _check_fitted(self) -> None:
        if self.catalogue is None or self.parts is None:
            raise NotFittedError("the recommender is not fitted: call fit() or load() first")

    def _blocked(self, filter_items) -> np.ndarray:
        return np.zeros(0, np.int64) if filter_items is None else self._item_rows(filter_items)

    def _choice(self, items, include_cold: bool):
        """``(allowed, chosen)``: the mask of items that may be answered (None: all) and the rows
        of ``items`` to rank exactly (None: rank from the candidates)."""
        allowed = None if include_cold else self.catalogue.trained
        chosen = None if items is None else self._item_rows(items)
        if chosen is not None and allowed is not None:
            chosen = chosen[allowed[chosen]]
        return allowed, chosen

    def _ranked(self, single, vectors, histories, excluded, network_users, n, items, include_cold, profiles,
                shaping: Shaping, sentence: Sentence | None = None):
        allowed, chosen = self._choice(items, include_cold)
        if chosen is not None and len(chosen) == 0:
            return padded_answer(np.full((len(vectors), 0), -1), np.zeros((len(vectors), 0)), self.catalogue.ids,
                                 single)
        rows, scores = rank(self.parts, self.blend, vectors, histories, excluded, network_users, n, allowed, chosen,
                            profiles, shaping, sentence)
        return padded_answer(rows, scores, self.catalogue.ids, single)

    def recommend(self, user_ids, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: Iterable | None = None, items: Iterable | None = None,
                  include_cold: bool = True, diversity: float = 0.0, popularity_penalty: float = 0.0):
        self._check_fitted()
        n = check_count(N, "N")
        shaping = Shaping(diversity, popularity_penalty)
        users, single = self._user_rows(user_ids)
        parts, blocked = self.parts, self._blocked(filter_items)
        excluded = [np.union1d(rated, blocked) for rated in parts.rated_rows(users)] \
            if filter_already_liked_items else [blocked] * len(users)
        likes = parts.likes[users]
        return self._ranked(single, parts.scorer.user_matrix[users], likes, excluded, users, n, items,
                            include_cold, parts.profiles(likes), shaping)

    def recommend_for_new_user(self, liked_items: Iterable | None = None, text: str | None = None,
                               N: int = 10, filter_items: Iterable | None = None,
                               items: Iterable | None = None, include_cold: bool = True,
                               diversity: float = 0.0, popularity_penalty: float = 0.0):
        """One pass through the user tower, then the same two stages without the network (which
        knows only the users it was trained on)."""
        self._check_fitted()
        n = check_count(N, "N")
        shaping = Shaping(diversity, popularity_penalty)
        liked, vector, history, profiles, sentence = self._new_user(liked_items, text)
        excluded = [np.union1d(liked, self._blocked(filter_items))]
        return self._ranked(True, vector, history, excluded, None, n, items, include_cold, profiles, shaping,
                            sentence)

    def _new_user(self, liked_items, text):
        """What a new user's request reads: their liked rows, their retrieval vector (1 x d),
        their history (1 x products), their term profile (None without a content part) and, when
        they give liked products and words, the ``Sentence`` (else None)."""
        liked = self._item_rows([] if liked_items is None else liked_items)
        has_text = text is not None and bool(str(text).strip())
        if not len(liked) and not has_text:
            raise ArgumentError("give liked_items and/or text for a new user")
        text_terms = None
        if has_text and self._terms is not None:
            text_terms = self._terms.query(item_token_strings(pd.DataFrame({"text": [str(text)]}), self.text_config))
        text_vector = None
        if has_text:
            # with liked products, words only the content terms read (a stem's other form) still count
            text_vector = self._encode_or_none(text) if len(liked) and text_terms is not None and text_terms.nnz \
                else encode_query(self.encoder, text)
        vector = self.parts.scorer.new_user(liked, text_vector)
        history = sp.csr_matrix((np.ones(len(liked), np.float32), (np.zeros(len(liked), int), liked)),
                                shape=(1, len(self.catalogue)))
        sentence = None
        if self.blend.words and text_terms is not None and len(liked) and text_terms.nnz:  # (weight 0: no work)
            sentence = Sentence(unit_sparse_rows(text_terms))
        return liked, vector[None, :], history, self.parts.profiles(history, text_terms), sentence

    def similar_items(self, item_ids, N: int = 10, by: str = "content", filter_items: Iterable | None = None):
        self._check_fitted()
        n = check_count(N, "N")
        if by not in ("content", "collaborative"):
            raise ArgumentError(f"by must be 'content' or 'collaborative', got {by!r}")
        single = is_single(item_ids)
        rows = self._item_rows([item_ids] if single else item_ids)
        found, scores = self.parts.similar_products(rows, n, by, self._blocked(filter_items))
        return padded_answer(found, scores, self.catalogue.ids, single)

    def similar_to_text(self, text: str, N: int = 10, filter_items: Iterable | None = None):
        self._check_fitted()
        n = check_count(N, "N")
        if not text or not str(text).strip():
            raise ArgumentError("give a non-empty text")
        found, scores = self.parts.nearest_in_content(encode_query(self.encoder, text), n, self._blocked(filter_items))
        return padded_answer(found, scores, self.catalogue.ids, True)

    def explain(self, user_id, item_ids, n_because: int = 3, n_words: int = 3) -> list[dict]:
        """Why a known user gets each of ``item_ids``, one dict per product:

        - ``score``: the product's score for the user, as ``recommend`` gives it;
        - ``parts``: each part's share of it (its blend weight times its standardised score:
          retrieval, item_item, network, content); with ``offset`` (products nobody liked in
          training) they add up to ``score``;
        - ``because``: the user's liked products that led to it, at most ``n_because``, each with
          its share and ``via``: ``item_item``, its share of that part's raw score (when the part
          weighs in and the product has neighbours among the likes); else ``retrieval``, the liked
          products nearest it in the retrieval towers' item space (cosine; shares of their
          positive sum), what brought it up among the candidates (when that part weighs in);
        - ``words``: the terms the user's liked products and this product share, at most
          ``n_words``, each with its share of the content part's raw score, a cosine, and
          ``part``: ``content`` (when the content part weighs in). For a new user with words
          (``explain_new_user``), the words of their sentence the product has come first, each
          with its share of the sentence's weight (``part``: ``words``).

        Example:
            >>> rec.explain("196", ["50"])[0]["because"]  # doctest: +SKIP
            [{'item_id': '181', 'share': 0.41}, {'item_id': '172', 'share': 0.33}]
        """
        self._check_fitted()
        users, _ = self._user_rows([user_id])
        likes = self.parts.likes[users]
        return self._explained(item_ids, self.parts.scorer.user_matrix[users], likes, users,
                               self.parts.profiles(likes), n_because, n_words)

    def explain_new_user(self, item_ids, liked_items: Iterable | None = None, text: str | None = None,
                         n_because: int = 3, n_words: int = 3) -> list[dict]:
        """``explain`` for someone the model never saw, from what ``recommend_for_new_user`` read
        (their liked products and/or words): the parts (no network), the liked products that led
        to each product, and the words of their liked products and sentence it matches.

        Example:
            >>> rec.explain_new_user(["1"], liked_items=["50"], text="animated family")[0]["words"]  # doctest: +SKIP
            [{'word': 'animation', 'share': 0.62, 'part': 'words'}, {'word': 'family', 'share': 0.38, 'part': 'words'}]
        """
        self._check_fitted()
        _, vector, history, profiles, sentence = self._new_user(liked_items, text)
        return self._explained(item_ids, vector, history, None, profiles, n_because, n_words, sentence)

    def _explained(self, item_ids, vectors, likes, network_users, profiles, n_because: int, n_words: int,
                   sentence: Sentence | None = None):
        """``explain``'s entries for one request (a known user's rows, or a new user's)."""
        rows = self._item_rows([item_ids] if is_single(item_ids) else item_ids)
        parts, grid = self.parts, rows[None, :]
        features = parts.pair_scores(vectors, likes, network_users, grid, profiles, sentence)
        shares, offset = self.blend.contributions(features, grid, parts.network_items)
        liked = likes.indices
        # each liked product's neighbour similarity to each asked product: the item-item part's
        # raw score is their sum
        related = parts.neighbours[liked][:, rows].toarray() if len(liked) and "item_item" in shares else None
        near = None  # the liked products' cosines to each asked one in the retrieval item space
        if len(liked) and "retrieval" in shares:
            items = unit_rows(np.asarray(parts.scorer.item_matrix[np.concatenate([liked, rows])], np.float32))
            near = items[:len(liked)] @ items[len(liked):].T
        ids = self.catalogue.ids
        explained = []
        for m, row in enumerate(rows):
            entry = {"item_id": ids.ids([row])[0], "parts": {part: float(v[0, m]) for part, v in shares.items()},
                     "offset": float(offset[0, m]), "because": [], "words": []}
            entry["score"] = float(sum(entry["parts"].values()) + entry["offset"])
            for via, table in (("item_item", related), ("retrieval", near)):
                if table is None or entry["because"]:
                    continue
                values = np.maximum(table[:, m], 0.0)
                total = values.sum()
                entry["because"] = [{"item_id": ids.ids([liked[k]])[0], "share": float(values[k] / total), "via": via}
                                    for k in np.argsort(-values, kind="stable")[:n_because] if values[k] > 0]
            if "words" in shares and sentence is not None:
                entry["words"] = self._matched(sentence.terms[0], row, n_words, "words", presence=True)
            if "content" in shares:
                said = {w["word"] for w in entry["words"]}
                entry["words"] += [w for w in self._matched(profiles[0], row, n_words, "content")
                                   if w["word"] not in said][:max(n_words - len(said), 0)]
            explained.append(entry)
        return explained

    def _matched(self, profile: sp.csr_matrix, row: int, n: int, part: str, presence: bool = False) -> list[dict]:
        """The terms ``profile`` (one row) and product ``row`` share, heaviest first, at most ``n``,
        each with its share of their dot product (with ``presence``, of the profile's weight: the
        ``words`` part's coverage) and the ``part`` it scores in."""
        terms = self._terms.rows[row]
        common, mine, theirs = np.intersect1d(profile.indices, terms.indices, return_indices=True)
        products = profile.data[mine] * (1.0 if presence else terms.data[theirs])
        total = np.abs(profile.data).sum() if presence else products.sum()
        return [{"word": self._terms.terms[common[k]], "share": float(products[k] / total), "part": part}
                for k in np.argsort(-products, kind="stable")[:n] if products[k] > 0]

    def why(self, explained: dict) -> str:
        """One line a person reads for an ``explain`` entry, e.g. ``because you liked Star Wars
        and Return of the Jedi · matches 'space', 'war'`` (liked products through the item-item
        part), ``close to Star Wars, which you liked`` (through the retrieval item space); a
        product reached by neither reads ``close to what you liked``."""
        said = []
        if explained["because"]:
            titles, _ = self._item_columns(np.asarray([b["item_id"] for b in explained["because"][:2]], object))
            names = " and ".join(title or b["item_id"] for title, b in zip(titles, explained["because"]))
            retrieved = explained["because"][0].get("via") == "retrieval"
            said.append(f"close to {names}, which you liked" if retrieved else f"because you liked {names}")
        if explained["words"]:
            said.append("matches " + ", ".join(f"'{w['word']}'" for w in explained["words"]))
        return " · ".join(said) or "close to what you liked"

    def similar_users(self, user_ids, N: int = 10):
        self._check_fitted()
        n = check_count(N, "N")
        single = is_single(user_ids)
        found, scores = self.parts.similar_users(self.users.index([str(user_ids)] if single else map(str, user_ids)), n)
        return padded_answer(found, scores, self.users, single)

    def examples(self, n: int = 5) -> dict:
        """Things to try on this model: ``users`` (the ``n`` with the most training ratings),
        ``items`` (``item_id`` and ``title`` of the ``n`` most liked products) and ``words`` (a
        search from the most liked titled product's title: two of its words)."""
        self._check_fitted()
        counts = self.parts.item_counts()["likes"]
        activity = np.diff(self.parts.rated.indptr)
        users = np.argsort(-activity, kind="stable")[:n]
        items = np.argsort(-counts, kind="stable")[:max(n, 50)]
        titled = [row for row in items if self.catalogue.titles[row]]
        words = []
        for row in titled:
            words = [w for w in tokenize(str(self.catalogue.titles[row])) if w.isalpha() and len(w) > 2][:2]
            if words:
                break
        return {"users": self.users.ids(users).tolist(),
                "items": [{"item_id": str(self.catalogue.ids.ids([row])[0]), "title": self.catalogue.titles[row]}
                          for row in items[:n]],
                "words": " ".join(words)}

    def item_details(self, item_ids) -> list[dict]:
        """What a page shows of each product: ``item_id, title, text, cold, ratings, likes``
        (ratings and likes the model was trained on; 0 for products added later)."""
        self._check_fitted()
        return self.parts.details(self._item_rows(item_ids))

    def user_history(self, user_id) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The products a known user rated in training, whether each was a like (rating >= the
        threshold) and when it was rated (seconds since 1970; -1: not known): ``(item_ids,
        liked, rated_at)``, likes first, then the newest first."""
        self._check_fitted()
        user = self.users.index([str(user_id)])[0]
        rows, liked = self.parts.history(user)
        rated_at = np.full(len(rows), -1, np.int64)
        if self._rated_at is not None:
            mine = self._rated_at[user]
            rated_at[np.searchsorted(rows, mine.indices)] = mine.data
        order = np.lexsort((-rated_at, ~liked))
        return self.catalogue.ids.ids(rows[order]), liked[order], rated_at[order]

    def add_items(self, items: pd.DataFrame, item_vectors: np.ndarray | None = None) -> int:
        self._check_fitted()
        require_columns(items, ["item_id"], "items")
        self.catalogue.check_new(items["item_id"])  # before any text work
        vectors, tokens = new_item_vectors(items, self.encoder, self.text_config, item_vectors, self._terms is not None)
        texts = display_texts(items, None) if self.catalogue.texts is not None else None
        rows = self.catalogue.append(items["item_id"].astype(str), vectors, frame_titles(items), texts)
        if self._terms is not None:  # by field, as the catalogue was, where the new products have fields
            fields = item_fields(items) if self._terms.field_weights is not None else None
            self._terms.append(tokens if fields is None else fields)
        self.parts.add_products(rows)
        return len(rows)

    # ================================================================== persistence
    def save(self, directory: str | os.PathLike) -> None:
        self._check_fitted()
        directory = write_manifest(directory, KIND, FORMAT_VERSION, {
            "config": self.config.to_dict(), "retrieval": dataclasses.asdict(self.retrieval_config),
            "network": self.network_config.to_dict(), "train": self.train_config.to_dict(),
            "text": {"fields": list(self.text_config.fields), "title": self.text_config.title,
                     "brand": self.text_config.brand},
            "pretrained": self.pretrained, "blend": self.blend.to_dict(), "validation": self.validation,
            "info": self.parts.info, "n_users": len(self.users), "n_model_items": self.parts.scorer.n_model_items,
            "has_network": self.parts.network is not None})
        self.catalogue.save(directory)
        self.users.save(directory / "users.parquet")
        self.parts.save(directory)
        if self.encoder is not None:
            self.encoder.save(directory / "text_encoder.npz")
        if self._terms is not None:
            self._terms.save(directory)
        if self._rated_at is not None:
            save_csr(directory, RATED_AT, self._rated_at)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TwoStageRecommender":
        """A recommender written by ``save``; answers are identical to the saved one's."""
        directory = Path(directory)
        meta = read_manifest(directory, KIND, FORMAT_VERSION)
        with reading_folder(directory):
            text = meta["text"]
            rec = cls(RetrievalConfig(**meta["retrieval"]), ModelConfig.from_dict(meta["network"]),
                      TrainConfig(**meta["train"]), TwoStageConfig(**meta["config"]),
                      TextConfig(tuple(text["fields"]), text["title"], text["brand"]), meta["pretrained"])
            parts = ScoringParts(rec.config, rec.retrieval_config, rec.network_config, rec.train_config, None, None, None)
            parts.load_tables(directory, meta["n_model_items"], meta["has_network"])
            rec.catalogue = parts.catalogue = Catalogue.load(directory)
            rec.users = parts.users = IdMap.load(directory / "users.parquet", "user")
            encoder = directory / "text_encoder.npz"
            rec.encoder = TextEncoder.load(encoder) if encoder.is_file() else None
            rec._terms = parts.terms = TermWeights.load(directory) if TermWeights.saved_in(directory) else None
            rec._rated_at = load_csr(directory, RATED_AT) if (directory / f"{RATED_AT}.shape.npy").is_file() else None
            parts.info = meta["info"]
            rec.parts, rec.blend, rec.validation = parts, Blend.from_dict(meta["blend"]), meta["validation"]
            # Arrow's allocator keeps the pages of the tables read above (ids, titles) for reuse:
            # some 100 MB at 800k products that a serving process would otherwise hold for good
            release_arrow_pages()
        return rec
