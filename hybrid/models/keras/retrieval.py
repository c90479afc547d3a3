"""The retrieval stage of two-stage recommending: a two-tower Keras model.

Item tower: item-id embedding and the product's projected text vector -> a unit vector. During
training a share of item ids is hidden behind the "unknown item" row, so a product nobody rated
gets its vector from its text alone.

User tower: user-id embedding and the user's history - the item-tower vectors of the items they
liked, mean-pooled - -> a unit vector. A share of user ids is hidden in training too, so a person
the model never saw gets a vector from a few liked items and/or a sentence (encoded into the text
space and passed through the item tower as an item without an id).

Training: implicit feedback (ratings at or above ``threshold`` are likes), sampled softmax over
the other items of the batch with the log-q correction for their popularity (Yi et al. 2019),
the target left out of the history it is predicted from, early stopping on the loss of a
validation share of the *training* likes. The score of (user, item) is the dot product of the
two unit vectors, so retrieval is a maximum-inner-product search (``hybrid.models.ann``).
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from hybrid.core.config import RetrievalConfig
from hybrid.core.errors import InputFormatError
from hybrid.evaluation.splits import held_out
from hybrid.models.keras.optimizers import SparseEmbedding, make_optimizer
from hybrid.models.keras.training import EpochProgress, batches_of, epoch_steps, for_inference, row_batches


def liked_histories(users: np.ndarray, items: np.ndarray, n_users: int, length: int,
                    seed: int = 0) -> np.ndarray:
    """A ``n_users x length`` table of liked item indices per user, padded with -1.

    Users with more likes than ``length`` keep a random sample of them.

    Example:
        >>> liked_histories(np.array([0, 0, 1]), np.array([5, 7, 2]), 3, 2).tolist()
        [[5, 7], [2, -1], [-1, -1]]
    """
    table = np.full((n_users, length), -1, dtype=np.int32)
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    starts = np.searchsorted(users, np.arange(n_users))
    ends = np.searchsorted(users, np.arange(n_users), side="right")
    rng = np.random.default_rng(seed)
    for user in np.flatnonzero(ends > starts):
        mine = items[starts[user]:ends[user]]
        if len(mine) > length:
            mine = rng.choice(mine, length, replace=False)
        table[user, :len(mine)] = mine
    return table


class TwoTower(keras.Model):
    """The two towers and the in-batch softmax training objective.

    Inputs of ``call``: ``{"user": (B,), "item": (B,)}`` integer indices; the item text vectors
    and the users' histories are tables held by the model (``text``, ``history``), so a batch
    carries only ids. Output: the (B, B) matrix of corrected logits, row b's target at column b.
    """

    def __init__(self, n_users: int, n_items: int, text: np.ndarray, history: np.ndarray,
                 log_q: np.ndarray, config: RetrievalConfig, **kwargs):
        super().__init__(**kwargs)
        self.n_users, self.n_items, self.config = n_users, n_items, config
        seed = config.seed
        # rows: items, then "unknown item" (index n_items), then padding (n_items + 1)
        self.text = tf.constant(np.vstack([text, np.zeros((2, text.shape[1]), np.float32)]), tf.float32)
        self.histories = tf.constant(history, tf.int32)
        self.log_q = tf.constant(log_q, tf.float32)
        init = keras.initializers.RandomNormal(stddev=0.05, seed=seed)
        reg = keras.regularizers.L2(config.l2) if config.l2 else None
        self.item_embedding = SparseEmbedding(n_items + 2, config.dim, embeddings_initializer=init,
                                               embeddings_regularizer=reg, name="item_id")
        self.user_embedding = SparseEmbedding(n_users + 1, config.dim, embeddings_initializer=init,
                                               embeddings_regularizer=reg, name="user_id")
        self.text_projection = layers.Dense(config.text_units, activation="relu", name="text_projection",
                                            kernel_initializer=keras.initializers.GlorotUniform(seed + 1))
        self.item_out = layers.Dense(config.dim, name="item_out",
                                     kernel_initializer=keras.initializers.GlorotUniform(seed + 2))
        self.user_out = layers.Dense(config.dim, name="user_out",
                                     kernel_initializer=keras.initializers.GlorotUniform(seed + 3))
        self.seeds = keras.random.SeedGenerator(seed + 4)

    def set_likes(self, users: np.ndarray, items: np.ndarray) -> None:
        """The liked (user, item) pairs the user tower pools from (``liked_histories``)."""
        self.histories = tf.constant(liked_histories(np.asarray(users), np.asarray(items), self.n_users,
                                                     self.config.history, self.config.seed), tf.int32)

    # ------------------------------------------------------------ towers
    def item_vectors(self, ids, text):
        """Unit item vectors from item indices (``n_items`` = unknown) and text vectors."""
        mixed = ops.concatenate([self.item_embedding(ids), self.text_projection(text)], axis=-1)
        return _unit(self.item_out(mixed))

    def user_vectors(self, ids, pooled_history):
        """Unit user vectors from user indices (``n_users`` = unknown) and pooled histories."""
        return _unit(self.user_out(ops.concatenate([self.user_embedding(ids), pooled_history], axis=-1)))

    def pooled(self, history_ids, exclude=None, training=False):
        """Mean of the item-tower vectors of each row's history (padding -1 left out; so is
        ``exclude``, the target being predicted). Only the real entries go through the item
        tower: at Electronics size a user keeps about 11 likes of the 50 places, and the tower
        over the padding was most of a training step."""
        valid = history_ids >= 0
        if exclude is not None:
            valid = valid & (history_ids != exclude[:, None])
        where = tf.where(valid)  # (entries, 2): row, place
        ids = tf.gather_nd(history_ids, where)
        vectors = self.item_vectors(self._hide(ids, self.config.item_id_dropout, self.n_items) if training else ids,
                                    tf.gather(self.text, ids))
        rows, n_rows = where[:, 0], tf.shape(history_ids, out_type=tf.int64)[0]
        total = tf.math.unsorted_segment_sum(vectors, rows, n_rows)
        count = tf.reduce_sum(tf.cast(valid, total.dtype), axis=1, keepdims=True)
        return total / tf.maximum(count, 1.0)

    def _hide(self, ids, rate, unknown):
        if rate <= 0:
            return ids
        hide = keras.random.uniform(ops.shape(ids), seed=self.seeds) < rate
        return ops.where(hide, unknown, ids)

    # ------------------------------------------------------------ training
    def call(self, inputs, training=False):
        users, items = inputs["user"], inputs["item"]
        history = ops.take(self.histories, users, axis=0)
        pooled = self.pooled(history, exclude=items, training=training)
        user_ids = self._hide(users, self.config.user_id_dropout, self.n_users) if training else users
        item_ids = self._hide(items, self.config.item_id_dropout, self.n_items) if training else items
        u = self.user_vectors(user_ids, pooled)
        v = self.item_vectors(item_ids, ops.take(self.text, items, axis=0))
        logits = ops.matmul(u, ops.transpose(v)) / self.config.temperature
        if self.config.log_q:
            logits = logits - self.config.log_q * ops.take(self.log_q, items)[None, :]
        # the same item twice in a batch is not a negative of itself
        same = ops.equal(items[:, None], items[None, :])
        diagonal = ops.eye(ops.shape(items)[0], dtype="bool")
        return ops.where(same & ~diagonal, -1e9, logits)


def _unit(x):
    return x / ops.maximum(ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True)), 1e-12)


def _pairs(users, items, batch, seed, shuffle, repeat=False):
    users, items = tf.constant(users, tf.int32), tf.constant(items, tf.int32)

    def pairs(rows):
        return {"user": tf.gather(users, rows), "item": tf.gather(items, rows)}, tf.range(tf.shape(rows)[0])

    return batches_of(row_batches(int(users.shape[0]), batch, seed, shuffle, repeat), pairs)


def fit_retrieval(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, text: np.ndarray,
                  n_users: int, n_items: int, config: RetrievalConfig = RetrievalConfig(), log=None):
    """Train the two-tower model on the liked (user, item) pairs of the training rows.

    Returns ``(model, info)``: ``info`` has the learning curve, the best epoch, seconds, the
    likes used and ``trained_items`` (a mask: items with at least one like in training).
    """
    keras.utils.set_random_seed(config.seed)
    liked = np.asarray(ratings) >= config.threshold
    users, items = np.asarray(users)[liked].astype(np.int64), np.asarray(items)[liked].astype(np.int64)
    fit_rows, val_rows = held_out(len(users), config.validation_share if len(users) > 100 else 0.0, config.seed)
    counts = np.bincount(items[fit_rows], minlength=n_items).astype(np.float64)
    log_q = np.log(np.maximum(counts, 1.0) / max(1.0, counts.sum()))
    history = liked_histories(users[fit_rows], items[fit_rows], n_users, config.history, config.seed)
    model = TwoTower(n_users, n_items, text.astype(np.float32), history, log_q.astype(np.float32), config)
    model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate, table_rows=max(n_users, n_items)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=config.steps_per_execution)
    progress = EpochProgress(config.epochs, log, config.max_minutes, "retrieval", config.batch_size)
    callbacks, validation = [progress], None
    if len(val_rows):
        validation = _pairs(users[val_rows], items[val_rows], config.batch_size, config.seed, False)
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                       restore_best_weights=True))
    steps = epoch_steps(len(fit_rows), config.batch_size, config.epoch_rows, config.steps_per_execution)
    started = time.perf_counter()
    fitted = model.fit(_pairs(users[fit_rows], items[fit_rows], config.batch_size, config.seed, True,
                              repeat=steps is not None),
                       validation_data=validation, epochs=config.epochs, steps_per_epoch=steps,
                       callbacks=callbacks, shuffle=False, verbose=config.verbose)  # tf.data shuffles
    record = {k: [float(x) for x in v] for k, v in fitted.history.items()}
    best = int(np.argmin(record["val_loss"])) + 1 if "val_loss" in record else len(record["loss"])
    model.set_likes(users, items)  # at serving time a user's history is every like of the training rows
    optimizer = type(model.optimizer).__name__
    return for_inference(model), {"history": record, "best_epoch": best, "epochs_run": len(record["loss"]),
                   "epoch_rows": int(len(fit_rows) if steps is None else steps * config.batch_size),
                   "seconds": round(time.perf_counter() - started, 2), "likes": int(len(users)),
                   "stopped": progress.stopped, "optimizer": optimizer,
                   "trained_items": np.bincount(items[fit_rows], minlength=n_items) > 0}


def tower_functions(model: "TwoTower"):
    """``(text_items, new_users)``: the towers' unknown-item and unknown-user paths as compiled
    graphs (a request's one or two vectors cost about a millisecond, where eager Keras layer calls
    cost ten): text vectors -> item vectors, pooled liked-item vectors -> user vectors."""
    unknown_item, unknown_user = model.n_items, model.n_users
    text_items = tf.function(
        lambda text: model.item_vectors(tf.fill(tf.shape(text)[:1], unknown_item), text),
        input_signature=[tf.TensorSpec([None, model.text.shape[1]], tf.float32)], autograph=False)
    new_users = tf.function(
        lambda pooled: model.user_vectors(tf.fill(tf.shape(pooled)[:1], unknown_user), pooled),
        input_signature=[tf.TensorSpec([None, model.config.dim], tf.float32)], autograph=False)
    return text_items, new_users


# ---------------------------------------------------------------- persistence
def tower_arrays(model: TwoTower) -> dict[str, np.ndarray]:
    """A tower's weights (``w000``... in ``get_weights`` order) and its tables, by name."""
    arrays = {f"w{k:03d}": w for k, w in enumerate(model.get_weights())}
    arrays.update(text=model.text.numpy()[:model.n_items], histories=model.histories.numpy(),
                  log_q=model.log_q.numpy())
    return arrays


def serving_tower(arrays: dict[str, np.ndarray], config: RetrievalConfig) -> TwoTower:
    """The towers as serving uses them: known users' and items' vectors are precomputed, so only
    the unknown-user and unknown-item rows of the id tables are needed (new users and products
    known by their text). At a million products the full id tables, text table and histories
    held in TensorFlow were some 0.6 GB of the serving process."""
    text, histories = np.asarray(arrays["text"]), np.asarray(arrays["histories"])
    tower = TwoTower(0, 0, text[:0], histories[:0], np.zeros(0, np.float32), config)
    # creates the weights (``call`` would index the empty tables)
    tower.item_vectors(np.zeros(1, np.int32), np.zeros((1, text.shape[1]), np.float32))
    tower.user_vectors(np.zeros(1, np.int32), np.zeros((1, config.dim), np.float32))
    weights = [arrays[name] for name in sorted(name for name in arrays if name.startswith("w"))]
    if len(weights) != len(tower.weights):
        raise InputFormatError(f"{len(weights)} saved tower weights, the towers have {len(tower.weights)}")
    values = []
    for saved, mine in zip(weights, tower.weights):
        if saved.shape != tuple(mine.shape):  # an id table: its unknown (and padding) rows are its last
            if saved.ndim != 2 or saved.shape[1] != mine.shape[1] or len(saved) < mine.shape[0]:
                raise InputFormatError(f"a saved tower weight of shape {saved.shape} where {tuple(mine.shape)} was expected")
            saved = saved[len(saved) - mine.shape[0]:]
        values.append(np.asarray(saved))
    tower.set_weights(values)
    return tower
