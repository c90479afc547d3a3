"""Choosing how much each text field of a product weighs in the content part's TF-IDF terms, on
validation data carved from the training rows (the test rows are never seen).

Rated products are held out with all their ratings (``cold_validation``, as the blend's cold
products are), the rest are the fit. Each validation user's term profile comes from their likes
in the fit; the held-out products are ranked by its cosine with their term rows alone, for the
user's held-out likes (NDCG@10). Starting from every field at weight 1, each field in turn tries
the weights of ``FIELD_WEIGHTS`` and keeps the best, for ``FIELD_PASSES`` passes; a change must
gain more than ``FIELD_GAIN`` (relative) to be taken, so noise on a small catalogue does not move
the weights.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hybrid.content.terms import FieldCounts, TermWeights
from hybrid.core.config import TwoStageConfig
from hybrid.core.numeric import top_k
from hybrid.evaluation.metrics import ranking_metrics_from_lists, ranking_task, sample_users
from hybrid.recommend.blend_choice import cold_validation

FIELD_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)  # the weights each field tries
FIELD_PASSES = 2
FIELD_GAIN = 0.01  # a weight change must raise NDCG@10 by more than this share to be taken


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

    def ndcg(candidate: dict[str, float]) -> float:
        if not any(candidate[f] > 0 for f in fields):
            return -1.0
        terms = TermWeights.from_fields(counts, candidate, config.content_terms)
        scores = terms.scores(terms.profiles(history), rows)
        top = top_k(scores, rows, np.ones(rows.shape, bool), 10)[0]
        return float(ranking_metrics_from_lists(top, relevant, 10)["ndcg"])

    best = ndcg(weights)
    tried = [{"weights": dict(weights), "ndcg@10": best}]
    for _ in range(FIELD_PASSES):
        moved = False
        for field in fields:
            for value in FIELD_WEIGHTS:
                if value == weights[field]:
                    continue
                candidate = {**weights, field: value}
                score = ndcg(candidate)
                tried.append({"weights": candidate, "ndcg@10": score})
                if score > best * (1 + FIELD_GAIN):
                    weights, best, moved = candidate, score, True
        if not moved:
            break
    return weights, {"users": int(len(users)), "products": int(len(cold_items)), "weights": weights,
                     "ndcg@10": best, "all_at_1": tried[0]["ndcg@10"], "tried": len(tried)}
