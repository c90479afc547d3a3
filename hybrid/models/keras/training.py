"""Training the Keras models: tf.data input, early stopping on a validation split carved from
the training data (never the test set), best-weights restore, fixed seeds."""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from hybrid.core.config import USES_HISTORY, ModelConfig, TrainConfig  # noqa: F401  (TrainConfig re-exported)
from hybrid.evaluation.splits import held_out
from hybrid.models.keras.networks import build_model, history_table, set_history
from hybrid.models.keras.optimizers import make_optimizer


class EpochProgress(keras.callbacks.Callback):
    """A line per epoch (losses, seconds, estimated time left) for ``log``, a line every
    ``every`` seconds (``hybrid.core.progress.LINE_EVERY``) within a long epoch (steps done, examples/s, when the epoch ends), and a
    time budget: with ``max_minutes`` > 0 training stops after the epoch past which the next
    one would overrun it (early stopping, when present, then restores the best weights as usual).

    ``stopped`` says why training ended: "time budget", "early stopping" or "epochs";
    ``epoch_seconds`` the time from the start of training to the end of its last epoch (the
    first epoch's tracing and every validation pass included).
    """

    def __init__(self, epochs: int, log=None, max_minutes: float = 0.0, what: str = "training",
                 batch_size: int = 0, every: float | None = None):
        from hybrid.core import progress

        super().__init__()
        self.epochs, self.log, self.budget = epochs, log, max_minutes * 60.0
        self.what, self.batch_size = what, batch_size
        self.every = progress.LINE_EVERY if every is None else every
        self.stopped = "epochs"
        self.epoch_seconds = 0.0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_started = epoch, time.perf_counter()
        self.last_line = self.epoch_started

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.log is None or now - self.last_line < self.every:
            return
        self.last_line = now
        steps, done = self.params.get("steps"), batch + 1
        done = min(done, steps) if steps else done  # with steps_per_execution, the last group may overshoot
        rate = done / (now - self.epoch_started)
        line = f"{self.what}: epoch {self.epoch + 1}/{self.epochs}, step {done:,}/{f'{steps:,}' if steps else '?'}"
        if self.batch_size:
            line += f", {rate * self.batch_size:,.0f} examples/s"
        if steps:
            line += f", epoch ends in {(steps - done) / rate / 60:.1f} min"
        self.log(line)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = self.epoch_seconds = time.perf_counter() - self.started
        per_epoch = elapsed / (epoch + 1)
        if self.log is not None:
            losses = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if "loss" in k)
            left = per_epoch * (self.epochs - epoch - 1)
            self.log(f"{self.what}: epoch {epoch + 1}/{self.epochs}, {losses}, {elapsed:.0f} s, "
                     f"at most {left / 60:.1f} min left")
        if self.budget and elapsed + per_epoch > self.budget and epoch + 1 < self.epochs:
            self.model.stop_training = True
            self.stopped = "time budget"
            if self.log is not None:
                self.log(f"{self.what}: stopping at the time budget ({self.budget / 60:g} min)")

    def on_train_end(self, logs=None):
        if self.stopped == "epochs" and self.model.stop_training:
            self.stopped = "early stopping"


def for_inference(model: keras.Model) -> keras.Model:
    """The model with one step per predict call, and without what only training reads. Keras
    predicts with the compiled ``steps_per_execution`` too, and with more than one step a call
    whose last group of batches is shorter retraces the predict function: at every call of a
    ranking loop (seconds each). A fitted model's optimizer goes (its slots are two more copies
    of every embedding row it updated: some 0.25 GB at 800k products), with the compiled train
    step and the compile settings that refer to it; it predicts and saves as before, and is
    compiled again before any further training."""
    model.steps_per_execution = 1
    model.predict_function = None
    if getattr(model, "optimizer", None) is not None:
        del model.optimizer  # (TensorFlow tracks it as a dependency while it is an attribute)
        model.optimizer = None
        model.train_function = model.test_function = None
        model._compile_config = None  # holds the optimizer object too
        model.compiled = False
    return model


def validation_split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation) of the *training* data; the test set is never seen. Ten
    rows or fewer are all kept."""
    return held_out(n, share if n > 10 else 0.0, seed)


def row_batches(n: int, batch: int, seed: int, shuffle: bool, repeat: bool = False) -> tf.data.Dataset:
    """Batches of row positions ``0..n-1``: in order, or a fresh seeded permutation every time
    the dataset is iterated (every epoch). Shuffling whole index arrays instead of rows one by
    one (``Dataset.shuffle``) keeps the input pipeline a small share of one core at millions
    of rows.

    ``repeat``: an endless stream of full batches, a fresh permutation every pass over the rows
    (the last ``n % batch`` rows of a pass, different ones each pass, wait for the next), for
    epochs shorter than a pass (``epoch_steps``)."""
    if not shuffle and not repeat:
        return tf.data.Dataset.range(0, n, batch).map(lambda b: tf.range(b, tf.minimum(b + batch, n)))
    # with repeat only full batches: their starts stop where a whole batch still fits
    starts = tf.data.Dataset.range(0, max(n - batch + 1, 1) if repeat else n, batch)

    def permuted(pass_seed):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                         seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)]))
        return starts.map(lambda b: order[b:b + batch])

    if repeat:
        return tf.data.Dataset.random(seed=seed).flat_map(permuted)
    epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    n_batches = -(-n // batch)  # stated, so that Keras knows an epoch's steps from the first one
    return epoch_seeds.flat_map(permuted).apply(tf.data.experimental.assert_cardinality(n_batches))


def batches_of(rows: tf.data.Dataset, features) -> tf.data.Dataset:
    """``rows`` (batches of row positions) mapped to model inputs by ``features`` on the
    machine's cores, a few batches ahead, with tf.data's autotuning off. Its optimisation
    thread sleeps up to a minute between rounds, and deleting an iterator waits for it to wake:
    at Electronics size the hybrid network's fit call ended 30-37 s after its last epoch in 3 of
    6 runs (a native stack showed ``RootDataset::Iterator``'s destructor waiting on that
    thread). The map is a few gathers per batch: fixed parallelism keeps up with training."""
    options = tf.data.Options()
    options.autotune.enabled = False
    parallel = max(1, min(4, os.cpu_count() or 1))
    return rows.map(features, num_parallel_calls=parallel).prefetch(2).with_options(options)


def epoch_steps(n: int, batch: int, epoch_rows: int, steps_per_execution: int = 1) -> int | None:
    """Steps of an epoch shorter than a pass over ``n`` training rows: None (an epoch is a pass)
    up to ``epoch_rows`` rows, else about ``epoch_rows`` rows' worth, a whole number of
    executions. At millions of ratings one pass over-fits already (the hybrid network's best
    validation loss came after its first of 3.4M rows), so early stopping must look more often
    than once a pass, and patience must not cost whole passes.

    Example:
        >>> epoch_steps(72_000, 1024, 1_000_000), epoch_steps(3_400_000, 1024, 1_000_000, 8)
        (None, 984)
    """
    if epoch_rows <= 0 or n <= epoch_rows:
        return None
    executions = -(-epoch_rows // (batch * steps_per_execution))
    return executions * steps_per_execution


def _explicit_dataset(users, items, ratings, vectors, batch, seed, shuffle, repeat=False):
    users, items = tf.constant(users, tf.int32), tf.constant(items, tf.int32)
    ratings = tf.constant(ratings, tf.float32)

    def features(rows):
        i = tf.gather(items, rows)
        return {"user": tf.gather(users, rows), "item": i, "text": tf.gather(vectors, i)}, tf.gather(ratings, rows)

    return batches_of(row_batches(int(ratings.shape[0]), batch, seed, shuffle, repeat), features)


def _implicit_dataset(users, items, vectors, n_items, negatives, batch, seed, shuffle, repeat=False):
    n_rows = len(users)
    users, items = tf.constant(users, tf.int32), tf.constant(items, tf.int32)

    def with_negatives(rows):
        u, i = tf.gather(users, rows), tf.gather(items, rows)
        n = tf.shape(u)[0] * negatives
        neg_items = tf.random.uniform((n,), 0, n_items, dtype=tf.int32)
        all_users = tf.concat([u, tf.repeat(u, negatives)], 0)
        all_items = tf.concat([i, neg_items], 0)
        labels = tf.concat([tf.ones_like(u, tf.float32), tf.zeros((n,), tf.float32)], 0)
        return {"user": all_users, "item": all_items, "text": tf.gather(vectors, all_items)}, labels

    return batches_of(row_batches(n_rows, batch, seed, shuffle, repeat), with_negatives)


def fit_model(model_config: ModelConfig, train_config: TrainConfig, user_index: np.ndarray,
              item_index: np.ndarray, rating: np.ndarray, item_vectors: np.ndarray,
              n_users: int, n_items: int, log=None) -> tuple[keras.Model, dict]:
    """Build and train one model; returns it (best validation weights) and its history.

    ``item_vectors`` has a row per item index, plus one for the unknown item (zeros). ``log``
    receives a line per epoch; ``train_config.max_minutes`` bounds the training time. A model
    with a user history (``UserHistory``) gets the history of the rows it fits (so a validation
    rating's item is not in its user's history) and keeps it: the user vectors were learned
    with it.
    """
    keras.utils.set_random_seed(train_config.seed)
    model = build_model(model_config, n_users, n_items, item_vectors.shape[1])
    vectors = tf.constant(item_vectors, dtype=tf.float32)
    fit_rows, val_rows = validation_split(len(user_index), train_config.validation_share,
                                          train_config.seed)
    implicit = model_config.name == "implicit"
    batch = train_config.batch_size
    if model_config.name in USES_HISTORY and model_config.history > 0:  # the history of the rows it fits: no validation item in it
        set_history(model, *history_table(user_index[fit_rows], item_index[fit_rows], n_users, n_items,
                                          model_config.history, train_config.seed))

    def dataset(rows, shuffle, repeat=False):
        if implicit:
            return _implicit_dataset(user_index[rows], item_index[rows], vectors, n_items,
                                     train_config.negatives, batch, train_config.seed, shuffle, repeat)
        return _explicit_dataset(user_index[rows], item_index[rows], rating[rows], vectors, batch,
                                 train_config.seed, shuffle, repeat)

    optimizer = make_optimizer(train_config.optimizer, train_config.learning_rate, train_config.weight_decay,
                               table_rows=max(n_users, n_items))
    model.compile(optimizer=optimizer,
                  loss="binary_crossentropy" if implicit else "mse",
                  metrics=[] if implicit else [keras.metrics.RootMeanSquaredError(name="rmse")],
                  steps_per_execution=train_config.steps_per_execution)
    progress = EpochProgress(train_config.epochs, log, train_config.max_minutes, model_config.name, batch)
    callbacks = [progress]
    validation = None
    if len(val_rows):
        validation = dataset(val_rows, False)
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train_config.patience, restore_best_weights=True))
    steps = epoch_steps(len(fit_rows), batch, train_config.epoch_rows, train_config.steps_per_execution)
    started = time.perf_counter()
    history = model.fit(dataset(fit_rows, True, repeat=steps is not None), validation_data=validation,
                        epochs=train_config.epochs, steps_per_epoch=steps, callbacks=callbacks,
                        shuffle=False, verbose=train_config.verbose)  # tf.data shuffles
    seconds = time.perf_counter() - started
    report = _training_report(history.history, progress, seconds, len(fit_rows), len(val_rows), steps, batch)
    return for_inference(model), {**report, "optimizer": type(optimizer).__name__}


def _training_report(history: dict, progress: EpochProgress, seconds: float, fit_rows: int, val_rows: int,
                     steps: int | None, batch: int) -> dict:
    """What a fit reports: the loss history, the best and last epochs, rows, times and throughput."""
    record = {k: [float(x) for x in v] for k, v in history.items()}
    best = int(np.argmin(record["val_loss"])) + 1 if "val_loss" in record else len(record["loss"])
    epochs_run = len(record["loss"])
    epoch_rows = fit_rows if steps is None else steps * batch
    return {"history": record, "best_epoch": best, "epochs_run": epochs_run, "epoch_rows": int(epoch_rows),
            # the whole fit call, and its epochs alone: Keras's set-up before the first epoch and
            # TensorFlow's tear-down of the input pipeline after the last are outside the epochs
            "seconds": round(seconds, 2), "epoch_seconds": round(progress.epoch_seconds, 2),
            "train_rows": int(fit_rows),
            # training examples per second of the epochs (validation passes and the first
            # epoch's tracing included)
            "examples_per_second": round(epochs_run * epoch_rows / max(progress.epoch_seconds, 1e-9)),
            "validation_rows": int(val_rows), "stopped": progress.stopped}
