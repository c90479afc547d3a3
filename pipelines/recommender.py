"""The text + ratings pipeline: raw files -> canonical tables -> cleaned text -> product
vectors -> encoded dataset.

    fetch    (default dataset only) MovieLens-100k -> raw/
    ingest   raw metadata + ratings  -> ingest/items.parquet, ingest/ratings.parquet,
                                        ingest/quarantine.jsonl
    text     items                   -> text/item_text.parquet
    vectors  item text               -> vectors/item_vectors.parquet, vectors/text_encoder.npz
    dataset  ratings + text + vectors -> dataset/{ratings,users,items}.parquet, item_vectors.npy
    train    encoded dataset         -> model/ (the saved HybridRecommender)
    recommender encoded dataset + text -> recommender/ (the saved TwoStageRecommender that
                                        ``hybrid serve``, ``recommend`` and ``similar`` answer from)
    evaluate encoded dataset         -> evaluation/metrics.{json,md}, charts, report.html

Every stage is a function of ``hybrid`` plus the declaration below; ``hybrid.pipeline.runner.Runner``
decides what is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hybrid.core.errors import ArgumentError, StageError
from hybrid.data.datasets import fetch_movielens_100k, ml100k_file_names
from hybrid.data.ingest import ingest
from hybrid.data.io import MAX_LINE_MB
from hybrid.pipeline.runner import Stage
from hybrid.pipeline.stages import (
    clean_text_step,
    dataset_step,
    evaluate_step,
    recommender_step,
    train_step,
    vectors_step,
)


@dataclass
class PipelineConfig:
    """What to run on and with which parameters. No files given = MovieLens-100k."""

    out: str = "artifacts"
    ratings: list[str] = field(default_factory=list)
    meta: list[str] = field(default_factory=list)
    ratings_formats: list[str] | None = None
    meta_formats: list[str] | None = None
    ratings_columns: str | dict | None = None  # user=...,item=...,rating=... of a delimited file
    source: str = "recbole"  # where MovieLens-100k comes from when no files are given
    rating_range: tuple[float, float] | None = None
    text_fields: tuple[str, ...] | None = None
    title: bool | None = None
    brand: bool = False
    vector_method: str = "word2vec"
    pretrained: str | None = "glove-6b-50d"
    dim: int | None = None
    epochs: int = 5
    min_count: int = 2
    seed: int = 42
    deterministic: bool | None = None  # Word2Vec on one thread; None: when the corpus is small
    vectors_sample: int | None = None  # fit the encoder on this many products' texts (None: all)
    min_user_ratings: int = 1
    min_item_ratings: int = 1
    kcore: bool = False
    partition_mb: float = 128.0
    max_line_mb: float = MAX_LINE_MB  # a longer input line is quarantined unread
    model: str = "hybrid"
    model_config: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    recommender_config: dict = field(default_factory=dict)  # hybrid.core.config.two_stage_settings
    protocol: str = "rating"
    split: str = "random"
    test_share: float = 0.2
    eval_seed: int = 0
    k: int = 10
    eval_models: list[str] | None = None
    eval_baselines: list[str] | None = None
    eval_users: int | None = None  # rank a seeded sample of test users (None: hybrid.evaluation.metrics.default_eval_users)
    test_file: str | None = None  # predefined test pairs (e.g. MovieLens u1.test)
    engine: str = "local"  # "spark": ingest, text, vectors and dataset run as Spark jobs
    spark_master: str | None = None  # any Spark master URL (default local[*])
    spark_conf: dict = field(default_factory=dict)  # Spark settings, e.g. spark.executor.memory

    @property
    def default_dataset(self) -> bool:
        return not self.ratings and not self.meta


ENGINES = ("local", "spark")


def _engine_steps(config: PipelineConfig) -> dict:
    """The functions of the data stages for the configured engine (the Spark ones write the
    same files; see ``hybrid.pipeline.spark_stages``)."""
    if config.engine != "spark":
        return {"ingest": ingest, "text": clean_text_step, "vectors": vectors_step, "dataset": dataset_step}
    from hybrid.core.spark import configure
    from hybrid.pipeline import spark_stages

    configure(config.spark_master, config.spark_conf)
    return {"ingest": spark_stages.ingest_spark, "text": spark_stages.clean_text_spark,
            "vectors": spark_stages.vectors_spark, "dataset": spark_stages.dataset_spark}


def validate(config: PipelineConfig) -> None:
    """Check every setting a user gives before any stage runs: a typo must not cost an hour of
    ingest first. Raises ``ArgumentError`` / ``InputFormatError`` naming the bad value."""
    from hybrid.core.config import (
        EVALUATED_MODELS,
        ModelConfig,
        TrainConfig,
        check_model_name,
        check_settings,
        two_stage_settings,
    )
    from hybrid.data.formats import check_input_file, check_rating_range, get_format, parse_column_names
    from hybrid.data.text import TextConfig
    from hybrid.models.registry import BASELINES

    for path in list(config.ratings) + list(config.meta) + ([config.test_file] if config.test_file else []):
        check_input_file(path)
    for name in (config.ratings_formats or []) + (config.meta_formats or []):
        if name:
            get_format(name)
    parse_column_names(config.ratings_columns)
    check_rating_range(config.rating_range)
    if config.text_fields is not None:
        TextConfig(tuple(config.text_fields))
    check_model_name(config.model)
    check_settings(config.model_config, ModelConfig, "--model-param")
    check_settings(config.train_config, TrainConfig, "--train-param")
    two_stage_settings(config.recommender_config)
    for name in config.eval_models or []:
        check_model_name(name, EVALUATED_MODELS)
    for name in config.eval_baselines or []:
        if name not in BASELINES:
            raise ArgumentError(f"unknown baseline {name!r}; choose from {', '.join(sorted(BASELINES))}")
    for name, value in (("--min-user-ratings", config.min_user_ratings),
                        ("--min-item-ratings", config.min_item_ratings), ("--k", config.k),
                        ("--epochs", config.epochs)):
        if value < 1:
            raise ArgumentError(f"{name} must be at least 1, got {value}")
    if config.eval_users is not None and config.eval_users < 1:
        raise ArgumentError(f"--eval-users must be at least 1, got {config.eval_users}")
    if config.vectors_sample is not None and config.vectors_sample < 1:
        raise ArgumentError(f"--vectors-sample must be at least 1, got {config.vectors_sample}")
    if config.engine not in ENGINES:
        raise ArgumentError(f"unknown engine {config.engine!r}; choose from {', '.join(ENGINES)}")
    if config.engine == "spark":
        from hybrid.core.spark import check_available

        check_available()
    elif config.spark_master or config.spark_conf:
        raise ArgumentError("--spark-master and --spark-conf need --engine spark")
    if not 0 < config.test_share < 1:
        raise ArgumentError(f"--test-share must be between 0 and 1, got {config.test_share}")


def build(config: PipelineConfig) -> list[Stage]:
    """The stages for ``config``, in running order (the settings are validated first).

    Example:
        >>> from hybrid.pipeline.runner import Runner
        >>> stages = build(PipelineConfig(out="artifacts"))
        >>> [s.name for s in stages]
        ['fetch', 'ingest', 'text', 'vectors', 'dataset', 'train', 'recommender', 'evaluate']
    """
    validate(config)
    steps = _engine_steps(config)
    out = Path(config.out)
    stages: list[Stage] = []
    if config.default_dataset:
        ratings_name, items_name = ml100k_file_names(config.source)
        raw_ratings, raw_items = out / "raw" / ratings_name, out / "raw" / items_name
        stages.append(Stage(
            "fetch", fetch_movielens_100k,
            outputs={"ratings_out": str(raw_ratings), "items_out": str(raw_items)},
            params={"source": config.source},
            description="MovieLens-100k from PyPI's recbole wheel (or GroupLens)"))
        ratings, meta = [str(raw_ratings)], [str(raw_items)]
        # genres alone say little about a film; its title is part of its text
        fields = config.text_fields or ("category",)
        title = True if config.title is None else config.title
    else:
        if not config.ratings or not config.meta:
            raise StageError("give both --ratings and --meta files (or neither, for the "
                             "default MovieLens-100k dataset)")
        ratings, meta = list(config.ratings), list(config.meta)
        fields = config.text_fields or ("feature", "description", "category")
        title = bool(config.title)

    # every stage in a process of its own (what one leaves behind is not the next one's: at
    # Electronics size the recommender stage peaked 0.9 GB higher after training in the same
    # process), but the Spark engine's data stages, and its evaluate stage (MLlib ALS), share
    # this process's configured Spark session
    data_own_process = config.engine != "spark"
    ingest_dir, text_dir, vec_dir, data_dir = (out / d for d in ("ingest", "text", "vectors", "dataset"))
    items_path, ratings_path = ingest_dir / "items.parquet", ingest_dir / "ratings.parquet"
    item_text = text_dir / "item_text.parquet"
    item_vectors = vec_dir / "item_vectors.parquet"
    stages.append(Stage(
        "ingest", steps["ingest"],
        inputs={"meta_paths": meta, "ratings_paths": ratings},
        outputs={"items_out": str(items_path), "ratings_out": str(ratings_path),
                 "quarantine_out": str(ingest_dir / "quarantine.jsonl")},
        params={"meta_formats": config.meta_formats, "ratings_formats": config.ratings_formats,
                "rating_range": list(config.rating_range) if config.rating_range else None,
                "partition_mb": config.partition_mb, "ratings_columns": config.ratings_columns,
                "max_line_mb": config.max_line_mb},
        description="raw files -> canonical items and ratings tables", own_process=data_own_process))
    stages.append(Stage(
        "text", steps["text"],
        inputs={"items_path": str(items_path)},
        outputs={"item_text_path": str(item_text)},
        params={"fields": list(fields), "title": title, "brand": config.brand},
        description="cleaned product text", own_process=data_own_process))
    stages.append(Stage(
        "vectors", steps["vectors"],
        inputs={"item_text_path": str(item_text)},
        outputs={"item_vectors_path": str(item_vectors),
                 "encoder_path": str(vec_dir / "text_encoder.npz")},
        params={"method": config.vector_method, "pretrained": config.pretrained,
                "dim": config.dim, "epochs": config.epochs, "min_count": config.min_count,
                "seed": config.seed, "deterministic": config.deterministic,
                # only when set: runs from before the option stay fresh
                **({"fit_documents": config.vectors_sample} if config.vectors_sample is not None else {})},
        description="product vectors", own_process=data_own_process))
    stages.append(Stage(
        "dataset", steps["dataset"],
        inputs={"ratings_path": str(ratings_path), "item_text_path": str(item_text),
                "item_vectors_path": str(item_vectors), "items_path": str(items_path)},
        outputs={"out_ratings": str(data_dir / "ratings.parquet"),
                 "out_users": str(data_dir / "users.parquet"),
                 "out_items": str(data_dir / "items.parquet"),
                 "out_vectors": str(data_dir / "item_vectors.npy")},
        params={"min_user_ratings": config.min_user_ratings,
                "min_item_ratings": config.min_item_ratings, "iterate": config.kcore},
        description="merged, filtered, encoded ratings with aligned item vectors", own_process=data_own_process))
    dataset_inputs = {"dataset_ratings": str(data_dir / "ratings.parquet"),
                      "dataset_users": str(data_dir / "users.parquet"),
                      "dataset_items": str(data_dir / "items.parquet"),
                      "dataset_vectors": str(data_dir / "item_vectors.npy"),
                      "encoder_path": str(vec_dir / "text_encoder.npz")}
    stages.append(Stage(
        "train", train_step, inputs=dataset_inputs, outputs={"model_dir": str(out / "model")},
        params={"model": config.model, "model_config": config.model_config,
                "train_config": config.train_config, "seed": config.seed},
        description="the recommender trained on all ratings", own_process=True))
    stages.append(Stage(
        "recommender", recommender_step, inputs={**dataset_inputs, "item_text_path": str(item_text)},
        outputs={"model_dir": str(out / "recommender")},
        params={"config": config.recommender_config, "seed": config.seed},
        description="the two-stage recommender (retrieval index + re-ranking) that serves", own_process=True))
    eval_dir = out / "evaluation"
    eval_inputs = {**dataset_inputs, "item_text_path": str(item_text)}  # the two-stage recommender's texts
    if config.test_file:
        eval_inputs["test_file"] = str(config.test_file)
    stages.append(Stage(
        "evaluate", evaluate_step, inputs=eval_inputs,
        outputs={"metrics_json": str(eval_dir / "metrics.json"),
                 "metrics_md": str(eval_dir / "metrics.md"),
                 "ndcg_plot": str(eval_dir / f"ndcg_at_{config.k}.png"),
                 "rmse_plot": str(eval_dir / "rmse.png"),
                 "report_html": str(eval_dir / "report.html")},
        params={"protocol": config.protocol, "split": config.split,
                "test_share": config.test_share, "seed": config.eval_seed, "k": config.k,
                "models": config.eval_models, "baselines": config.eval_baselines,
                "model_config": config.model_config, "train_config": config.train_config,
                "eval_users": config.eval_users, "model": config.model,
                "recommender_config": config.recommender_config,
                **({"spark_als": True} if config.engine == "spark" else {})},
        description="every model and baseline on one split", own_process=data_own_process))
    return stages


@dataclass
class Prepared:
    """What a model fits on, as the pipeline made it: the encoded dataset, the fitted text
    encoder, the products' cleaned one-field texts in catalogue order ("" where a product has
    none) and each text field's cleaned texts (``catalogue_fields``)."""

    data: object  # hybrid.data.dataset.EncodedDataset
    encoder: object  # hybrid.content.vectors.TextEncoder
    texts: list[str]
    out: Path
    fields: dict[str, list[str]] | None = None


def prepare(out: str | Path, log=None, **settings) -> Prepared:
    """Run the pipeline up to the encoded dataset in ``out`` (stages already fresh are kept) and
    load what a model fits on. ``settings``: ``PipelineConfig`` fields (no files: MovieLens-100k).

    Example:
        >>> prepared = prepare("artifacts")  # doctest: +SKIP
        >>> TwoStageRecommender().fit_dataset(prepared.data, encoder=prepared.encoder, texts=prepared.texts,
        ...                                   fields=prepared.fields)  # doctest: +SKIP
    """
    from hybrid.content.vectors import TextEncoder
    from hybrid.data.dataset import load_dataset
    from hybrid.pipeline.runner import Runner
    from hybrid.pipeline.stages import catalogue_fields, catalogue_texts

    out = Path(out)
    Runner(build(PipelineConfig(out=str(out), **settings)), out, log=log or (lambda line: None)).run(until="dataset")
    data = load_dataset(out / "dataset")
    texts = [text or "" for text in catalogue_texts(data, out / "text" / "item_text.parquet").to_pylist()]
    fields = catalogue_fields(data, out / "text" / "item_text.parquet")
    return Prepared(data, TextEncoder.load(out / "vectors" / "text_encoder.npz"), texts, out, fields)
