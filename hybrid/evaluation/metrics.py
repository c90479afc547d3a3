"""Metrics on integer-encoded rating rows (``hybrid.data.dataset``); the splits they measure are
``hybrid.evaluation.splits``'s.

Ranking metrics rank, for every test user, all candidate items the user did not rate in
training; an item is relevant when its test rating reaches ``threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hybrid.content.vectors import unit_rows
from hybrid.core.errors import ArgumentError, HybridError
from hybrid.core.progress import Progress


# ---------------------------------------------------------------- rating metrics
def rmse(truth, predicted) -> float:
    """Root mean squared error.

    Example:
        >>> rmse([1, 2, 3], [1, 2, 5])
        1.1547005383792515
    """
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


def mae(truth, predicted) -> float:
    return float(np.mean(np.abs(np.asarray(truth, float) - np.asarray(predicted, float))))


# ---------------------------------------------------------------- ranking metrics
def _dcg(hits: np.ndarray) -> np.ndarray:
    return (hits / np.log2(np.arange(2, hits.shape[1] + 2))).sum(axis=1)


def ndcg_per_user(top: np.ndarray, relevant: list[set], k: int) -> np.ndarray:
    """NDCG@k of each top-k list (one row per user) against its relevant set; their mean is
    ``ranking_metrics_from_lists``' ``ndcg``.

    Example:
        >>> ndcg_per_user(np.array([[3, 1, 2], [1, 2, 3]]), [{1, 9}, {1}], k=3).round(4).tolist()
        [0.3869, 1.0]
    """
    hits, ideal = _hits(top, relevant, k)
    return _dcg(hits) / _dcg(ideal)


def _hits(top: np.ndarray, relevant: list[set], k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, ideal)``: 1 where each top-k list's entry is relevant, and where the best list
    would have one."""
    top = top[:, :k]
    hits = np.array([[item in rel for item in row] for row, rel in zip(top, relevant)], dtype=float)
    ideal = np.zeros_like(hits)
    for row, rel in enumerate(relevant):
        ideal[row, : min(len(rel), k)] = 1
    return hits, ideal


def ranking_metrics_from_lists(top: np.ndarray, relevant: list[set], k: int) -> dict:
    """Metrics of top-k lists (one row of item indices per user) against relevant sets.

    Example:
        >>> m = ranking_metrics_from_lists(np.array([[3, 1, 2]]), [{1, 9}], k=3)
        >>> m["precision"], m["recall"], m["hit_rate"], round(m["ndcg"], 4), m["map"]
        (0.3333333333333333, 0.5, 1.0, 0.3869, 0.25)
    """
    hits, ideal = _hits(top, relevant, k)
    n_rel = np.array([len(r) for r in relevant], dtype=float)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    ap = (precision_at * hits).sum(axis=1) / np.minimum(n_rel, k)
    return {"precision": float(np.mean(hits.sum(axis=1) / k)),
            "recall": float(np.mean(hits.sum(axis=1) / n_rel)),
            "ndcg": float(np.mean(_dcg(hits) / _dcg(ideal))),
            "map": float(np.mean(ap)),
            "hit_rate": float(np.mean(hits.any(axis=1)))}


@dataclass
class RankingTask:
    """Who is ranked, over which candidates, with what counted as relevant."""

    users: np.ndarray  # test users with at least one relevant item
    relevant: list[set]  # relevant item indices per user
    seen: list[np.ndarray]  # items each user rated in training (excluded from the ranking)
    candidates: np.ndarray  # item indices ranked (all items, or only the cold ones)


def ranking_task(train_users, train_items, test_users, test_items, test_ratings,
                 candidates: np.ndarray, threshold: float = 4.0) -> RankingTask:
    candidate_set = set(candidates.tolist())
    relevant: dict[int, set] = {}
    for u, i, r in zip(test_users.tolist(), test_items.tolist(), test_ratings.tolist()):
        if r >= threshold and i in candidate_set:
            relevant.setdefault(u, set()).add(i)
    users = np.array(sorted(relevant), dtype=np.int64)
    train_users = np.asarray(train_users, np.int64)  # one dtype: searching never converts the array
    order = np.argsort(train_users, kind="stable")
    sorted_users = train_users[order]
    starts = np.searchsorted(sorted_users, users)
    ends = np.searchsorted(sorted_users, users, side="right")
    seen = [train_items[order[lo:hi]] for lo, hi in zip(starts.tolist(), ends.tolist())]
    return RankingTask(users, [relevant[u] for u in users], seen, np.asarray(candidates))


#: Scores held at once while ranking (users x candidates float64): 64 MB. Also the pace of the
#: progress lines: 10 users a block over 800k products, some 15 s of network scoring here.
RANKING_BLOCK = 1 << 23

#: User x candidate scores the evaluation computes by default (``default_eval_users``): every
#: test user of MovieLens-100k, 250 of them over 800,000 products (a network scores some 800k
#: pairs a second on 2 cores, so a few minutes per model).
SCORED_PAIRS = 200_000_000


def default_eval_users(n_candidates: int, n_users: int) -> int:
    """How many test users to rank when none is asked for: all of them while users x
    candidates stays within ``SCORED_PAIRS``, else as many as fit (at least 100).

    Example:
        >>> default_eval_users(1_682, 943), default_eval_users(800_000, 150_000)
        (943, 250)
    """
    return int(min(n_users, max(100, SCORED_PAIRS // max(1, n_candidates))))


def sample_users(task: RankingTask, n: int | None, seed: int = 0) -> RankingTask:
    """The task restricted to a seeded sample of ``n`` of its users (all of them when ``n`` is
    None or not smaller); each is still ranked over every candidate.

    Example:
        >>> task = RankingTask(np.arange(5), [{1}] * 5, [np.array([], int)] * 5, np.arange(3))
        >>> sample_users(task, 2, seed=0).users.tolist()
        [3, 4]
    """
    if n is None or n >= len(task.users):
        return task
    if n <= 0:
        raise ArgumentError(f"the number of users to evaluate must be positive, got {n}")
    keep = np.sort(np.random.default_rng(seed).choice(len(task.users), n, replace=False))
    return RankingTask(task.users[keep], [task.relevant[k] for k in keep],
                       [task.seen[k] for k in keep], task.candidates)


def evaluate_ranking(score: Callable[[np.ndarray, np.ndarray], np.ndarray], task: RankingTask,
                     ks=(10,), item_popularity: np.ndarray | None = None,
                     batch_users: int | None = None) -> dict:
    """Rank ``task.candidates`` for each user with ``score(users, candidates) -> matrix``.

    Returns P@k, R@k, NDCG@k, MAP@k, HR@k for each k, catalogue coverage (share of the
    candidates appearing in any top-k list) and the mean popularity (training ratings) of the
    recommended items. Users are scored in batches whose score matrix stays under
    ``RANKING_BLOCK`` entries, however large the catalogue.
    """
    if len(task.users) == 0:
        raise HybridError("no test user has a relevant item among the candidates")
    if batch_users is None:
        batch_users = max(1, min(256, RANKING_BLOCK // max(1, len(task.candidates))))
    k_max = max(ks)
    # an item's column among the candidates (-1: not a candidate): one array, not a dict of
    # the whole catalogue
    position = np.full(int(task.candidates.max(initial=-1)) + 1, -1, np.int64)
    position[task.candidates] = np.arange(len(task.candidates))
    tops = []
    with Progress(len(task.users), "ranking", "users") as progress:
        for start in range(0, len(task.users), batch_users):
            users = task.users[start:start + batch_users]
            scores = np.array(score(users, task.candidates), dtype=np.float64)
            for row, seen in enumerate(task.seen[start:start + batch_users]):
                seen = np.asarray(seen, np.int64)
                cols = position[seen[seen < len(position)]]
                scores[row, cols[cols >= 0]] = -np.inf
            k = min(k_max, scores.shape[1])
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(scores, part, 1).argsort(axis=1)[:, ::-1]
            tops.append(task.candidates[np.take_along_axis(part, order, 1)])
            progress.update(len(users))
    return metrics_of_lists(np.vstack(tops), task, ks, item_popularity)


def evaluate_recommendations(recommend: Callable[[np.ndarray, int], np.ndarray], task: RankingTask,
                             ks=(10,), item_popularity: np.ndarray | None = None, batch_users: int = 256) -> dict:
    """The metrics of ``evaluate_ranking`` for a recommender's own answers: ``recommend(users, k)``
    gives each user's top ``k`` item indices, best first (-1 padding), their training items left
    out, as a recommender serves them (``Recommender.top_rows``). ``task.candidates`` must be the
    whole catalogue."""
    if len(task.users) == 0:
        raise HybridError("no test user has a relevant item among the candidates")
    k_max = max(ks)
    tops = []
    with Progress(len(task.users), "ranking", "users") as progress:
        for start in range(0, len(task.users), batch_users):
            users = task.users[start:start + batch_users]
            rows = np.asarray(recommend(users, k_max), np.int64)
            tops.append(np.pad(rows, ((0, 0), (0, k_max - rows.shape[1])), constant_values=-1))
            progress.update(len(users))
    return metrics_of_lists(np.vstack(tops), task, ks, item_popularity)


def metrics_of_lists(top: np.ndarray, task: RankingTask, ks=(10,), item_popularity: np.ndarray | None = None) -> dict:
    """Ranking metrics, coverage and mean popularity of top lists (users x k item indices, -1
    padding), for ``task``'s users in order."""
    result: dict = {"users": int(len(task.users))}
    for k in ks:
        for name, value in ranking_metrics_from_lists(top, task.relevant, k).items():
            result[f"{name}@{k}"] = value
        shown = top[:, :k][top[:, :k] >= 0]
        result[f"coverage@{k}"] = float(len(np.unique(shown)) / len(task.candidates))
        if item_popularity is not None:
            result[f"mean_popularity@{k}"] = float(item_popularity[shown].mean()) if len(shown) else 0.0
    return result


def intra_list_diversity(top: np.ndarray, vectors: np.ndarray) -> float:
    """Mean over lists (rows of item indices, -1 padding) of 1 - the mean pairwise cosine of
    their items' text vectors; lists of fewer than two items are left out.

    Example:
        >>> intra_list_diversity(np.array([[0, 1, -1], [0, 2, -1]]), np.array([[1.0, 0], [1, 0], [0, 1]]))
        0.5
    """
    unit = unit_rows(vectors)
    values = []
    for row in np.atleast_2d(top):
        mine = unit[row[row >= 0]]
        k = len(mine)
        if k > 1:
            similarity = mine @ mine.T
            values.append(1 - (similarity.sum() - np.trace(similarity)) / (k * (k - 1)))
    return float(np.mean(values)) if values else 0.0
