"""The re-ranking network in NumPy gives the Keras network's scores, and is saved and loaded
without Keras."""

import numpy as np
import pytest

from hybrid.core.config import ModelConfig, TrainConfig
from hybrid.core.errors import InputFormatError
from hybrid.models.like_network import LikeNetwork


@pytest.fixture(scope="module")
def trained():
    """An ``implicit`` network trained two epochs on synthetic likes (users like items whose
    text points their way), the way the two-stage recommender fits it."""
    from hybrid.models.keras.training import fit_model

    rng = np.random.default_rng(0)
    n_users, n_items, dim = 60, 80, 12
    text = rng.normal(size=(n_items + 1, dim)).astype(np.float32)
    text[-1] = 0  # the unknown item's row
    taste = rng.normal(size=(n_users, dim))
    users = np.repeat(np.arange(n_users), 8)
    items = np.concatenate([np.argsort(-(text[:-1] @ t))[:8] for t in taste])
    model, _ = fit_model(ModelConfig("implicit", factors=8, hidden=(16, 8), text_units=8),
                         TrainConfig(epochs=2, batch_size=64, validation_share=0.0, verbose=0),
                         users, items, np.ones(len(users), np.float32), text, n_users, n_items)
    return model, text, n_users, n_items


def test_numpy_scores_are_the_keras_networks(trained):
    from hybrid.models.keras.networks import network_arrays

    model, text, n_users, n_items = trained
    rng = np.random.default_rng(1)
    users = rng.integers(0, n_users, 500)
    items = rng.integers(0, n_items + 1, 500)  # the unknown-item row too (a product known by its text)
    expected = np.asarray(model({"user": users.astype(np.int32), "item": items.astype(np.int32), "text": text[items]},
                                training=False)).ravel()
    network = LikeNetwork(network_arrays(model))
    got = network.scores(users, items, text[items], chunk=128)  # several chunks
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and 0 < got.min() and got.max() < 1
    assert len(network.hidden) == 2 and (network.n_users, network.n_items) == (n_users, n_items)


def test_a_saved_network_loads_memory_mapped_and_scores_the_same(trained, tmp_path):
    from hybrid.models.keras.networks import network_arrays

    model, text, _, _ = trained
    network = LikeNetwork(network_arrays(model))
    network.save(tmp_path / "network")
    loaded = LikeNetwork.load(tmp_path / "network")
    assert isinstance(loaded.arrays["item_embedding"].base, np.memmap)  # a view of the map, not a copy
    users, items = np.arange(40), np.arange(40)
    np.testing.assert_array_equal(loaded.scores(users, items, text[items]), network.scores(users, items, text[items]))
    (tmp_path / "network" / "hidden1_bias.npy").unlink()
    with pytest.raises(InputFormatError, match="network: lacks hidden1_bias"):
        LikeNetwork.load(tmp_path / "network")


def test_only_the_implicit_network_is_taken(trained):
    from hybrid.core.errors import ArgumentError
    from hybrid.models.keras.networks import build_model, network_arrays

    with pytest.raises(ArgumentError, match="only the implicit network"):
        network_arrays(build_model(ModelConfig("mf-bias"), 5, 5, 3))
