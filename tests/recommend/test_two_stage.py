"""The two-stage recommender on MovieLens-100k through the real pipeline: ranking, the API in
the vocabulary of implicit/LightFM, new users, new items, indexes and persistence."""


import numpy as np
import pandas as pd
import pytest

from hybrid.core.errors import ArgumentError, HybridError, NotFittedError, UnknownIdError
from hybrid.evaluation.metrics import evaluate_ranking, evaluate_recommendations, ranking_task
from hybrid.evaluation.splits import random_split

HORROR = ("horror", "scream", "dracula", "night", "evil", "dead", "fright", "nightmare", "haunt",
          "frankenstein", "vampire", "candyman", "hellraiser", "omen", "exorcist", "shining")


def product_texts(data, out):
    """The text stage's cleaned product texts in the dataset's item order."""
    from hybrid.pipeline.stages import catalogue_texts

    return [text or "" for text in catalogue_texts(data, out / "text" / "item_text.parquet").to_pylist()]


@pytest.fixture(scope="module")
def fitted(ml100k):
    from hybrid.recommend.two_stage import TwoStageRecommender

    data, encoder, out = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    rec = TwoStageRecommender(retrieval={"epochs": 5, "patience": 2}, train={"epochs": 2},
                              config={"validation_users": 500}, seed=0)
    from hybrid.pipeline.stages import catalogue_fields

    fields = catalogue_fields(data, out / "text" / "item_text.parquet")
    return rec.fit_dataset(data, train, encoder=encoder, texts=product_texts(data, out), fields=fields), data, train, test


@pytest.fixture(scope="module")
def instruments(tmp_path_factory, amazon2014_dir):
    """Amazon 2014 Musical Instruments 5-core (real product text) through the pipeline."""
    from pipelines.recommender import prepare

    ready = prepare(tmp_path_factory.mktemp("instruments"), ratings=[str(amazon2014_dir / "Musical_Instruments_5.csv.gz")],
                    meta=[str(amazon2014_dir / "Musical_Instruments_meta_5.json.gz")])
    return ready.data, ready.encoder, ready.texts


def test_two_stage_ranks_above_popularity_and_its_retrieval_stage(fitted):
    from hybrid.models.baselines import Popularity

    rec, data, train, test = fitted
    u, i, r = data.user_index, data.item_index, data.rating
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], np.arange(len(data.items)))
    two_stage = evaluate_recommendations(rec.top_rows, task, (10,))["ndcg@10"]  # as it serves
    retrieval = evaluate_ranking(rec.scorer.score, task, (10,))["ndcg@10"]
    popular = Popularity().fit(u[train], i[train], r[train], len(data.users), len(data.items))
    assert two_stage > evaluate_ranking(popular.score, task, (10,))["ndcg@10"] + 0.1
    assert two_stage >= retrieval
    # the weights were chosen on validation: they are a blend on the grid, recorded with figures
    assert abs(sum(rec.weights["full"].values()) - 1) < 1e-9 and rec.validation["full"]["users"] == 500
    assert set(rec.weights["full"]) == {"retrieval", "item_item", "network", "content"}
    # the blend chosen has the best neighbourhood of the grid (blends 0.2 of weight away), whose
    # mean is recorded; a blend with no better neighbourhood than its own would be chosen alone
    from hybrid.recommend.blend_choice import smoothed as _smoothed

    grid = rec.validation["full"]["grid"]
    weights = [{k: v for k, v in g.items() if k != "ndcg@10"} for g in grid]
    around = _smoothed(weights, [g["ndcg@10"] for g in grid], 0.2)
    assert weights[int(np.argmax(around))] == rec.weights["full"]
    assert rec.validation["full"]["neighbourhood_ndcg@10"] == pytest.approx(around.max())
    assert len(grid) == 286 and np.count_nonzero(around != np.array([g["ndcg@10"] for g in grid])) > 200
    # the unliked blend and its offset too, on products held out of the fit as if new
    assert set(rec.weights["unliked"]) == {"retrieval", "network", "content"}
    assert rec.validation["unliked_offset"]["offset"] == rec.unliked_offset
    # the offset is chosen on the held-out likes as they fell, with no product held out as new:
    # products without likes in the fit draw the few likes such products draw (a share of them
    # held out as new would draw their usual share, about 0.2, and lift cold products)
    from hybrid.evaluation.splits import validation_folds

    offset = rec.validation["unliked_offset"]
    assert rec.validation["folds"] == 1  # MovieLens's validation share holds some 5,000 likes
    (kept, held), = validation_folds(len(train), 0.1, 1, seed=rec.config.seed + 1)
    u, i, r = data.user_index[train], data.item_index[train], data.rating[train]
    fit_liked = np.bincount(i[kept][r[kept] >= 4], minlength=len(data.items)) > 0
    held_likes = held[r[held] >= 4]
    natural = float((~fit_liked[i[held_likes]]).mean())
    assert natural < 0.02
    assert offset["unliked_likes_share"] == pytest.approx(natural, abs=0.01)


def test_the_serving_path_and_the_pointwise_scorer_agree(fitted):
    rec, data, _, _ = fitted
    users = rec.users.index(["196", "186", "22"])
    ids, scores = rec.recommend(["196", "186", "22"], N=10)
    full = rec.score(users, np.arange(len(data.items)))
    for row, user in enumerate(users):
        # the answer's scores are the pointwise scores of its products, best first
        np.testing.assert_allclose(full[row, rec.catalogue.index(ids[row])], scores[row], rtol=1e-5)
        assert np.all(np.diff(scores[row]) <= 0) and not set(ids[row]) & set(rec.catalogue.ids.ids(rec.rated[user].indices))
    # a pair's score does not depend on what else is asked
    some = np.array([5, 50, 500])
    np.testing.assert_allclose(rec.score(users, some), full[:, some], rtol=1e-5)
    np.testing.assert_array_equal(rec.top_rows(users, 10), rec.catalogue.index(ids.ravel()).reshape(3, 10))
    # batched answers are the one-user answers
    one_ids, one_scores = rec.recommend("186", N=10)
    assert one_ids.tolist() == ids[1].tolist()
    np.testing.assert_allclose(one_scores, scores[1], rtol=1e-5)


def test_an_explanation_adds_up_to_the_score_and_names_what_led_to_it(fitted):
    from hybrid.data.text import tokenize

    rec, data, _, _ = fitted
    ids, scores = rec.recommend("196", N=10)
    cold = rec.catalogue.ids.ids(np.flatnonzero(~rec.catalogue.trained)[:2]).tolist()  # products nobody rated
    explained = rec.explain("196", [*ids, *cold])
    assert [e["item_id"] for e in explained] == [*ids, *cold]
    full = rec.score(rec.users.index(["196"]), rec.catalogue.index([*ids, *cold]))[0]
    for entry, score in zip(explained, full):
        # the parts and the offset add up to the score that recommend and score give
        assert sum(entry["parts"].values()) + entry["offset"] == pytest.approx(entry["score"], abs=1e-9)
        assert entry["score"] == pytest.approx(score, rel=1e-5)
        assert set(entry["parts"]) <= {"retrieval", "item_item", "network", "content"}
    np.testing.assert_allclose([e["score"] for e in explained[:10]], scores, rtol=1e-5)
    assert explained[-1]["offset"] == pytest.approx(rec.blend.unliked_offset if "unliked" in rec.blend.weights else 0)
    # the products named are the user's liked ones; the words are in the user's and the product's texts
    user = rec.users.index(["196"])[0]
    liked = rec.parts.likes[user].indices
    named = [b for e in explained for b in e["because"]]
    assert named and all(b["item_id"] in set(rec.catalogue.ids.ids(liked)) for b in named)
    assert all(0 < b["share"] <= 1 for b in named) and any(b["via"] == "item_item" for b in named)
    # nobody liked it: no neighbours; the liked products nearest it in the towers' item space
    assert explained[-1]["because"] and all(b["via"] == "retrieval" for b in explained[-1]["because"])
    assert sum(b["share"] for b in explained[-1]["because"]) <= 1 + 1e-9
    assert rec.why(explained[-1]).startswith("close to ") and ", which you liked" in rec.why(explained[-1])
    texts = rec.catalogue.texts.to_pylist()
    users_words = {w for row in liked for w in tokenize(texts[row] or "")}
    for entry in explained:
        words = {w["word"] for w in entry["words"]}
        own = set(tokenize(texts[int(rec.catalogue.index([entry["item_id"]])[0])] or ""))
        assert words <= own & users_words, (entry, own)
        assert not words or "content" in entry["parts"]  # words only where the content part weighs in
    with pytest.raises(UnknownIdError):
        rec.explain("no-such-user", ids[:1])


def test_a_new_users_explanation_adds_up_and_names_their_likes_and_words(fitted):
    from hybrid.data.text import tokenize

    rec, _, _, _ = fitted
    liked, text = ["50", "172"], "space adventure war"
    ids, scores = rec.recommend_for_new_user(liked_items=liked, text=text, N=10)
    explained = rec.explain_new_user(ids, liked_items=liked, text=text)
    assert [e["item_id"] for e in explained] == ids.tolist()
    np.testing.assert_allclose([e["score"] for e in explained], scores, rtol=1e-5)
    for entry in explained:
        assert sum(entry["parts"].values()) + entry["offset"] == pytest.approx(entry["score"], abs=1e-9)
        assert "network" not in entry["parts"]  # the network knows only the users it was trained on
        assert {b["item_id"] for b in entry["because"]} <= set(liked)
    texts = rec.catalogue.texts.to_pylist()
    asked = {w for row in rec.catalogue.index(liked) for w in tokenize(texts[row] or "")} | set(tokenize(text))
    for entry in explained:
        own = set(tokenize(texts[int(rec.catalogue.index([entry["item_id"]])[0])] or ""))
        assert {w["word"] for w in entry["words"]} <= own & asked
    assert any(e["because"] for e in explained)
    # words alone: what matched is the sentence's
    ids, _ = rec.recommend_for_new_user(text="horror vampire", N=5)
    for entry in rec.explain_new_user(ids, text="horror vampire"):
        assert {w["word"] for w in entry["words"]} <= {"horror", "vampire"} and not entry["because"]
    with pytest.raises(ArgumentError):
        rec.explain_new_user(ids)


def test_a_users_history_lists_likes_first_then_the_newest_and_survives_saving(fitted, tmp_path):
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec, data, train, _ = fitted
    ids, liked, rated_at = rec.user_history("196")
    user = data.users.index(["196"])[0]
    mine = train[data.user_index[train] == user]
    assert sorted(ids) == sorted(data.items.ids(data.item_index[mine]))
    truth = dict(zip(data.items.ids(data.item_index[mine]), data.timestamp[mine]))
    assert [truth[i] for i in ids] == rated_at.tolist()
    assert liked.tolist() == sorted(liked.tolist(), reverse=True)
    for group in (True, False):
        times = rated_at[liked == group]
        assert times.tolist() == sorted(times.tolist(), reverse=True)
    rec.save(tmp_path / "model")
    again = TwoStageRecommender.load(tmp_path / "model").user_history("196")
    assert [a.tolist() for a in again] == [ids.tolist(), liked.tolist(), rated_at.tolist()]


def test_filters_restrict_and_cold_items_are_flagged(fitted):
    rec, data, _, _ = fitted
    rated = set(rec.catalogue.ids.ids(rec.rated[rec.users.index(["196"])[0]].indices))
    ids, _ = rec.recommend("196", N=50)
    assert not rated & set(ids) and len(ids) == 50
    ids_all, _ = rec.recommend("196", N=50, filter_already_liked_items=False)
    assert rated & set(ids_all)
    blocked = list(ids[:5])
    assert not set(blocked) & set(rec.recommend("196", N=50, filter_items=blocked)[0])
    chosen = ["1", "50", "181", "1682", "nobody-rated-this"] if "nobody-rated-this" in rec.catalogue.ids \
        else ["1", "50", "181", "1682"]
    ids_sub, scores_sub = rec.recommend("196", N=10, items=chosen, filter_already_liked_items=False)
    assert set(ids_sub) == set(chosen) and np.all(np.diff(scores_sub) <= 0)
    cold = rec.catalogue.ids.ids(np.flatnonzero(rec.catalogue.cold))
    assert len(cold) > 0
    warm_only, _ = rec.recommend("196", N=100, include_cold=False)
    assert not set(cold) & set(warm_only)
    frame = rec.frame(*rec.recommend("196", N=5))
    assert list(frame.columns) == ["item_id", "score", "title", "cold"] and frame["title"].notna().all()
    batch = rec.frame(*rec.recommend(["196", "22"], N=3), user_ids=["196", "22"])
    assert batch["user_id"].tolist() == ["196"] * 3 + ["22"] * 3 and batch["rank"].tolist() == [1, 2, 3] * 2


def test_bad_requests_get_clear_errors(fitted):
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = fitted[0]
    for n in (0, -3, 2.5, True):
        with pytest.raises(ArgumentError, match="N must be a positive whole number"):
            rec.recommend("196", N=n)
    with pytest.raises(UnknownIdError, match="recommend_for_new_user"):
        rec.recommend(["196", "no-such-user"])
    with pytest.raises(UnknownIdError, match="no-such-item"):
        rec.similar_items("no-such-item")
    with pytest.raises(ArgumentError, match="liked_items and/or text"):
        rec.recommend_for_new_user()
    with pytest.raises(ArgumentError, match="no known word"):
        rec.recommend_for_new_user(text="the and of it")
    with pytest.raises(ArgumentError, match="content' or 'collaborative"):
        rec.similar_items("1", by="taste")
    with pytest.raises(NotFittedError):
        TwoStageRecommender().recommend("196")
    with pytest.raises(ArgumentError, match="weight_smoothing must be 0 or more"):
        TwoStageRecommender(config={"weight_smoothing": -0.1})
    with pytest.raises(ArgumentError, match=r"cold_weight_shrinkage must be in \[0, 1\]"):
        TwoStageRecommender(config={"cold_weight_shrinkage": 1.5})
    ids, scores = rec.recommend("196", N=5, items=[])
    assert len(ids) == 0 and len(scores) == 0


def test_a_new_user_from_text_alone_gets_text_relevant_items(fitted):
    rec = fitted[0]
    frame = rec.frame(*rec.recommend_for_new_user(text="horror", N=10))
    titles = " ".join(frame["title"]).lower()
    texts = [rec.catalogue.text(r) for r in rec.catalogue.index(frame["item_id"])]
    assert sum(word in titles for word in HORROR) >= 2 and sum("horror" in t.split() for t in texts) >= 4, texts
    liked = ["50", "172", "181"]  # the Star Wars films
    ids, _ = rec.recommend_for_new_user(liked_items=liked, N=10)
    assert not set(liked) & set(ids) and len(ids) == 10
    same, _ = rec.recommend_for_new_user(liked_items=np.array(liked), N=10)  # any sequence of ids
    assert same.tolist() == ids.tolist()


def test_a_new_users_words_shape_the_list_their_likes_start(fitted, tmp_path):
    """Five comedies and "horror": with the words weighed in, the list turns to horror films. The
    weight is chosen on validation users who came the same way (likes from the fit, a word from
    their other likes), by the rule the figures show."""
    import dataclasses

    from hybrid.recommend.blend_choice import WORDS, WORDS_CLOSE
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = fitted[0]
    chosen = rec.validation["words"]
    assert chosen["users"] > 100 and rec.blend.words == chosen["best"]["words"] in WORDS
    allowed = [g for g in chosen["grid"] if g["ndcg@10"] >= (1 - rec.config.words_tolerance) * chosen["likes_only_ndcg@10"]]
    assert chosen["best"] in allowed  # NDCG@10 within the tolerance of the likes' alone
    assert chosen["best"]["with_word@10"] >= max(g["with_word@10"] for g in allowed) - WORDS_CLOSE
    assert chosen["grid"][-1]["with_word@10"] > 2 * chosen["grid"][0]["with_word@10"]  # the words can steer
    assert chosen["words_from"] == "categories"  # their words name their genres, as a person's would
    texts = rec.catalogue.texts.to_pylist()

    def share(ids, genre="horror"):
        return np.mean([genre in texts[row].split() for row in rec.catalogue.index(ids)])

    comedies = [i for i, text in zip(rec.catalogue.ids.ids(np.arange(len(texts))), texts)
                if text.split()[-1:] == ["comedy"] and "horror" not in text][:5]
    alone, _ = rec.recommend_for_new_user(liked_items=comedies, N=10)
    rec.blend = dataclasses.replace(rec.blend, words=1.0)
    try:
        worded, scores = rec.recommend_for_new_user(liked_items=comedies, text="horror", N=10)
        assert share(alone) <= 0.2 and share(worded) >= 0.7, (share(alone), share(worded))
        # "animated" is no term of the catalogue; "animation", of the same stem, is
        animated, _ = rec.recommend_for_new_user(liked_items=comedies, text="animated", N=10)
        assert share(alone, "animation") <= 0.2 and share(animated, "animation") >= 0.7
        for entry in rec.explain_new_user(animated, liked_items=comedies, text="animated", n_words=20):
            said = "animation" in texts[rec.catalogue.index([entry["item_id"]])[0]].split()
            matched = {w["word"]: w for w in entry["words"]}
            assert said == ("animation" in matched)
            assert not said or (matched["animation"]["part"] == "words" and matched["animation"]["share"] == 1.0)
        for entry in rec.explain_new_user(worded, liked_items=comedies, text="horror"):
            assert "words" in entry["parts"]
            assert sum(entry["parts"].values()) + entry["offset"] == pytest.approx(entry["score"], abs=1e-9)
        rec.save(tmp_path / "model")
    finally:
        rec.blend = dataclasses.replace(rec.blend, words=chosen["best"]["words"])
    again = TwoStageRecommender.load(tmp_path / "model")
    assert again.blend.words == 1.0
    ids, again_scores = again.recommend_for_new_user(liked_items=comedies, text="horror", N=10)
    assert ids.tolist() == worded.tolist() and again_scores == pytest.approx(scores, rel=1e-5)


def test_similar_lookups_answer_in_batches(fitted):
    rec = fitted[0]
    ids, scores = rec.similar_items(["50", "1"], N=5, by="collaborative")
    assert ids.shape == (2, 5) and "50" not in ids[0] and "1" not in ids[1]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    content, _ = rec.similar_items("50", N=5)
    assert len(content) == 5 and "50" not in content
    users, _ = rec.similar_users(["196", "22"], N=3)
    assert users.shape == (2, 3) and "196" not in users[0]


def test_added_items_are_recommendable_and_findable_at_once(ml100k, tmp_path):
    from hybrid.recommend.two_stage import FORMAT_VERSION, TwoStageRecommender

    data, encoder, out = ml100k
    rec = TwoStageRecommender(retrieval={"epochs": 2}, network={}, train={"epochs": 1},
                              config={"validation_share": 0.0}, seed=1)
    rec.fit_dataset(data, encoder=encoder, texts=product_texts(data, out))
    before, vocabulary = len(rec.catalogue), rec.terms.vocabulary
    added = rec.add_items(pd.DataFrame({"item_id": ["new-1", "new-2"], "title": ["Haunted Night", "Tax Law"],
                                        "text": ["horror haunted vampire night terror", "documentary law tax"]}))
    assert added == 2 and len(rec.catalogue) == before + 2 and rec.catalogue.cold[-2:].all()
    assert rec.terms.rows.shape == (before + 2, vocabulary) and rec.terms.rows[-2:].nnz > 0  # same vocabulary
    ids, _ = rec.similar_to_text("vampire horror haunted", N=5)
    assert "new-1" in ids
    collaborative, _ = rec.similar_items("new-1", N=5, by="collaborative")
    assert len(collaborative) == 5 and "new-1" not in collaborative
    _, found = rec.retrieval_index.search(rec.scorer.item_matrix[[before]], 1)
    assert found[0, 0] == before  # in the retrieval index
    ids, scores = rec.recommend("196", N=2, items=["new-1", "new-2"])
    assert set(ids) == {"new-1", "new-2"} and np.isfinite(scores).all()
    with pytest.raises(ArgumentError, match="already known"):
        rec.add_items(pd.DataFrame({"item_id": ["new-1"], "text": ["again"]}))
    rec.save(tmp_path / "saved")
    loaded = TwoStageRecommender.load(tmp_path / "saved")
    for call in (lambda r: r.recommend(["196", "22"], N=20), lambda r: r.similar_to_text("space war"),
                 lambda r: r.recommend_for_new_user(liked_items=["1"], text="toy", N=8),
                 lambda r: r.similar_items("new-1", by="collaborative"), lambda r: r.similar_users("196")):
        (a_ids, a_scores), (b_ids, b_scores) = call(rec), call(loaded)
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)
    assert not list((tmp_path / "saved").glob("*.png"))  # saving draws nothing
    # serving holds the towers' unknown rows only (known vectors are precomputed); text-only
    # products and new users get the same vectors, and the full towers are saved again as they were
    assert loaded.scorer.model.item_embedding.embeddings.shape[0] == 2
    assert loaded.scorer.model.user_embedding.embeddings.shape[0] == 1
    # the items' retrieval vectors are read from the item index's storage, not held a second time
    np.testing.assert_array_equal(loaded.scorer.item_matrix, rec.scorer.item_matrix)
    assert not loaded.scorer.item_matrix.flags.writeable and not (tmp_path / "saved" / "item_vectors.npy").exists()
    texts = rec.catalogue.vectors[:5]
    np.testing.assert_allclose(loaded.scorer.text_items(texts), rec.scorer.text_items(texts), rtol=1e-5, atol=1e-6)
    saved = rec.scorer.arrays
    assert saved["text"].shape[0] == rec.scorer.model.n_items == loaded.scorer.n_model_items
    loaded.save(tmp_path / "resaved")
    for name, array in TwoStageRecommender.load(tmp_path / "resaved").scorer.arrays.items():
        np.testing.assert_array_equal(array, saved[name])
    # a folder saved in another format version is refused, naming both versions
    manifest = tmp_path / "resaved" / "manifest.json"
    current = f'"format_version": {FORMAT_VERSION}'
    assert current in manifest.read_text()
    manifest.write_text(manifest.read_text().replace(current, '"format_version": 1'))
    with pytest.raises(HybridError, match=f"saved with format 1, this version reads {FORMAT_VERSION}: fit and save"):
        TwoStageRecommender.load(tmp_path / "resaved")
    # the large tables are memory-mapped, not read; saving over the folder they map is safe
    assert not loaded.neighbours.data.flags.writeable and not loaded.catalogue.vectors.flags.writeable
    loaded.add_items(pd.DataFrame({"item_id": ["new-3"], "text": ["vampire night"]}))
    loaded.save(tmp_path / "saved")
    again = TwoStageRecommender.load(tmp_path / "saved")
    assert "new-3" in again.catalogue.ids and again.neighbours.shape == (before + 3, before + 3)
    a_ids, _ = loaded.recommend_for_new_user(liked_items=["1", "new-3"], text="vampire", N=8)
    assert again.recommend_for_new_user(liked_items=["1", "new-3"], text="vampire", N=8)[0].tolist() == a_ids.tolist()


def test_approximate_and_exact_indexes_agree(fitted):
    from hybrid.models.ann import VectorIndex

    rec = fitted[0]
    hnsw = VectorIndex(rec.scorer.item_matrix, exact_below=0)
    queries = rec.scorer.user_matrix[:300]
    _, exact = rec.retrieval_index.search(queries, 10)
    _, approximate = hnsw.search(queries, 10)
    assert rec.retrieval_index.kind == "exact" and hnsw.kind == "hnsw"
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall >= 0.95


def test_above_refit_max_likes_the_models_are_fitted_once_and_read_every_like(ml100k):
    from hybrid.models.baselines import Popularity
    from hybrid.recommend.two_stage import TwoStageRecommender

    data, encoder, _ = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    lines = []
    rec = TwoStageRecommender(retrieval={"epochs": 4, "patience": 1}, train={"epochs": 2},
                              config={"validation_users": 300, "refit_max_likes": 1000}, seed=0,
                              log=lines.append).fit_dataset(data, train, encoder=encoder)
    assert rec.info["refit"] is False and any("not refitted" in line for line in lines)
    # one validation share: its products held out as new are left out of the offset's rankings
    assert rec.validation["folds"] == 1 and rec.validation["unliked_offset"]["unliked_likes_share"] < 0.02
    # one fit of each model (the retrieval towers' learning curve appears once), on 90% of the likes
    assert sum("retrieval: epoch 1/" in line and "loss" in line for line in lines) == 1
    u, i, r = data.user_index[train], data.item_index[train], data.rating[train]
    liked = r >= 4.0
    assert rec.info["likes"] == liked.sum() == rec.likes.nnz and rec.rated.nnz == len(train)
    # the held-out likes joined what the fitted models read: histories, exclusions
    user = int(np.argmax(np.bincount(u[liked], minlength=len(data.users)) == 20))  # a user with 20 likes
    history = rec.scorer.model.histories.numpy()[user]
    assert sorted(history[history >= 0].tolist()) == sorted(i[liked & (u == user)].tolist())
    ids, _ = rec.recommend(rec.users.ids([user])[0], N=30)
    assert not set(ids) & set(rec.catalogue.ids.ids(i[u == user]))
    task = ranking_task(u, i, data.user_index[test], data.item_index[test], data.rating[test],
                        np.arange(len(data.items)))
    popular = Popularity().fit(u, i, r, len(data.users), len(data.items))
    assert evaluate_recommendations(rec.top_rows, task, (10,))["ndcg@10"] > \
        evaluate_ranking(popular.score, task, (10,))["ndcg@10"] + 0.1


def test_an_hnsw_graph_build_is_never_silent(monkeypatch, capsys):
    """The graph is built in one faiss call (in parts, faiss's growing arrays were copied at
    each part: the recommender stage's memory peak at 800k products); a line when it starts, one
    every LINE_EVERY seconds while it runs (so faiss must let the line's thread run) and one when
    it ends."""
    from hybrid.core import progress
    from hybrid.models.ann import VectorIndex

    monkeypatch.setattr(progress, "LINE_EVERY", 0.005)
    vectors = np.random.default_rng(0).normal(size=(20000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # unit: each vector is its own best match
    index = VectorIndex(vectors, exact_below=0, what="test index")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test index")]
    assert index.kind == "hnsw" and len(index) == 20000
    assert lines[0] == "test index: building an HNSW graph of 20,000 vectors"
    assert len(lines) >= 3 and all("s so far" in line for line in lines[1:-1]) and ": done in" in lines[-1]
    _, rows = index.search(vectors[:5], 1)
    assert rows[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_products_nobody_rated_rank_as_well_as_their_text_alone(instruments):
    """Cold products on a real catalogue: the two-stage ranking is at the level of the TF-IDF
    profile (the content baseline that keeps brands and model names) and well above averaged
    word vectors - the content part and the cold blend chosen on products held out as new."""
    from hybrid.evaluation.splits import cold_item_split
    from hybrid.models.baselines import ContentOnly, TfidfProfile, tfidf_rows
    from hybrid.recommend.two_stage import TwoStageRecommender

    data, encoder, texts = instruments
    u, i, r = data.user_index, data.item_index, data.rating
    train, test, cold = cold_item_split(i, 0.2, seed=0)
    rec = TwoStageRecommender(retrieval={"epochs": 5}, train={"epochs": 2}, seed=0)
    rec.fit_dataset(data, train, encoder=encoder, texts=texts)
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], cold)
    fitted = {name: model.fit(u[train], i[train], r[train], len(data.users), len(data.items), vectors)
              for name, model, vectors in (("tfidf", TfidfProfile(), tfidf_rows(texts)),
                                           ("words", ContentOnly(), data.item_vectors))}
    ndcg = {name: evaluate_ranking(model.score, task, (10,))["ndcg@10"] for name, model in fitted.items()}
    ours = evaluate_ranking(rec.score, task, (10,))["ndcg@10"]
    assert ours >= 0.9 * ndcg["tfidf"] and ours > 1.3 * ndcg["words"], (ours, ndcg)
    # the validation's best cold blend leans on the content part; the one used is moved halfway
    # to equal weights (cold_weight_shrinkage), so the text still leads it
    best = rec.validation["unliked"]["best"]
    assert best["content"] >= 0.5 and rec.validation["unliked"]["users"] > 100
    assert rec.weights["unliked"] == pytest.approx({part: 0.5 * w + 0.5 / len(best) for part, w in best.items()})
    assert rec.weights["unliked"]["content"] == max(rec.weights["unliked"].values())
    # one validation share of these likes holds some 600: the warm blends are chosen on several
    # disjoint shares in turn (each with models fitted on the other rows), their rankings pooled
    from hybrid.evaluation.splits import validation_folds

    likes = int((r[train] >= 4).sum())
    folds = rec.validation["folds"]
    assert 1 < folds == min(5, int(np.ceil(2000 / (0.1 * likes))))
    (kept, held), = validation_folds(len(train), 0.1, 1, seed=rec.config.seed + 1)
    first = len(np.unique(u[train][held][r[train][held] >= 4]))
    assert rec.validation["full"]["users"] > (folds - 0.5) * first * 0.9


def test_a_sentence_finds_the_products_that_name_its_words(instruments):
    """A brand is one word among thousands: averaged word vectors blur it, the TF-IDF terms of
    the content part keep it."""
    from hybrid.recommend.two_stage import TwoStageRecommender

    data, encoder, texts = instruments
    rec = TwoStageRecommender(retrieval={"epochs": 4}, train={"epochs": 2}, config={"validation_share": 0.0},
                              seed=0).fit_dataset(data, encoder=encoder, texts=texts)
    named = {data.items.values[k] for k, text in enumerate(texts) if "snark" in text.split()}
    assert 3 <= len(named) < 0.05 * len(texts)
    ids, _ = rec.recommend_for_new_user(text="snark clip tuner", N=10)
    assert len(named & set(ids)) >= 3, ids
