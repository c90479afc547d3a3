"""Choosing how much each text field of a product weighs in the content part's TF-IDF terms, on
validation data carved from the training rows (the test rows are never seen).

Rated products are held out with all their ratings (``cold_validation``, as the blend's cold
products are), the rest are the fit. Each validation user's term profile comes from their likes
in the fit; the held-out products are ranked by its cosine with their term rows alone, for the
user's held-out likes (NDCG@10). Starting from every field at weight 1, each field in turn tries
the weights of ``FIELD_WEIGHTS`` and keeps the best, for ``FIELD_PASSES`` passes. A change is
taken only when its users' mean gain is more than ``FIELD_NOISE`` standard errors of their paired
gains: on a few hundred users and products the best of a grid is mostly noise, and a weight
moved by noise costs what the content part does elsewhere (a new user's words, warm ranking).
No field goes below ``FIELD_WEIGHTS[0]``: a field's words stay in the products' terms, so a
sentence that names them still matches.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hybrid.content.terms import FieldCounts, TermWeights
from hybrid.core.config import TwoStageConfig
from hybrid.core.numeric import top_k
from hybrid.evaluation.metrics import ndcg_per_user, ranking_task, sample_users
from hybrid.recommend.blend_choice import cold_validation

FIELD_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)  # the weights each field tries
FIELD_PASSES = 2
FIELD_NOISE = 2.0  # a change's mean NDCG@10 gain must exceed this many standard errors


def choose_field_weights(config: TwoStageConfig, counts: FieldCounts, user_index, item_index,
                         rating) -> tuple[dict[str, float], dict]:
    """The field weights with the best NDCG@10 of the content part alone on held-out products,
    and the figures (see the module's docstring); every field at 1 when no validation user can be
    built (too few rated products or likes)."""
    fields = [name for name, counted in counts.fields.items() if counted.nnz]
    weights = {name: 1.0 for name in counts.fields}
    fit_rows, cold_rows, cold_items = cold_validation(config, item_index, np.arange(len(rating)))
    liked = fit_rows[rating[fit_rows] >= config.threshold]
    task = ranking_task(user_index[fit_rows], item_index[fit_rows], user_index[cold_rows], item_index[cold_rows],
                        rating[cold_rows], cold_items, config.threshold)
    task = sample_users(task, config.validation_users, config.seed + 3)
    n_items = next(iter(counts.fields.values())).shape[0]
    history = sp.csr_matrix((np.ones(len(liked), np.float32), (user_index[liked], item_index[liked])),
                            shape=(int(user_index.max()) + 1, n_items))[task.users]
    keep = np.asarray(history.sum(axis=1)).ravel() > 0
    users, relevant = np.flatnonzero(keep), [r for r, k in zip(task.relevant, keep) if k]
    if len(fields) < 2 or len(users) < 10:
        return weights, {"users": int(len(users)), "weights": weights}
    history = history[users]
    rows = np.broadcast_to(cold_items, (len(users), len(cold_items)))

    def ndcg(candidate: dict[str, float]) -> np.ndarray:
        terms = TermWeights.from_fields(counts, candidate, config.content_terms)
        scores = terms.scores(terms.profiles(history), rows)
        return ndcg_per_user(top_k(scores, rows, np.ones(rows.shape, bool), 10)[0], relevant, 10)

    best = ndcg(weights)
    start, tried = float(best.mean()), 1
    for _ in range(FIELD_PASSES):
        moved = False
        for field in fields:
            for value in FIELD_WEIGHTS:
                if value == weights[field]:
                    continue
                candidate = {**weights, field: value}
                per_user = ndcg(candidate)
                tried += 1
                gain = per_user - best
                if gain.mean() > FIELD_NOISE * gain.std() / np.sqrt(len(gain)) and gain.mean() > 0:
                    weights, best, moved = candidate, per_user, True
        if not moved:
            break
    return weights, {"users": int(len(users)), "products": int(len(cold_items)), "weights": weights,
                     "ndcg@10": float(best.mean()), "all_at_1": start, "tried": tried}
