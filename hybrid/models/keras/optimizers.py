"""Adam with lazy (row-wise) updates of embedding tables, for the TensorFlow backend of Keras 3.

Keras 3's Adam updates every row of an embedding table, and both of its moment tables, at every
step, whatever the batch looked up (the gradient of a look-up is sparse, a ``tf.IndexedSlices``,
but the moment updates densify it; keras-team/keras#19992). With a million products that is
three passes over a 1M x d table per step: a retrieval epoch at 1M products took over 14 minutes
on 2 cores. ``LazyAdam`` updates only the rows a batch touched, and their moments; dense
gradients (every other weight) get Keras's own Adam step. This is the behaviour of the LazyAdam
that TensorFlow Addons had for Keras 2: rows not in a batch keep their moments unchanged, so
a rarely seen product's step is not shrunk by the steps it missed.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="hybrid")
class LazyAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose sparse gradients (embedding look-ups) update only the
    rows they touch. Same arguments as Adam; ``amsgrad`` is not supported for sparse rows."""

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, where = tf.unique(gradient.indices)  # a row looked up twice in a batch: sum its parts
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), where, tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


@keras.saving.register_keras_serializable(package="hybrid")
class SparseEmbedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` that gathers its rows straight from the variable.

    Keras's own look-up (``ops.take``) first reads the whole table as a tensor; when the
    optimizer then writes the touched rows back, TensorFlow must copy the whole table, since
    that read still holds it (copy-on-write): a 1M x 64 table costs some 100 ms per step that
    way. Gathering from the variable reads only the rows looked up; the gradient is the same
    ``tf.IndexedSlices``. Ids must be in range (no negative-index wrapping)."""

    def call(self, inputs):
        if keras.backend.backend() != "tensorflow" or getattr(self, "lora_enabled", False) \
                or self.embeddings.dtype != self.compute_dtype:
            return super().call(inputs)
        ids = tf.convert_to_tensor(inputs)
        return tf.gather(self.embeddings.value, ids if ids.dtype in (tf.int32, tf.int64) else tf.cast(ids, tf.int32))


def make_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0, table_rows: int = 0):
    """The optimizer a config names (``hybrid.core.config.OPTIMIZERS``) for a model whose largest
    embedding table has ``table_rows`` rows; AdamW when ``weight_decay``."""
    from hybrid.core.config import LAZY_ABOVE, check_optimizer

    check_optimizer(name, weight_decay)
    if weight_decay > 0:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "auto":
        name = "lazy-adam" if table_rows > LAZY_ABOVE else "adam"
    return LazyAdam(learning_rate) if name == "lazy-adam" else keras.optimizers.Adam(learning_rate)
