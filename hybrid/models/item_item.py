"""The item-item part of two-stage recommending: one items x items CSR matrix of weighted
neighbours, by EASE's weights (small catalogues) or shrunk cosine (any size); the weightings
themselves are ``hybrid.models.neighbours``'s kernels and ``hybrid.models.baselines.EASE``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hybrid.core.errors import ArgumentError
from hybrid.models.baselines import EASE
from hybrid.models.neighbours import cosine_neighbours, top_k_per_row


def ease_neighbours(likes: sp.csr_matrix, l2: float | None = None, k: int = 100,
                    seed: int = 0) -> sp.csr_matrix:
    """EASE's item-item weights, top ``k`` per row kept (dense while computed); ``l2=None``
    chooses the regularisation on a validation share of the likes (``EASE.fit``)."""
    users, items = sp.csr_matrix(likes).nonzero()
    ease = EASE(l2=l2, threshold=1.0, seed=seed).fit(users, items, np.ones(len(users)), *likes.shape)
    # by magnitude: EASE's negative weights carry as much as its positive ones
    return top_k_per_row(sp.csr_matrix(ease.B), k, magnitude=True)


def item_neighbours(likes: sp.csr_matrix, k: int = 100, method: str = "auto", l2: float | None = None,
                    shrinkage: float = 10.0, dense_below: int = 20_000,
                    seed: int = 0) -> tuple[sp.csr_matrix, str]:
    """The sparse item-item matrix and the method used (``auto``: EASE below ``dense_below``
    items, cosine above)."""
    if method == "auto":
        method = "ease" if likes.shape[1] < dense_below else "cosine"
    if method == "ease":
        return ease_neighbours(likes, l2, k, seed), method
    if method == "cosine":
        return cosine_neighbours(likes, k, shrinkage), method
    raise ArgumentError(f"unknown item-item method {method!r}; choose auto, ease or cosine")
