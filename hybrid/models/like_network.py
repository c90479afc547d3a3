"""The two-stage recommender's re-ranking network, answering in NumPy.

The ``implicit`` Keras network (``hybrid.models.keras.networks``) is trained in TensorFlow; what
it computes once trained is small: for user ``u`` and product ``i`` with text vector ``x``,

    t = relu(x W_t + b_t)
    h = relu(... relu([e_u, e_i, t] W_1 + b_1) ... W_k + b_k)       (the hidden layers)
    p(like) = sigmoid(h w_o + b_o + e_u . e_i + b_u + b_i)

``LikeNetwork`` holds those weights as arrays and computes the same in NumPy, so scoring known
users' candidates needs no TensorFlow: a served model answers them without importing it (a
second of start-up and some 400 MB). Weights are saved one ``.npy`` each (memory-mapped when
loaded: a request reads the embedding rows of its pairs).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.special import expit

from hybrid.core.errors import InputFormatError
from hybrid.core.persistence import load_array, save_array

#: The arrays besides the hidden layers', by name.
NAMES = ("user_embedding", "item_embedding", "user_bias", "item_bias", "text_kernel", "text_bias",
         "out_kernel", "out_bias")


class LikeNetwork:
    """Like-probabilities of (user, product) pairs from the trained network's weights.

    ``arrays``: the ``NAMES`` plus ``hidden{k}_kernel`` / ``hidden{k}_bias`` for each hidden
    layer, in order (``hybrid.models.keras.networks.network_arrays`` takes them from a model).
    """

    def __init__(self, arrays: dict[str, np.ndarray], where: str = "the re-ranking network"):
        layers = sum(name.startswith("hidden") and name.endswith("_kernel") for name in arrays)
        wanted = [*NAMES, *(f"hidden{k}_{part}" for k in range(layers) for part in ("kernel", "bias"))]
        missing = [name for name in wanted if name not in arrays]
        if missing:
            raise InputFormatError(f"{where}: lacks {', '.join(missing)}")
        self.arrays = arrays
        self.hidden = [(arrays[f"hidden{k}_kernel"], arrays[f"hidden{k}_bias"]) for k in range(layers)]
        self.n_users = len(arrays["user_embedding"])
        self.n_items = len(arrays["item_embedding"]) - 1  # the last row: the unknown item

    def scores(self, users: np.ndarray, items: np.ndarray, text: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """``p(like)`` of each pair: user rows, the network's item rows (``n_items``: known by
        text only) and the products' text vectors, one per pair."""
        a = self.arrays
        out = np.empty(len(users), np.float32)
        for s in range(0, len(users), chunk):
            u_rows, i_rows = users[s:s + chunk], items[s:s + chunk]
            u, i = a["user_embedding"][u_rows], a["item_embedding"][i_rows]
            t = np.maximum(np.asarray(text[s:s + chunk], np.float32) @ a["text_kernel"] + a["text_bias"], 0)
            h = np.concatenate([u, i, t], axis=1)
            for kernel, bias in self.hidden:
                h = np.maximum(h @ kernel + bias, 0)
            z = (h @ a["out_kernel"])[:, 0] + a["out_bias"][0] + np.einsum("bd,bd->b", u, i) \
                + a["user_bias"][u_rows, 0] + a["item_bias"][i_rows, 0]
            out[s:s + chunk] = expit(z)
        return out

    def save(self, directory: str | os.PathLike) -> None:
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in self.arrays.items():
            save_array(folder / f"{name}.npy", np.asarray(array, np.float32))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "LikeNetwork":
        """A network ``save`` wrote; its arrays memory-mapped."""
        return cls({path.stem: load_array(path) for path in sorted(Path(directory).glob("*.npy"))}, str(directory))
