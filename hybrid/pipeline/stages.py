"""File-level stage functions for text, vectors and the encoded dataset.

Each reads its input files, calls the pure functions of its layer and writes its outputs; the
runner (``hybrid.pipeline.runner``) gives it the paths and parameters and decides whether it runs.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybrid.content.encoding import encode_vectors, fit_text_encoder, vector_counts, vectors_report
from hybrid.content.vectors import TextEncoder
from hybrid.core.errors import InputFormatError, StageError
from hybrid.core.progress import Progress
from hybrid.data.dataset import encode, save_dataset
from hybrid.data.io import ParquetBatchWriter, iter_parquet_batches, release_arrow_pages
from hybrid.data.schema import ITEM_TEXT_SCHEMA, item_vectors_schema
from hybrid.data.text import TEXT_FIELDS, TextConfig, clean_corpus, stop_words


def clean_text_step(items_path, item_text_path, fields=("feature", "description", "category"),
                    title: bool = False, brand: bool = False) -> dict:
    """items.parquet -> item_text.parquet (item_id, cleaned one-field text, its source field,
    every field cleaned)."""
    config = TextConfig(tuple(fields), title, brand)
    sources: Counter = Counter()
    with ParquetBatchWriter(item_text_path, ITEM_TEXT_SCHEMA) as writer:
        for batch in iter_parquet_batches(items_path):
            for item_id, text, source, cleaned in clean_corpus(batch.to_pylist(), config):
                sources[source] += 1
                writer.append({"item_id": item_id, "text": text, "source": source, "fields": cleaned})
    return {"items": writer.rows, "empty_text": sources.get("none", 0),
            "title_only": sources.get("title", 0), "text_source": dict(sources),
            "stop_words": stop_words()[1], "fields": list(fields), "title": title, "brand": brand}


def vectors_step(item_text_path, item_vectors_path, encoder_path, method: str = "word2vec",
                 pretrained: str | None = "glove-6b-50d", dim: int | None = None,
                 epochs: int = 5, min_count: int = 2, window: int = 5, seed: int = 42,
                 workers: int | None = None, deterministic: bool | None = None,
                 fit_documents: int | None = None) -> dict:
    """item_text.parquet -> item_vectors.parquet + the fitted text encoder (text_encoder.npz: arrays, no pickle).
    ``deterministic``: see ``fit_word2vec_encoder`` (None: reproducible on small corpora);
    ``fit_documents``: see ``fit_text_encoder``."""
    encoder, in_pretrained = fit_text_encoder(item_text_path, method, pretrained, dim, epochs,
                                              min_count, window, seed, workers, deterministic,
                                              fit_documents)
    counts: Counter = Counter()
    with ParquetBatchWriter(item_vectors_path, item_vectors_schema(encoder.dim)) as writer, \
            Progress(pq.ParquetFile(item_text_path).metadata.num_rows, "vectors: product vectors", "products") as progress:
        for batch in iter_parquet_batches(item_text_path, columns=["item_id", "text"]):
            table = encode_vectors(encoder, in_pretrained, batch)
            counts.update(vector_counts(table))
            progress.update(table.num_rows)
            writer.write_table(table)
    encoder.save(encoder_path)
    return vectors_report(encoder, in_pretrained, counts)


def dataset_step(ratings_path, item_text_path, item_vectors_path, items_path,
                 out_ratings, out_users, out_items, out_vectors,
                 min_user_ratings: int = 1, min_item_ratings: int = 1, iterate: bool = False) -> dict:
    """Merge, filter and encode into the dataset files the models read."""
    # only whether an item has text matters here, not the text itself (it can be GBs)
    has_text = [pa.table({"item_id": b.column("item_id"),
                          "has_text": pc.not_equal(b.column("text"), "")})
                for b in iter_parquet_batches(item_text_path, columns=["item_id", "text"])]
    dataset, report = encode(
        pq.read_table(ratings_path),
        pa.concat_tables(has_text) if has_text else pa.table({"item_id": pa.array([], pa.string()),
                                                              "has_text": pa.array([], pa.bool_())}),
        pq.read_table(item_vectors_path),
        pq.read_table(items_path, columns=["item_id", "title"]),
        min_user_ratings, min_item_ratings, iterate)
    save_dataset(dataset, out_ratings, out_users, out_items, out_vectors)
    report.update(min_user_ratings=min_user_ratings, min_item_ratings=min_item_ratings,
                  iterate=iterate)
    return report


__all__ = ["clean_text_step", "vectors_step", "dataset_step"]


# ---------------------------------------------------------------- models
def _progress(line: str) -> None:
    """Progress of long steps, on standard error (standard output stays for results)."""
    print(line, file=sys.stderr, flush=True)


def _dataset_dir(dataset_ratings) -> Path:
    return Path(dataset_ratings).parent


def train_step(dataset_ratings, dataset_users, dataset_items, dataset_vectors, encoder_path, model_dir,
               model: str = "hybrid", model_config: dict | None = None, train_config: dict | None = None,
               seed: int = 42) -> dict:
    """Fit the recommender on the whole encoded dataset and save it, with its learning curve
    (``learning_curve.png``), as the folder ``model_dir`` (the runner swaps it in whole).

    Each dataset file is a declared input so that the runner hashes it; they are read together
    from their folder."""
    from hybrid.data.dataset import load_dataset
    from hybrid.recommend.hybrid_recommender import HybridRecommender, plot_learning_curve

    data = load_dataset(_dataset_dir(dataset_ratings))
    rec = HybridRecommender(model, model_config=model_config, train_config=train_config, seed=seed,
                            log=_progress)
    rec.fit_dataset(data, encoder=TextEncoder.load(encoder_path))
    rec.save(model_dir)  # saving draws nothing; the stage's report figure is drawn here
    plot_learning_curve(rec.training["history"], Path(model_dir) / "learning_curve.png", model)
    return {"model": model, "users": len(rec.users), "items": len(rec.catalogue),
            "cold_items": int(rec.catalogue.cold.sum()), "best_epoch": rec.training["best_epoch"],
            "epochs_run": rec.training["epochs_run"], "train_seconds": rec.training["seconds"],
            "epoch_seconds": rec.training["epoch_seconds"],
            "train_rows": rec.training["train_rows"], "examples_per_second": rec.training["examples_per_second"],
            "stopped": rec.training["stopped"],
            "final_val_loss": min(rec.training["history"].get("val_loss", [float("nan")]))}


def _in_catalogue_order(data, item_text_path, column: str) -> pa.Array:
    """One column of the text stage's table for the encoded dataset's products, in catalogue order."""
    table = pq.read_table(item_text_path, columns=["item_id", column])
    positions = pc.index_in(pa.array(data.items.values, pa.string()), value_set=table.column("item_id"))
    ordered = table.column(column).take(positions)
    del table
    release_arrow_pages()  # the table read, now copied in catalogue order
    return ordered


def catalogue_texts(data, item_text_path) -> pa.Array:
    """The text stage's cleaned texts of the encoded dataset's products, in catalogue order."""
    return _in_catalogue_order(data, item_text_path, "text")


def catalogue_fields(data, item_text_path) -> dict[str, list[str]]:
    """The text stage's cleaned fields of the encoded dataset's products, one list per field of
    ``TEXT_FIELDS`` in catalogue order ('' where a product lacks the field)."""
    ordered = _in_catalogue_order(data, item_text_path, "fields")
    flat = pc.list_flatten(ordered).to_numpy(zero_copy_only=False)
    width = len(TEXT_FIELDS)
    if len(flat) != width * len(ordered):
        raise InputFormatError(f"{item_text_path}: each product's fields must hold {width} texts ({TEXT_FIELDS})")
    return {name: flat[k::width].tolist() for k, name in enumerate(TEXT_FIELDS)}


def recommender_step(dataset_ratings, dataset_users, dataset_items, dataset_vectors, encoder_path,
                     item_text_path, model_dir, config: dict | None = None, seed: int = 42) -> dict:
    """Fit the two-stage recommender (what ``hybrid serve`` answers from) on the whole encoded
    dataset and save it, indexes and product texts included, into ``model_dir``. ``config``:
    flat settings as ``hybrid.core.config.two_stage_settings`` reads them."""
    from hybrid.core.config import two_stage_settings
    from hybrid.data.dataset import load_dataset
    from hybrid.recommend.two_stage import TwoStageRecommender

    data = load_dataset(_dataset_dir(dataset_ratings))
    rec = TwoStageRecommender(**two_stage_settings(config), seed=seed, log=_progress)
    rec.fit_dataset(data, encoder=TextEncoder.load(encoder_path), texts=catalogue_texts(data, item_text_path),
                    fields=catalogue_fields(data, item_text_path))
    rec.info["trained_on"] = {"dataset": str(_dataset_dir(dataset_ratings).resolve()), "ratings": len(data.rating),
                              "users": len(data.users), "items": len(data.items)}
    del data  # its rating arrays, before saving (saving holds the tables it writes)
    rec.save(model_dir)
    return {"users": len(rec.users), "items": len(rec.catalogue), "cold_items": int(rec.catalogue.cold.sum()),
            "likes": rec.info["likes"], "item_item": rec.info["item_item"], "index": rec.retrieval_index.kind,
            "weights": rec.weights, "validation": rec.validation}


def evaluate_step(dataset_ratings, dataset_users, dataset_items, dataset_vectors, encoder_path,
                  metrics_json, metrics_md, ndcg_plot, rmse_plot, report_html, protocol: str = "rating",
                  split: str = "random", test_share: float = 0.2, seed: int = 0, k: int = 10,
                  threshold: float = 4.0, models: list[str] | None = None,
                  baselines: list[str] | None = None, test_file: str | None = None,
                  model_config: dict | None = None, train_config: dict | None = None,
                  eval_users: int | None = None, model: str = "hybrid", spark_als: bool = False,
                  item_text_path=None, recommender_config: dict | None = None) -> dict:
    """Every model and baseline on one split: metrics JSON, a markdown table, two charts and
    ``report.html`` (all of it on one page: ``hybrid.experiments.report``).
    (The dataset files are declared one by one for the runner and read from their folder.)

    With ``test_file`` (any ratings format, e.g. MovieLens u1.test) its (user, item) pairs are
    the test rows and everything else trains: the predefined-split protocol. ``model_config``
    and ``train_config`` apply to every Keras model evaluated; ``eval_users`` ranks a seeded
    sample of that many test users, each over the whole catalogue (default:
    ``hybrid.evaluation.metrics.default_eval_users``). ``models`` None: every Keras model, or only
    ``model`` (the one the pipeline trains) above ``ALL_MODELS_MAX_RATINGS`` ratings.
    ``spark_als`` (the Spark engine's runs) adds Spark MLlib ALS to the default baselines of the
    rating protocols (not to cold items, which have no factors). The two-stage recommender
    (``two-stage``, with ``recommender_config`` as the recommender stage takes it) is fitted on
    the training rows with the products' texts (``item_text_path``) and ranks through the path
    that serves."""
    import json

    from hybrid.core.config import TWO_STAGE
    from hybrid.data.dataset import load_dataset
    from hybrid.experiments.protocols import EvaluationConfig, evaluate_all

    data = load_dataset(_dataset_dir(dataset_ratings))
    models, baselines = _evaluated(len(data.rating), model, models, baselines, spark_als and protocol != "cold-items")
    config = EvaluationConfig(protocol=protocol, split=split, test_share=test_share, seed=seed,
                              ks=(k,), threshold=threshold, models=models,
                              baselines=tuple(baselines),
                              model_overrides={name: dict(model_config or {}) for name in models},
                              train_overrides=dict(train_config or {}), eval_users=eval_users,
                              recommender_settings=dict(recommender_config or {}))
    train_rows = test_rows = None
    if test_file:
        train_rows, test_rows = predefined_split(data, test_file)
        split = f"predefined ({test_file})"
    texts = fields = None
    if item_text_path and TWO_STAGE in models:
        texts, fields = catalogue_texts(data, item_text_path), catalogue_fields(data, item_text_path)
    outcome = evaluate_all(data, config, TextEncoder.load(encoder_path), train_rows, test_rows, texts=texts,
                           fields=fields)
    with open(metrics_json, "w") as handle:
        json.dump({"protocol": protocol, "split_name": split, "seed": seed, "k": k,
                   "threshold": threshold, **outcome}, handle, indent=2)
    _write_reports(outcome, metrics_md, ndcg_plot, rmse_plot, report_html,
                   f"Protocol {protocol}, split {split}, seed {seed}", k)
    best = {}
    rated = {n: m["rmse"] for n, m in outcome["results"].items() if "rmse" in m}
    if rated:
        best["best_rmse"] = min(rated.items(), key=lambda kv: kv[1])
    ranked = {n: m[f"ndcg@{k}"] for n, m in outcome["results"].items() if f"ndcg@{k}" in m}
    if ranked:
        best[f"best_ndcg@{k}"] = max(ranked.items(), key=lambda kv: kv[1])
    return {"protocol": protocol, "split_name": split, **outcome["split"], **best}


def _evaluated(n_ratings: int, model: str, models, baselines, spark_als: bool) -> tuple[tuple, tuple]:
    """The models and baselines the evaluate stage fits: the ones named, else the defaults for
    this many ratings (saying what a large dataset leaves out), with Spark ALS where asked."""
    from hybrid.experiments.protocols import (
        DEFAULT_BASELINES,
        NEIGHBOURHOOD_BASELINES,
        default_baselines,
        default_models,
    )

    if models is None:
        models = default_models(n_ratings, model)
        if len(models) == 1:
            _progress(f"evaluate: {n_ratings:,} ratings, so only the trained model ({model}) "
                      "is fitted; --models names others")
    if baselines is None:
        baselines = default_baselines(n_ratings)
        if len(baselines) < len(DEFAULT_BASELINES):
            _progress(f"evaluate: {n_ratings:,} ratings, so the neighbourhood baselines "
                      f"({', '.join(NEIGHBOURHOOD_BASELINES)}) are left out; --baselines names them")
        if spark_als:
            baselines = tuple(baselines) + ("als", "als-implicit")
    return tuple(models), tuple(baselines)


def _write_reports(outcome: dict, metrics_md, ndcg_plot, rmse_plot, report_html, heading: str, k: int) -> None:
    from hybrid.experiments.protocols import markdown_table
    from hybrid.experiments.report import save_chart, write_report

    with open(metrics_md, "w") as handle:
        handle.write(f"{heading}: {outcome['split']}\n\n")
        handle.write(markdown_table(outcome["results"], (k,)))
    save_chart(outcome["results"], ndcg_plot, f"ndcg@{k}")
    save_chart(outcome["results"], rmse_plot, "rmse")
    write_report(outcome, report_html, heading, k)


def predefined_split(data, test_file) -> tuple:
    """Train/test rows of the encoded dataset from a file of test ratings."""
    from hybrid.data.formats import detect_format
    from hybrid.data.ingest import read_records
    from hybrid.data.io import Quarantine
    from hybrid.evaluation.splits import pairs_split

    fmt = detect_format(test_file, "ratings")
    pairs = [(r["user_id"], r["item_id"]) for r in read_records(test_file, fmt, Quarantine(None))]
    users = data.users.index([u for u, _ in pairs], missing="ignore")
    items = data.items.index([i for _, i in pairs], missing="ignore")
    keep = (users >= 0) & (items >= 0)
    if not keep.any():
        raise StageError(f"{test_file}: none of its (user, item) pairs is in the dataset")
    return pairs_split(data.user_index, data.item_index, users[keep], items[keep])
