"""Ranking for the two-stage recommender: the blended candidates of each request, or an exact
ranking over given products, which is also the fallback when filtering leaves a request fewer
than ``n`` candidates."""

from __future__ import annotations

import numpy as np

from hybrid.recommend.blend import Blend
from hybrid.recommend.parts import ScoringParts, Sentence
from hybrid.recommend.shaping import Shaping, shaped


def rank(parts: ScoringParts, blend: Blend, user_vectors, histories, excluded: list, network_users, n: int,
         allowed: np.ndarray | None = None, items: np.ndarray | None = None, profiles=None,
         shaping: Shaping = Shaping(), sentence: Sentence | None = None):
    """Top-``n`` product rows and scores for a batch of requests (``n`` wide, -1 / -inf padding).

    ``excluded``: product rows left out, per request; ``allowed``: a mask of the products that
    may be answered (None: all); ``items``: rank exactly these rows (None: the candidates);
    ``network_users``: the requests' user rows for the network (None: new users); ``shaping``:
    diversity and popularity penalty over each request's scored products; ``sentence``: new
    users' words, given with liked products (``ScoringParts.features``)."""
    def best(scores, rows, valid):
        popularity = parts.popularity() if shaping.popularity_penalty > 0 else None
        return shaped(scores, rows, valid, n, shaping, parts.catalogue.vectors, popularity)

    if items is None:
        k = max(parts.config.candidates, n)
        rows, valid, features = parts.features(user_vectors, histories, excluded, network_users, allowed, k, profiles,
                                               sentence)
        top_rows, top_scores = best(blend.score(features, rows, parts.network_items), rows, valid)
        short = np.flatnonzero((top_rows < 0).any(axis=1))
        if len(short) == 0:
            return top_rows, top_scores
        items = np.arange(len(parts.catalogue)) if allowed is None else np.flatnonzero(allowed)
        users = None if network_users is None else network_users[short]
        exact_rows, exact_scores = rank(parts, blend, user_vectors[short], histories[short],
                                        [excluded[b] for b in short], users, n, None, items,
                                        None if profiles is None else profiles[short], shaping,
                                        None if sentence is None else sentence[short])
        top_rows, top_scores = top_rows.copy(), top_scores.copy()
        top_rows[short], top_scores[short] = exact_rows, exact_scores
        return top_rows, top_scores
    rows = np.broadcast_to(np.asarray(items, np.int64), (len(user_vectors), len(items)))
    valid = np.ones(rows.shape, bool)
    for b, gone in enumerate(excluded):
        if len(gone):
            valid[b] &= ~np.isin(rows[b], gone)
    return best(_blended(parts, blend, user_vectors, histories, network_users, rows, profiles, sentence), rows,
                valid)


def pair_scores(parts: ScoringParts, blend: Blend, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """users x candidates blended scores of known users, every pair scored (a pointwise score)."""
    rows = np.broadcast_to(candidates, (len(users), len(candidates)))
    likes = parts.likes[users]
    return _blended(parts, blend, parts.scorer.user_matrix[users], likes, users, rows, parts.profiles(likes))


def _blended(parts: ScoringParts, blend: Blend, user_vectors, histories, network_users, rows, profiles,
             sentence: Sentence | None = None):
    """The blended score of every given (request, product row) pair."""
    return blend.score(parts.pair_scores(user_vectors, histories, network_users, rows, profiles, sentence), rows,
                       parts.network_items)
