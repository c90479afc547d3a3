"""Two-stage recommending: retrieve a few hundred candidates from indexes, then re-rank them.

Stage 1, candidates, from two sources:

- the two-tower retrieval model (``hybrid.retrieval``): the user's vector searched in a vector
  index over the item-tower vectors (``hybrid.ann``; exact below ``exact_below`` items, HNSW
  above). Cold and newly added products are in it through their text;
- sparse item-item neighbours (``hybrid.neighbours``): the products that people who liked the
  user's items also liked (EASE weights on small catalogues, cosine co-occurrence on large ones).

Stage 2, re-ranking: every candidate gets up to four scores - the retrieval score, the
item-item score, the hybrid Keras network's (user and product embeddings concatenated with the
text vector, trained on likes with sampled negatives) and the content score (cosine of the
user's TF-IDF term profile and the product's terms, ``hybrid.terms``: the specific words an
average of word vectors blurs) - each standardised over the user's candidates and blended with
weights chosen by NDCG@10 on a validation share of the *training* likes (then every part is
refitted on all of them). A score that cannot exist for a request (the network for a user it
never saw, item-item for a text-only user) is left out and the weights chosen for that case,
also on validation, are used.

Products without training likes (cold, or added later) have their own blend, chosen on
training products held out of a validation fit with all their ratings (as if new: ranked
among themselves), plus an offset that places them among warm products, chosen on the warm
validation rankings of the whole catalogue (where products without likes in the fit draw the
likes they draw: few). On a real catalogue the content score carries most of it: the cold products are ranked at
least as well as by their text alone.

The vocabulary is implicit's and LightFM's: ``recommend(user_ids, N, filter_already_liked_items,
filter_items, items, include_cold)`` returns ``(ids, scores)`` arrays; ``frame`` turns them
into the familiar DataFrame with titles and the cold flag.

Example:
    >>> rec = TwoStageRecommender().fit(ratings, items)                            # doctest: +SKIP
    >>> ids, scores = rec.recommend(["u1", "u2"], N=10)                            # doctest: +SKIP
    >>> rec.frame(*rec.recommend_for_new_user(liked_items=["B01"], text="usb c hub"))  # doctest: +SKIP
    >>> rec.similar_items("B01", by="collaborative"); rec.similar_to_text("quiet mouse")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .ann import VectorIndex
from .catalogue import Catalogue
from .config import ModelConfig, RetrievalConfig, TrainConfig, TwoStageConfig, check_count, check_settings
from .dataset import EncodedDataset
from .errors import ArgumentError, NotFittedError, UnknownIdError
from .evaluation import ranking_metrics_from_lists, ranking_task, sample_users, validation_folds
from .ids import IdMap
from .io import release_arrow_pages
from .neighbours import item_neighbours, row_values
from .persistence import (load_array, load_arrays, load_csr, read_manifest, save_array, save_arrays, save_csr,
                          write_manifest)
from .progress import Progress
from .recommender import encode_query, frame_ids, frame_titles, item_text_vectors, item_token_strings
from .retrieval import RetrievalScorer, fit_retrieval, load_scorer, save_two_tower
from .terms import TermWeights
from .text import TextConfig
from .vectors import TextEncoder, unit_rows

FORMAT_VERSION = 1


def _config(value, cls, what: str, seed: int, **fixed):
    """A fresh config from a dict (keys checked) or a copy of a dataclass: never the caller's."""
    if isinstance(value, cls):
        return dataclasses.replace(value, **fixed)
    return cls(seed=seed, **fixed, **check_settings(value, cls, what))


def _weight_grid(parts: tuple[str, ...], step: float) -> list[dict]:
    """Every blend of ``parts`` with weights on a grid of ``step`` that sum to 1."""
    ticks = int(round(1 / step))
    grid = []
    for cut in itertools.product(range(ticks + 1), repeat=len(parts)):
        if sum(cut) == ticks:
            grid.append({p: c / ticks for p, c in zip(parts, cut)})
    return grid


def _smoothed(grid: list[dict], values, radius: float) -> np.ndarray:
    """Each blend's ``values`` averaged over the blends of the grid with at most ``radius`` of
    weight moved between parts (half the L1 distance of the weights), itself included.

    Example:
        >>> grid = _weight_grid(("a", "b"), 0.5)  # (0, 1), (0.5, 0.5), (1, 0)
        >>> _smoothed(grid, [0.0, 3.0, 0.0], 0.5).tolist()
        [1.5, 1.0, 1.5]
    """
    weights = np.array([list(g.values()) for g in grid])
    near = np.abs(weights[:, None, :] - weights[None, :, :]).sum(axis=2) <= 2 * radius + 1e-9
    return near @ np.asarray(values, np.float64) / near.sum(axis=1)


def _pick(grid: list[dict], ndcg, users: int, smoothing: float = 0.0, shrinkage: float = 0.0):
    """The blend chosen from a grid's validation NDCG@10 and its figures: ``(weights, figures)``.

    ``smoothing`` (the warm blends, ``config.weight_smoothing``): the blend whose neighbourhood
    (``_smoothed``) has the best mean, not the best point alone (on Musical Instruments, 3 seeds,
    the best point changed from seed to seed and ranked 0.0880 on test, the best neighbourhood
    0.0902). The cold blends keep their best point: smoothing pulls a choice away from the
    grid's edges, where a content-heavy cold blend lies (on MovieLens-100k's cold products, 3
    seeds, 0.168 with the best point, 0.163 smoothed). ``shrinkage`` (the cold blends,
    ``config.cold_weight_shrinkage``) moves the chosen blend that share of the way to equal
    weights: the cold products' best validation point put 0 or 0.8 on the network from seed to
    seed, and halfway to equal weights ranked them better on MovieLens-100k and Musical
    Instruments (5 splits each: 0.151 -> 0.164 and 0.0915 -> 0.0945; compared on those test
    splits)."""
    around = _smoothed(grid, ndcg, smoothing)
    best = int(np.argmax(around))
    weights = {part: (1 - shrinkage) * weight + shrinkage / len(grid[best]) for part, weight in grid[best].items()}
    return weights, {"ndcg@10": float(ndcg[best]), "neighbourhood_ndcg@10": float(around[best]), "best": grid[best],
                     "users": int(users), "grid": [{**w, "ndcg@10": float(v)} for w, v in zip(grid, ndcg)]}


def _display_texts(items: pd.DataFrame | None, item_map: IdMap | None):
    """Texts to show for ``items`` (each row's ``text``, else its cleaned canonical fields), in
    ``item_map`` order (None for items it lacks), or in the frame's order without a map."""
    if items is None:
        return None
    texts = items["text"].tolist() if "text" in items.columns else [None] * len(items)
    missing = [k for k, t in enumerate(texts) if not (isinstance(t, str) and t.strip())]
    if missing:  # cleaned only where there is no free text
        for k, cleaned in zip(missing, item_token_strings(items.iloc[missing])):
            texts[k] = cleaned
    if item_map is None:
        return texts
    out = [None] * len(item_map)
    for row, text in zip(item_map.index(items["item_id"].astype(str)), texts):
        out[row] = text if isinstance(text, str) else None
    return out


def _top(scores: np.ndarray, rows: np.ndarray, valid: np.ndarray, n: int):
    """The ``n`` best valid entries of every row: ``(rows, scores)``, -1 / -inf beyond them."""
    scores = np.where(valid, scores, -np.inf)
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < scores.shape[1] else \
        np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    best = np.take_along_axis(scores, part, 1)
    order = np.argsort(-best, axis=1, kind="stable")
    part, best = np.take_along_axis(part, order, 1), np.take_along_axis(best, order, 1)
    chosen = np.take_along_axis(rows, part, 1)
    return np.where(np.isfinite(best), chosen, -1), best


class TwoStageRecommender:
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
        self.terms: TermWeights | None = None
        self.weights: dict = {}
        self.cold_offset = 0.0
        self.scales: dict = {}
        self.validation: dict = {}
        self.info: dict = {}
        self._user_index: VectorIndex | None = None

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
        catalogue = Catalogue(items_map, vectors, frame_titles(items, items_map), texts=_display_texts(items, items_map))
        if items is not None:
            tokens = [""] * len(items_map)
            for row, text in zip(items_map.index(items["item_id"].astype(str)), item_token_strings(items, self.text_config)):
                tokens[row] = text
            self._fit_terms(tokens)
        return self._fit(users.index(ratings["user_id"].astype(str)), items_map.index(ratings["item_id"].astype(str)),
                         ratings["rating"].to_numpy(np.float32), users, catalogue)

    def fit_dataset(self, data: EncodedDataset, rows: np.ndarray | None = None,
                    encoder: TextEncoder | None = None, texts=None) -> "TwoStageRecommender":
        """Train on the pipeline's encoded dataset (``rows``: the training rows, default all;
        ``texts``: the products' cleaned texts in catalogue order, as the text stage writes them:
        shown for each product and read for the content part's TF-IDF terms; without them the
        recommender has no content part)."""
        rows = np.arange(len(data.rating)) if rows is None else np.asarray(rows)
        self.encoder = encoder
        catalogue = Catalogue(data.items, data.item_vectors, data.item_titles, texts=texts)
        if texts is not None:
            self._fit_terms(catalogue.texts.to_pylist())
        return self._fit(data.user_index[rows], data.item_index[rows], data.rating[rows], data.users, catalogue)

    def _fit_terms(self, token_strings) -> None:
        """The content part's TF-IDF terms of the catalogue's products (unless switched off)."""
        if self.config.content_terms > 0:
            started = time.perf_counter()
            self.terms = TermWeights.fit(token_strings, self.config.content_terms)
            self._log(f"recommender: TF-IDF terms of {len(token_strings):,} products ({self.terms.vocabulary:,} "
                      f"terms), {time.perf_counter() - started:.0f} s")

    def _fit(self, user_index, item_index, rating, users: IdMap, catalogue: Catalogue):
        user_index, item_index = np.asarray(user_index, np.int64), np.asarray(item_index, np.int64)
        rating = np.asarray(rating, np.float32)
        if not (rating >= self.config.threshold).any():
            raise ArgumentError(f"no rating reaches the like threshold {self.config.threshold}: "
                                "nothing to learn from (set config threshold)")
        self.users, self.catalogue = users, catalogue
        self.weights = {case: {p: 1 / len(parts) for p in parts}  # unless chosen on validation below
                        for case, parts in self._cases().items() if not case.startswith("cold")}
        self.cold_offset = 0.0
        n_likes = int((rating >= self.config.threshold).sum())
        if self.config.validation_share > 0 and n_likes >= 200:
            fitted_once = n_likes > self.config.refit_max_likes
            self.weights, self.cold_offset, self.validation = self._validate(user_index, item_index, rating,
                                                                             fitted_once)
            if fitted_once:  # the models stay as fitted; the held likes join the tables they read
                self._log(f"recommender: {n_likes:,} likes, above refit_max_likes "
                          f"({self.config.refit_max_likes:,}): the models fitted on "
                          f"{1 - self.config.validation_share:.0%} of them are kept, not refitted on all "
                          f"(the products held out as new stay known by their text)")
                self._derive_tables(user_index, item_index, rating)
                self.info["refit"] = False
                return self
        self._fit_parts(user_index, item_index, rating)
        self.info["refit"] = self.config.validation_share > 0 and n_likes >= 200
        return self

    def _validate(self, user_index, item_index, rating, keep: bool):
        """The blend weights with the best NDCG@10 on validation likes, for each set of available
        parts, and the offset of cold products: ``(weights, offset, figures)``.

        - The cold blends: models fitted without some rated products (``_cold_validation``)
          rank those products among themselves for their ratings, as if new (the parts never
          saw them).
        - The warm blends: models fitted on the rows outside a validation share rank the
          products with training likes for the held-out likes of such products (cold and warm
          products are ordered by their own blends). Where one share holds fewer than
          ``validation_likes`` likes, up to ``validation_folds`` disjoint shares are held in
          turn and their NDCG@10 pooled.
        - The offset that places cold products among warm ones: the same models rank the whole
          catalogue for the held-out likes, so products without likes in the fit draw them as
          often as such products do (on a real catalogue most are never liked).

        ``keep`` (above ``refit_max_likes``): one fit, on the first share's rows without the
        products held out as new (at most ``cold_validation_items``: a small part of so many
        likes), serves all three and stays this recommender's models; those products are left
        out of the offset's rankings."""
        config, threshold = self.config, self.config.threshold
        cases = self._cases()

        def rows(r):
            return user_index[r], item_index[r], rating[r]

        held_likes = config.validation_share * int((rating >= threshold).sum())
        n_folds = 1 if keep else int(min(config.validation_folds, np.ceil(config.validation_likes / held_likes),
                                         np.floor(1 / config.validation_share)))
        folds = validation_folds(len(rating), config.validation_share, n_folds, config.seed + 1)
        fit_rows, cold_rows, cold_items = self._cold_validation(item_index, folds[0][0])
        weights = {case: {p: 1 / len(parts) for p in parts} for case, parts in cases.items()}
        figures = {"folds": len(folds)}
        probe = self if keep else self._blank()
        if keep or len(cold_items):
            probe._fit_parts(*rows(fit_rows), final=False)
        cold_task = ranking_task(*rows(fit_rows)[:2], *rows(cold_rows), cold_items, threshold) \
            if len(cold_items) else None
        if cold_task is not None and len(cold_task.users):
            cold_task = sample_users(cold_task, config.validation_users, config.seed)
            cold_cases = {c: cases[c] for c in ("cold", "cold_no_network")}
            probe.weights = dict(weights)
            ndcg = probe._grid_ndcg(cold_task, cold_cases, probe._cold_features(cold_items), len(cold_items),
                                    "cold products")
            for case, parts in cold_cases.items():
                weights[case], figures[case] = _pick(_weight_grid(parts, config.weight_step), ndcg[case],
                                                     len(cold_task.users), shrinkage=config.cold_weight_shrinkage)
        else:  # nothing to learn the cold blend from: cold products are blended as warm ones
            del weights["cold"], weights["cold_no_network"]
        # a text-only user is not like any validation user (their profiles come from likes), so
        # that case keeps equal weights: the sentence's two readings, retrieval and content
        warm_cases = {c: cases[c] for c in ("full", "no_network")}
        pooled, users, probes = {case: 0.0 for case in warm_cases}, 0, []
        for k, (kept, held) in enumerate(folds):
            if not keep:  # (the cold products' models go first: memory)
                probe = self._blank()
                probe._fit_parts(*rows(kept), final=False)
                fit_rows = kept
            task = sample_users(ranking_task(*rows(fit_rows)[:2], *rows(held), np.flatnonzero(probe.network_items),
                                             threshold), config.validation_users, config.seed + k)
            probes.append((probe, fit_rows, held))
            if not len(task.users):  # (a validation share too small to hold a like)
                continue
            probe.weights = dict(weights)
            what = "warm products" + (f" (share {k + 1} of {len(folds)})" if len(folds) > 1 else "")
            ndcg = probe._grid_ndcg(task, warm_cases, probe._known_user_features, 2 * config.candidates, what,
                                    warm_only=True)
            for case in warm_cases:
                pooled[case] = pooled[case] + len(task.users) * np.asarray(ndcg[case])
            users += len(task.users)
        for case, parts in warm_cases.items():
            if users:
                weights[case], figures[case] = _pick(_weight_grid(parts, config.weight_step),
                                                 pooled[case] / users, users, config.weight_smoothing)
        offset = 0.0
        if "cold" in weights:
            offsets = np.arange(-3.0, 1.01, 0.25)
            pooled, users, cold_likes, likes = 0.0, 0, 0, 0
            allowed = np.ones(len(self.catalogue), bool)
            allowed[cold_items if keep else []] = False
            for k, (probe, fit, held) in enumerate(probes):
                task = sample_users(ranking_task(*rows(fit)[:2], *rows(held), np.flatnonzero(allowed), threshold),
                                    config.validation_users, config.seed + k)
                if not len(task.users):
                    continue
                probe.weights = weights
                pooled = pooled + len(task.users) * np.asarray(probe._offset_ndcg(task, offsets, allowed))
                users += len(task.users)
                for liked in task.relevant:
                    cold_likes += len(liked) - int(probe.network_items[list(liked)].sum())
                    likes += len(liked)
            ndcg = pooled / users if users else np.zeros(len(offsets))
            # ties (cold products never in a top 10): the lowest offset; no validation user: 0
            best = int(np.argmax(ndcg)) if users else int(np.flatnonzero(offsets == 0)[0])
            offset = float(offsets[best])
            figures["cold_offset"] = {"offset": offset, "ndcg@10": float(ndcg[best]), "users": users,
                                      "cold_likes_share": cold_likes / max(1, likes),
                                      "grid": [{"offset": float(o), "ndcg@10": float(v)} for o, v in zip(offsets, ndcg)]}
        return weights, offset, figures

    def _cold_validation(self, item_index, fit_rows):
        """Rated products held out of ``fit_rows`` with all their ratings, to choose the cold
        blend: ``(fit_rows, cold_rows, cold_items)``; none when fewer than 10 would be held."""
        config = self.config
        rated = np.unique(item_index[fit_rows])
        n = min(int(round(config.cold_validation_share * len(rated))), config.cold_validation_items)
        if n < 10:
            return fit_rows, fit_rows[:0], rated[:0]
        cold = np.sort(np.random.default_rng(config.seed + 2).choice(rated, n, replace=False))
        is_cold = np.isin(item_index[fit_rows], cold)
        return fit_rows[~is_cold], fit_rows[is_cold], cold

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def _blank(self) -> "TwoStageRecommender":
        """A recommender with these settings, users and catalogue, not fitted."""
        probe = TwoStageRecommender(self.retrieval_config, self.network_config, self.train_config,
                                    self.config, self.text_config, self.pretrained, log=self.log)
        probe.users = self.users
        probe.catalogue = Catalogue(self.catalogue.ids, self.catalogue.vectors, self.catalogue.titles)
        probe.encoder, probe.terms = self.encoder, self.terms
        return probe

    def _fit_parts(self, user_index, item_index, rating, final: bool = True) -> None:
        """Fit the models (retrieval towers, re-ranking network) on these rows, then the tables
        (``final``: the serving indexes too; else exact search, for choosing the blend weights)."""
        from .training import fit_model

        config, n_users, n_items = self.config, len(self.users), len(self.catalogue)
        liked = rating >= config.threshold
        self.tower, info = fit_retrieval(user_index, item_index, rating, self.catalogue.vectors, n_users, n_items,
                                         self.retrieval_config, log=self.log)
        self.tower_items = info.pop("trained_items")
        self.info = {"retrieval": info}
        self.network = None
        self.network_items = np.bincount(item_index[liked], minlength=n_items) > 0
        if config.network:  # its set-up and first epoch take a minute at millions of likes: say so
            self._log(f"recommender: re-ranking network ({self.network_config.name}) on {int(liked.sum()):,} likes")
            vectors = np.vstack([self.catalogue.vectors, np.zeros((1, self.catalogue.dim), np.float32)])
            self.network, self.info["network"] = fit_model(
                self.network_config, self.train_config, user_index[liked], item_index[liked],
                np.ones(liked.sum(), np.float32), vectors, n_users, n_items, log=self.log)
        self.n_network_items = n_items
        self._derive_tables(user_index, item_index, rating, final)

    def _derive_tables(self, user_index, item_index, rating, final: bool = True) -> None:
        """What the fitted models read from these rows: the rated and liked matrices, the users'
        liked histories (their retrieval vectors), the item-item neighbours, the indexes and the
        blend's score scales. Items the models did not learn keep their text-only vectors."""
        # tables derived before (the validation fit's) go before the new ones are built: the
        # item-item neighbours alone are hundreds of MB at 800k products
        self.rated = self.likes = self.neighbours = self.scorer = self.item_index = self.content_index = None
        config, n_users, n_items = self.config, len(self.users), len(self.catalogue)
        liked = rating >= config.threshold
        shape = (n_users, n_items)
        self.rated = sp.csr_matrix((np.ones(len(rating), np.float32), (user_index, item_index)), shape=shape)
        self.rated.data[:] = 1.0
        self.likes = sp.csr_matrix((np.ones(liked.sum(), np.float32), (user_index[liked], item_index[liked])),
                                   shape=shape)
        self.likes.data[:] = 1.0
        self.catalogue.trained = np.bincount(item_index, minlength=n_items) > 0
        started = time.perf_counter()
        self.tower.set_likes(user_index[liked], item_index[liked])
        self.scorer = RetrievalScorer.from_model(self.tower, self.tower_items)
        self._log(f"recommender: retrieval vectors of {n_users:,} users and {n_items:,} products, "
                  f"{time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        self.neighbours, self.info["item_item"] = item_neighbours(self.likes, config.neighbours, config.item_item,
                                                                  l2=None, seed=config.seed)
        self._log(f"recommender: item-item neighbours ({self.info['item_item']}) from {int(liked.sum()):,} likes, "
                  f"{time.perf_counter() - started:.0f} s")
        self.info["likes"], self.info["ratings"] = int(liked.sum()), int(len(rating))
        started = time.perf_counter()
        self._build_indexes(final)
        trained_users = np.unique(user_index[liked])
        rng = np.random.default_rng(config.seed)
        self._fit_scales(rng.choice(trained_users, min(500, len(trained_users)), replace=False))
        self._log(f"recommender: {self.item_index.kind} index{' and content index' if final else ''}, "
                  f"score scales, {time.perf_counter() - started:.0f} s")

    def _build_indexes(self, final: bool = True) -> None:
        """The item index over the retrieval vectors and the content index over the text vectors;
        not ``final`` (models fitted only to choose the blend weights): an exact item index,
        which answers a batch of users at once as fast and costs nothing to build (an HNSW graph
        over 800k products takes minutes), and no content index."""
        settings = {k: getattr(self.config, k) for k in ("exact_below", "hnsw_m", "ef_construction", "ef_search")}
        if not final:
            self.item_index = VectorIndex(self.scorer.item_matrix, **{**settings, "exact_below": len(self.catalogue) + 1})
            self.content_index = None
        else:
            self.item_index = VectorIndex(self.scorer.item_matrix, **settings, what="recommender: item index")
        # the retrieval vectors are read from the index's storage from now on, not held twice
        # (released before the content index is built: 200 MB at 800k products)
        self.scorer.item_matrix = self.item_index.vectors()
        if final:
            self.content_index = VectorIndex(unit_rows(self.catalogue.vectors).astype(np.float32), **settings,
                                             what="recommender: content index")
        self._user_index = None
        self._network_call = None
        self._counts = None

    def _cases(self) -> dict[str, tuple[str, ...]]:
        """The parts each blend reads: ``full`` (known users), ``no_network`` (new users with
        liked items), ``retrieval_only`` (new users from text alone), and the same for products
        without training likes (``cold``, ``cold_no_network``: no item-item scores exist)."""
        network = ("network",) if self.config.network else ()
        content = ("content",) if self.terms is not None else ()
        return {"full": ("retrieval", "item_item") + network + content,
                "no_network": ("retrieval", "item_item") + content, "retrieval_only": ("retrieval",) + content,
                "cold": ("retrieval",) + network + content, "cold_no_network": ("retrieval",) + content}

    def _grid_ndcg(self, task, cases: dict, batch_features, width: int, what: str,
                   warm_only: bool = False) -> dict:
        """NDCG@10 over ``task`` of every blend of each case's grid (``_weight_grid``), in grid
        order. ``batch_features(users)`` gives ``(rows, valid, features)`` with at most ``width``
        products per user (users go in batches of some 65k scores each); ``warm_only``: products
        without training likes are left out of the rankings."""
        grids = {case: _weight_grid(parts, self.config.weight_step) for case, parts in cases.items()}
        tops = {case: [[] for _ in grid] for case, grid in grids.items()}
        batch = max(16, (1 << 16) // max(1, width))
        with Progress(len(task.users), f"recommender: blend weights of {what} on validation users",
                      "users") as progress:
            for start in range(0, len(task.users), batch):
                users = task.users[start:start + batch]
                rows, valid, features = batch_features(users)
                if warm_only:
                    valid = valid & self.network_items[np.maximum(rows, 0)]
                for case, grid in grids.items():
                    present = {p: v for p, v in features.items() if p in cases[case]}
                    for g, weights in enumerate(grid):
                        self.weights[case] = weights
                        tops[case][g].append(_top(self._blend(present, rows), rows, valid, 10)[0])
                progress.update(len(users))
        return {case: [ranking_metrics_from_lists(np.vstack(t), task.relevant, 10)["ndcg"] for t in tops[case]]
                for case in grids}

    def _offset_ndcg(self, task, offsets, allowed: np.ndarray) -> list[float]:
        """NDCG@10 over ``task`` of each cold offset, ranking the ``allowed`` products."""
        tops = [[] for _ in offsets]
        batch = 256
        with Progress(len(task.users), "recommender: cold products' offset on validation users", "users") as progress:
            for start in range(0, len(task.users), batch):
                rows, valid, features = self._known_user_features(task.users[start:start + batch])
                valid = valid & allowed[np.maximum(rows, 0)]
                for o, offset in enumerate(offsets):
                    self.cold_offset = float(offset)
                    tops[o].append(_top(self._blend(features, rows), rows, valid, 10)[0])
                progress.update(min(batch, len(task.users) - start))
        return [ranking_metrics_from_lists(np.vstack(t), task.relevant, 10)["ndcg"] for t in tops]

    def _cold_features(self, cold_items: np.ndarray):
        """``batch_features`` of known users over the given (cold) products only."""
        def features(users):
            rows = np.broadcast_to(np.asarray(cold_items, np.int64), (len(users), len(cold_items)))
            return rows, np.ones(rows.shape, bool), self._part_scores(
                self.scorer.user_matrix[users], self._related(self.likes[users]), users, rows,
                self._profiles(self.likes[users]))
        return features

    # ================================================================== the two stages
    def _features(self, user_vectors, histories: sp.csr_matrix, excluded: list, network_users,
                  allowed: np.ndarray | None, k: int, profiles=None):
        """Candidates of each user (both sources, union) and their unblended scores.

        Returns ``rows`` (B x M item rows, -1 padding), ``valid`` (B x M) and a dict of
        B x M score arrays by part."""
        _, retrieved = self.item_index.search(user_vectors, k, exclude=excluded)
        related = self._related(histories)
        lists = []
        for b in range(len(user_vectors)):
            mine = retrieved[b][retrieved[b] >= 0]
            if related is not None and related.indptr[b + 1] > related.indptr[b]:
                lo, hi = related.indptr[b], related.indptr[b + 1]
                columns, values = related.indices[lo:hi], related.data[lo:hi]
                keep = ~np.isin(columns, excluded[b]) if len(excluded[b]) else np.ones(len(columns), bool)
                columns, values = columns[keep], values[keep]
                if len(columns) > k:
                    columns = columns[np.argpartition(-values, k - 1)[:k]]
                mine = np.union1d(mine, columns)
            lists.append(mine)
        width = max(1, max(len(m) for m in lists))
        rows = np.full((len(lists), width), -1, np.int64)
        for b, mine in enumerate(lists):
            rows[b, :len(mine)] = mine
        valid = rows >= 0
        if allowed is not None:
            valid &= allowed[np.maximum(rows, 0)]
        return rows, valid, self._part_scores(user_vectors, related, network_users, np.maximum(rows, 0), profiles)

    def _related(self, histories: sp.csr_matrix):
        """Item-item scores of every item for each history row (None when all are empty)."""
        return (histories @ self.neighbours).tocsr() if histories.nnz else None

    def _profiles(self, histories: sp.csr_matrix, text_terms: sp.csr_matrix | None = None):
        """Term profiles of users from their liked products (and a sentence's terms), or None
        when the recommender has no content part."""
        return None if self.terms is None else self.terms.profiles(histories, text_terms)

    def _known_user_features(self, users: np.ndarray):
        """``_features`` of known users, their training items excluded."""
        return self._features(self.scorer.user_matrix[users], self.likes[users], self._rated_rows(users),
                              users, None, self.config.candidates, self._profiles(self.likes[users]))

    def _rated_rows(self, users) -> list[np.ndarray]:
        return [self.rated[u].indices for u in users]

    def _blended(self, user_vectors, histories, network_users, rows, profiles=None) -> np.ndarray:
        """The blended score of every given (user, item row) pair."""
        return self._blend(self._part_scores(user_vectors, self._related(histories), network_users, rows, profiles),
                           rows)

    def _part_scores(self, user_vectors, related, network_users, rows, profiles=None) -> dict:
        features = {"retrieval": np.einsum("bd,bmd->bm", user_vectors, self.scorer.item_matrix[rows])}
        if related is not None:
            features["item_item"] = row_values(related, rows)
        if network_users is not None and self.network is not None:
            features["network"] = self._network_scores(network_users, rows)
        if profiles is not None:
            features["content"] = self.terms.scores(profiles, rows)
        return features
    def _network_scores(self, users: np.ndarray, rows: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
        """The hybrid network's like-probabilities for users x their candidate rows."""
        import tensorflow as tf

        if self._network_call is None:
            dim = self.catalogue.dim
            self._network_call = tf.function(
                lambda u, i, t: self.network({"user": u, "item": i, "text": t}, training=False),
                input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32),
                                 tf.TensorSpec([None, dim], tf.float32)], autograph=False)
        flat_items = rows.ravel()
        flat_users = np.repeat(np.asarray(users, np.int32), rows.shape[1])
        known = np.zeros(len(flat_items), bool)
        inside = flat_items < self.n_network_items
        known[inside] = self.network_items[flat_items[inside]]
        model_items = np.where(known, flat_items, self.n_network_items).astype(np.int32)
        out = np.empty(len(flat_items), np.float32)
        for s in range(0, len(flat_items), chunk):
            out[s:s + chunk] = np.asarray(self._network_call(
                flat_users[s:s + chunk], model_items[s:s + chunk],
                self.catalogue.vectors[flat_items[s:s + chunk]])).ravel()
        return out.reshape(rows.shape)

    def _blend(self, features: dict, rows: np.ndarray) -> np.ndarray:
        """The weighted sum of the parts' scores, each standardised with the mean and spread it
        has over the candidates of training users (``self.scales``): a pointwise score.
        Products without training likes (``rows`` tells which) get the cold blend plus the
        cold offset, when the weights have one."""
        warm = self._weighted(features, self.weights[self._case(features)])
        cold_case = "cold" if "network" in features else "cold_no_network"
        if cold_case not in self.weights:
            return warm
        cold = ~self.network_items[np.maximum(rows, 0)]
        if not cold.any():
            return warm
        return np.where(cold, self._weighted(features, self.weights[cold_case]) + self.cold_offset, warm)

    def _weighted(self, features: dict, weights: dict) -> np.ndarray:
        out = 0.0
        for part, weight in weights.items():
            if weight and part in features:
                mean, spread = self.scales[part]
                out = out + weight * (features[part] - mean) / spread
        shape = next(iter(features.values())).shape
        return np.full(shape, out, np.float64) if np.isscalar(out) else out

    def _fit_scales(self, users: np.ndarray) -> None:
        """Mean and spread of every part's score over the candidates of ``users``."""
        _, valid, features = self._known_user_features(np.asarray(users))
        self.scales = {part: (float(values[valid].mean()), float(values[valid].std()) or 1.0)
                       for part, values in features.items()}

    def _case(self, features: dict) -> str:
        if "item_item" not in features:
            return "retrieval_only"
        return "full" if "network" in features else "no_network"

    def _rank(self, user_vectors, histories, excluded, network_users, n: int, allowed=None,
              items: np.ndarray | None = None, profiles=None):
        """Top-``n`` rows and scores for a batch of users: from the candidates, or exactly over
        ``items`` (rows) when given or when filtering left a user fewer than ``n`` candidates."""
        if items is None:
            k = max(self.config.candidates, n)
            rows, valid, features = self._features(user_vectors, histories, excluded, network_users, allowed, k,
                                                   profiles)
            top_rows, top_scores = _top(self._blend(features, rows), rows, valid, n)
            short = np.flatnonzero((top_rows < 0).any(axis=1))
            if len(short) == 0:
                return top_rows, top_scores
            items = np.arange(len(self.catalogue)) if allowed is None else np.flatnonzero(allowed)
            users = None if network_users is None else network_users[short]
            exact_rows, exact_scores = self._rank(user_vectors[short], histories[short],
                                                  [excluded[b] for b in short], users, n, None, items,
                                                  None if profiles is None else profiles[short])
            top_rows, top_scores = top_rows.copy(), top_scores.copy()
            top_rows[short], top_scores[short] = exact_rows, exact_scores
            return top_rows, top_scores
        rows = np.broadcast_to(np.asarray(items, np.int64), (len(user_vectors), len(items)))
        valid = np.ones(rows.shape, bool)
        for b, gone in enumerate(excluded):
            if len(gone):
                valid[b] &= ~np.isin(rows[b], gone)
        return _top(self._blended(user_vectors, histories, network_users, rows, profiles), rows, valid, n)

    # ================================================================== the scorer protocol
    def score(self, users, candidates) -> np.ndarray:
        """users x candidates scores (the protocol every model and baseline follows).

        Over the whole catalogue this is the serving path: the retrieved candidates get their
        blended score, every other item scores below them. Over a subset of items, every given
        item is scored and blended. Items the users rated in training are not excluded here."""
        users, candidates = np.asarray(users, np.int64), np.asarray(candidates, np.int64)
        self._check_fitted()
        if len(candidates) == len(self.catalogue) and np.array_equal(candidates, np.arange(len(candidates))):
            rows, valid, features = self._known_user_features(users)
            blend = self._blend(features, rows)
            # items that were not retrieved rank below every candidate, in retrieval order
            out = self.scorer.user_matrix[users] @ self.scorer.item_matrix.T - 1e6
            chosen_users, chosen = np.nonzero(valid)
            out[chosen_users, rows[chosen_users, chosen]] = blend[chosen_users, chosen]
            return out
        rows = np.broadcast_to(candidates, (len(users), len(candidates)))
        return self._blended(self.scorer.user_matrix[users], self.likes[users], users, rows,
                             self._profiles(self.likes[users]))

    # ================================================================== answering
    def _check_fitted(self) -> None:
        if self.catalogue is None or not hasattr(self, "scorer"):
            raise NotFittedError("the recommender is not fitted: call fit() or load() first")

    def _item_rows(self, ids) -> np.ndarray:
        """Rows of item ids: one id or any sequence of them."""
        return self.catalogue.index([ids] if isinstance(ids, (str, int, np.integer)) else list(ids))

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

    def _answer(self, rows: np.ndarray, scores: np.ndarray, single: bool, names: IdMap | None = None):
        """Ids (object array, None where fewer than N exist) and scores (NaN there)."""
        names = self.catalogue.ids if names is None else names
        width = int((rows >= 0).sum(axis=1).max()) if rows.size else 0
        rows, scores = rows[:, :width], scores[:, :width]
        ids = np.full(rows.shape, None, object)
        ids[rows >= 0] = names.ids(rows[rows >= 0])
        scores = np.where(rows >= 0, scores, np.nan)
        return (ids[0], scores[0]) if single else (ids, scores)

    def recommend(self, user_ids, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: Iterable | None = None, items: Iterable | None = None,
                  include_cold: bool = True):
        """Top-``N`` products for known users: ``(ids, scores)``, 1-D for one user id, 2-D
        (users x N) for a list of them.

        ``filter_already_liked_items`` leaves out what each user rated in training;
        ``filter_items`` (ids) are left out for everyone; ``items`` (ids) restricts the ranking to
        those products, every one of them scored; ``include_cold=False`` leaves out products
        without training ratings (cold and added ones). Unknown user ids raise
        ``UnknownIdError`` (use ``recommend_for_new_user``); ``N <= 0`` raises ``ArgumentError``.

        Example:
            >>> ids, scores = rec.recommend("196", N=5)  # doctest: +SKIP
        """
        self._check_fitted()
        n = check_count(N, "N")
        single = isinstance(user_ids, (str, int, np.integer))
        wanted = [str(user_ids)] if single else [str(u) for u in user_ids]
        users = self.users.index(wanted, missing="ignore")
        if (users < 0).any():
            unknown = [wanted[i] for i in np.flatnonzero(users < 0)[:5]]
            raise UnknownIdError(f"unknown user id(s) {unknown}; for a new user call "
                                 "recommend_for_new_user(liked_items=..., text=...)")
        blocked = self._blocked(filter_items)
        excluded = [np.union1d(rated, blocked) for rated in self._rated_rows(users)] \
            if filter_already_liked_items else [blocked] * len(users)
        allowed, chosen = self._choice(items, include_cold)
        if chosen is not None and len(chosen) == 0:
            return self._answer(np.full((len(users), 0), -1), np.zeros((len(users), 0)), single)
        rows, scores = self._rank(self.scorer.user_matrix[users], self.likes[users], excluded, users, n,
                                  allowed, chosen, self._profiles(self.likes[users]))
        return self._answer(rows, scores, single)

    def _text_vector(self, text: str) -> np.ndarray:
        return encode_query(self.encoder, text)

    def recommend_for_new_user(self, liked_items: Iterable | None = None, text: str | None = None,
                               N: int = 10, filter_items: Iterable | None = None,
                               items: Iterable | None = None, include_cold: bool = True):
        """Top-``N`` for someone the model never saw, from liked product ids and/or a sentence:
        one pass through the user tower, then the same two stages (without the network, which
        knows only the users it was trained on). Liked items are left out of the answer.

        Example:
            >>> ids, scores = rec.recommend_for_new_user(liked_items=["50", "172"], text="space war")  # doctest: +SKIP
        """
        self._check_fitted()
        n = check_count(N, "N")
        liked = self._item_rows([] if liked_items is None else liked_items)
        has_text = text is not None and bool(str(text).strip())
        if not len(liked) and not has_text:
            raise ArgumentError("give liked_items and/or text for a new user")
        vector = self.scorer.new_user(liked, self._text_vector(text) if has_text else None)
        history = sp.csr_matrix((np.ones(len(liked), np.float32), (np.zeros(len(liked), int), liked)),
                                shape=(1, len(self.catalogue)))
        text_terms = None
        if has_text and self.terms is not None:
            text_terms = self.terms.transform(item_token_strings(pd.DataFrame({"text": [str(text)]}), self.text_config))
        blocked = self._blocked(filter_items)
        allowed, chosen = self._choice(items, include_cold)
        if chosen is not None and len(chosen) == 0:
            return self._answer(np.full((1, 0), -1), np.zeros((1, 0)), True)
        rows, scores = self._rank(vector[None, :], history, [np.union1d(liked, blocked)], None, n, allowed, chosen,
                                  self._profiles(history, text_terms))
        return self._answer(rows, scores, True)

    def similar_items(self, item_ids, N: int = 10, by: str = "content", filter_items: Iterable | None = None):
        """Products nearest to each given product: ``by="content"`` (cosine of text vectors) or
        ``"collaborative"`` (the retrieval model's item vectors, which cold products have from
        their text). One id gives 1-D arrays, a list gives 2-D. The item itself is left out."""
        self._check_fitted()
        n = check_count(N, "N")
        if by not in ("content", "collaborative"):
            raise ArgumentError(f"by must be 'content' or 'collaborative', got {by!r}")
        single = isinstance(item_ids, (str, int, np.integer))
        rows = self._item_rows([item_ids] if single else item_ids)
        if by == "content":
            queries, index = unit_rows(self.catalogue.vectors[rows]).astype(np.float32), self.content_index
            empty = rows[~queries.any(axis=1)]
            if len(empty):
                raise ArgumentError(f"item(s) {self.catalogue.ids.ids(empty[:5]).tolist()} have no text "
                                    "vector (no known word in their text): use by='collaborative'")
        else:
            queries, index = self.scorer.item_matrix[rows], self.item_index
        blocked = self._blocked(filter_items)
        scores, found = index.search(queries, n, exclude=[np.union1d([r], blocked) for r in rows])
        return self._answer(found, scores, single)

    def similar_to_text(self, text: str, N: int = 10, filter_items: Iterable | None = None):
        """Products nearest in content to free text (cleaned like product text)."""
        self._check_fitted()
        n = check_count(N, "N")
        if not text or not str(text).strip():
            raise ArgumentError("give a non-empty text")
        query = unit_rows(self._text_vector(text)).astype(np.float32)[None, :]
        blocked = self._blocked(filter_items)
        scores, found = self.content_index.search(query, n, exclude=[blocked])
        return self._answer(found, scores, True)

    def similar_users(self, user_ids, N: int = 10):
        """Users nearest in the retrieval model's user space (the user itself left out)."""
        self._check_fitted()
        n = check_count(N, "N")
        single = isinstance(user_ids, (str, int, np.integer))
        wanted = [str(user_ids)] if single else [str(u) for u in user_ids]
        users = self.users.index(wanted)
        if self._user_index is None:
            self._user_index = VectorIndex(self.scorer.user_matrix, self.config.exact_below,
                                           self.config.hnsw_m, self.config.ef_construction, self.config.ef_search)
        scores, found = self._user_index.search(self.scorer.user_matrix[users], n, exclude=[[u] for u in users])
        return self._answer(found, scores, single, self.users)

    def frame(self, ids, scores, user_ids=None) -> pd.DataFrame:
        """The answer of ``recommend``/``similar_*`` as a DataFrame: ``item_id, score, title,
        cold`` (plus ``user_id`` and ``rank`` for a batch), padding dropped."""
        ids, scores = np.atleast_2d(np.asarray(ids, object)), np.atleast_2d(scores)
        keep = ids != None  # noqa: E711  (elementwise)
        rows = self.catalogue.index(ids[keep]) if keep.any() else np.zeros(0, np.int64)
        frame = pd.DataFrame({"item_id": ids[keep].astype(object), "score": scores[keep],
                              "title": self.catalogue.titles[rows], "cold": self.catalogue.cold[rows]})
        if user_ids is not None:
            users = np.asarray([user_ids] if isinstance(user_ids, (str, int)) else list(user_ids), object)
            frame.insert(0, "user_id", np.repeat(users, keep.sum(axis=1)))
            frame.insert(1, "rank", np.concatenate([np.arange(1, k + 1) for k in keep.sum(axis=1)]))
        return frame

    def item_details(self, item_ids) -> list[dict]:
        """What a page shows of each product: ``item_id, title, text, cold, ratings, likes``
        (ratings and likes the model was trained on; 0 for products added later)."""
        self._check_fitted()
        rows = self._item_rows(item_ids)
        counts = self._item_counts()
        return [{"item_id": str(self.catalogue.ids.ids([r])[0]), "title": self.catalogue.titles[r],
                 "text": self.catalogue.text(r), "cold": bool(self.catalogue.cold[r]),
                 "ratings": int(counts["rated"][r]), "likes": int(counts["likes"][r])} for r in rows]

    def _item_counts(self) -> dict:
        if getattr(self, "_counts", None) is None:
            self._counts = {name: np.bincount(getattr(self, name).indices, minlength=getattr(self, name).shape[1])
                            for name in ("rated", "likes")}
        return self._counts

    def user_history(self, user_id) -> tuple[np.ndarray, np.ndarray]:
        """The products a known user rated in training and whether each was a like
        (rating >= the threshold): ``(item_ids, liked)``."""
        self._check_fitted()
        user = self.users.index([str(user_id)])[0]
        rows = self.rated[user].indices
        liked = np.isin(rows, self.likes[user].indices)
        return self.catalogue.ids.ids(rows), liked

    # ================================================================== new items
    def add_items(self, items: pd.DataFrame, item_vectors: np.ndarray | None = None) -> int:
        """Append products (metadata only) to the catalogue and every index: recommendable and
        findable at once, from their text. Returns how many were added; known or repeated ids
        are refused."""
        self._check_fitted()
        if "item_id" not in items.columns:
            raise ArgumentError(f"items lacks column 'item_id'; it has {list(items.columns)}")
        self.catalogue.check_new(items["item_id"])  # before any text work
        tokens = item_token_strings(items, self.text_config) if item_vectors is None or self.terms is not None else None
        if item_vectors is None:
            if self.encoder is None:
                raise ArgumentError("no text encoder: pass item_vectors for the new items")
            empty = [str(i) for i, t in zip(items["item_id"], tokens) if not t.strip()]
            if empty:
                raise ArgumentError(f"items {empty[:5]} have no usable text: give a text, title, description "
                                    "or feature (or item_vectors)")
            item_vectors, _ = self.encoder.transform(tokens)
        texts = _display_texts(items, None) if self.catalogue.texts is not None else None
        rows = self.catalogue.append(items["item_id"].astype(str), item_vectors, frame_titles(items), texts)
        if self.terms is not None:
            self.terms.append(tokens)
        tower = self.scorer.text_items(self.catalogue.vectors[rows])
        self.item_index.add(tower)
        self.scorer.item_matrix = self.item_index.vectors()
        self.content_index.add(unit_rows(self.catalogue.vectors[rows]).astype(np.float32))
        n = len(self.catalogue)
        for name in ("rated", "likes"):
            matrix = getattr(self, name)
            matrix.resize((matrix.shape[0], n))
        self.neighbours.resize((n, n))
        self.network_items = np.concatenate([self.network_items, np.zeros(len(rows), bool)])
        self._counts = None
        return len(rows)

    # ================================================================== persistence
    def save(self, directory: str | os.PathLike) -> None:
        """Everything needed to answer, indexes included (loading does not rebuild them)."""
        self._check_fitted()
        directory = write_manifest(directory, "two-stage", FORMAT_VERSION, {
            "config": self.config.to_dict(), "retrieval": dataclasses.asdict(self.retrieval_config),
            "network": self.network_config.to_dict(), "train": self.train_config.to_dict(),
            "text": {"fields": list(self.text_config.fields), "title": self.text_config.title,
                     "brand": self.text_config.brand},
            "pretrained": self.pretrained, "weights": self.weights, "cold_offset": self.cold_offset, "scales": self.scales, "validation": self.validation,
            "info": self.info, "n_users": len(self.users), "n_model_items": self.scorer.n_model_items,
            "has_network": self.network is not None})
        self.catalogue.save(directory)
        self.users.save(directory / "users.parquet")
        for name in ("rated", "likes", "neighbours"):
            save_csr(directory, name, getattr(self, name))
        save_two_tower(self.scorer, directory)
        save_array(directory / "user_vectors.npy", self.scorer.user_matrix)
        save_arrays(directory / "vectors.npz", network_items=self.network_items)
        self.item_index.save(directory / "item_index")
        self.content_index.save(directory / "content_index")
        if self.network is not None:
            self.network.save(directory / "network.keras")
        if self.encoder is not None:
            self.encoder.save(directory / "text_encoder.joblib")
        if self.terms is not None:
            self.terms.save(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TwoStageRecommender":
        """A recommender written by ``save``; answers are identical to the saved one's."""
        import keras

        from . import models  # noqa: F401  (registers the custom layers)
        from .training import for_inference

        directory = Path(directory)
        meta = read_manifest(directory, "two-stage", FORMAT_VERSION)
        text = meta["text"]
        rec = cls(RetrievalConfig(**meta["retrieval"]), ModelConfig.from_dict(meta["network"]),
                  TrainConfig(**meta["train"]), TwoStageConfig(**meta["config"]),
                  TextConfig(tuple(text["fields"]), text["title"], text["brand"]), meta["pretrained"])
        # the network first: Keras reads the whole file before making its variables, a passing
        # peak that is lower while nothing else is loaded
        rec.network = for_inference(keras.models.load_model(directory / "network.keras", compile=False)) if meta["has_network"] else None
        rec.catalogue = Catalogue.load(directory)
        rec.users = IdMap.load(directory / "users.parquet", "user")
        for name in ("rated", "likes", "neighbours"):  # memory-mapped: a request reads a few rows
            setattr(rec, name, load_csr(directory, name))
        vectors = load_arrays(directory / "vectors.npz")
        if (directory / "user_vectors.npy").is_file():
            vectors.update(users=load_array(directory / "user_vectors.npy"))
        rec.item_index = VectorIndex.load(directory / "item_index")
        # the items' retrieval vectors: the item index's own storage (earlier saves also wrote them apart)
        rec.scorer = load_scorer(directory, rec.retrieval_config, rec.item_index.vectors(), vectors["users"])
        rec.network_items = vectors["network_items"]
        rec.content_index = VectorIndex.load(directory / "content_index")
        rec.n_network_items = meta["n_model_items"]
        encoder = directory / "text_encoder.joblib"
        rec.encoder = TextEncoder.load(encoder) if encoder.is_file() else None
        rec.weights, rec.validation, rec.info = meta["weights"], meta["validation"], meta["info"]
        rec.cold_offset = float(meta.get("cold_offset", 0.0))  # (recommenders saved before it had one: 0)
        rec.terms = TermWeights.load(directory) if TermWeights.saved_in(directory) else None
        rec.scales = {part: tuple(value) for part, value in meta["scales"].items()}
        rec._network_call = None
        rec._counts = None
        # Arrow's allocator keeps the pages of the tables read above (ids, titles) for reuse:
        # some 100 MB at 800k products that a serving process would otherwise hold for good
        release_arrow_pages()
        return rec

