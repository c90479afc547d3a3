"""The recommender contract (``hybrid.recommend.base.Recommender``), the same specification for
every recommender: fitted from DataFrames on a small synthetic catalogue of three tastes."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hybrid
from hybrid import HybridRecommender, TwoStageRecommender
from hybrid.core.errors import ArgumentError, UnknownIdError

TASTES = ["space war robots rocket galaxy", "romance love wedding kiss heart", "horror ghost haunted vampire blood"]
N_ITEMS, N_USERS, COLD = 45, 90, ("m42", "m43", "m44")  # the cold products are never rated


def catalogue() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"m{i}" for i in range(N_ITEMS)],
                         "title": [f"Film {i}" for i in range(N_ITEMS)],
                         "text": [f"{TASTES[i % 3]} film number{i}" for i in range(N_ITEMS)]})


def ratings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_USERS):
        for i in rng.choice(N_ITEMS - len(COLD), 14, replace=False):
            rows.append({"user_id": f"u{u}", "item_id": f"m{i}", "rating": 5.0 if i % 3 == u % 3 else 1.0})
    return pd.DataFrame(rows)


FACTORIES = {
    "two-stage": lambda: TwoStageRecommender(retrieval={"epochs": 3}, train={"epochs": 2},
                                             config={"validation_share": 0}, seed=0),
    "hybrid": lambda: HybridRecommender("hybrid", train_config={"epochs": 3, "batch_size": 64}, seed=0),
}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def rec(request):
    return FACTORIES[request.param]().fit(ratings(), catalogue())


def rated_by(user: str) -> set:
    frame = ratings()
    return set(frame.loc[frame["user_id"] == user, "item_id"])


def test_recommend_answers_ids_and_scores_best_first(rec):
    ids, scores = rec.recommend("u0", N=5)
    assert ids.shape == scores.shape == (5,)
    assert set(ids) <= set(catalogue()["item_id"]) and np.all(np.diff(scores) <= 0)


def test_rated_products_are_left_out_unless_asked_for(rec):
    ids, _ = rec.recommend("u0", N=N_ITEMS)
    assert not set(ids) & rated_by("u0")
    everything, _ = rec.recommend("u0", N=N_ITEMS, filter_already_liked_items=False)
    assert rated_by("u0") <= set(everything)


def test_filter_items_are_left_out_for_everyone(rec):
    blocked = ["m1", "m4", "m7"]
    ids, _ = rec.recommend(["u0", "u1"], N=20, filter_items=blocked)
    assert not set(ids.ravel()) & set(blocked)


def test_a_filter_that_leaves_out_every_product_answers_empty(rec):
    everything = list(catalogue()["item_id"])
    for ids, scores in (rec.recommend("u0", N=5, filter_items=everything),
                        rec.recommend_for_new_user(liked_items=["m1"], text="space", N=5, filter_items=everything),
                        rec.similar_items("m1", N=5, filter_items=everything),
                        rec.similar_to_text("space robots", N=5, filter_items=everything)):
        assert ids.shape == scores.shape == (0,)
    ids, scores = rec.recommend(["u0", "u1"], N=5, filter_items=everything)
    assert ids.shape == scores.shape == (2, 0)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_a_product_on_two_rows_of_the_catalogue_is_refused_by_name(kind):
    items = catalogue()
    twice = pd.concat([items, items.iloc[[4]].assign(text="another text")], ignore_index=True)
    with pytest.raises(ArgumentError, match="'m4'"):
        FACTORIES[kind]().fit(ratings(), twice)


def test_items_restricts_the_ranking_to_those_products(rec):
    chosen = ["m2", "m5", "m9", "m43"]
    ids, _ = rec.recommend("u3", N=10, items=chosen, filter_already_liked_items=False)
    assert set(ids[ids != None]) == set(chosen)  # noqa: E711


def test_cold_products_are_answered_from_text_unless_left_out(rec):
    ids, _ = rec.recommend("u0", N=N_ITEMS)
    assert set(COLD) & set(ids)
    warm, _ = rec.recommend("u0", N=N_ITEMS, include_cold=False)
    assert not set(COLD) & set(warm[warm != None])  # noqa: E711


def test_a_batch_answers_as_its_single_calls_do(rec):
    ids, scores = rec.recommend(["u0", "u4", "u8"], N=6)
    assert ids.shape == (3, 6)
    for row, user in enumerate(["u0", "u4", "u8"]):
        one_ids, one_scores = rec.recommend(user, N=6)
        assert ids[row].tolist() == one_ids.tolist()
        np.testing.assert_allclose(scores[row], one_scores, rtol=1e-5)


def test_fewer_qualifying_products_than_N_are_padded_with_none_and_nan(rec):
    ids, scores = rec.recommend("u0", N=5, items=["m0", "m43"], filter_already_liked_items=False)
    assert len(ids) <= 5 and set(ids[ids != None]) == {"m0", "m43"}  # noqa: E711
    ids, scores = rec.recommend(["u0", "u1"], N=5, items=sorted(rated_by("u0") - rated_by("u1"))[:2])
    assert ids.shape[1] == 2 and ids[0].tolist() == [None, None] and np.isnan(scores[0]).all()


def test_unknown_ids_are_named_in_the_error(rec):
    with pytest.raises(UnknownIdError, match="nobody"):
        rec.recommend(["u0", "nobody"])
    with pytest.raises(UnknownIdError, match="no-such-film"):
        rec.similar_items("no-such-film")
    with pytest.raises(ArgumentError, match="N must be a positive"):
        rec.recommend("u0", N=0)


def test_a_new_user_is_answered_from_likes_and_words_without_their_likes(rec):
    ids, _ = rec.recommend_for_new_user(liked_items=["m0", "m3"], N=5)
    assert not {"m0", "m3"} & set(ids)
    by_text, _ = rec.recommend_for_new_user(text="haunted vampire ghost", N=3)
    assert sum(int(i[1:]) % 3 == 2 for i in by_text) >= 2  # the horror products
    with pytest.raises(ArgumentError, match="liked_items and/or text"):
        rec.recommend_for_new_user()


def test_similar_items_leave_the_product_out_and_share_its_taste(rec):
    ids, scores = rec.similar_items("m0", N=5)
    assert "m0" not in set(ids) and all(int(i[1:]) % 3 == 0 for i in ids[:3])
    batch, _ = rec.similar_items(["m0", "m1"], N=4)
    assert batch.shape == (2, 4) and batch[0].tolist() == rec.similar_items("m0", N=4)[0].tolist()


def test_similar_to_text_finds_the_products_with_those_words(rec):
    ids, _ = rec.similar_to_text("love wedding romance", N=3)
    assert all(int(i[1:]) % 3 == 1 for i in ids)


def test_similar_users_leave_the_user_out(rec):
    ids, scores = rec.similar_users("u0", N=5)
    assert "u0" not in set(ids) and len(ids) == 5 and set(ids) <= {f"u{u}" for u in range(N_USERS)}


def taste_of(ids) -> list[int]:
    return [int(str(i)[1:]) % 3 for i in ids]


def test_diversity_mixes_tastes_in_the_list_and_keeps_the_best_first(rec):
    plain, plain_scores = rec.recommend("u0", N=6)
    mixed, mixed_scores = rec.recommend("u0", N=6, diversity=0.9)
    assert mixed_scores[0] == pytest.approx(plain_scores[0])  # a best product first (ties may differ)
    assert len(set(taste_of(plain))) == 1  # u0 likes one taste: the plain list is all of it
    assert len(set(taste_of(mixed))) == 3
    # the scores stay the model's own for those products
    exact_ids, exact_scores = rec.recommend("u0", N=6, items=list(mixed))
    by_id = dict(zip(exact_ids, exact_scores))
    assert mixed_scores == pytest.approx([by_id[i] for i in mixed], rel=1e-5)
    new, _ = rec.recommend_for_new_user(liked_items=["m0", "m3"], N=6, diversity=0.9)
    assert len(set(taste_of(new))) == 3


def test_a_popularity_penalty_lowers_the_lists_popularity(rec):
    counts = ratings()["item_id"].value_counts()
    users = [f"u{u}" for u in range(12)]

    def mean_popularity(**shaping):
        ids, _ = rec.recommend(users, N=5, **shaping)
        return float(np.mean([counts.get(i, 0) for i in ids.ravel() if i is not None]))

    assert mean_popularity(popularity_penalty=3.0) < mean_popularity()
    assert mean_popularity(popularity_penalty=0.0) == mean_popularity()


@pytest.mark.parametrize("setting", [{"diversity": 1.5}, {"diversity": -0.1}, {"diversity": float("nan")},
                                     {"diversity": "lots"}, {"popularity_penalty": -1},
                                     {"popularity_penalty": float("inf")}, {"diversity": True}])
def test_shaping_out_of_range_is_one_clear_error(rec, setting):
    name = next(iter(setting))
    with pytest.raises(ArgumentError, match=name):
        rec.recommend("u0", N=5, **setting)
    with pytest.raises(ArgumentError, match=name):
        rec.recommend_for_new_user(liked_items=["m0"], N=5, **setting)


def test_added_products_are_answerable_at_once(rec):
    new = pd.DataFrame({"item_id": ["new-horror"], "title": ["Night of the Vampire"],
                        "text": ["horror vampire ghost haunted blood"]})
    if "new-horror" not in set(rec.frame(*rec.similar_to_text("vampire", N=100))["item_id"]):
        assert rec.add_items(new) == 1
    ids, _ = rec.recommend("u2", N=3, items=["new-horror", "m1"], filter_already_liked_items=False)
    assert "new-horror" in set(ids)
    frame = rec.frame(*rec.recommend("u2", N=3, items=["new-horror"]))
    assert frame["title"].tolist() == ["Night of the Vampire"] and frame["cold"].all()


def test_a_saved_recommender_loads_with_hybrid_load_and_answers_identically(rec, tmp_path):
    rec.save(tmp_path / "saved")
    loaded = hybrid.load(tmp_path / "saved")
    assert type(loaded) is type(rec)
    for call in (lambda r: r.recommend(["u0", "u5"], N=8), lambda r: r.similar_items("m3", N=4),
                 lambda r: r.recommend_for_new_user(liked_items=["m1"], text="love", N=4),
                 lambda r: r.similar_to_text("ghost", N=4)):
        (a_ids, a_scores), (b_ids, b_scores) = call(loaded), call(rec)
        assert a_ids.tolist() == b_ids.tolist()
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5)


class _RunsCode:
    """Unpickling this creates ``path``: a stand-in for a crafted file that runs code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_loading_a_model_folder_runs_no_code_from_its_files(rec, tmp_path):
    import pickle

    rec.save(tmp_path / "saved")
    assert not [p.name for p in (tmp_path / "saved").rglob("*") if p.suffix in (".joblib", ".pkl", ".pickle")]
    marker, bundles = tmp_path / "code-ran", sorted((tmp_path / "saved").rglob("*.npz"))
    assert {"text_encoder.npz"} <= {p.name for p in bundles}  # (and the terms or the rating blend)
    for path in bundles:
        original = path.read_bytes()
        for crafted in (lambda h: pickle.dump(_RunsCode(marker), h),
                        lambda h: np.savez(h, **{"meta.json": np.array([_RunsCode(marker)], object)})):
            with open(path, "wb") as handle:
                crafted(handle)
            with pytest.raises(hybrid.HybridError, match=path.name):
                hybrid.load(tmp_path / "saved")
            assert not marker.exists(), path.name
        path.write_bytes(original)
    assert type(hybrid.load(tmp_path / "saved")) is type(rec)


def test_a_damaged_model_folder_is_one_error_naming_it(rec, tmp_path):
    rec.save(tmp_path / "saved")
    files = sorted(p for p in (tmp_path / "saved").rglob("*") if p.is_file() and p.name != "manifest.json")
    # every file the loader reads eagerly: the ones it reads when asked (a query's encoder) are checked then
    for path in files:
        original = path.read_bytes()
        for damage in ("truncate", "delete"):
            path.write_bytes(original[:len(original) // 2]) if damage == "truncate" else path.unlink()
            try:
                hybrid.load(tmp_path / "saved")
            except hybrid.HybridError as error:
                assert "saved" in str(error), (path.name, damage, error)
            path.write_bytes(original)
    assert type(hybrid.load(tmp_path / "saved")) is type(rec)


def test_frame_shows_ids_scores_titles_and_cold_flags(rec):
    frame = rec.frame(*rec.recommend(["u0", "u1"], N=3), user_ids=["u0", "u1"])
    assert list(frame.columns) == ["user_id", "rank", "item_id", "score", "title", "cold"]
    assert frame["rank"].tolist() == [1, 2, 3, 1, 2, 3] and frame["title"].str.startswith("Film").all()


def test_the_contract_names_work_without_warnings(rec):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        rec.recommend("u0", N=3, filter_already_liked_items=True, filter_items=["m1"], items=None, include_cold=True)


def test_top_rows_are_the_recommend_answer_by_row_with_its_pointwise_scores(rec):
    users = rec.users.index(["u0", "u7"])
    rows = rec.top_rows(users, 4)
    _, scores = rec.recommend(["u0", "u7"], N=4)
    assert rows.shape == (2, 4) and len(set(rows[0])) == 4
    for k in range(2):
        np.testing.assert_allclose(rec.score(users[k:k + 1], rows[k])[0], scores[k], rtol=1e-5)


def test_a_pairs_score_does_not_depend_on_what_else_is_asked(rec):
    users = rec.users.index(["u0", "u3"])
    some = np.array([1, 4, 7])
    everything = rec.score(users, np.arange(N_ITEMS))
    np.testing.assert_allclose(rec.score(users, some), everything[:, some], rtol=1e-5)


def test_hybrid_load_names_each_kind_as_its_module_declares():
    import importlib

    from hybrid.recommend.saved import READERS

    for kind, (module, name) in READERS.items():
        module = importlib.import_module(module)
        assert module.KIND == kind and getattr(module, name).__name__ == name


def test_the_two_stage_content_part_reads_every_field_of_canonical_items(tmp_path):
    """Items given by their canonical fields (no free text): the content part weighs each field
    (here all at 1: no validation), saved with the model; a cold product is found by the words of
    its description though its title says nothing."""
    items = pd.DataFrame({"item_id": [f"m{i}" for i in range(N_ITEMS)],
                          "title": [f"Film {i}" for i in range(N_ITEMS)],
                          "description": [[f"<p>{TASTES[i % 3]}</p>"] for i in range(N_ITEMS)],
                          "category": [["Films"] for _ in range(N_ITEMS)]})
    rec = FACTORIES["two-stage"]().fit(ratings(), items)
    assert rec.terms.field_weights == {"description": 1.0, "category": 1.0, "title": 1.0}
    ids, _ = rec.recommend_for_new_user(text="haunted vampire", N=5)
    assert all(int(i[1:]) % 3 == 2 for i in ids), ids  # horror films only
    why = rec.explain("u2", ["m44"])[0]  # cold, a horror film; u2 likes horror
    assert why["words"] and {w["word"] for w in why["words"]} <= set(TASTES[2].split())
    rec.save(tmp_path / "model")
    assert hybrid.load(tmp_path / "model").terms.field_weights == rec.terms.field_weights
