"""LazyAdam and SparseEmbedding: Adam's step on the rows a batch looked up, nothing elsewhere."""

import keras
import numpy as np
from keras import layers

import hybrid.models.keras.networks  # noqa: F401  (the Keras backend)
from hybrid.models.keras.optimizers import LazyAdam, SparseEmbedding


def model(optimizer, embedding=SparseEmbedding, rows=500):
    keras.utils.set_random_seed(0)
    ids = keras.Input((), dtype="int32")
    hidden = embedding(rows, 8, name="table")(ids)
    out = layers.Dense(1, name="out")(hidden)
    built = keras.Model(ids, out)
    built.compile(optimizer=optimizer, loss="mse")
    return built


def test_sparse_embedding_looks_up_like_keras_and_saves_as_itself(tmp_path):
    ours, theirs = model("adam"), model("adam", layers.Embedding)
    theirs.set_weights(ours.get_weights())
    ids = np.array([0, 3, 3, 499], np.int32)
    np.testing.assert_array_equal(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0))
    ours.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("table"), SparseEmbedding)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), ours.predict(ids, verbose=0))


def test_lazy_adam_steps_touched_rows_like_adam_and_leaves_the_rest():
    lazy, adam = model(LazyAdam(0.05)), model(keras.optimizers.Adam(0.05))
    adam.set_weights(lazy.get_weights())
    start = lazy.get_layer("table").get_weights()[0].copy()
    rng = np.random.default_rng(1)
    ids = np.array([4, 9, 120, 7], np.int32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    lazy.train_on_batch(ids, y)
    adam.train_on_batch(ids, y)
    after_lazy, after_adam = lazy.get_layer("table").get_weights()[0], adam.get_layer("table").get_weights()[0]
    np.testing.assert_allclose(after_lazy[ids], after_adam[ids], atol=1e-6)  # float32 order of operations
    untouched = np.setdiff1d(np.arange(500), ids)
    np.testing.assert_array_equal(after_lazy[untouched], start[untouched])
    np.testing.assert_allclose(lazy.get_layer("out").get_weights()[0], adam.get_layer("out").get_weights()[0],
                               rtol=1e-6)
    # a step on other rows: the first rows do not move (their moments wait for their next look-up)
    lazy.train_on_batch(np.array([200, 201], np.int32), y[:2])
    np.testing.assert_array_equal(lazy.get_layer("table").get_weights()[0][ids], after_lazy[ids])


def test_a_row_looked_up_twice_gets_one_step_of_its_summed_gradient():
    """Adam's first step is the learning rate in every coordinate (m/sqrt(v) = g/|g|), for a
    row looked up twice as for any other. (Keras's own Adam squares a repeated row's gradient
    parts before summing them, so such rows take other steps there.)"""
    lazy = model(LazyAdam(0.05))
    start = lazy.get_layer("table").get_weights()[0].copy()
    ids = np.array([4, 7, 7, 9], np.int32)
    lazy.train_on_batch(ids, np.random.default_rng(3).normal(size=(4, 1)).astype(np.float32))
    moved = np.abs(lazy.get_layer("table").get_weights()[0][[4, 7, 9]] - start[[4, 7, 9]])
    np.testing.assert_allclose(moved, 0.05, rtol=1e-3)


def test_lazy_adam_learns_a_lookup_table():
    rng = np.random.default_rng(2)
    target = rng.normal(size=500).astype(np.float32)
    fitted = model(LazyAdam(0.05))
    ids = rng.integers(0, 500, 20_000).astype(np.int32)
    fitted.fit(ids, target[ids], batch_size=256, epochs=8, verbose=0)
    predicted = fitted.predict(np.arange(500, dtype=np.int32), verbose=0).ravel()
    assert np.mean((predicted - target) ** 2) < 0.05 * np.var(target)


def test_the_optimizer_setting_is_checked_and_auto_goes_lazy_for_large_tables():
    import pytest

    from hybrid.core.config import TrainConfig, check_settings
    from hybrid.core.errors import ArgumentError
    from hybrid.models.keras.optimizers import make_optimizer

    assert type(make_optimizer("auto", 1e-3, table_rows=1_682)) is keras.optimizers.Adam
    assert type(make_optimizer("auto", 1e-3, table_rows=1_000_000)) is LazyAdam
    assert type(make_optimizer("auto", 1e-3, weight_decay=0.01, table_rows=1_000_000)) is keras.optimizers.AdamW
    with pytest.raises(ArgumentError, match="optimizer must be one of auto, adam, lazy-adam, got 'sgd'"):
        check_settings({"optimizer": "sgd"}, TrainConfig, "--train-param")
    with pytest.raises(ArgumentError, match="weight_decay needs optimizer adam"):
        check_settings({"optimizer": "lazy-adam", "weight_decay": 0.1}, TrainConfig, "--train-param")
