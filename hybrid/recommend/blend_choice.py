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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hybrid.core.config import TwoStageConfig
from hybrid.core.numeric import top_k
from hybrid.core.progress import Progress
from hybrid.evaluation.metrics import ranking_metrics_from_lists, ranking_task, sample_users
from hybrid.evaluation.splits import validation_folds
from hybrid.recommend.blend import Blend, equal_weights, weight_grid
from hybrid.recommend.parts import ScoringParts

OFFSETS = np.arange(-3.0, 1.01, 0.25)  # the unliked offset's grid, in standard deviations


@dataclass
class BlendChoice:
    """What ``choose_blend`` returns: the blend (scales left to the final parts), the figures it
    was chosen on, and the parts it fitted when asked to keep them."""

    blend: Blend
    figures: dict
    kept: ScoringParts | None = None


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
                 user_index, item_index, rating, keep: bool) -> BlendChoice:
    """The blend weights with the best NDCG@10 on validation likes for each case, and the unliked
    offset (see the module's docstring). ``new_parts()`` gives unfitted parts over the
    recommender's users and catalogue.

    ``keep`` (above ``refit_max_likes``): one fit, on the first share's rows without the products
    held out as new (at most ``cold_validation_items``: a small part of so many likes), serves all
    three choices and is returned as ``kept``; those products are left out of the offset's
    rankings."""
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
    probe = new_parts()
    if keep or len(cold_items):
        probe.fit(*rows(fit_rows), final=False)
    _choose_unliked(config, cases, probe, weights, figures, rows(fit_rows)[:2], rows(cold_rows), cold_items)
    kept = probe if keep else None
    # a text-only user is not like any validation user (their profiles come from likes), so
    # that case keeps equal weights: the sentence's two readings, retrieval and content
    warm_cases = {c: cases[c] for c in ("full", "no_network")}
    pooled, users, probes = {case: 0.0 for case in warm_cases}, 0, []
    for k, (kept_rows, held) in enumerate(folds):
        if not keep:  # (the cold products' parts go first: memory)
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
        offset, figures["unliked_offset"] = _choose_offset(config, weights, probes, rows,
                                                        cold_items if keep else cold_items[:0])
    return BlendChoice(Blend(weights, {}, offset), figures, kept)


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
