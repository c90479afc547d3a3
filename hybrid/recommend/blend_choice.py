"""Choosing the two-stage recommender's blend on validation likes carved from the training rows
(the test rows are never seen). A function of the data and of a way to fit parts; it fits parts
of its own and returns a ``Blend`` with the figures it was chosen on, and changes no live model.

- The unliked blends (products without training likes): chosen on cold products, as parts
  fitted without some rated products rank those products among themselves for their ratings,
  as if new (the parts never saw them).
- The warm blends: parts fitted on the rows outside a validation share rank the products with
  training likes for the held-out likes of such products. Where one share holds fewer than
  ``validation_likes`` likes, up to ``validation_folds`` disjoint shares are held in turn and
  their NDCG@10 pooled.
- The unliked offset, which places products without likes among the others: the same parts
  rank the whole catalogue
  for the held-out likes, so products without likes in the fit draw them as often as such
  products do (on a real catalogue most are never liked).
- The weight of a new user's words (given with liked products): validation users come as a new
  user would, with ``WORDS_GIVEN`` of their training likes and one word drawn from the terms of
  their other likes (of their categories, where the catalogue has that field: what a person's
  words name); their held-out likes are what they should find; the weight chosen puts the most of their top 10 on products with that
  word (the smallest weight within ``WORDS_CLOSE`` of the most) while their NDCG@10 stays within
  ``words_tolerance`` of their likes' alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from hybrid.core.config import TwoStageConfig
from hybrid.core.numeric import top_k
from hybrid.core.progress import Progress
from hybrid.evaluation.metrics import ranking_metrics_from_lists, ranking_task, sample_users
from hybrid.evaluation.splits import validation_folds
from hybrid.content.terms import unit_sparse_rows
from hybrid.content.vectors import unit_rows
from hybrid.recommend.blend import SENTENCE_PARTS, Blend, equal_weights, weight_grid
from hybrid.recommend.parts import ScoringParts, Sentence

OFFSETS = np.arange(-3.0, 1.01, 0.25)  # the unliked offset's grid, in standard deviations
WORDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # the words' weight grid
WORDS_GIVEN = 5  # liked products a validation new user gives
WORDS_MAX_COVER = 0.3  # a word on more of the catalogue than this says nothing: not drawn
WORDS_USERS = 500  # validation new users, at most
WORDS_MIN_USERS = 50  # fewer drawing a category word: words are drawn from every term instead
WORDS_CLOSE = 0.01  # shares of the top 10 this close to the best are as good: the smallest weight wins


@dataclass
class BlendChoice:
    """What ``choose_blend`` returns: the blend (scales left to the final parts), the figures it
    was chosen on, and the parts it fitted when asked to keep them."""

    blend: Blend
    figures: dict
    kept: ScoringParts | None = None
    epochs: dict | None = None  # each model's epochs for a refit on every row (``validated_epochs``)


def validated_epochs(probes: list[ScoringParts]) -> dict | None:
    """Each model's epochs for a refit on every training row: the median over the parts fitted
    on validation splits of the epoch their early stopping kept (the best validation loss), so
    the refit trains that long on all its rows, with no rows held out to stop it and no epochs
    run past the best to find it. None where no probe has a model."""
    epochs = {}
    for name in ("retrieval", "network"):
        best = [probe.info[name]["best_epoch"] for probe in probes if name in probe.info]
        if best:
            epochs[name] = max(1, int(round(float(np.median(best)))))
    return epochs or None


def smoothed(grid: list[dict], values, radius: float) -> np.ndarray:
    """Each blend's ``values`` averaged over the blends of the grid with at most ``radius`` of
    weight moved between parts (half the L1 distance of the weights), itself included.

    Example:
        >>> grid = weight_grid(("a", "b"), 0.5)  # (0, 1), (0.5, 0.5), (1, 0)
        >>> smoothed(grid, [0.0, 3.0, 0.0], 0.5).tolist()
        [1.5, 1.0, 1.5]
    """
    weights = np.array([list(g.values()) for g in grid])
    near = np.abs(weights[:, None, :] - weights[None, :, :]).sum(axis=2) <= 2 * radius + 1e-9
    return near @ np.asarray(values, np.float64) / near.sum(axis=1)


def pick(grid: list[dict], ndcg, users: int, smoothing: float = 0.0, shrinkage: float = 0.0):
    """The blend chosen from a grid's validation NDCG@10 and its figures: ``(weights, figures)``.

    ``smoothing``: the blend whose neighbourhood (``smoothed``) has the best mean, not the best
    point alone, as one point's figure on a few hundred users is noisy (the warm blends). The
    unliked blends keep their best point (smoothing pulls a choice away from the grid's edges, where
    content-heavy blends lie) and move ``shrinkage`` of the way to equal weights, as one
    validation fit ranks only a few hundred held-out products."""
    around = smoothed(grid, ndcg, smoothing)
    best = int(np.argmax(around))
    weights = {part: (1 - shrinkage) * weight + shrinkage / len(grid[best]) for part, weight in grid[best].items()}
    return weights, {"ndcg@10": float(ndcg[best]), "neighbourhood_ndcg@10": float(around[best]), "best": grid[best],
                     "users": int(users), "grid": [{**w, "ndcg@10": float(v)} for w, v in zip(grid, ndcg)]}


def grid_ndcg(parts: ScoringParts, base: Blend, task, cases: dict, batch_features, width: int, what: str,
              step: float, warm_only: bool = False) -> dict:
    """NDCG@10 over ``task`` of every blend of each case's grid (``weight_grid``), in grid order.
    ``batch_features(users)`` gives ``(rows, valid, features)`` with at most ``width`` products
    per user (users go in batches of some 65k scores each); ``warm_only``: products without
    training likes are left out of the rankings."""
    grids = {case: weight_grid(case_parts, step) for case, case_parts in cases.items()}
    blends = {case: [base.with_case(case, weights) for weights in grid] for case, grid in grids.items()}
    tops = {case: [[] for _ in grid] for case, grid in grids.items()}
    batch = max(16, (1 << 16) // max(1, width))
    with Progress(len(task.users), f"recommender: blend weights of {what} on validation users", "users") as progress:
        for start in range(0, len(task.users), batch):
            users = task.users[start:start + batch]
            rows, valid, features = batch_features(users)
            if warm_only:
                valid = valid & parts.network_items[np.maximum(rows, 0)]
            for case in grids:
                present = {p: v for p, v in features.items() if p in cases[case]}
                for g, blend in enumerate(blends[case]):
                    tops[case][g].append(top_k(blend.score(present, rows, parts.network_items), rows, valid, 10)[0])
            progress.update(len(users))
    return {case: [ranking_metrics_from_lists(np.vstack(t), task.relevant, 10)["ndcg"] for t in tops[case]]
            for case in grids}


def offset_ndcg(parts: ScoringParts, blend: Blend, task, allowed: np.ndarray) -> list[float]:
    """NDCG@10 over ``task`` of each unliked offset of ``OFFSETS``, ranking the ``allowed`` products."""
    tops = [[] for _ in OFFSETS]
    batch = 256
    with Progress(len(task.users), "recommender: unliked products' offset on validation users", "users") as progress:
        for start in range(0, len(task.users), batch):
            rows, valid, features = parts.known_user_features(task.users[start:start + batch])
            valid = valid & allowed[np.maximum(rows, 0)]
            for o, offset in enumerate(OFFSETS):
                shifted = Blend(blend.weights, blend.scales, float(offset))
                tops[o].append(top_k(shifted.score(features, rows, parts.network_items), rows, valid, 10)[0])
            progress.update(min(batch, len(task.users) - start))
    return [ranking_metrics_from_lists(np.vstack(t), task.relevant, 10)["ndcg"] for t in tops]


def cold_validation(config: TwoStageConfig, item_index, fit_rows):
    """Rated products held out of ``fit_rows`` with all their ratings, to choose the unliked blends:
    ``(fit_rows, cold_rows, cold_items)``; none when fewer than 10 would be held."""
    rated = np.unique(item_index[fit_rows])
    n = min(int(round(config.cold_validation_share * len(rated))), config.cold_validation_items)
    if n < 10:
        return fit_rows, fit_rows[:0], rated[:0]
    cold = np.sort(np.random.default_rng(config.seed + 2).choice(rated, n, replace=False))
    is_cold = np.isin(item_index[fit_rows], cold)
    return fit_rows[~is_cold], fit_rows[is_cold], cold


def choose_blend(config: TwoStageConfig, cases: dict, new_parts: Callable[[], ScoringParts],
                 user_index, item_index, rating, keep: bool, encode=None,
                 word_rows: sp.csr_matrix | None = None) -> BlendChoice:
    """The blend weights with the best NDCG@10 on validation likes for each case, and the unliked
    offset (see the module's docstring). ``new_parts()`` gives unfitted parts over the
    recommender's users and catalogue.

    The parts fitted on the first share's rows without the products held out as new (at most
    ``cold_validation_items``) serve all three choices on that share: those products rank as new
    for the unliked blends and are left out of the warm and offset rankings, and a fit is saved.
    ``keep`` (above ``refit_max_likes``): that fit is the only one, and is returned as ``kept``.
    ``encode(text)``: a sentence's text vector or None (the validation new users' words move
    their retrieval vector as a person's do). ``word_rows``: products x terms, the
    terms the validation new users' words are drawn from (None: every term of the products)."""
    threshold = config.threshold

    def rows(r):
        return user_index[r], item_index[r], rating[r]

    held_likes = config.validation_share * int((rating >= threshold).sum())
    n_folds = 1 if keep else int(min(config.validation_folds, np.ceil(config.validation_likes / held_likes),
                                     np.floor(1 / config.validation_share)))
    folds = validation_folds(len(rating), config.validation_share, n_folds, config.seed + 1)
    fit_rows, cold_rows, cold_items = cold_validation(config, item_index, folds[0][0])
    weights = equal_weights(cases)
    figures = {"folds": len(folds)}
    probe, cold_probe = new_parts(), None
    if keep or len(cold_items):
        cold_probe = probe.fit(*rows(fit_rows), final=False)
    _choose_unliked(config, cases, probe, weights, figures, rows(fit_rows)[:2], rows(cold_rows), cold_items)
    kept = probe if keep else None
    # a text-only user is not like any validation user (their profiles come from likes), so
    # that case keeps equal weights: the sentence's two readings, retrieval and content
    warm_cases = {c: cases[c] for c in ("full", "no_network")}
    pooled, users, probes = {case: 0.0 for case in warm_cases}, 0, []
    for k, (kept_rows, held) in enumerate(folds):
        if k > 0 or cold_probe is None:  # (the cold products' parts go first: memory)
            probe = new_parts().fit(*rows(kept_rows), final=False)
            fit_rows = kept_rows
        task = sample_users(ranking_task(*rows(fit_rows)[:2], *rows(held), np.flatnonzero(probe.network_items),
                                         threshold), config.validation_users, config.seed + k)
        probes.append((probe, fit_rows, held))
        if not len(task.users):  # (a validation share too small to hold a like)
            continue
        what = "warm products" + (f" (share {k + 1} of {len(folds)})" if len(folds) > 1 else "")
        ndcg = grid_ndcg(probe, Blend(dict(weights), probe.scales), task, warm_cases, probe.known_user_features,
                         2 * config.candidates, what, config.weight_step, warm_only=True)
        for case in warm_cases:
            pooled[case] = pooled[case] + len(task.users) * np.asarray(ndcg[case])
        users += len(task.users)
    for case, parts in warm_cases.items():
        if users:
            weights[case], figures[case] = pick(weight_grid(parts, config.weight_step), pooled[case] / users, users,
                                                config.weight_smoothing)
    offset = 0.0
    if "unliked" in weights:
        offset, figures["unliked_offset"] = _choose_offset(config, weights, probes, rows, cold_items)
    words, scales = 0.0, {}
    if config.words_tolerance > 0 and probes and probes[0][0].terms is not None and "no_network" in weights:
        probe, fit, held = probes[0]
        words, scales, figures["words"] = _choose_words(config, Blend(weights, probe.scales, offset), probe,
                                                        rows(fit)[:2], rows(held), encode, word_rows)
    epochs = validated_epochs([p for p, _, _ in probes])  # (the cold probe, where fitted, is the first)
    if epochs is not None:
        figures["epochs"] = epochs
    return BlendChoice(Blend(weights, scales, offset, words), figures, kept, epochs)


def _choose_unliked(config: TwoStageConfig, cases: dict, probe: ScoringParts, weights: dict, figures: dict,
                 fit_pairs, cold_ratings, cold_items: np.ndarray) -> None:
    """The unliked cases' weights into ``weights`` (and their figures), chosen by ranking the
    ``cold_items`` the probe never saw for their ratings; without any such rating, the unliked
    cases are dropped and products without likes are blended as the others."""
    cold_task = ranking_task(*fit_pairs, *cold_ratings, cold_items, config.threshold) if len(cold_items) else None
    if cold_task is None or not len(cold_task.users):
        del weights["unliked"], weights["unliked_no_network"]
        return
    cold_task = sample_users(cold_task, config.validation_users, config.seed)
    cold_cases = {c: cases[c] for c in ("unliked", "unliked_no_network")}
    ndcg = grid_ndcg(probe, Blend(dict(weights), probe.scales), cold_task, cold_cases,
                     probe.cold_features(cold_items), len(cold_items), "cold products", config.weight_step)
    for case, parts in cold_cases.items():
        weights[case], figures[case] = pick(weight_grid(parts, config.weight_step), ndcg[case],
                                            len(cold_task.users), shrinkage=config.cold_weight_shrinkage)


def _choose_offset(config: TwoStageConfig, weights: dict, probes: list, rows, left_out: np.ndarray):
    """The unliked offset with the best pooled NDCG@10 over the probes' held-out likes, ranking the
    whole catalogue but ``left_out``; ties (cold products never in a top 10): the lowest; no
    validation user: 0."""
    pooled, users, cold_likes, likes = 0.0, 0, 0, 0
    for k, (probe, fit, held) in enumerate(probes):
        allowed = np.ones(len(probe.catalogue), bool)
        allowed[left_out] = False
        task = sample_users(ranking_task(*rows(fit)[:2], *rows(held), np.flatnonzero(allowed), config.threshold),
                            config.validation_users, config.seed + k)
        if not len(task.users):
            continue
        pooled = pooled + len(task.users) * np.asarray(offset_ndcg(probe, Blend(weights, probe.scales), task, allowed))
        users += len(task.users)
        for liked in task.relevant:
            cold_likes += len(liked) - int(probe.network_items[list(liked)].sum())
            likes += len(liked)
    ndcg = pooled / users if users else np.zeros(len(OFFSETS))
    best = int(np.argmax(ndcg)) if users else int(np.flatnonzero(OFFSETS == 0)[0])
    offset = float(OFFSETS[best])
    return offset, {"offset": offset, "ndcg@10": float(ndcg[best]), "users": users,
                    "unliked_likes_share": cold_likes / max(1, likes),
                    "grid": [{"offset": float(o), "ndcg@10": float(v)} for o, v in zip(OFFSETS, ndcg)]}


def word_requests(config: TwoStageConfig, probe: ScoringParts, fit_pairs, held_ratings,
                  word_rows: sp.csr_matrix | None = None) -> list[tuple]:
    """Validation new users built from known ones as a new user comes: ``(given, term,
    relevant)`` each, ``given`` ``WORDS_GIVEN`` of the user's likes in the fit, ``term`` a word
    drawn (weighted by its count) from the terms of all their other likes (a person's words name
    one of their tastes; ``word_rows``' terms of them, when given) that 2 to ``WORDS_MAX_COVER`` of
    the products have, ``relevant`` their held-out likes (the fitted parts never saw them; their
    other likes they did)."""
    terms, n = probe.terms, len(probe.catalogue)
    drawn_from = terms.rows if word_rows is None else word_rows
    documents = np.bincount(terms.rows.indices, minlength=terms.vocabulary)
    usable = (documents >= 2) & (documents <= WORDS_MAX_COVER * n)
    task = sample_users(ranking_task(*fit_pairs, *held_ratings, np.arange(n), config.threshold), WORDS_USERS,
                        config.seed + 7)
    rng = np.random.default_rng(config.seed + 7)
    requests = []
    for user, held in zip(task.users, task.relevant):
        likes = probe.likes[user].indices
        if len(likes) < WORDS_GIVEN:
            continue
        given = rng.choice(likes, WORDS_GIVEN, replace=False)
        found = drawn_from[sorted((set(likes.tolist()) | held) - set(given.tolist()))].indices
        found = found[usable[found]]
        if not len(found):
            continue
        names, counts = np.unique(found, return_counts=True)
        requests.append((given, int(rng.choice(names, p=counts / counts.sum())), held))
    return requests


def _request_features(probe: ScoringParts, requests: list[tuple], vectors: dict, with_words: bool, k: int):
    """``features`` of validation new users (``word_requests``' tuples), with their words or from
    their likes alone; ``vectors``: each word's unit text vector (None: no encoder)."""
    terms, n = probe.terms, len(probe.catalogue)
    given = [np.asarray(g) for g, _, _ in requests]
    words = [terms.terms[t] for _, t, _ in requests]
    history = sp.csr_matrix((np.ones(sum(map(len, given)), np.float32),
                             (np.repeat(np.arange(len(given)), [len(g) for g in given]), np.concatenate(given))),
                            shape=(len(given), n))
    text_terms = terms.transform(words) if with_words else None
    sentence, texts = None, None
    if with_words:
        texts = None if vectors is None else np.vstack([vectors[w] for w in words])
        sentence = Sentence(unit_sparse_rows(text_terms))
    users = np.vstack([probe.scorer.new_user(g, None if texts is None else texts[b]) for b, g in enumerate(given)])
    return probe.features(users, history, given, None, None, k, probe.profiles(history, text_terms), sentence)


def _choose_words(config: TwoStageConfig, blend: Blend, probe: ScoringParts, fit_pairs, held_ratings, encode,
                  word_rows=None):
    """The words' weight (see the module's docstring), its parts' scales and the figures; 0 where
    no validation new user can be built."""
    requests = word_requests(config, probe, fit_pairs, held_ratings, word_rows)
    if word_rows is not None and len(requests) < WORDS_MIN_USERS:  # categories too broad or too few
        word_rows, requests = None, word_requests(config, probe, fit_pairs, held_ratings)
    vectors = None
    if encode is not None:  # a word the encoder does not know is refused by a real request too
        vectors = {w: encode(w) for w in {probe.terms.terms[t] for _, t, _ in requests}}
        requests = [q for q in requests if vectors[probe.terms.terms[q[1]]] is not None]
        vectors = {w: unit_rows(v[None, :]).astype(np.float32)[0] for w, v in vectors.items() if v is not None}
    if not requests:
        return 0.0, {}, {"users": 0}
    relevant = [r for _, _, r in requests]
    chunks = [requests[start:start + 100] for start in range(0, len(requests), 100)]
    alone = [_request_features(probe, chunk, vectors, False, config.candidates) for chunk in chunks]
    worded = [_request_features(probe, chunk, vectors, True, config.candidates) for chunk in chunks]
    scale = {}
    for part in SENTENCE_PARTS:
        values = np.concatenate([f[part][v] for _, v, f in worded if part in f] or [np.zeros(0)])
        if len(values):
            scale[part] = (float(values.mean()), float(values.std()) or 1.0)

    def top(features, weight):
        scored = Blend(blend.weights, {**blend.scales, **scale}, blend.unliked_offset, weight)
        return [top_k(scored.score(f, rows, probe.network_items), rows, valid, 10)[0] for rows, valid, f in features]

    indptr, indices = probe.terms.rows.indptr, probe.terms.rows.indices

    def with_word(row_list, term) -> float:
        return float(np.mean([term in indices[indptr[r]:indptr[r + 1]] for r in row_list if r >= 0] or [0.0]))

    base = ranking_metrics_from_lists(np.vstack(top(alone, 0.0)), relevant, 10)["ndcg"]
    grid = []
    for weight in WORDS:
        tops = np.vstack(top(worded, weight))
        has_word = [with_word(row_list, term) for row_list, (_, term, _) in zip(tops, requests)]
        grid.append({"words": weight, "ndcg@10": ranking_metrics_from_lists(tops, relevant, 10)["ndcg"],
                     "with_word@10": float(np.mean(has_word))})
    allowed = [g for g in grid if g["ndcg@10"] >= (1 - config.words_tolerance) * base] or [grid[0]]
    most = max(g["with_word@10"] for g in allowed)
    best = min((g for g in allowed if g["with_word@10"] >= most - WORDS_CLOSE), key=lambda g: g["words"])
    return float(best["words"]), scale, {"users": len(requests), "likes_only_ndcg@10": float(base), "best": best,
                                         "words_from": "all terms" if word_rows is None else "categories",
                                         "grid": grid}
