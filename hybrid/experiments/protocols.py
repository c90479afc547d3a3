"""Evaluation protocols: every model and baseline fitted on the same split and measured the
same way. Used by ``hybrid evaluate`` and the benchmark script.

Protocols:
    rating      a random / stratified / chronological / given split; RMSE, MAE and ranking
                metrics over all items each user did not rate in training
    cold-items  a share of items held out with all their ratings; ranking among the held-out
                items only (they are unknown to every model), RMSE on their ratings
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hybrid.core.config import MODEL_NAMES, TWO_STAGE
from hybrid.core.errors import ArgumentError
from hybrid.data.dataset import EncodedDataset
from hybrid.evaluation.metrics import (
    default_eval_users,
    evaluate_ranking,
    evaluate_recommendations,
    mae,
    ranking_task,
    rmse,
    sample_users,
)
from hybrid.evaluation.splits import chronological_split, cold_item_split, random_split, stratified_split
from hybrid.models.registry import BASELINES

PROTOCOLS = ("rating", "cold-items")

#: Above this many ratings the evaluate stage fits only the model the pipeline trains, unless
#: models are named: each Keras model takes minutes per epoch there (``default_models``).
ALL_MODELS_MAX_RATINGS = 1_000_000


def default_models(n_ratings: int, trained: str = "hybrid") -> tuple[str, ...]:
    """The models the evaluate stage fits when none are named: every Keras model and the
    two-stage recommender that serves up to ``ALL_MODELS_MAX_RATINGS`` ratings, only ``trained``
    (the pipeline's model) above (the two-stage fit there takes a quarter of an hour: name it).

    Example:
        >>> default_models(100_000) == MODEL_NAMES + ("two-stage",), default_models(3_800_000)
        (True, ('hybrid',))
    """
    return MODEL_NAMES + (TWO_STAGE,) if n_ratings <= ALL_MODELS_MAX_RATINGS else (trained,)


DEFAULT_BASELINES = ("global-mean", "biases", "popularity", "item-knn", "user-knn", "content-only",
                     "ease", "random")
#: The neighbourhood baselines, left out by default above ``ALL_MODELS_MAX_RATINGS``: each costs
#: minutes there (item KNNBaseline 3-4 min of similarities at 3.8M ratings; the user-based one
#: and EASE do not fit at all) where the others take seconds.
NEIGHBOURHOOD_BASELINES = ("item-knn", "user-knn", "ease")


def default_baselines(n_ratings: int) -> tuple[str, ...]:
    """The baselines the evaluate stage fits when none are named.

    Example:
        >>> default_baselines(3_800_000)
        ('global-mean', 'biases', 'popularity', 'content-only', 'random')
    """
    if n_ratings <= ALL_MODELS_MAX_RATINGS:
        return DEFAULT_BASELINES
    return tuple(name for name in DEFAULT_BASELINES if name not in NEIGHBOURHOOD_BASELINES)


@dataclass
class EvaluationConfig:
    protocol: str = "rating"
    split: str = "random"  # random | stratified | chronological (rating protocol)
    test_share: float = 0.2
    last_n: int = 1  # chronological: each user's last n ratings
    cold_share: float = 0.2  # cold-items: share of rated items held out
    seed: int = 0
    ks: tuple[int, ...] = (10,)
    threshold: float = 4.0  # a test rating at or above it is relevant
    models: tuple[str, ...] = MODEL_NAMES
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    model_overrides: dict = field(default_factory=dict)  # model name -> ModelConfig fields
    train_overrides: dict = field(default_factory=dict)  # TrainConfig fields
    eval_users: int | None = None  # rank a seeded sample of this many test users (None: default_eval_users)
    recommender_settings: dict = field(default_factory=dict)  # the two-stage recommender's (two_stage_settings)


def make_split(data: EncodedDataset, config: EvaluationConfig):
    """(train_rows, test_rows, candidate items for ranking)."""
    all_items = np.arange(len(data.items))
    if config.protocol == "cold-items":
        train, test, cold = cold_item_split(data.item_index, config.cold_share, config.seed)
        return train, test, cold
    if config.protocol != "rating":
        raise ArgumentError(f"unknown protocol {config.protocol!r}; choose one of {PROTOCOLS}")
    if config.split == "random":
        train, test = random_split(len(data.rating), config.test_share, config.seed)
    elif config.split == "stratified":
        train, test = stratified_split(data.user_index, config.test_share, config.seed)
    elif config.split == "chronological":
        train, test = chronological_split(data.user_index, data.timestamp, config.last_n)
    else:
        raise ArgumentError(f"unknown split {config.split!r}; use random, stratified or chronological")
    return train, test, all_items


def evaluate_all(data: EncodedDataset, config: EvaluationConfig, encoder=None,
                 train_rows: np.ndarray | None = None, test_rows: np.ndarray | None = None,
                 candidates: np.ndarray | None = None, log=print, texts=None, fields=None) -> dict:
    """Fit every model and baseline on the training rows; measure them on the test rows.

    Returns ``{"config": ..., "split": ..., "results": {name: metrics}}``. Pass
    ``train_rows``/``test_rows`` (and the ranked ``candidates``, default all items) to use a
    split made elsewhere (e.g. MovieLens u1.base/u1.test). ``texts``: the products' cleaned
    texts in catalogue order, and ``fields``, each text field's cleaned texts, for the two-stage
    recommender's content part (``two-stage`` in ``config.models``; without them it has none).
    """
    if train_rows is None:
        train_rows, test_rows, candidates = make_split(data, config)
    elif candidates is None:
        candidates = np.arange(len(data.items))
    u, i, r = data.user_index, data.item_index, data.rating
    ti = i[train_rows]
    task = ranking_task(u[train_rows], ti, u[test_rows], i[test_rows], r[test_rows], candidates, config.threshold)
    eval_users = config.eval_users or default_eval_users(len(candidates), len(task.users))
    if eval_users < len(task.users):
        log(f"  ranking a seeded sample of {eval_users:,} of {len(task.users):,} test users over "
            f"{len(candidates):,} candidates (--eval-users)")
    task = sample_users(task, eval_users, config.seed)
    popularity = np.bincount(ti, minlength=len(data.items))
    fitted = Fitted(data, train_rows, test_rows, task, popularity)
    results: dict = {}
    for name in config.baselines:
        results[name] = _baseline(name, fitted, config, log)
    for name in config.models:
        if name == TWO_STAGE:
            results[name] = _two_stage(data, config, encoder, train_rows, task, popularity, texts, fields, log)
        else:
            results[name] = _keras_model(name, fitted, config, encoder, log)
        log(f"  {name:14s} {_line(results[name])}")
    return {"split": {"train": int(len(train_rows)), "test": int(len(test_rows)),
                      "ranked_users": int(len(task.users)), "candidates": int(len(candidates))},
            "results": results}


@dataclass
class Fitted:
    """What every model of one evaluation is fitted on and measured with."""

    data: EncodedDataset
    train_rows: np.ndarray
    test_rows: np.ndarray
    task: object
    popularity: np.ndarray


def _baseline(name: str, fitted: Fitted, config: EvaluationConfig, log) -> dict:
    """One baseline fitted on the training rows: its rating errors (where it predicts ratings)
    and ranking metrics, or why it was skipped."""
    data = fitted.data
    if name not in BASELINES:
        raise ArgumentError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    baseline = BASELINES[name]()
    train, test = fitted.train_rows, fitted.test_rows
    tu, ti, tr = data.user_index[train], data.item_index[train], data.rating[train]
    reason = baseline.too_large(tu, ti, len(data.users), len(data.items))
    if reason:
        log(f"  {name:14s} skipped: {reason}")
        return {"kind": "baseline", "skipped": reason}
    started = time.perf_counter()
    baseline.fit(tu, ti, tr, len(data.users), len(data.items), data.item_vectors)
    metrics = {"kind": "baseline", "fit_seconds": round(time.perf_counter() - started, 2)}
    if baseline.predicts_ratings:
        predicted = baseline.predict(data.user_index[test], data.item_index[test])
        metrics.update(rmse=rmse(data.rating[test], predicted), mae=mae(data.rating[test], predicted))
    if name != "global-mean":  # constant scores rank nothing
        metrics.update(evaluate_ranking(baseline.score, fitted.task, config.ks, fitted.popularity))
    log(f"  {name:14s} {_line(metrics)}")
    return metrics


def _keras_model(name: str, fitted: Fitted, config: EvaluationConfig, encoder, log) -> dict:
    """One Keras model as a ``HybridRecommender`` fitted on the training rows: rating errors
    (not for ``implicit``) and ranking metrics, with its training history."""
    from hybrid.recommend.hybrid_recommender import HybridRecommender

    data, test, task = fitted.data, fitted.test_rows, fitted.task
    rec = HybridRecommender(name, model_config=dict(config.model_overrides.get(name, {})),
                            train_config=dict(config.train_overrides), seed=config.seed + 42,
                            log=lambda line: log(f"  {line}"))  # its epochs: minutes each at scale
    started = time.perf_counter()
    rec.fit_dataset(data, fitted.train_rows, encoder)
    metrics = {"kind": "keras", "fit_seconds": round(time.perf_counter() - started, 2),
               "best_epoch": rec.training["best_epoch"], "epochs_run": rec.training["epochs_run"]}
    if name != "implicit":  # a line before each part: each takes half a minute or more at scale
        log(f"  {name}: predicting {len(test):,} test ratings")
        predicted = rec.score_index(data.user_index[test], data.item_index[test])
        metrics.update(rmse=rmse(data.rating[test], predicted), mae=mae(data.rating[test], predicted))
    log(f"  {name}: ranking {len(task.users):,} users over {len(task.candidates):,} products")
    metrics.update(evaluate_ranking(rec.score_matrix, task, config.ks, fitted.popularity))
    metrics["history"] = rec.training["history"]
    return metrics


def _two_stage(data, config: EvaluationConfig, encoder, train_rows, task, popularity, texts, fields, log) -> dict:
    """The two-stage recommender fitted on the training rows (its blend weights chosen on
    validation likes carved from them), ranking the task through its serving path: retrieved
    candidates blended, every other product below them. Ranking only (it predicts no ratings)."""
    from hybrid.core.config import two_stage_settings
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = TwoStageRecommender(**two_stage_settings(config.recommender_settings), seed=config.seed + 42,
                              log=lambda line: log(f"  {line}"))
    started = time.perf_counter()
    rec.fit_dataset(data, train_rows, encoder, texts, fields)
    metrics = {"kind": "keras", "fit_seconds": round(time.perf_counter() - started, 2), "weights": rec.weights}
    if len(task.candidates) == len(data.items):  # the whole catalogue: ranked as it serves
        metrics.update(evaluate_recommendations(rec.top_rows, task, config.ks, popularity))
    else:
        metrics.update(evaluate_ranking(rec.score, task, config.ks, popularity))
    return metrics


def _line(metrics: dict) -> str:
    parts = [f"{k}={metrics[k]:.4f}" for k in ("rmse", "ndcg@10", "precision@10", "recall@10")
             if k in metrics]
    return " ".join(parts + [f"fit={metrics['fit_seconds']}s"])


def markdown_table(results: dict, ks=(10,)) -> str:
    """One row per model: the rating and ranking metrics."""
    columns = ["rmse", "mae"] + [f"{m}@{k}" for k in ks for m in
                                 ("precision", "recall", "ndcg", "map", "hit_rate", "coverage", "mean_popularity")] + ["fit_seconds"]
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, metrics in results.items():
        cells = []
        for column in columns:
            value = metrics.get(column)
            cells.append("-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
