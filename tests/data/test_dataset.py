"""Merge, filter, encode."""

import numpy as np
import pyarrow as pa
import pytest

from hybrid.core.errors import InputFormatError, StageError, UnknownIdError
from hybrid.data.dataset import encode, load_dataset, min_count_mask, save_dataset
from hybrid.data.schema import RATINGS_SCHEMA, item_vectors_schema


def test_single_pass_filter_counts_on_the_original_data():
    # u2 has 2 ratings, but one is of item c which has only 1 -> single pass keeps u2's a
    users = np.array([0, 0, 1, 1, 2, 2])
    items = np.array([0, 1, 0, 2, 0, 1])
    assert min_count_mask(users, items, 2, 2).tolist() == [True, True, True, False, True, True]


def test_iterated_filter_reaches_the_k_core():
    users = np.array([0, 0, 1, 1, 2, 2])
    items = np.array([0, 1, 0, 2, 0, 1])
    # dropping (1, 2) leaves user 1 with one rating, so (1, 0) goes too
    assert min_count_mask(users, items, 2, 2, iterate=True).tolist() == [True, True, False, False, True, True]


def tables():
    ratings = pa.Table.from_pylist([
        {"user_id": "u2", "item_id": "b", "rating": 4.0, "timestamp": 5},
        {"user_id": "u1", "item_id": "a", "rating": 5.0, "timestamp": None},
        {"user_id": "u1", "item_id": "b", "rating": 3.0, "timestamp": 7},
        {"user_id": "u3", "item_id": "notext", "rating": 1.0, "timestamp": 1},
        {"user_id": "u3", "item_id": "nometa", "rating": 2.0, "timestamp": 1},
    ], schema=RATINGS_SCHEMA)
    item_text = pa.table({"item_id": ["c", "b", "a", "notext", "cold"],
                          "text": ["cable", "mouse", "keyboard", "", "new gadget"]})
    vectors = pa.Table.from_pylist([
        {"item_id": i, "vector": [float(n), float(n) + 0.5], "known": i != "notext"}
        for n, i in enumerate(["cold", "notext", "a", "b", "c"])], schema=item_vectors_schema(2))
    titles = pa.table({"item_id": ["a", "b", "c", "cold", "notext"],
                       "title": ["Keyboard", "Mouse", None, "Gadget", "X"]})
    return ratings, item_text, vectors, titles


def test_encode_drops_ratings_without_text_and_keeps_cold_items():
    data, report = encode(*tables())
    assert report["ratings_dropped_no_text"] == 1  # "notext": metadata, but no words
    assert report["ratings_dropped_no_metadata"] == 1  # "nometa": no metadata line at all
    assert data.items.values.tolist() == ["a", "b", "c", "cold"]  # sorted, stable
    assert data.users.values.tolist() == ["u1", "u2"]  # u3 lost every rating
    assert data.items.ids(data.cold_items).tolist() == ["c", "cold"]
    assert data.item_ratings.tolist() == [1, 2, 0, 0]
    triples = {(data.users.ids([u])[0], data.items.ids([i])[0], r)
               for u, i, r in zip(data.user_index, data.item_index, data.rating)}
    assert triples == {("u2", "b", 4.0), ("u1", "a", 5.0), ("u1", "b", 3.0)}
    assert data.timestamp[data.items.index(["a"])[0] == data.item_index][0] == -1


def test_vectors_and_titles_are_aligned_with_the_item_index():
    data, _ = encode(*tables())
    expected = {"cold": 0, "a": 2, "b": 3, "c": 4}
    for item_id, n in expected.items():
        row = data.items.index([item_id])[0]
        np.testing.assert_array_equal(data.item_vectors[row], [n, n + 0.5])
    assert data.item_titles.tolist() == ["Keyboard", "Mouse", None, "Gadget"]


def test_dataset_round_trips_through_files(tmp_path):
    data, _ = encode(*tables())
    paths = [tmp_path / n for n in ("ratings.parquet", "users.parquet", "items.parquet", "item_vectors.npy")]
    save_dataset(data, *paths)
    loaded = load_dataset(tmp_path)
    assert loaded.items.values.tolist() == data.items.values.tolist()
    np.testing.assert_array_equal(loaded.item_vectors, data.item_vectors)
    np.testing.assert_array_equal(loaded.user_index, data.user_index)
    assert loaded.item_titles.tolist() == data.item_titles.tolist()
    with pytest.raises(UnknownIdError, match="nobody"):
        loaded.users.index(["nobody"])


def test_loading_a_folder_that_is_not_a_dataset_says_what_to_do(tmp_path):
    with pytest.raises(InputFormatError, match="hybrid run"):
        load_dataset(tmp_path)


def test_ratings_sharing_no_item_with_the_metadata_stop_with_the_reason():
    ratings, item_text, vectors, titles = tables()
    strangers = pa.Table.from_pylist([{"user_id": "u", "item_id": f"x{i}", "rating": 5.0,
                                       "timestamp": 1} for i in range(4)], schema=RATINGS_SCHEMA)
    with pytest.raises(StageError, match="none of the 4 ratings is of an item in the metadata"):
        encode(strangers, item_text, vectors, titles)


def test_ratings_of_textless_items_only_stop_with_the_reason():
    ratings, item_text, vectors, titles = tables()
    textless = ratings.filter(pa.array([i in ("notext", "nometa") for i in ratings.column("item_id").to_pylist()]))
    with pytest.raises(StageError, match="every rated item lacks usable text"):
        encode(textless, item_text, vectors, titles)


def test_minimum_counts_that_leave_nothing_say_so():
    with pytest.raises(StageError, match="--min-user-ratings 50"):
        encode(*tables(), min_user_ratings=50)
