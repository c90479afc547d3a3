"""The Keras model family, one builder behind one name.

Every model takes ``{"user": int, "item": int, "text": float[dim]}`` and returns one number: a
predicted rating (explicit models) or a like-probability (``implicit``). Item index
``n_items`` is reserved for "an item the model never saw": the hybrid models learn it by item-id
dropout (a share of training examples have their item id hidden), so a cold item is scored from
its text vector through the same network.

    mf         user . item embeddings + global mean
    mf-bias    the same plus user/item biases, sigmoid-scaled into the rating range
    deep       concatenated embeddings -> dense layers with dropout
    hybrid     user embedding plus SVD++'s pooled history of the items the user rated, item
               embedding and projected text vector concatenated -> dense layers, plus their
               dot product, biases and sigmoid scaling (the default)
    neumf      a dot-product (GMF) branch and an MLP branch fused; sees the text too
    implicit   hybrid architecture, liked / not-liked with sampled negatives, cross-entropy
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from hybrid.core.config import USES_HISTORY, USES_TEXT, ModelConfig, check_model_name
from hybrid.core.errors import ArgumentError


@keras.saving.register_keras_serializable(package="hybrid")
class ItemIdDropout(layers.Layer):
    """In training, replaces a share ``rate`` of item ids by the unknown-item id."""

    def __init__(self, rate: float, unknown: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.unknown = unknown
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        if not training or self.rate <= 0:
            return ids
        hide = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.rate
        return ops.where(hide, ops.cast(self.unknown, ids.dtype), ids)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "unknown": self.unknown, "seed": self.seed}


@keras.saving.register_keras_serializable(package="hybrid")
class RatingScale(layers.Layer):
    """Maps a real number into (low, high) with a sigmoid, centred on ``centre``."""

    def __init__(self, low: float, high: float, centre: float, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.centre = float(low), float(high), float(centre)
        span = self.high - self.low
        p = min(max((self.centre - self.low) / span, 1e-3), 1 - 1e-3)
        self.offset = float(ops.convert_to_numpy(ops.log(p / (1 - p))))

    def call(self, z):
        return self.low + (self.high - self.low) * ops.sigmoid(z + self.offset)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high, "centre": self.centre}


@keras.saving.register_keras_serializable(package="hybrid")
class AddConstant(layers.Layer):
    def __init__(self, value: float, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x):
        return x + self.value

    def get_config(self):
        return {**super().get_config(), "value": self.value}


def history_table(user_index, item_index, n_users: int, n_items: int, length: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The items each user rated, for ``UserHistory``: an ``n_users x length`` table of item
    indices (``n_items`` pads; a seeded sample of ``length`` items for users with more) and the
    scale ``1 / sqrt(items kept)`` (0 for a user with none).

    Example:
        >>> table, scale = history_table([0, 0, 1], [2, 0, 1], n_users=3, n_items=3, length=2)
        >>> sorted(table[0].tolist()), table[2].tolist(), [round(float(x), 3) for x in scale]
        ([0, 2], [3, 3], [0.707, 1.0, 0.0])
    """
    users, items = np.asarray(user_index, np.int64), np.asarray(item_index, np.int64)
    order = np.lexsort((np.random.default_rng(seed).random(len(users)), users))  # shuffled within user
    users, items = users[order], items[order]
    starts = np.searchsorted(users, np.arange(n_users))
    rank = np.arange(len(users)) - starts[users]
    keep = rank < length
    table = np.full((n_users, length), n_items, np.int32)
    table[users[keep], rank[keep]] = items[keep]
    kept = np.bincount(users[keep], minlength=n_users)
    scale = np.divide(1.0, np.sqrt(kept), out=np.zeros(n_users), where=kept > 0).astype(np.float32)
    return table, scale


@keras.saving.register_keras_serializable(package="hybrid")
class UserHistory(layers.Layer):
    """SVD++'s implicit-feedback term (Koren 2008): ``|N(u)|^-1/2 sum over j in N(u) of y_j``,
    N(u) the items user u rated in training (at most ``length`` of them), ``y`` an item table of
    its own. A user is thus described by what they rated, not only by their id.

    The history is a non-trainable weight, saved with the model; ``set_history`` fills it
    (training sets it from the rows it fits, so validation never sees its own items in the
    history). A user without history (or before it is set) gets zeros. ``l2`` penalises the
    pooled rows per example.
    """

    def __init__(self, n_users: int, n_items: int, length: int, dim: int, l2: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_items, self.length, self.dim = n_users, n_items, length, dim
        self.l2, self.seed = l2, seed

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.n_users, self.length), dtype="int32", trainable=False,
                                     initializer="zeros", name="history")
        self.scale = self.add_weight(shape=(self.n_users,), trainable=False, initializer="zeros",
                                     name="history_scale")
        self.items = self.add_weight(shape=(self.n_items + 1, self.dim), name="history_items",
                                     initializer=keras.initializers.RandomNormal(stddev=0.05, seed=self.seed))

    def set_history(self, table: np.ndarray, scale: np.ndarray) -> None:
        self.table.assign(table.astype(np.int32))
        self.scale.assign(scale.astype(np.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def call(self, user):
        import tensorflow as tf

        users, where = tf.unique(user)  # a batch repeats its heavy users: pool each once
        ids = tf.gather(self.table.value, users)  # unique users x length
        rows = tf.gather(self.items.value, ids) * tf.cast(ids < self.n_items, self.compute_dtype)[..., None]
        scale = tf.gather(self.scale.value, users)
        if self.l2:
            penalty = tf.reduce_sum(tf.square(rows), [1, 2]) * tf.square(scale)
            self.add_loss(self.l2 * tf.reduce_mean(tf.gather(penalty, where)))
        return tf.gather(tf.reduce_sum(rows, 1) * scale[:, None], where)

    def get_config(self):
        return {**super().get_config(), "n_users": self.n_users, "n_items": self.n_items,
                "length": self.length, "dim": self.dim, "l2": self.l2, "seed": self.seed}


def set_history(model: keras.Model, table: np.ndarray, scale: np.ndarray) -> bool:
    """Fill the model's ``UserHistory`` (if it has one); True when it did."""
    for layer in model.layers:
        if isinstance(layer, UserHistory):
            layer.set_history(table, scale)
            return True
    return False


def _embedding(n: int, dim: int, l2: float, name: str, seed: int):
    """An id embedding whose penalty is ``l2 * |row|^2`` for each row an example looks up,
    averaged over the batch (Keras divides activity penalties by the batch size): the penalty
    SGD matrix factorisation applies, so a row is held back in proportion to its use, and the
    cost of a step does not grow with the table (a weight penalty would touch every row)."""
    from hybrid.models.keras.optimizers import SparseEmbedding  # rows gathered from the variable: see LazyAdam

    return SparseEmbedding(
        n, dim, name=name,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05, seed=seed),
        activity_regularizer=keras.regularizers.l2(l2) if l2 else None)


def _mlp(x, hidden, dropout, seed, prefix):
    for k, units in enumerate(hidden):
        x = layers.Dense(units, activation="relu", name=f"{prefix}_dense{k}",
                         kernel_initializer=keras.initializers.GlorotUniform(seed=seed + k))(x)
        if dropout:
            x = layers.Dropout(dropout, seed=seed + k, name=f"{prefix}_dropout{k}")(x)
    return x


def _text_model_output(config: ModelConfig, user, item_ids, text, n_users: int, n_items: int, biases, scaled):
    """The output of the models that read the text vector (hybrid, neumf, implicit)."""
    name, k, l2, seed = config.name, config.factors, config.l2, config.seed
    n_item_rows = n_items + 1
    u = _embedding(n_users, k, l2, "user_embedding", seed)(user)
    if name in USES_HISTORY and config.history > 0:
        history = UserHistory(n_users, n_items, config.history, k, l2, seed + 5, name="user_history")(user)
        u = layers.Add(name="user_with_history")([u, history])
    i = _embedding(n_item_rows, k, l2, "item_embedding", seed + 1)(item_ids)
    t = layers.Dense(config.text_units, activation="relu", name="text_projection",
                     kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2))(text)
    if name == "neumf":
        u2 = _embedding(n_users, k, l2, "user_embedding_mlp", seed + 3)(user)
        i2 = _embedding(n_item_rows, k, l2, "item_embedding_mlp", seed + 4)(item_ids)
        gmf = layers.Multiply(name="gmf")([u, i])
        mlp = _mlp(layers.Concatenate()([u2, i2, t]), config.hidden, config.dropout, seed, "mlp")
        z = layers.Dense(1, name="fuse")(layers.Concatenate()([gmf, mlp]))
    else:
        x = _mlp(layers.Concatenate()([u, i, t]), config.hidden, config.dropout, seed, "mlp")
        z = layers.Add()([layers.Dense(1, name="mlp_out")(x), layers.Dot(axes=1)([u, i])])
    if name == "implicit":
        out = layers.Activation("sigmoid", name="like")(biases(z))
    else:
        out = scaled(biases(z))
    return out


def network_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """The weights of a trained ``implicit`` network by the names ``hybrid.models.like_network``
    reads (its forward pass in NumPy)."""
    if model.name != "implicit":
        raise ArgumentError(f"only the implicit network answers in NumPy, not {model.name!r}")
    layer = {layer.name: layer for layer in model.layers}
    arrays = {name: np.asarray(layer[name].embeddings)
              for name in ("user_embedding", "item_embedding", "user_bias", "item_bias")}
    arrays["text_kernel"], arrays["text_bias"] = (np.asarray(w) for w in layer["text_projection"].weights)
    arrays["out_kernel"], arrays["out_bias"] = (np.asarray(w) for w in layer["mlp_out"].weights)
    k = 0
    while f"mlp_dense{k}" in layer:
        arrays[f"hidden{k}_kernel"], arrays[f"hidden{k}_bias"] = (np.asarray(w) for w in layer[f"mlp_dense{k}"].weights)
        k += 1
    return arrays


def build_model(config: ModelConfig, n_users: int, n_items: int, text_dim: int) -> keras.Model:
    """A compiled-ready Keras model of family ``config.name``.

    ``n_items`` counts the items with an id embedding; index ``n_items`` is the unknown item.

    Example:
        >>> model = build_model(ModelConfig("mf-bias"), n_users=10, n_items=20, text_dim=8)
        >>> sorted(model.input.keys()) if isinstance(model.input, dict) else len(model.inputs)
        ['item', 'text', 'user']
    """
    check_model_name(config.name)
    keras.utils.set_random_seed(config.seed)
    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")
    text = keras.Input(shape=(text_dim,), dtype="float32", name="text")
    name, k, l2, seed = config.name, config.factors, config.l2, config.seed
    item_ids = item
    if name in USES_TEXT and config.item_dropout > 0:
        item_ids = ItemIdDropout(config.item_dropout, n_items, seed, name="item_id_dropout")(item)
    n_item_rows = n_items + 1

    def biases(z):
        ub = layers.Flatten()(_embedding(n_users, 1, l2, "user_bias", seed + 10)(user))
        ib = layers.Flatten()(_embedding(n_item_rows, 1, l2, "item_bias", seed + 11)(item_ids))
        return layers.Add(name="with_biases")([z, ub, ib])

    def scaled(z):
        return RatingScale(config.min_rating, config.max_rating, config.global_mean, name="rating")(z)

    if name == "mf":
        u = _embedding(n_users, k, l2, "user_embedding", seed)(user)
        i = _embedding(n_item_rows, k, l2, "item_embedding", seed + 1)(item_ids)
        out = AddConstant(config.global_mean, name="rating")(layers.Dot(axes=1)([u, i]))
    elif name == "mf-bias":
        u = _embedding(n_users, k, l2, "user_embedding", seed)(user)
        i = _embedding(n_item_rows, k, l2, "item_embedding", seed + 1)(item_ids)
        out = scaled(biases(layers.Dot(axes=1)([u, i])))
    elif name == "deep":
        u = _embedding(n_users, k, l2, "user_embedding", seed)(user)
        i = _embedding(n_item_rows, k, l2, "item_embedding", seed + 1)(item_ids)
        x = _mlp(layers.Concatenate()([u, i]), config.hidden, config.dropout, seed, "mlp")
        out = AddConstant(config.global_mean, name="rating")(layers.Dense(1)(x))
    else:  # the models that read the text vector
        out = _text_model_output(config, user, item_ids, text, n_users, n_items, biases, scaled)
    return keras.Model({"user": user, "item": item, "text": text}, out, name=name.replace("-", "_"))
