"""Baselines, so every number has a reference. Each has ``fit`` on integer-encoded ratings,
``predict(users, items)`` for rating pairs (where it predicts ratings) and
``score(users, candidates)`` for ranking (a users x candidates matrix).

    GlobalMean       the training mean
    Biases           mean + regularised user and item biases (alternating least squares)
    Popularity       number of training ratings (ranking only)
    ItemKNN/UserKNN  KNNBaseline: the biases baseline plus the similarity-weighted residuals of
                     the k most similar items (users) the user rated (who rated the item);
                     shrunk Pearson-baseline similarities, sparse and computed in blocks
    ContentOnly      cosine between a user's liked-item profile and the item vectors (ranking)
    EASE             closed-form item-item model on liked items, L2 chosen on a validation share
                     of the training data (ranking; dense item x item: up to ~40k items)
    SparkALS         Spark MLlib ALS, explicit (als) and implicit (als-implicit): ``hybrid.models.als``
    TfidfProfile     cosine between a user's TF-IDF profile and every item's TF-IDF row (ranking;
                     needs the items' text: ``tfidf_rows``; not in BASELINES for that reason)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from hybrid.content.vectors import unit_rows
from hybrid.core.persistence import load_bundle, load_csr, save_bundle, save_csr
from hybrid.core.progress import Progress
from hybrid.models.base import Baseline


class GlobalMean(Baseline):
    """Predicts the mean training rating for everything.

    Example:
        >>> GlobalMean().fit([0, 1], [0, 0], [2.0, 4.0], 2, 1).predict([1], [0]).tolist()
        [3.0]
    """

    name = "global-mean"

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        self.mean = float(np.mean(ratings))
        return self

    def predict(self, users, items):
        return np.full(len(users), self.mean)

    def score(self, users, candidates):
        return np.full((len(users), len(candidates)), self.mean)


class Biases(Baseline):
    """``mean + b_user + b_item`` with L2-regularised biases (a few alternating passes)."""

    name = "biases"

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, iterations: int = 10):
        self.reg_user, self.reg_item, self.iterations = reg_user, reg_item, iterations

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings, float)
        self.mean = ratings.mean()
        self.user_bias = np.zeros(n_users)
        self.item_bias = np.zeros(n_items)
        n_u = np.bincount(users, minlength=n_users)
        n_i = np.bincount(items, minlength=n_items)
        for _ in range(self.iterations):
            residual = ratings - self.mean - self.user_bias[users]
            self.item_bias = np.bincount(items, residual, n_items) / (self.reg_item + n_i)
            residual = ratings - self.mean - self.item_bias[items]
            self.user_bias = np.bincount(users, residual, n_users) / (self.reg_user + n_u)
        return self

    @staticmethod
    def _bias(biases: np.ndarray, index) -> np.ndarray:
        """``biases[index]``, 0 for an index the training data never had."""
        index = np.asarray(index, np.int64)
        return np.where(index < len(biases), biases[np.minimum(index, len(biases) - 1)], 0.0)

    def predict(self, users, items):
        """Any shapes that broadcast together; an unknown user or item has no bias."""
        return self.mean + self._bias(self.user_bias, users) + self._bias(self.item_bias, items)

    def score(self, users, candidates):
        return self.predict(np.asarray(users)[:, None], np.asarray(candidates)[None, :])


class Popularity(Baseline):
    name = "popularity"
    predicts_ratings = False

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        self.counts = np.bincount(np.asarray(items), minlength=n_items).astype(float)
        return self

    def score(self, users, candidates):
        return np.tile(self.counts[np.asarray(candidates)], (len(users), 1))


class ItemKNN(Baseline):
    """KNNBaseline, item-based (Koren 2010; Surprise's ``KNNBaseline``):

        r_ui = b_ui + sum_j s_ij (r_uj - b_uj) / sum_j s_ij

    over the ``neighbours`` items j most similar to i *among those the user rated* (positive
    similarities only), where ``b`` is the ``Biases`` baseline and ``s`` the Pearson-baseline
    similarity shrunk by support (``hybrid.models.neighbours.pearson_baseline_neighbours``: sparse,
    computed in blocks, the ``keep`` most similar items of each item stored, symmetrically). Without a rated
    neighbour (or for an item or user never seen) the prediction is the baseline.

    Example:
        >>> users, items = [0, 0, 1, 1, 2, 2, 3], [0, 1, 0, 1, 0, 1, 0]
        >>> knn = ItemKNN(shrinkage=0).fit(users, items, [5, 4, 3, 2, 4, 3, 5], 4, 2)
        >>> bool(knn.predict([3], [1])[0] > knn.baseline.predict([3], [1])[0])
        True
    """

    name = "item-knn"
    what = "item-knn"  # in progress lines (the user-based one fits one on the transposed data)
    #: Co-rated pairs (sum over users of their ratings squared: the work of the similarity
    #: products) above which it is left out: the similarities take some 5 minutes per 10^9 on
    #: 2 cores (3.5 min for 7.3e8 at 3.8M ratings of 800k products).
    max_pairs = 1_000_000_000

    def __init__(self, neighbours: int = 40, shrinkage: float = 100.0, keep: int = 500,
                 min_support: int = 1):
        self.neighbours, self.shrinkage, self.keep, self.min_support = neighbours, shrinkage, keep, min_support

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        from hybrid.models.neighbours import pearson_baseline_neighbours

        self.update(users, items, ratings, n_users, n_items)
        # by column: the items whose stored neighbours include the ones a user rated
        similar = pearson_baseline_neighbours(self.residuals, self.keep, self.shrinkage, self.min_support,
                                              what=f"{self.what}: similarities")
        # symmetric, so its CSR arrays are its CSC arrays too: no converted copy
        self.similar = sp.csc_matrix((similar.data, similar.indices, similar.indptr), shape=similar.shape)
        return self

    def update(self, users, items, ratings, n_users, n_items):
        """Refit the baseline and the residuals on these ratings, keeping the similarities
        already computed (the expensive part): a fitted model given more rows, as the rating
        blend does at scale."""
        users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings, float)
        self.baseline = Biases().fit(users, items, ratings, n_users, n_items)
        residuals = ratings - self.baseline.predict(users, items)
        self._set_residuals(sp.csr_matrix((residuals, (users, items)), shape=(n_users, n_items)))
        return self

    def _set_residuals(self, residuals: sp.csr_matrix) -> None:
        self.residuals = residuals
        self.residuals.sort_indices()
        self.rated = sp.csr_matrix((np.ones(self.residuals.nnz, np.float32), self.residuals.indices,
                                    self.residuals.indptr), shape=self.residuals.shape)

    def save(self, directory: str | os.PathLike, name: str) -> None:
        """The fitted model as ``name.*`` files in ``directory`` (arrays and JSON, no pickle)."""
        baseline = self.baseline
        save_bundle(Path(directory) / f"{name}.npz",
                    {"neighbours": self.neighbours, "shrinkage": self.shrinkage, "keep": self.keep,
                     "min_support": self.min_support, "mean": float(baseline.mean), "reg_user": baseline.reg_user,
                     "reg_item": baseline.reg_item, "iterations": baseline.iterations},
                    user_bias=baseline.user_bias, item_bias=baseline.item_bias)
        save_csr(directory, f"{name}.residuals", self.residuals)
        similar = self.similar  # symmetric: its CSC arrays, read as CSR, are the same matrix
        save_csr(directory, f"{name}.similar",
                 sp.csr_matrix((similar.data, similar.indices, similar.indptr), shape=similar.shape))

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str) -> "ItemKNN":
        """A model ``save`` wrote (a recommender's load reports a damaged folder:
        ``persistence.reading_folder``)."""
        meta, _, arrays = load_bundle(Path(directory) / f"{name}.npz")
        knn = cls(meta["neighbours"], meta["shrinkage"], meta["keep"], meta["min_support"])
        knn.baseline = Biases(meta["reg_user"], meta["reg_item"], meta["iterations"])
        knn.baseline.mean = float(meta["mean"])
        knn.baseline.user_bias, knn.baseline.item_bias = arrays["user_bias"], arrays["item_bias"]
        knn._set_residuals(load_csr(directory, f"{name}.residuals", mmap=False))
        similar = load_csr(directory, f"{name}.similar", mmap=False)
        knn.similar = sp.csc_matrix((similar.data, similar.indices, similar.indptr), shape=similar.shape)
        return knn

    def too_large(self, users, items, n_users, n_items):
        per_user = np.bincount(np.asarray(users, np.int64), minlength=n_users).astype(np.float64)
        pairs = float(per_user @ per_user)
        if pairs > self.max_pairs:
            side = "item" if self.what == "item-knn" else "user"
            return (f"{pairs:.2g} co-rated {side} pairs to compare, above its limit of {self.max_pairs:.2g} "
                    f"(ItemKNN.max_pairs)")
        return None

    def _offsets(self, user: int, items: np.ndarray) -> np.ndarray:
        """``sum_j s_ij e_uj / sum_j s_ij`` for one user and many items (0 without neighbours)."""
        from hybrid.models.neighbours import top_k_per_row

        out = np.zeros(len(items))
        known = items < self.similar.shape[0]
        if user >= self.residuals.shape[0] or not known.any():
            return out
        lo, hi = self.residuals.indptr[user], self.residuals.indptr[user + 1]
        if hi == lo:
            return out
        rated, errors = self.residuals.indices[lo:hi], self.residuals.data[lo:hi]
        weights = top_k_per_row(self.similar[:, rated].tocsr()[items[known]], self.neighbours)
        out[known] = self._weighted(weights, weights @ errors)
        return out

    def _item_offsets(self, item: int, users: np.ndarray) -> np.ndarray:
        """The same for one item and many users: the item's neighbours (its column of the
        symmetric similarities) among those each user rated."""
        from hybrid.models.neighbours import top_k_per_row

        out = np.zeros(len(users))
        known = users < self.residuals.shape[0]
        if item >= self.similar.shape[0] or not known.any():
            return out
        lo, hi = self.similar.indptr[item], self.similar.indptr[item + 1]
        if hi == lo:
            return out
        neighbours, similarity = self.similar.indices[lo:hi], self.similar.data[lo:hi]
        rated = self.rated[users[known]][:, neighbours]
        weights = top_k_per_row(sp.csr_matrix(rated.multiply(similarity[None, :])), self.neighbours)
        errors = self.residuals[users[known]][:, neighbours]
        out[known] = self._weighted(weights, np.asarray(weights.multiply(errors).sum(axis=1)).ravel())
        return out

    @staticmethod
    def _weighted(weights, numerator) -> np.ndarray:
        denominator = np.asarray(weights.sum(axis=1)).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, numerator / denominator, 0.0)

    #: Entries gathered at once when predicting pairs: a pair costs its user's ratings plus its
    #: item's stored neighbours (two pairs x items sparse matrices hold them), and the pairs are
    #: taken in chunks of at most this cost (``hybrid.models.neighbours.budget_blocks``). A count of
    #: pairs would not bound it: a popular item's neighbours are tens of thousands (it is among
    #: many items' ``keep`` most similar), and 20,000 validation pairs at Electronics size
    #: gathered 2.1 GB.
    pair_budget = 4_000_000

    def predict(self, users, items):
        """For every (user, item) pair at once, a chunk at a time: the similarities of the item
        to the items the user rated (``rated[users] * similar[items]``, elementwise), the
        ``neighbours`` largest of each row kept, the residuals weighted by them."""
        from hybrid.models.neighbours import budget_blocks, top_k_per_row

        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        out = self.baseline.predict(users, items)
        known = np.flatnonzero((users < self.residuals.shape[0]) & (items < self.similar.shape[0]))
        by_row = sp.csr_matrix((self.similar.data, self.similar.indices, self.similar.indptr),
                               shape=self.similar.shape)  # the CSR of S' = S (symmetric)
        cost = np.diff(self.rated.indptr)[users[known]] + np.diff(by_row.indptr)[items[known]]
        with Progress(len(known), f"{self.what}: predictions", "pairs") as progress:
            for start, stop in budget_blocks(cost, self.pair_budget):
                rows = known[start:stop]
                weights = top_k_per_row(self.rated[users[rows]].multiply(by_row[items[rows]]).tocsr(),
                                        self.neighbours)
                numerator = np.asarray(weights.multiply(self.residuals[users[rows]]).sum(axis=1)).ravel()
                out[rows] += self._weighted(weights, numerator)
                progress.update(len(rows))
        return out

    def score(self, users, candidates):
        users, candidates = np.asarray(users, np.int64), np.asarray(candidates, np.int64)
        out = self.baseline.score(users, candidates)
        if len(candidates) < len(users):
            for column, item in enumerate(candidates):
                out[:, column] += self._item_offsets(int(item), users)
        else:
            for row, user in enumerate(users):
                out[row] += self._offsets(int(user), candidates)
        return out


class UserKNN(Baseline):
    """KNNBaseline, user-based: the same on the transposed matrix (the neighbours are the
    ``neighbours`` users most similar to u among those who rated i)."""

    name = "user-knn"

    def __init__(self, neighbours: int = 40, shrinkage: float = 100.0, keep: int = 500,
                 min_support: int = 1):
        self._inner = ItemKNN(neighbours, shrinkage, keep, min_support)
        self._inner.what = self.name

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        self._inner.fit(items, users, ratings, n_items, n_users)
        return self

    def update(self, users, items, ratings, n_users, n_items):
        self._inner.update(items, users, ratings, n_items, n_users)
        return self

    def too_large(self, users, items, n_users, n_items):
        return self._inner.too_large(items, users, n_items, n_users)

    def predict(self, users, items):
        return self._inner.predict(items, users)

    def score(self, users, candidates):
        return self._inner.score(candidates, users).T

    def save(self, directory: str | os.PathLike, name: str) -> None:
        self._inner.save(directory, name)

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str) -> "UserKNN":
        knn = cls()
        knn._inner = ItemKNN.load(directory, name)
        knn._inner.what = cls.name
        return knn


class ContentOnly(Baseline):
    """Cosine between a user's profile (mean vector of the items they rated at or above their
    own mean) and every item's text vector. Ranking only."""

    name = "content-only"
    predicts_ratings = False

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings, float)
        self.unit = unit_rows(item_vectors)
        user_mean = np.bincount(users, ratings, n_users) / np.maximum(np.bincount(users, minlength=n_users), 1)
        liked = ratings >= user_mean[users]
        likes = sp.csr_matrix((np.ones(liked.sum()), (users[liked], items[liked])),
                              shape=(n_users, len(self.unit)))
        self.profiles = unit_rows(likes @ self.unit)
        return self

    def score(self, users, candidates):
        return self.profiles[np.asarray(users)] @ self.unit[np.asarray(candidates)].T


def tfidf_rows(texts) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows (sublinear term frequency) of cleaned token strings, one per
    item, for ``TfidfProfile``.

    Example:
        >>> tfidf_rows(["red guitar strap", "guitar", ""]).shape[0]
        3
    """
    from hybrid.content.terms import TermWeights

    return TermWeights.fit(texts, max_terms=0, min_df=1).rows


class TfidfProfile(Baseline):
    """Cosine between a user's TF-IDF profile (the sum of the TF-IDF rows of the items they
    liked - rated at or above their own mean) and each item's TF-IDF row: the content baseline
    that keeps specific words (brands, product types, model names). Ranking only; ``item_vectors``
    must be the items' TF-IDF rows (``tfidf_rows``)."""

    name = "tfidf-profile"
    predicts_ratings = False

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        from hybrid.core.errors import ArgumentError

        if not sp.issparse(item_vectors):
            raise ArgumentError("tfidf-profile needs the items' TF-IDF rows: item_vectors=tfidf_rows(texts)")
        users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings, float)
        self.rows = sp.csr_matrix(item_vectors, dtype=np.float32)
        user_mean = np.bincount(users, ratings, n_users) / np.maximum(np.bincount(users, minlength=n_users), 1)
        liked = ratings >= user_mean[users]
        likes = sp.csr_matrix((np.ones(liked.sum(), np.float32), (users[liked], items[liked])),
                              shape=(n_users, self.rows.shape[0]))
        self.profiles = self.profile(likes)
        return self

    def profile(self, likes: sp.csr_matrix) -> sp.csr_matrix:
        """Unit-length TF-IDF profiles of rows of liked items (also for users never seen)."""
        from hybrid.content.terms import unit_sparse_rows

        return unit_sparse_rows(likes @ self.rows)

    def score(self, users, candidates):
        return np.asarray((self.profiles[np.asarray(users)] @ self.rows[np.asarray(candidates)].T).toarray())


class EASE(Baseline):
    """Embarrassingly Shallow AutoEncoder (Steck 2019): a closed-form item-item model on the
    binary matrix of liked items (rating >= ``threshold``), ``B = I - P / diag(P)`` with
    ``P = (X'X + l2 I)^-1``; a user's scores are ``x_u B``. Ranking only.

    ``l2=None`` chooses the regularisation from ``grid`` by NDCG@10 on a validation share of
    the *training* likes (never the test set), then refits on all of them; ``self.validation``
    keeps the figures. The item-item matrix is dense: catalogues above ``max_items`` are
    refused with a message (a sparse top-k variant is the way there).

    Example:
        >>> users, items = [0, 0, 1, 1, 2], [0, 1, 0, 1, 2]
        >>> ease = EASE(l2=1.0).fit(users, items, [5.0] * 5, 3, 3)
        >>> bool(ease.score([0], [1])[0, 0] > ease.score([0], [2])[0, 0])
        True
    """

    name = "ease"
    predicts_ratings = False
    max_items = 40_000  # the evaluate stage skips it above this, with a message

    def __init__(self, l2: float | None = None, grid=(30.0, 100.0, 300.0, 1000.0, 3000.0),
                 threshold: float = 4.0, validation_share: float = 0.1, seed: int = 0):
        self.l2, self.grid, self.threshold = l2, tuple(grid), threshold
        self.validation_share, self.seed = validation_share, seed
        self.validation: dict = {}

    def too_large(self, users, items, n_users, n_items):
        if n_items > self.max_items:
            return (f"a dense {n_items:,} x {n_items:,} item matrix ({n_items ** 2 * 8 / 2 ** 30:.1f} GiB); "
                    f"it is limited to {self.max_items:,} items")
        return None

    @staticmethod
    def weights(likes: sp.csr_matrix, l2: float) -> np.ndarray:
        gram = (likes.T @ likes).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        return weights.astype(np.float32)

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        from hybrid.core.errors import ArgumentError
        from hybrid.evaluation.metrics import evaluate_ranking, ranking_task

        reason = self.too_large(users, items, n_users, n_items)
        if reason:
            raise ArgumentError(f"EASE: {reason}")
        users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings, float)
        liked = ratings >= self.threshold
        users, items = users[liked], items[liked]
        l2 = self.l2
        if l2 is None:
            rng = np.random.default_rng(self.seed)
            held = rng.random(len(users)) < self.validation_share
            part = sp.csr_matrix((np.ones((~held).sum(), np.float32), (users[~held], items[~held])),
                                 shape=(n_users, n_items))
            task = ranking_task(users[~held], items[~held], users[held], items[held],
                                np.full(held.sum(), self.threshold), np.arange(n_items), self.threshold)
            if not len(task.users):  # too few likes to hold any out: the grid's middle
                l2 = self.grid[len(self.grid) // 2]
            for candidate in self.grid if l2 is None else ():
                weights = self.weights(part, candidate)
                score = lambda u, c, w=weights: (part[u] @ w[:, c])  # noqa: E731
                self.validation[candidate] = evaluate_ranking(score, task, (10,))["ndcg@10"]
            l2 = l2 if l2 is not None else max(self.validation, key=self.validation.get)
        self.chosen_l2 = float(l2)
        self.likes = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                                   shape=(n_users, n_items))
        self.B = self.weights(self.likes, l2)
        return self

    def score(self, users, candidates):
        return np.asarray(self.likes[np.asarray(users)] @ self.B[:, np.asarray(candidates)])


class RandomRanking(Baseline):
    """Uniformly random scores: the floor every ranking model must clear."""

    name = "random"
    predicts_ratings = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        self.rng = np.random.default_rng(self.seed)
        return self

    def score(self, users, candidates):
        return self.rng.random((len(users), len(candidates)))
