"""The Keras models and the recommender API, on MovieLens-100k from the real pipeline."""

import numpy as np
import pandas as pd
import pytest

from hybrid.core.config import MODEL_NAMES
from hybrid.core.errors import ArgumentError, HybridError, NotFittedError, UnknownIdError
from hybrid.evaluation.metrics import rmse
from hybrid.evaluation.splits import cold_item_split, random_split
from hybrid.recommend.hybrid_recommender import HybridRecommender

FAST = {"epochs": 4, "batch_size": 2048, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def split(ml100k):
    data, _, _ = ml100k
    return random_split(len(data.rating), 0.2, seed=0)


@pytest.fixture(scope="module")
def fitted(ml100k, split):
    data, encoder, _ = ml100k
    return HybridRecommender("hybrid", train_config=FAST).fit_dataset(data, split[0], encoder)


@pytest.mark.parametrize("name", [m for m in MODEL_NAMES if m != "implicit"])
def test_each_rating_model_beats_the_global_mean(ml100k, split, name):
    data, encoder, _ = ml100k
    train, test = split
    rec = HybridRecommender(name, train_config=FAST).fit_dataset(data, train, encoder)
    predicted = rec.score_index(data.user_index[test], data.item_index[test])
    baseline = rmse(data.rating[test], np.full(len(test), data.rating[train].mean()))
    assert rmse(data.rating[test], predicted) < baseline - 0.08
    assert rec.training["validation_rows"] == round(0.1 * len(train))  # carved from training


def test_history_holds_only_the_fitted_rows_and_the_blend_beats_the_network(fitted, ml100k, split):
    from hybrid.models.keras.networks import UserHistory
    from hybrid.models.keras.training import validation_split

    data, _, _ = ml100k
    train, test = split
    users, items = data.user_index[train], data.item_index[train]
    fit_rows, val_rows = validation_split(len(train), fitted.train_config.validation_share, fitted.train_config.seed)
    layer = next(layer for layer in fitted.model.layers if isinstance(layer, UserHistory))
    table = np.asarray(layer.table)
    held = table[users[val_rows]] == items[val_rows][:, None]
    assert not held.any()  # no validation rating's item in its user's history
    in_history = table[users[fit_rows]] == items[fit_rows][:, None]
    short = np.bincount(users[fit_rows], minlength=len(data.users))[users[fit_rows]] <= layer.length
    assert in_history[short].any(axis=1).all()  # users with few ratings: every one of them
    blend = fitted.training["blend"]
    assert blend["rmse_blend"] < min(blend["rmse_network"], blend["rmse_item-knn"]) - 0.005  # on validation
    network = fitted._network(data.user_index[test], data.item_index[test])
    blended = fitted.score_index(data.user_index[test], data.item_index[test])
    assert rmse(data.rating[test], blended) < rmse(data.rating[test], network) - 0.005  # and on the test split


def test_implicit_model_ranks_held_out_likes_above_chance(ml100k, split):
    data, encoder, _ = ml100k
    train, test = split
    rec = HybridRecommender("implicit", train_config=FAST).fit_dataset(data, train, encoder)
    liked = test[data.rating[test] >= 4]
    users, items = data.user_index[liked], data.item_index[liked]
    negatives = np.random.default_rng(0).integers(0, len(data.items), len(liked))
    pos = rec.score_index(users, items)
    neg = rec.score_index(users, negatives)
    assert (pos > neg).mean() > 0.75  # a random scorer is at 0.5


def test_recommendations_are_real_ids_with_their_own_scores(fitted, ml100k, split):
    data, _, _ = ml100k
    top = fitted.frame(*fitted.recommend("196", N=10))
    assert len(top) == 10 and top["score"].is_monotonic_decreasing
    rated = set(data.items.ids(data.item_index[split[0]][data.user_index[split[0]] == data.users.index(["196"])[0]]))
    assert not set(top["item_id"]) & rated
    # ids, not positions: predicting the returned ids gives the returned scores
    np.testing.assert_allclose(fitted.predict(["196"] * 10, top["item_id"]), top["score"], rtol=1e-5)
    assert top["title"].notna().all()


def test_candidates_restrict_and_keep_text_aligned(fitted):
    full = fitted.frame(*fitted.recommend("196", N=2000, filter_already_liked_items=False))
    subset = fitted.frame(*fitted.recommend("196", N=3, filter_already_liked_items=False, items=["1", "50", "181"]))
    expected = full.set_index("item_id").loc[["1", "50", "181"], "score"].sort_values(ascending=False)
    assert subset["item_id"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(subset["score"], expected.to_numpy(), rtol=1e-5)


def test_former_argument_names_still_answer_with_a_deprecation_warning(fitted):
    with pytest.warns(DeprecationWarning, match="'exclude_rated' is deprecated, use 'filter_already_liked_items'"):
        old = fitted.recommend("196", n=5, exclude_rated=False, candidates=["1", "50", "181", "7"])
    new = fitted.recommend("196", N=5, filter_already_liked_items=False, items=["1", "50", "181", "7"])
    assert old[0].tolist() == new[0].tolist()


def test_unknown_ids_raise_clear_errors(fitted):
    with pytest.raises(UnknownIdError, match="recommend_for_new_user"):
        fitted.recommend("no-such-user")
    with pytest.raises(UnknownIdError, match="no-such-item"):
        fitted.predict(["196"], ["no-such-item"])
    with pytest.raises(HybridError, match="liked_items and/or text"):
        fitted.recommend_for_new_user()


def test_cold_items_are_scored_from_their_text(ml100k):
    data, encoder, _ = ml100k
    train, _, cold = cold_item_split(data.item_index, 0.2, seed=1)
    rec = HybridRecommender("hybrid", train_config=FAST).fit_dataset(data, train, encoder)
    user = np.zeros(len(cold), np.int64)
    scores = rec.score_index(user, cold)
    assert np.unique(np.round(scores, 5)).size > len(cold) // 2  # not one constant for all
    # same model, same user, same item id path: only the text vector differs
    before = rec.score_index(user[:1], cold[:1])
    original = rec.catalogue.vectors[cold[0]].copy()
    rec.catalogue.vectors[cold[0]] = rec.catalogue.vectors[cold[1]]
    assert rec.score_index(user[:1], cold[:1]) == pytest.approx(rec.score_index(user[:1], cold[1:2]))
    rec.catalogue.vectors[cold[0]] = original
    assert rec.score_index(user[:1], cold[:1]) == pytest.approx(before)
    top = rec.frame(*rec.recommend(data.users.ids([0])[0], N=1682))
    assert top["cold"].sum() == len(cold)  # cold items are candidates by default
    assert not rec.frame(*rec.recommend(data.users.ids([0])[0], N=1682, include_cold=False))["cold"].any()


def test_new_user_and_new_items_need_no_retraining(fitted):
    weights = [w.copy() for w in fitted.model.get_weights()]
    liked = fitted.frame(*fitted.recommend_for_new_user(liked_items=["50", "172", "181"], N=10))  # Star Wars films
    assert not {"50", "172", "181"} & set(liked["item_id"])
    by_text = fitted.frame(*fitted.recommend_for_new_user(text="horror", N=10, content_weight=0.9))
    assert by_text["title"].str.contains("Horror|Scream|Dracula|Night|Evil|Dead|Fright", case=False).any()
    added = fitted.add_items(pd.DataFrame({"item_id": ["new-1", "new-2"], "title": ["Robo Toys", "Tax Law"],
                                           "text": ["animation children comedy toys", "documentary"]}))
    assert added == 2
    top = fitted.frame(*fitted.recommend("196", N=5, items=["new-1", "new-2"]))
    assert top["cold"].all() and top["score"].nunique() == 2
    similar = fitted.frame(*fitted.similar_items("new-1", N=5))
    assert similar["title"].notna().all() and "new-1" not in set(similar["item_id"])
    assert all(np.array_equal(a, b) for a, b in zip(weights, fitted.model.get_weights()))
    with pytest.raises(HybridError, match="already known"):
        fitted.add_items(pd.DataFrame({"item_id": ["new-1"], "text": ["again"]}))


def test_save_and_load_give_identical_recommendations(fitted, tmp_path):
    fitted.save(tmp_path / "rec")
    assert not list((tmp_path / "rec").glob("*.png"))  # saving draws nothing
    loaded = HybridRecommender.load(tmp_path / "rec")
    assert loaded.blend is not None
    assert np.allclose(loaded.predict(["196", "186"], ["242", "302"]), fitted.predict(["196", "186"], ["242", "302"]))
    pd.testing.assert_frame_equal(loaded.frame(*loaded.recommend("196", N=20)), fitted.frame(*fitted.recommend("196", N=20)))
    pd.testing.assert_frame_equal(loaded.frame(*loaded.recommend_for_new_user(liked_items=["1"], text="toy", N=5)),
                                  fitted.frame(*fitted.recommend_for_new_user(liked_items=["1"], text="toy", N=5)))
    pd.testing.assert_frame_equal(loaded.frame(*loaded.similar_to_text("space war", N=5)), fitted.frame(*fitted.similar_to_text("space war", N=5)))


def test_fit_from_dataframes_without_the_pipeline():
    rng = np.random.default_rng(0)
    genres = ["space war robots", "romance love wedding", "horror ghost haunted"]
    items = pd.DataFrame({"item_id": [f"m{i}" for i in range(30)], "title": [f"Film {i}" for i in range(30)],
                          "text": [genres[i % 3] + f" film number{i}" for i in range(30)]})
    rows = []
    for u in range(60):
        taste = u % 3
        for i in rng.choice(27, 12, replace=False):  # m27..m29 are never rated: cold
            rows.append({"user_id": f"u{u}", "item_id": f"m{i}", "rating": 5.0 if i % 3 == taste else 1.0})
    rec = HybridRecommender("hybrid", train_config={"epochs": 30, "batch_size": 64, "patience": 5})
    rec.fit(pd.DataFrame(rows), items)
    assert len(rec.catalogue) == 30 and rec.catalogue.cold.sum() == 3
    cold = rec.frame(*rec.recommend("u0", N=3, items=["m27", "m28", "m29"]))  # u0 likes space films
    assert cold["item_id"].iloc[0] == "m27"
    assert rec.frame(*rec.similar_to_text("haunted ghost", N=3))["item_id"].iloc[0] in {f"m{i}" for i in range(2, 30, 3)}


def test_n_must_be_a_positive_number_everywhere(fitted):
    for call in (lambda n: fitted.recommend("196", N=n),
                 lambda n: fitted.recommend_for_new_user(liked_items=["1"], N=n),
                 lambda n: fitted.similar_items("1", N=n),
                 lambda n: fitted.similar_to_text("space", N=n)):
        for bad in (0, -5, 2.5):
            with pytest.raises(ArgumentError, match="N must be a positive"):
                call(bad)


def test_text_without_known_words_is_refused_by_recommend_and_similar_alike(fitted):
    with pytest.raises(ArgumentError, match="no known word"):
        fitted.recommend_for_new_user(text="the and of it")
    with pytest.raises(ArgumentError, match="no known word"):
        fitted.similar_to_text("the and of it")
    # liked items with an empty text are fine: the text adds nothing
    assert len(fitted.frame(*fitted.recommend_for_new_user(liked_items=["1"], text="  ", N=3))) == 3


def test_leaving_out_cold_items_also_applies_to_a_candidate_list(fitted):
    if "cold-1" not in fitted.catalogue.ids:
        fitted.add_items(pd.DataFrame({"item_id": ["cold-1"], "title": ["Space Robots"],
                                       "text": ["space robots war"]}))
    chosen = fitted.frame(*fitted.recommend("196", N=5, items=["cold-1", "50", "181"], include_cold=False))
    assert "cold-1" not in set(chosen["item_id"]) and len(chosen) == 2
    assert "cold-1" in set(fitted.frame(*fitted.recommend("196", N=5, items=["cold-1", "50", "181"]))["item_id"])


def test_argument_errors_are_value_errors_and_not_fitted_is_its_own_error():
    with pytest.raises(ValueError):
        HybridRecommender("hybrid", train_config={"epoch": 3})
    with pytest.raises(ArgumentError, match="unknown key 'epoch'; valid keys: batch_size, epoch_rows, epochs"):
        HybridRecommender("hybrid", train_config={"epoch": 3})
    with pytest.raises(NotFittedError, match="not fitted"):
        HybridRecommender().recommend("196")


def test_the_callers_configs_are_not_changed():
    from hybrid.core.config import ModelConfig

    config = ModelConfig("mf", factors=8)
    HybridRecommender("hybrid", model_config=config)
    assert config.name == "mf"


def test_when_every_candidate_is_left_out_the_result_is_empty(fitted):
    rated = fitted.catalogue.ids.ids(fitted.rated_items(int(fitted.users.index(["196"])[0]))[:2])
    assert fitted.frame(*fitted.recommend("196", N=5, items=list(rated))).empty


def test_scores_computed_in_small_chunks_equal_the_whole_matrix(fitted):
    users, candidates = np.arange(7), np.arange(300)
    whole = fitted.score_matrix(users, candidates)
    fitted.pair_chunk = 97  # chunks cut across users and across candidates
    try:
        np.testing.assert_allclose(fitted.score_matrix(users, candidates), whole, rtol=1e-5)
    finally:
        del fitted.pair_chunk


def test_training_reports_each_epoch_and_stops_cleanly_at_its_time_budget(ml100k, split):
    data, encoder, _ = ml100k
    lines = []
    rec = HybridRecommender("mf-bias", train_config={"epochs": 5, "batch_size": 4096, "max_minutes": 1e-4},
                            log=lines.append).fit_dataset(data, split[0], encoder)
    assert rec.training["epochs_run"] == 1 and rec.training["stopped"] == "time budget"
    assert lines[0].startswith("mf-bias: epoch 1/5, loss ") and "val_loss" in lines[0]
    assert "time budget" in lines[1]
    assert lines[-1].startswith("mf-bias: blended with item and user KNNBaseline, validation RMSE")
    unlimited = HybridRecommender("mf-bias", train_config={"epochs": 2, "batch_size": 4096}).fit_dataset(
        data, split[0], encoder)
    assert unlimited.training["epochs_run"] == 2 and unlimited.training["stopped"] == "epochs"


def test_row_batches_cover_every_row_once_in_a_new_seeded_order_each_epoch():
    from hybrid.models.keras.training import row_batches

    batches = row_batches(1000, 64, seed=3, shuffle=True)
    assert int(batches.cardinality()) == 16
    epochs = [np.concatenate([b.numpy() for b in batches]) for _ in range(2)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    assert not np.array_equal(epochs[0], epochs[1])
    again = np.concatenate([b.numpy() for b in row_batches(1000, 64, seed=3, shuffle=True)])
    np.testing.assert_array_equal(again, epochs[0])
    in_order = np.concatenate([b.numpy() for b in row_batches(1000, 64, seed=3, shuffle=False)])
    np.testing.assert_array_equal(in_order, np.arange(1000))


def test_repeated_row_batches_are_full_and_each_pass_a_new_permutation():
    from hybrid.models.keras.training import row_batches

    batches = [b.numpy() for b in row_batches(1000, 64, seed=3, shuffle=True, repeat=True).take(45)]
    assert all(len(b) == 64 for b in batches)  # every batch full: one traced shape
    passes = [np.concatenate(batches[k * 15:(k + 1) * 15]) for k in range(3)]  # 15 full batches a pass
    for rows in passes:
        assert len(np.unique(rows)) == 960 and rows.max() < 1000  # 40 rows wait for a later pass
    assert not np.array_equal(passes[0], passes[1])
    left_out = [np.setdiff1d(np.arange(1000), rows) for rows in passes]
    assert not np.array_equal(left_out[0], left_out[1])  # not the same rows every pass


def test_above_epoch_rows_an_epoch_is_part_of_a_pass_and_early_stopping_looks_within_it(ml100k, split):
    data, encoder, _ = ml100k
    train, test = split
    lines = []
    rec = HybridRecommender("mf-bias", train_config={"epochs": 12, "epoch_rows": 20_000, "batch_size": 1000,
                                                     "learning_rate": 3e-3, "steps_per_execution": 4},
                            model_config={"blend": False}, log=lines.append).fit_dataset(data, train, encoder)
    info = rec.training
    assert info["epoch_rows"] == 20_000 and info["train_rows"] > 60_000  # 20 steps (5 executions of 4)
    assert "epoch 1/12" in " ".join(lines) and len(info["history"]["val_loss"]) == info["epochs_run"]
    # the rate is of the epochs: the fit call's set-up and tear-down are in its seconds only
    assert 0 < info["epoch_seconds"] <= info["seconds"]
    assert info["examples_per_second"] == pytest.approx(info["epochs_run"] * 20_000 / info["epoch_seconds"], rel=0.01)
    assert rmse(data.rating[test], rec.score_index(data.user_index[test], data.item_index[test])) < 0.97


def test_a_long_epoch_reports_steps_throughput_and_its_end_as_it_goes(ml100k, split):
    from hybrid.core.config import ModelConfig
    from hybrid.models.keras.networks import build_model
    from hybrid.models.keras.training import EpochProgress, _explicit_dataset

    data, _, _ = ml100k
    rows = split[0][:20_000]
    model = build_model(ModelConfig("mf"), len(data.users), len(data.items), data.item_vectors.shape[1])
    model.compile(optimizer="adam", loss="mse")
    lines = []
    progress = EpochProgress(2, lines.append, what="mf", batch_size=1000, every=0.0)  # a line every step
    model.fit(_explicit_dataset(data.user_index[rows], data.item_index[rows], data.rating[rows],
                                data.item_vectors, 1000, 0, True), epochs=2, callbacks=[progress], shuffle=False, verbose=0)
    within = [line for line in lines if "step" in line]
    assert len(within) == 40 and within[0].startswith("mf: epoch 1/2, step 1/20, ")
    assert within[-1].startswith("mf: epoch 2/2, step 20/20, ") and "examples/s" in within[-1]
    assert "epoch ends in 0.0 min" in within[-1]
    assert sum(line.startswith("mf: epoch 2/2, loss ") for line in lines) == 1


def test_a_neighbourhood_model_too_large_for_the_data_is_left_out_of_the_blend_and_evaluation(ml100k, split,
                                                                                              monkeypatch):
    from hybrid.experiments.protocols import EvaluationConfig, evaluate_all
    from hybrid.models.baselines import ItemKNN

    data, encoder, _ = ml100k
    train, test = split
    per_user = np.bincount(data.user_index[train]).astype(float)
    per_item = np.bincount(data.item_index[train]).astype(float)
    item_pairs, user_pairs = per_user @ per_user, per_item @ per_item  # what each side compares
    monkeypatch.setattr(ItemKNN, "max_pairs", (item_pairs + user_pairs) / 2)
    larger, smaller = ("user-knn", "item-knn") if user_pairs > item_pairs else ("item-knn", "user-knn")
    lines = []
    rec = HybridRecommender("mf-bias", train_config={"epochs": 2, "batch_size": 4096},
                            log=lines.append).fit_dataset(data, train, encoder)
    assert [part.name for part in rec.blend.parts] == [smaller] and set(rec.blend.skipped) == {larger}
    assert f"; {larger} left out: " in lines[-1] and "co-rated" in lines[-1]
    assert list(rec.training["blend"]["weights"]) == ["intercept", "network", smaller]
    predicted = rec.score_index(data.user_index[test], data.item_index[test])
    assert rmse(data.rating[test], predicted) < 0.96
    config = EvaluationConfig(models=(), baselines=("item-knn", "user-knn"), eval_users=50)
    results = evaluate_all(data, config, encoder, train, test, log=lambda line: None)["results"]
    assert "above its limit" in results[larger]["skipped"] and "rmse" in results[smaller]


def test_above_refit_max_ratings_the_blend_keeps_its_first_similarities_and_refits_the_rest(ml100k, split):
    from hybrid.models.baselines import Biases, ItemKNN
    from hybrid.models.blend import RatingBlend
    from hybrid.models.keras.training import validation_split

    data, _, _ = ml100k
    train, test = split
    u, i, r = data.user_index[train], data.item_index[train], data.rating[train]
    shape = (len(data.users), len(data.items))
    fit_rows, val_rows = validation_split(len(train), 0.1, 0)
    network = Biases().fit(u[fit_rows], i[fit_rows], r[fit_rows], *shape)  # stands in for the network
    blend = RatingBlend(refit_max_ratings=len(train) - 1).fit(
        network.predict(u[val_rows], i[val_rows]), u, i, r, fit_rows, val_rows, *shape)
    assert blend.describe()["similarities_from"] == "the rows the network fitted"
    item_knn = blend.parts[0]
    first = ItemKNN().fit(u[fit_rows], i[fit_rows], r[fit_rows], *shape)
    assert (item_knn.similar != first.similar).nnz == 0  # the similarities of the first fit
    tu, ti, tr = data.user_index[test], data.item_index[test], data.rating[test]
    np.testing.assert_allclose(item_knn.baseline.predict(tu, ti), Biases().fit(u, i, r, *shape).predict(tu, ti))
    assert item_knn.rated.nnz == len(train)  # every training row is a neighbour to predict from
    assert rmse(tr, blend.predict(network.predict(tu, ti), tu, ti)) < rmse(tr, network.predict(tu, ti)) - 0.02
    below = RatingBlend().fit(network.predict(u[val_rows], i[val_rows]), u, i, r, fit_rows, val_rows, *shape)
    assert below.describe()["similarities_from"] == "every training row"


def test_ranking_calls_do_not_retrace_the_network_each_time(fitted, ml100k):
    data, _, _ = ml100k
    assert fitted.train_config.steps_per_execution > 1  # trained several steps per call
    for n_users in (1, 3, 2, 5):
        fitted.score_matrix(np.arange(n_users), np.arange(len(data.items)))
    # predicted one batch per call: the function is traced for the full and the last batch shape
    assert fitted.model.steps_per_execution == 1
    assert fitted.model.predict_function.experimental_get_tracing_count() <= 2


def test_evaluation_prints_each_keras_models_epochs(ml100k, split):
    from hybrid.experiments.protocols import EvaluationConfig, evaluate_all

    data, encoder, _ = ml100k
    train, test = split
    lines = []
    config = EvaluationConfig(models=("mf",), baselines=(), eval_users=30,
                              model_overrides={"mf": {"blend": False}}, train_overrides={"epochs": 2})
    results = evaluate_all(data, config, encoder, train, test, log=lines.append)["results"]
    assert any(line.startswith("  mf: epoch 1/2, loss ") for line in lines)  # while it trains, not after
    assert lines.index(next(line for line in lines if "epoch 2/2" in line)) < lines.index(
        next(line for line in lines if line.lstrip().startswith("mf ")))
    assert sum("mf: epoch" in line and "val_loss" in line for line in lines) == results["mf"]["epochs_run"] == 2


def test_the_blended_score_matrix_is_the_blend_of_each_pair(fitted, ml100k):
    data, _, _ = ml100k
    users, candidates = np.array([0, 5, 17, 300]), np.arange(0, len(data.items), 3)
    block = fitted.score_matrix(users, candidates)
    pairs = fitted.score_index(np.repeat(users, len(candidates)), np.tile(candidates, len(users)))
    np.testing.assert_allclose(block, pairs.reshape(block.shape), rtol=1e-5, atol=1e-5)
    assert fitted.blend is not None and np.ptp(block) > 1.0
