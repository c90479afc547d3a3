"""Splits, metrics and baselines, against hand-computed values."""

import numpy as np
import pytest
import scipy.sparse as sp

from hybrid.evaluation.metrics import evaluate_ranking, mae, ranking_metrics_from_lists, ranking_task, rmse
from hybrid.evaluation.splits import chronological_split, cold_item_split, random_split, stratified_split
from hybrid.models.baselines import Biases, GlobalMean, ItemKNN
from hybrid.models.neighbours import pearson_baseline_neighbours


def test_rating_metrics():
    assert rmse([4, 2], [3, 4]) == pytest.approx(np.sqrt(2.5))
    assert mae([4, 2], [3, 4]) == pytest.approx(1.5)


def test_ranking_metrics_match_hand_computation():
    top = np.array([[7, 1, 9, 4], [2, 3, 5, 6]])
    relevant = [{1, 4, 8}, {6}]
    m = ranking_metrics_from_lists(top, relevant, k=4)
    # user 0: hits at ranks 2 and 4; user 1: hit at rank 4
    assert m["precision"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["recall"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["hit_rate"] == 1.0
    dcg0, idcg0 = 1 / np.log2(3) + 1 / np.log2(5), 1 + 1 / np.log2(3) + 1 / np.log2(4)
    dcg1, idcg1 = 1 / np.log2(5), 1.0
    assert m["ndcg"] == pytest.approx((dcg0 / idcg0 + dcg1 / idcg1) / 2)
    ap0 = (1 / 2 + 2 / 4) / 3
    ap1 = (1 / 4) / 1
    assert m["map"] == pytest.approx((ap0 + ap1) / 2)


def test_ranking_excludes_training_items_and_reports_coverage():
    # user 0 rated item 0 in training; the scorer loves item 0, which must not be recommended
    task = ranking_task(np.array([0]), np.array([0]), np.array([0, 0]), np.array([1, 2]),
                        np.array([5.0, 2.0]), np.arange(4), threshold=4)
    assert task.relevant == [{1}]
    scores = lambda users, items: np.array([[10.0, 1.0, 5.0, 0.0]])  # noqa: E731
    result = evaluate_ranking(scores, task, ks=(1, 2), item_popularity=np.array([9, 3, 1, 0]))
    assert result["precision@1"] == 0.0  # top-1 is item 2 (item 0 excluded)
    assert result["hit_rate@2"] == 1.0
    assert result["coverage@2"] == 0.5
    assert result["mean_popularity@2"] == pytest.approx((1 + 3) / 2)


def test_stratified_split_keeps_every_user_in_training():
    users = np.repeat(np.arange(50), np.arange(1, 51))
    train, test = stratified_split(users, 0.2, seed=3)
    assert set(users[train]) == set(range(50))
    assert len(test) == pytest.approx(0.2 * len(users), rel=0.1)
    assert not set(train) & set(test)


def test_chronological_split_holds_out_the_latest():
    users = np.array([0, 0, 0, 1, 1, 2])
    times = np.array([30, 10, 20, 5, 6, 1])
    train, test = chronological_split(users, times, last_n=1)
    assert test.tolist() == [0, 4]  # user 2's only rating stays in training
    train, test = chronological_split(users, times, cutoff=15)
    assert test.tolist() == [0, 2]


def test_cold_item_split_holds_out_whole_items():
    items = np.array([0, 1, 2, 3, 4] * 4)
    train, test, cold = cold_item_split(items, 0.4, seed=0)
    assert len(cold) == 2
    assert set(items[test]) == set(cold) and not set(items[train]) & set(cold)
    assert len(random_split(20, 0.25)[1]) == 5


def _random_ratings(seed=0, n_users=30, n_items=12, density=0.5):
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    return users, items, rng.integers(1, 6, len(users)).astype(float)


def test_sparse_pearson_baseline_equals_the_dense_formula():
    users, items, ratings = _random_ratings()
    residual = sp.csr_matrix((ratings - ratings.mean(), (users, items)), shape=(30, 12))
    # small budget: many blocks, so the blockwise path is what is checked
    sparse = pearson_baseline_neighbours(residual, keep=12, shrinkage=5.0, budget=50).toarray()
    dense = residual.toarray()
    rated = np.zeros((30, 12), bool)
    rated[users, items] = True
    for i in range(12):
        for j in range(12):
            both = rated[:, i] & rated[:, j]
            n = both.sum()
            e_i, e_j = dense[both, i], dense[both, j]
            expected = 0.0
            if i != j and n and (e_i ** 2).sum() * (e_j ** 2).sum() > 0:
                expected = (e_i * e_j).sum() / np.sqrt((e_i ** 2).sum() * (e_j ** 2).sum())
                expected *= (n - 1) / (n - 1 + 5.0)
            assert sparse[i, j] == pytest.approx(max(expected, 0.0), abs=1e-6)
    kept = pearson_baseline_neighbours(residual, keep=3, shrinkage=5.0, budget=50).toarray()
    assert np.allclose(kept, kept.T)  # symmetric: a pair in either item's top 3 is kept
    assert np.allclose(np.sort(kept, axis=1)[:, -3:], np.sort(sparse, axis=1)[:, -3:])
    assert ((kept > 0).sum() < (sparse > 0).sum()) and np.allclose(kept[kept > 0], sparse[kept > 0])


def test_item_knn_is_knnbaseline_the_top_k_rated_neighbours_of_the_target():
    users, items, ratings = _random_ratings(seed=1)
    knn = ItemKNN(neighbours=3, shrinkage=5.0).fit(users, items, ratings, 30, 12)
    similarity = knn.similar.toarray()
    baseline = knn.baseline.predict
    for u, i in [(0, 3), (5, 7), (11, 0), (29, 11)]:
        mine = items[users == u]
        mine = mine[similarity[i, mine] > 0]
        top = mine[np.argsort(-similarity[i, mine], kind="stable")[:3]]
        expected = baseline([u], [i])[0]
        if len(top):
            residuals = np.array([ratings[(users == u) & (items == j)][0] for j in top]) - baseline([u] * len(top), top)
            expected += (similarity[i, top] * residuals).sum() / similarity[i, top].sum()
        assert knn.predict([u], [i])[0] == pytest.approx(expected)
        assert knn.score([u], [i, 0])[0, 0] == pytest.approx(expected)
    # pairs at once or in chunks, one user's catalogue or one item's users: the same numbers
    all_users, all_items = np.repeat(np.arange(31), 13), np.tile(np.arange(13), 31)  # unknown ids too
    pairs = knn.predict(all_users, all_items).reshape(31, 13)
    knn.pair_budget = 7  # a few pairs per chunk, some alone
    assert np.allclose(knn.predict(all_users, all_items).reshape(31, 13), pairs)
    assert np.allclose(knn.score(np.arange(31), np.arange(13)), pairs)  # loops over the 13 items
    assert np.allclose(knn.score([4], np.arange(13))[0], pairs[4])  # loops over the one user
    assert np.allclose([knn.predict([u], [i])[0] for u, i in [(2, 5), (30, 1), (7, 12)]],
                       pairs[[2, 30, 7], [5, 1, 12]])
    # a user or item never seen: the baseline
    assert knn.predict([30], [2])[0] == pytest.approx(knn.baseline.mean + knn.baseline.item_bias[2])


def test_neighbourhood_baselines_beat_the_biases_on_real_ratings(ml100k):
    from hybrid.models.baselines import UserKNN

    data, _, _ = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    args = (data.user_index[train], data.item_index[train], data.rating[train], len(data.users), len(data.items))
    truth, su, si = data.rating[test], data.user_index[test], data.item_index[test]
    bias_rmse = rmse(truth, Biases().fit(*args).predict(su, si))
    assert rmse(truth, ItemKNN().fit(*args).predict(su, si)) < bias_rmse - 0.015
    assert rmse(truth, UserKNN().fit(*args).predict(su, si)) < bias_rmse - 0.01


def test_biases_beat_the_global_mean_on_real_ratings(ml100k):
    data, _, _ = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    args = (data.user_index[train], data.item_index[train], data.rating[train], len(data.users), len(data.items))
    truth = data.rating[test]
    global_rmse = rmse(truth, GlobalMean().fit(*args).predict(data.user_index[test], data.item_index[test]))
    bias_rmse = rmse(truth, Biases().fit(*args).predict(data.user_index[test], data.item_index[test]))
    assert bias_rmse < 0.96 < 1.10 < global_rmse


def test_ease_chooses_its_l2_on_training_data_and_ranks_far_above_popularity(ml100k):
    from hybrid.evaluation.metrics import ranking_task
    from hybrid.evaluation.splits import random_split
    from hybrid.models.baselines import EASE, Popularity

    data, _, _ = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    u, i, r = data.user_index, data.item_index, data.rating
    args = (u[train], i[train], r[train], len(data.users), len(data.items))
    ease = EASE(grid=(30.0, 300.0, 3000.0)).fit(*args)
    assert set(ease.validation) == {30.0, 300.0, 3000.0}
    assert ease.chosen_l2 == max(ease.validation, key=ease.validation.get)
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], np.arange(len(data.items)))
    ndcg = evaluate_ranking(ease.score, task, (10,))["ndcg@10"]
    popular = evaluate_ranking(Popularity().fit(*args).score, task, (10,))["ndcg@10"]
    assert ndcg > popular + 0.1  # about 0.38 against 0.17 on this split


def test_ease_refuses_a_catalogue_too_large_for_its_dense_matrix():
    from hybrid.core.errors import ArgumentError
    from hybrid.models.baselines import EASE

    with pytest.raises(ArgumentError, match="dense 800,000 x 800,000 item matrix"):
        EASE(l2=300).fit([0], [0], [5.0], 1, 800_000)


def test_a_sample_of_users_is_ranked_over_the_whole_catalogue_reproducibly():
    from hybrid.evaluation.metrics import RANKING_BLOCK, sample_users

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 500, 5_000), rng.integers(0, 300, 5_000)
    task = ranking_task(users[:4_000], items[:4_000], users[4_000:], items[4_000:],
                        np.full(1_000, 5.0), np.arange(300))
    sample = sample_users(task, 50, seed=3)
    assert len(sample.users) == 50 and set(sample.users) <= set(task.users)
    assert np.array_equal(sample.users, sample_users(task, 50, seed=3).users)
    assert len(sample.candidates) == 300  # still ranked over everything
    assert sample_users(task, None) is task and sample_users(task, 10**6) is task
    seen_shapes = []

    def score(u, c):
        seen_shapes.append((len(u), len(c)))
        return rng.random((len(u), len(c)))

    evaluate_ranking(score, sample, (10,))
    # memory is bounded by the block, not by users x catalogue
    assert all(rows * cols <= max(RANKING_BLOCK, cols) for rows, cols in seen_shapes)


def test_ranking_memory_does_not_grow_with_the_catalogue_for_a_fixed_number_of_users(monkeypatch):
    import tracemalloc

    import hybrid.evaluation.metrics as evaluation

    monkeypatch.setattr(evaluation, "RANKING_BLOCK", 1 << 19)  # scores held at once
    rng = np.random.default_rng(0)
    n_users, peaks, results = 60, {}, {}
    for n_items in (50_000, 400_000):
        train_users = np.repeat(np.arange(n_users), 5)
        train_items = rng.integers(0, n_items, len(train_users))
        task = evaluation.ranking_task(train_users, train_items, np.arange(n_users), rng.integers(0, n_items, n_users),
                                       np.full(n_users, 5.0), np.arange(n_items))
        user_vectors = rng.normal(size=(n_users, 16)).astype(np.float32)
        item_vectors_t = np.ascontiguousarray(rng.normal(size=(n_items, 16)).astype(np.float32).T)

        def score(users, candidates, item_vectors_t=item_vectors_t, user_vectors=user_vectors):
            return user_vectors[users] @ item_vectors_t  # every candidate, as the serving path scores them

        tracemalloc.start()
        results[n_items] = evaluation.evaluate_ranking(score, task, (10,))
        peaks[n_items] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert results[n_items]["users"] == n_users
    # eight times the catalogue, the same users: the peak stays near one block of scores
    # (it would be eight times larger if every user were scored at once)
    assert peaks[400_000] < 2 * peaks[50_000], peaks
    assert peaks[400_000] < 4 * 8 * (1 << 19) + 8 * 400_000 * 2, peaks


def test_a_recommenders_own_top_lists_give_the_metrics_of_the_same_ranking():
    from hybrid.evaluation.metrics import evaluate_ranking, evaluate_recommendations, ranking_task

    rng = np.random.default_rng(3)
    train_u, train_i = rng.integers(0, 30, 300), rng.integers(0, 50, 300)
    test_u, test_i = rng.integers(0, 30, 100), rng.integers(0, 50, 100)
    task = ranking_task(train_u, train_i, test_u, test_i, np.full(100, 5.0), np.arange(50))
    scores = rng.random((30, 50))

    def recommend(users, k):  # the best k unseen items, as a recommender answers
        out = []
        for user in users:
            mine = scores[user].copy()
            mine[train_i[train_u == user]] = -np.inf
            out.append(np.argsort(-mine)[:k])
        return np.array(out)

    by_lists = evaluate_recommendations(recommend, task, (5, 10))
    by_scores = evaluate_ranking(lambda u, c: scores[np.asarray(u)][:, c], task, (5, 10))
    assert by_lists == pytest.approx(by_scores)
