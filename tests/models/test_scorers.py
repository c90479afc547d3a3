"""One scorer protocol: ``score(users, candidates) -> users x candidates`` for every model and
baseline, checked on one small synthetic matrix with structure to find (four tastes, items of
four kinds with text that says which)."""

import numpy as np
import pytest

from hybrid.data.dataset import EncodedDataset
from hybrid.data.ids import IdMap
from hybrid.evaluation.metrics import evaluate_ranking, ranking_task
from hybrid.evaluation.splits import random_split
from hybrid.models.registry import BASELINES

N_USERS, N_ITEMS, KINDS = 120, 48, 4


def synthetic(seed: int = 0) -> EncodedDataset:
    rng = np.random.default_rng(seed)
    kind_of_item = np.arange(N_ITEMS) % KINDS
    taste = rng.integers(0, KINDS, N_USERS)
    users, items, ratings = [], [], []
    for u in range(N_USERS):
        mine = rng.choice(np.flatnonzero(kind_of_item == taste[u]), 8, replace=False)
        other = rng.choice(np.flatnonzero(kind_of_item != taste[u]), 4, replace=False)
        users += [u] * 12
        items += list(mine) + list(other)
        ratings += [5.0] * 8 + [2.0] * 4
    centres = rng.normal(size=(KINDS, 8))
    vectors = (centres[kind_of_item] + 0.3 * rng.normal(size=(N_ITEMS, 8))).astype(np.float32)
    n = len(users)
    return EncodedDataset(np.array(users, np.int32), np.array(items, np.int32), np.array(ratings, np.float32),
                          np.full(n, -1, np.int64), IdMap([f"u{u}" for u in range(N_USERS)], "user"),
                          IdMap([f"i{i}" for i in range(N_ITEMS)], "item"), vectors, np.ones(N_ITEMS, bool),
                          np.array([f"kind {k}" for k in kind_of_item], object),
                          np.bincount(items, minlength=N_ITEMS))


def _baseline(name):
    def fit(data, rows):
        return BASELINES[name]().fit(data.user_index[rows], data.item_index[rows], data.rating[rows],
                                     len(data.users), len(data.items), data.item_vectors)
    return fit


def _hybrid(data, rows):
    from hybrid.recommend.hybrid_recommender import HybridRecommender

    return HybridRecommender("implicit", train_config={"epochs": 20, "batch_size": 64}).fit_dataset(data, rows)


def _two_stage(data, rows):
    from hybrid.recommend.two_stage import TwoStageRecommender

    # one fit (no blend choice on validation folds): the protocol is about scoring
    return TwoStageRecommender(retrieval={"epochs": 4, "batch_size": 128}, train={"epochs": 20, "batch_size": 64},
                               config={"candidates": 20, "validation_share": 0}).fit_dataset(data, rows)


def _tfidf_profile(data, rows):
    from hybrid.models.baselines import TfidfProfile, tfidf_rows

    texts = [f"{title.replace(' ', '')} item{i % 7}" for i, title in enumerate(data.item_titles)]
    return TfidfProfile().fit(data.user_index[rows], data.item_index[rows], data.rating[rows],
                              len(data.users), len(data.items), tfidf_rows(texts))


SCORERS = {**{name: _baseline(name) for name in BASELINES}, "hybrid-implicit": _hybrid,
           "two-stage": _two_stage, "tfidf-profile": _tfidf_profile}


@pytest.fixture(scope="module")
def data():
    data = synthetic()
    return data, *random_split(len(data.rating), 0.2, seed=0)


#: fitted by Spark: half a minute and more each
SLOW_SCORERS = {"als", "als-implicit"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SCORERS else name
                                  for name in sorted(SCORERS)])
def test_every_scorer_keeps_the_protocol(name, data):
    data, train, test = data
    scorer = SCORERS[name](data, train)
    users, candidates = np.array([3, 0, 7, 11]), np.array([5, 1, 40, 2, 33, 17])
    block = np.asarray(scorer.score(users, candidates))
    assert block.shape == (4, 6) and np.issubdtype(block.dtype, np.floating) and np.isfinite(block).all()
    if name != "random":  # the one scorer that is random on purpose
        np.testing.assert_allclose(scorer.score(users, candidates), block, rtol=1e-6)
        # a score belongs to the (user, item) pair, whatever else is asked with it
        np.testing.assert_allclose(scorer.score(users[[2]], candidates[[4, 0]]), block[[2]][:, [4, 0]],
                                   rtol=1e-5, atol=1e-6)
    u, i, r = data.user_index, data.item_index, data.rating
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], np.arange(N_ITEMS))
    metrics = evaluate_ranking(scorer.score, task, (5,))
    assert 0.0 <= metrics["ndcg@5"] <= 1.0 and metrics["users"] == len(task.users)
    if name not in ("random", "global-mean", "biases", "popularity"):
        # the structure is there to find: well above chance (about 0.17 here). 0.3, not 0.4: the
        # Keras scorers land between 0.49 and 0.56 over repeated fits, and once at 0.37 in CI
        # (multi-threaded training is not bit-reproducible and early stopping follows it)
        assert metrics["ndcg@5"] > 0.3, metrics
