"""Spark MLlib ALS as baselines: matrix factorisation by alternating least squares, fitted by
Spark (any master: ``hybrid.core.spark.configure``), scored here from its factors.

    SparkALS         explicit ratings (rating prediction and ranking by predicted rating);
                     rank and regParam chosen by Spark's TrainValidationSplit on the training
                     ratings (RMSE), as the reference notebook did
    SparkImplicitALS implicit feedback (liked items, rating >= threshold) for ranking; rank,
                     regParam and alpha chosen by NDCG@10 on a validation share of the training
                     likes. Not TrainValidationSplit: its evaluators see only the validation
                     rows' predictions, and a ranking metric needs every item's score per user.

Both are non-negative with cold-start strategy "drop" during the search (the reference's
settings); a user or item the training data never had scores the training mean (explicit) or 0
(implicit), never NaN. ``validation`` keeps the search's figures, ``chosen`` the winner.

Example:
    >>> als = SparkALS(ranks=(8,), reg_params=(0.1,)).fit(users, items, ratings, 10, 20)  # doctest: +SKIP
    >>> als.predict([0, 1], [3, 4])  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hybrid.core.spark import ensure_checkpoint_dir
from hybrid.models.base import Baseline


def _ratings_frame(spark, users, items, values):
    """The training triples as a DataFrame, spread over the cluster's cores and cached (else
    every ALS step would ship the driver's whole table again inside its tasks)."""
    frame = spark.createDataFrame(pa.table({"user": pa.array(users, pa.int32()),
                                            "item": pa.array(items, pa.int32()),
                                            "rating": pa.array(values, pa.float32())}))
    return frame.repartition(max(2, spark.sparkContext.defaultParallelism)).cache()


def _factors(frame, size: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A model's ``userFactors``/``itemFactors`` as a dense (size, rank) array and a known mask."""
    table = frame.toArrow()
    factors = np.zeros((size, rank), np.float32)
    known = np.zeros(size, bool)
    ids = table.column("id").to_numpy()
    if len(ids):
        flat = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        factors[ids] = flat.reshape(len(ids), rank)
        known[ids] = True
    return factors, known


class SparkALS(Baseline):
    """Spark MLlib ALS on explicit ratings, its settings chosen by TrainValidationSplit."""

    name = "als"
    predicts_ratings = True
    implicit = False

    def __init__(self, ranks=(10, 20), reg_params=(0.05, 0.1, 0.5), alphas=(1.0,),
                 max_iter: int = 15, validation_share: float = 0.2, threshold: float = 4.0,
                 seed: int = 0):
        self.ranks, self.reg_params, self.alphas = tuple(ranks), tuple(reg_params), tuple(alphas)
        self.max_iter, self.validation_share = max_iter, validation_share
        self.threshold, self.seed = threshold, seed
        self.validation: dict = {}
        self.chosen: dict = {}

    def _estimator(self, spark):
        from pyspark.ml.recommendation import ALS

        # one block of users / items per core of the cluster (MLlib's default of 10 blocks makes
        # ten small tasks per step on two local cores)
        blocks = max(2, spark.sparkContext.defaultParallelism)
        # every few iterations the factors are checkpointed: a long lineage otherwise overflows
        # the JVM's stack when a task is serialised (StackOverflowError after ~15 iterations)
        ensure_checkpoint_dir(spark)
        return ALS(userCol="user", itemCol="item", ratingCol="rating", implicitPrefs=self.implicit,
                   nonnegative=True, coldStartStrategy="drop", maxIter=self.max_iter, seed=self.seed,
                   numUserBlocks=blocks, numItemBlocks=blocks, checkpointInterval=5)

    def _grid(self, als):
        from pyspark.ml.tuning import ParamGridBuilder

        grid = ParamGridBuilder().addGrid(als.rank, list(self.ranks)).addGrid(als.regParam, list(self.reg_params))
        if self.implicit:
            grid = grid.addGrid(als.alpha, list(self.alphas))
        return grid.build()

    def _search(self, spark, users, items, values, n_users, n_items):
        """The fitted model with the chosen settings (refitted on every training row)."""
        from pyspark.ml.evaluation import RegressionEvaluator
        from pyspark.ml.tuning import TrainValidationSplit

        als = self._estimator(spark)
        grid = self._grid(als)
        search = TrainValidationSplit(estimator=als, estimatorParamMaps=grid, seed=self.seed,
                                      evaluator=RegressionEvaluator(metricName="rmse", labelCol="rating"),
                                      trainRatio=1 - self.validation_share)
        fitted = search.fit(_ratings_frame(spark, users, items, values))
        for params, rmse in zip(grid, fitted.validationMetrics):
            self.validation[self._describe(params)] = {"rmse": round(float(rmse), 5)}
        return fitted.bestModel

    @staticmethod
    def _describe(params) -> str:
        return ",".join(f"{p.name}={v:g}" for p, v in sorted(params.items(), key=lambda kv: kv[0].name))

    def fit(self, users, items, ratings, n_users, n_items, item_vectors=None):
        from hybrid.core.spark import session

        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        ratings = np.asarray(ratings, np.float64)
        self.mean = float(ratings.mean()) if len(ratings) else 0.0
        if self.implicit:
            liked = ratings >= self.threshold
            users, items, values = users[liked], items[liked], np.ones(int(liked.sum()))
        else:
            values = ratings
        spark = session()
        model = self._search(spark, users, items, values, n_users, n_items)
        self.chosen = {name: float(value) for name, value in
                       (setting.split("=") for setting in self._best_key().split(","))}
        self.user_factors, self.user_known = _factors(model.userFactors, n_users, model.rank)
        self.item_factors, self.item_known = _factors(model.itemFactors, n_items, model.rank)
        return self

    def _best_key(self) -> str:
        if self.implicit:
            return max(self.validation, key=lambda k: self.validation[k]["ndcg@10"])
        return min(self.validation, key=lambda k: self.validation[k]["rmse"])

    def _fallback(self) -> float:
        return 0.0 if self.implicit else self.mean

    def predict(self, users, items):
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        known = self._known(self.user_known, users) & self._known(self.item_known, items)
        u = self.user_factors[np.where(known, users, 0)]
        v = self.item_factors[np.where(known, items, 0)]
        return np.where(known, np.einsum("ij,ij->i", u, v), self._fallback())

    @staticmethod
    def _known(mask: np.ndarray, index: np.ndarray) -> np.ndarray:
        inside = (index >= 0) & (index < len(mask))
        return inside & mask[np.where(inside, index, 0)]

    def score(self, users, candidates):
        users, candidates = np.asarray(users, np.int64), np.asarray(candidates, np.int64)
        user_known = self._known(self.user_known, users)
        item_known = self._known(self.item_known, candidates)
        block = self.user_factors[np.where(user_known, users, 0)] @ self.item_factors[
            np.where(item_known, candidates, 0)].T
        return np.where(user_known[:, None] & item_known[None, :], block, self._fallback()).astype(np.float64)


class SparkImplicitALS(SparkALS):
    """Spark MLlib ALS on implicit feedback (liked items), chosen by validation NDCG@10."""

    name = "als-implicit"
    predicts_ratings = False
    implicit = True

    def __init__(self, ranks=(20,), reg_params=(0.01, 0.1), alphas=(1.0, 10.0, 40.0), max_iter: int = 15,
                 validation_share: float = 0.1, threshold: float = 4.0, seed: int = 0):
        super().__init__(ranks, reg_params, alphas, max_iter, validation_share, threshold, seed)

    def _search(self, spark, users, items, values, n_users, n_items):
        from hybrid.evaluation.metrics import evaluate_ranking, ranking_task

        als = self._estimator(spark)
        held = np.random.default_rng(self.seed).random(len(users)) < self.validation_share
        part = _ratings_frame(spark, users[~held], items[~held], values[~held])
        task = ranking_task(users[~held], items[~held], users[held], items[held],
                            np.full(int(held.sum()), self.threshold), np.arange(n_items), self.threshold)
        for params in self._grid(als):
            model = als.fit(part, params)
            self.user_factors, self.user_known = _factors(model.userFactors, n_users, model.rank)
            self.item_factors, self.item_known = _factors(model.itemFactors, n_items, model.rank)
            ndcg = evaluate_ranking(self.score, task, (10,))["ndcg@10"]
            self.validation[self._describe(params)] = {"ndcg@10": round(float(ndcg), 5)}
        best = next(p for p in self._grid(als) if self._describe(p) == self._best_key())
        return als.fit(_ratings_frame(spark, users, items, values), best)


__all__ = ["SparkALS", "SparkImplicitALS"]
