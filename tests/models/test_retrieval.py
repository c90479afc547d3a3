"""The retrieval stage: the vector index adapter and the two-tower model."""

import numpy as np
import pytest

from hybrid.core.errors import ArgumentError
from hybrid.models.ann import VectorIndex


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def catalogue():
    return unit(np.random.default_rng(0).normal(size=(20_000, 32)).astype(np.float32))


def exact_top(vectors, queries, k):
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


def test_hnsw_agrees_with_exact_search(catalogue):
    queries = unit(np.random.default_rng(1).normal(size=(200, 32)).astype(np.float32))
    hnsw = VectorIndex(catalogue, exact_below=1_000)
    exact = VectorIndex(catalogue)
    assert (hnsw.kind, exact.kind) == ("hnsw", "exact")
    truth = exact_top(catalogue, queries, 10)
    _, found = hnsw.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.95
    _, found = exact.search(queries, 10)
    assert np.array_equal(found, truth)


def test_saved_and_loaded_index_gives_identical_answers(catalogue, tmp_path):
    queries = catalogue[:50]
    for exact_below in (1_000, 50_000):
        index = VectorIndex(catalogue, exact_below=exact_below)
        index.save(tmp_path / str(exact_below))
        loaded = VectorIndex.load(tmp_path / str(exact_below))
        assert loaded.kind == index.kind and len(loaded) == len(index)
        for a, b in zip(index.search(queries, 7), loaded.search(queries, 7)):
            assert np.array_equal(a, b)


def test_added_vectors_are_found_at_once(catalogue):
    index = VectorIndex(catalogue[:5_000], exact_below=1_000)
    new = unit(np.random.default_rng(2).normal(size=(3, 32)).astype(np.float32))
    rows = index.add(new)
    assert rows.tolist() == [5_000, 5_001, 5_002]
    _, found = index.search(new, 1)
    assert found[:, 0].tolist() == rows.tolist()


def test_excluded_rows_are_left_out_and_missing_rows_are_marked():
    index = VectorIndex(np.eye(4, dtype=np.float32))
    scores, rows = index.search(np.ones((1, 4), np.float32), 3, exclude=[[0, 1]])
    assert sorted(rows[0][:2].tolist()) == [2, 3] and rows[0][2] == -1 and scores[0][2] == -np.inf
    with pytest.raises(ArgumentError, match="k must be positive"):
        index.search(np.ones((1, 4), np.float32), 0)
    with pytest.raises(ArgumentError, match="dimension"):
        index.search(np.ones((1, 5), np.float32), 1)


# ---------------------------------------------------------------- the two-tower model
FAST = dict(epochs=6, patience=2, batch_size=512)


@pytest.fixture(scope="module")
def retrieval(ml100k):
    from hybrid.core.config import RetrievalConfig
    from hybrid.evaluation.splits import random_split
    from hybrid.models.keras.retrieval import fit_retrieval
    from hybrid.models.retrieval_scorer import RetrievalScorer

    data, encoder, _ = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    u, i, r = data.user_index, data.item_index, data.rating
    model, info = fit_retrieval(u[train], i[train], r[train], data.item_vectors, len(data.users),
                                len(data.items), RetrievalConfig(**FAST))
    return data, encoder, train, test, info, RetrievalScorer.from_model(model, info["trained_items"])


def test_two_tower_retrieval_ranks_far_above_popularity(retrieval):
    from hybrid.evaluation.metrics import evaluate_ranking, ranking_task
    from hybrid.models.baselines import Popularity

    data, _, train, test, info, scorer = retrieval
    u, i, r = data.user_index, data.item_index, data.rating
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], np.arange(len(data.items)))
    ndcg = evaluate_ranking(scorer.score, task, (10,))["ndcg@10"]
    popular = Popularity().fit(u[train], i[train], r[train], len(data.users), len(data.items))
    assert ndcg > evaluate_ranking(popular.score, task, (10,))["ndcg@10"] + 0.05
    assert info["best_epoch"] <= info["epochs_run"] and "val_loss" in info["history"]
    np.testing.assert_allclose(np.linalg.norm(scorer.item_matrix, axis=1), 1.0, rtol=1e-4)
    # the fitted towers keep no optimizer (its slots would be two more copies of the tables)
    assert scorer.model.optimizer is None and info["optimizer"]


def test_a_new_user_from_text_alone_gets_text_relevant_items(retrieval):
    data, encoder, _, _, _, scorer = retrieval
    vector = scorer.new_user(text_vector=encoder.encode("horror"))
    _, rows = VectorIndex(scorer.item_matrix).search(vector[None, :], 10)
    titles = " ".join(data.item_titles[row] or "" for row in rows[0]).lower()
    assert any(w in titles for w in ("horror", "scream", "dracula", "night", "evil", "dead",
                                     "fright", "nightmare", "haunt", "frankenstein"))


def test_items_nobody_liked_get_vectors_from_their_text(retrieval):
    data, _, _, _, info, scorer = retrieval
    cold = np.flatnonzero(~info["trained_items"])
    assert len(cold) > 0
    same_text = scorer.model.item_vectors(np.array([scorer.model.n_items] * 2, np.int32),
                                          data.item_vectors[[cold[0], cold[0]]])
    np.testing.assert_allclose(np.asarray(same_text)[0], scorer.item_matrix[cold[0]], rtol=1e-5, atol=1e-6)
