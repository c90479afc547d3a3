"""Command line.

    hybrid run                                   # MovieLens-100k: every stage, under artifacts/
    hybrid run --ratings Electronics.csv --meta meta_Electronics.json.gz --out artifacts/el
    hybrid run --config run.toml                 # settings from a TOML file; flags win over it
    hybrid config --config run.toml              # the settings a run would use, as TOML
    hybrid status                                # what is stale and why
    hybrid train --model neumf                   # the train stage and what it needs
    hybrid evaluate --protocol cold-items        # the evaluate stage and what it needs
    hybrid recommend --user 196                  # top-10 for a known user
    hybrid recommend --liked 50,172 --text "space adventure"   # a new user
    hybrid similar --item 1 | --text "haunted house"
    hybrid serve [--model artifacts/recommender] [--port 8000]   # HTTP API + page

Every command that prints results takes --json; `hybrid COMMAND --help` lists its flags with
their defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from pathlib import Path

from hybrid.cli import settings
from hybrid.core.errors import ArgumentError, HybridError

#: The pipeline's stages in running order (``pipelines.recommender.build``; a test holds them equal).
STAGES = ("fetch", "ingest", "text", "vectors", "dataset", "train", "recommender", "evaluate")
BASELINES = ("als", "als-implicit", "biases", "content-only", "ease", "global-mean", "item-knn",
             "popularity", "random", "user-knn")  # hybrid.models.registry.BASELINES (a test holds them equal)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's help ends with its default, where it has one worth showing."""

    def _get_help_string(self, action):
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    _data_args(parser)
    _text_args(parser)
    _engine_args(parser)
    filt = parser.add_argument_group("filtering")
    filt.add_argument("--min-user-ratings", type=int, default=1, help="drop users with fewer ratings")
    filt.add_argument("--min-item-ratings", type=int, default=1, help="drop items with fewer ratings")
    filt.add_argument("--kcore", action="store_true",
                      help="repeat the minimum-count filter until nothing changes")
    _model_args(parser)


def _data_args(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (no files = MovieLens-100k)")
    data.add_argument("--ratings", action="append", default=[], metavar="FILE",
                      help="ratings/reviews file (repeatable); format detected unless given")
    data.add_argument("--meta", action="append", default=[], metavar="FILE",
                      help="item metadata file (repeatable)")
    data.add_argument("--ratings-format", action="append", default=None, metavar="NAME",
                      help="format of each --ratings file, e.g. amazon2018-ratings")
    data.add_argument("--meta-format", action="append", default=None, metavar="NAME",
                      help="format of each --meta file, e.g. amazon2014-meta")
    data.add_argument("--ratings-columns", metavar="SPEC",
                      help="columns of a delimited ratings file with a header, e.g. "
                           "user=reviewerID,item=asin,rating=overall,timestamp=unixReviewTime")
    data.add_argument("--max-line-mb", type=float, default=64.0, metavar="MB",
                      help="a longer input line is quarantined without being read whole")
    data.add_argument("--source", default="recbole",
                      help="where MovieLens-100k comes from: recbole (PyPI wheel), "
                           "grouplens, auto, or zip:PATH to a local ml-100k.zip")
    data.add_argument("--out", default="artifacts", help="output directory")
    data.add_argument("--rating-range", nargs=2, type=float, metavar=("LOW", "HIGH"),
                      help="valid rating range; ratings outside it are quarantined")


def _text_args(parser: argparse.ArgumentParser) -> None:
    text = parser.add_argument_group("text and vectors")
    text.add_argument("--text-fields", help="comma-separated fields in order of preference "
                      "(default feature,description,category; category for MovieLens)")
    text.add_argument("--title", action=argparse.BooleanOptionalAction, default=None,
                      help="put the title's words in front of the text")
    text.add_argument("--brand", action="store_true", help="put the brand's words in front")
    text.add_argument("--vector-method", default="word2vec",
                      choices=["word2vec", "word2vec-tfidf", "tfidf"],
                      help="averaged Word2Vec, TF-IDF-weighted Word2Vec, or TF-IDF reduced by SVD")
    text.add_argument("--pretrained", default="glove-6b-50d",
                      help="glove-6b-50d, a word2vec .bin/.txt or GloVe file, or 'none'")
    text.add_argument("--dim", type=int, help="vector size (default: the pretrained size; 100 for tfidf)")
    text.add_argument("--epochs", type=int, default=5, help="Word2Vec training epochs")
    text.add_argument("--seed", type=int, default=42, help="seed of the vectors and the models")
    text.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                      help="Word2Vec on one thread, identical vectors run to run (default: on "
                           "corpora under 5M tokens; --no-deterministic uses every core)")
    text.add_argument("--vectors-sample", type=int, metavar="N",
                      help="fit the text encoder on a seeded sample of N products' texts (a "
                           "corpus too large for one fit); every product is still encoded")


def _engine_args(parser: argparse.ArgumentParser) -> None:
    engine = parser.add_argument_group("engine of the data stages (ingest, text, vectors, dataset)")
    engine.add_argument("--engine", default="local", choices=["local", "spark"],
                        help="local: this machine's processes; spark: Spark jobs "
                             "(pip install -e '.[spark]'; Java 17), same output files")
    engine.add_argument("--spark-master", metavar="URL",
                        help="Spark master: local[*] (default), spark://HOST:7077, yarn, k8s://...")
    engine.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="Spark setting, e.g. spark.executor.memory=8g (repeatable)")
    engine.add_argument("--spark-conf-file", metavar="FILE",
                        help="Spark settings in spark-defaults.conf form ('key value' per line); "
                             "--spark-conf wins over it")


def _model_args(parser: argparse.ArgumentParser) -> None:
    from hybrid.core.config import MODEL_NAMES, ModelConfig, RetrievalConfig, TrainConfig, TwoStageConfig, settable_keys

    keys = {cls: ", ".join(k for k in settable_keys(cls) if (cls, k) != (RetrievalConfig, "threshold"))
            for cls in (ModelConfig, TrainConfig, TwoStageConfig, RetrievalConfig)}  # retrieval.threshold: fixed
    model = parser.add_argument_group("model and evaluation")
    model.add_argument("--model", default="hybrid", help=f"the Keras model the train stage fits: {', '.join(MODEL_NAMES)}")
    model.add_argument("--model-param", action="append", default=[], metavar="KEY=VALUE",
                       help=f"model setting, e.g. factors=64 or hidden=[256,64] (repeatable); keys: {keys[ModelConfig]}")
    model.add_argument("--train-param", action="append", default=[], metavar="KEY=VALUE",
                       help=f"training setting, e.g. epochs=20 or batch_size=2048 (repeatable); keys: {keys[TrainConfig]}")
    model.add_argument("--recommender-param", action="append", default=[], metavar="KEY=VALUE",
                       help="setting of the two-stage recommender that serves, e.g. candidates=300, "
                            f"retrieval.epochs=10 or train.epochs=5 (repeatable); keys: {keys[TwoStageConfig]}; "
                            f"retrieval.KEY: {keys[RetrievalConfig]}; network.KEY as --model-param's; "
                            "train.KEY as --train-param's")
    model.add_argument("--max-train-minutes", type=float, metavar="MIN",
                       help="stop training after the epoch past which the next would overrun "
                            "MIN minutes, keeping the best weights so far")
    model.add_argument("--protocol", default="rating", choices=["rating", "cold-items"],
                       help="known items, or 20%% of the rated items held out with all their ratings")
    model.add_argument("--split", default="random", choices=["random", "stratified", "chronological"],
                       help="how the evaluate stage splits the ratings")
    model.add_argument("--test-share", type=float, default=0.2, help="share of ratings held out for testing")
    model.add_argument("--test-file", help="predefined test ratings (e.g. u1.test): the split")
    model.add_argument("--eval-seed", type=int, default=0, help="seed of the split")
    model.add_argument("--k", type=int, default=10, help="cut-off of the ranking metrics")
    model.add_argument("--eval-users", type=int, metavar="N",
                       help="rank a seeded sample of N test users, each over the whole catalogue "
                            "(default: every test user while users x catalogue is at most 2e8 scores, "
                            "else as many as fit: 250 at 800k products)")
    model.add_argument("--models", help=f"comma-separated models to evaluate: {', '.join(MODEL_NAMES)} and "
                                        "two-stage (the recommender that serves); default all up to 1M "
                                        "ratings, the trained --model above")
    model.add_argument("--baselines", help=f"comma-separated baselines to evaluate: {', '.join(BASELINES)} "
                                           "(default all up to 1M ratings, all but item-knn, user-knn and "
                                           "ease above)")


def _train_settings(args) -> dict:
    values = settings.key_values(args.train_param)
    if args.max_train_minutes is not None:
        if args.max_train_minutes <= 0:
            raise ArgumentError(f"--max-train-minutes must be positive, got {args.max_train_minutes:g}")
        values["max_minutes"] = args.max_train_minutes
    return values


def _spark_conf(args) -> dict:
    from hybrid.core.spark import parse_spark_conf, read_spark_conf_file

    conf = read_spark_conf_file(args.spark_conf_file) if args.spark_conf_file else {}
    return {**conf, **parse_spark_conf(args.spark_conf)}


def _config(args):
    from pipelines.recommender import PipelineConfig

    return PipelineConfig(
        out=args.out, ratings=args.ratings, meta=args.meta,
        ratings_formats=args.ratings_format, meta_formats=args.meta_format, source=args.source,
        ratings_columns=args.ratings_columns, deterministic=args.deterministic, max_line_mb=args.max_line_mb,
        vectors_sample=args.vectors_sample,
        rating_range=tuple(args.rating_range) if args.rating_range else None,
        text_fields=tuple(f.strip() for f in args.text_fields.split(",")) if args.text_fields else None,
        title=args.title, brand=args.brand, vector_method=args.vector_method,
        pretrained=None if args.pretrained.lower() == "none" else args.pretrained,
        dim=args.dim, epochs=args.epochs, seed=args.seed,
        min_user_ratings=args.min_user_ratings, min_item_ratings=args.min_item_ratings,
        kcore=args.kcore, model=args.model, model_config=settings.key_values(args.model_param),
        train_config=_train_settings(args), recommender_config=settings.key_values(args.recommender_param), protocol=args.protocol, split=args.split,
        test_share=args.test_share, eval_seed=args.eval_seed, k=args.k, test_file=args.test_file,
        eval_users=args.eval_users, engine=args.engine, spark_master=args.spark_master,
        spark_conf=_spark_conf(args),
        eval_models=None if args.models is None else [m for m in args.models.split(",") if m],
        eval_baselines=None if args.baselines is None else [b for b in args.baselines.split(",") if b])


def _runner(args):
    from hybrid.pipeline.runner import Runner
    from pipelines.recommender import build

    return Runner(build(_config(args)), args.out, processes=not getattr(args, "in_process", False))


def cmd_run(args, target: str | None = None) -> int:
    summary = _run(args, target)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if not summary["ran"]:
        print("nothing to do: every stage is fresh")
    else:
        print(f"ran {', '.join(summary['ran'])}; reports in {summary['reports']}")
        quarantine = summary.get("quarantined")
        if quarantine:
            print(f"quarantined {quarantine['total']} line(s), each with file, line and reason, "
                  f"in {quarantine['file']}: {json.dumps(quarantine['by_reason'])}")
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    following = summary["next"]
    lines = ([f"  hybrid serve --model {following['model']}      # then open {following['url']}",
              f"  hybrid recommend --model-dir {following['model']} --user {following['user']}"]
             if "model" in following else [])
    lines += [f"  {name}: {following[name]}" for name in ("metrics", "report", "settings") if name in following]
    if lines:
        print("next:", *lines, sep="\n")
    return 0


#: The settings of the last run, beside its artifacts: ``hybrid run --config OUT/settings.toml``.
SETTINGS_FILE = "settings.toml"


def _run(args, target: str | None) -> dict:
    """Run the stale stages for ``args`` and say what happened, as data (``--json`` prints it)."""
    if args.until and args.stage:
        raise ArgumentError("give --until STAGE or --stage STAGE, not both")
    runner = _runner(args)
    record = {SETTINGS_FILE: settings.to_toml(_effective(args), "run")}
    with _stdout_to_stderr(args.json):  # what the stages print must not mix with the JSON
        ran = runner.run(force=args.force, until=args.until, only=args.stage, target=target, record=record)
    summary: dict = {"ran": list(ran), "reports": str(runner.reports_dir), "warnings": []}
    ingest = ran.get("ingest", {})
    quarantine = ingest.get("quarantine", {})
    if quarantine.get("total"):
        path = next(s.outputs["quarantine_out"] for s in runner.stages if s.name == "ingest")
        summary["quarantined"] = {"total": quarantine["total"], "by_reason": quarantine["by_reason"], "file": path}
    for kind in ("items", "ratings"):
        summary["warnings"] += ingest.get(kind, {}).get("warnings", [])
    summary["next"] = _next_steps(runner, args)
    return summary


def _next_steps(runner, args) -> dict:
    """What to do with what the run made: serve it (a known user to ask for), read its metrics,
    rerun its settings."""
    from hybrid.data.ids import IdMap

    outputs = {(stage.name, name): Path(path) for stage in runner.stages for name, path in stage.outputs.items()}
    model, metrics = outputs.get(("recommender", "model_dir")), outputs.get(("evaluate", "metrics_md"))
    report = outputs.get(("evaluate", "report_html"))
    steps: dict = {}
    if model is not None and (model / "manifest.json").is_file():
        steps.update(model=str(model), url="http://127.0.0.1:8000/",
                     user=IdMap.load(model / "users.parquet", "user").ids([0])[0])
    if metrics is not None and metrics.is_file():
        steps["metrics"] = str(metrics)
    if report is not None and report.is_file():
        steps["report"] = str(report)
    steps["settings"] = str(Path(args.out) / SETTINGS_FILE)
    return steps


@contextlib.contextmanager
def _stdout_to_stderr(on: bool):
    """Send this process's standard output, and its children's, to standard error while on."""
    if not on:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_train(args) -> int:
    if args.json:
        summary = _run(args, "train")
        print(json.dumps({**summary, "model": str(Path(args.out) / "model")}, indent=2))
        return 0
    code = cmd_run(args, target="train")
    print(f"model saved in {Path(args.out) / 'model'}")
    return code


def cmd_evaluate(args) -> int:
    table = Path(args.out) / "evaluation" / "metrics"
    if args.json:
        summary = _run(args, "evaluate")
        metrics = json.loads(table.with_suffix(".json").read_text()) if table.with_suffix(".json").is_file() else None
        print(json.dumps({**summary, "metrics": metrics}, indent=2))
        return 0
    code = cmd_run(args, target="evaluate")
    if table.with_suffix(".md").is_file():
        print(table.with_suffix(".md").read_text())
    return code


def _effective(args) -> dict:
    """The settings ``args`` runs with, as a ``--config`` file holds them."""
    return settings.effective(args, _settings_parser(), setting_names())


@functools.lru_cache(maxsize=1)
def _settings_parser() -> argparse.ArgumentParser:
    """The pipeline's settings flags alone (read, never parsed with: ``settings.effective``)."""
    parser = argparse.ArgumentParser(add_help=False)
    _pipeline_args(parser)
    return parser


def setting_names() -> set[str]:
    """What a ``--config`` file may set: every flag of the pipeline's settings."""
    return {action.dest for action in _settings_parser()._actions}


def cmd_config(args) -> int:
    """Print the settings a run with these flags and ``--config`` would use (checked as a run
    checks them); writes nothing."""
    from pipelines.recommender import validate

    validate(_config(args))
    values = _effective(args)
    print(json.dumps(values, indent=2) if args.json else settings.to_toml(values, "run"), end="" if not args.json else "\n")
    return 0


def _print_frame(frame, as_json: bool) -> None:
    if frame.empty and not as_json:
        print("no items to show: every candidate was left out (already rated, cold with "
              "--no-cold, or the liked items themselves)", file=sys.stderr)
        return
    if as_json:
        print(frame.to_json(orient="records", indent=2))
    else:
        import pandas as pd

        with pd.option_context("display.max_colwidth", 60, "display.width", 140):
            print(frame.to_string(index=False))


def _load_recommender(args):
    """The saved recommender in ``--model-dir`` (any kind: ``hybrid.load``)."""
    from hybrid.recommend.saved import load

    return load(args.model_dir)


def _check_n(n: int) -> None:
    if n <= 0:
        raise ArgumentError(f"--n must be at least 1, got {n}")


def cmd_recommend(args) -> int:
    _check_n(args.n)
    if args.user is not None and (args.liked or args.text):
        raise ArgumentError("give --user, or --liked/--text for a new user, not both")
    if args.user is None and not args.liked and not args.text:
        raise ArgumentError("give --user ID for a known user, or --liked IDS and/or --text TEXT "
                            "for a new one")
    from hybrid.recommend.shaping import Shaping

    shaping = {"diversity": args.diversity, "popularity_penalty": args.popularity_penalty}
    Shaping(**shaping)  # out-of-range values are refused before the model loads
    rec = _load_recommender(args)
    if args.why and not hasattr(rec, "explain"):
        raise ArgumentError(f"--why needs the two-stage recommender; {args.model_dir} holds another kind")
    candidates = args.candidates.split(",") if args.candidates else None
    if args.user is not None:
        if str(args.user) not in rec.users:
            raise ArgumentError(f"unknown user id {args.user!r}: the model never saw this user; "
                                "for a new user give --liked ITEM_IDS and/or --text \"what they "
                                "like\" instead of --user")
        frame = rec.frame(*rec.recommend(str(args.user), N=args.n, items=candidates, include_cold=not args.no_cold,
                                         filter_already_liked_items=not args.include_rated, **shaping))
        explained = rec.explain(str(args.user), frame["item_id"].tolist()) if args.why else None
    else:
        liked = args.liked.split(",") if args.liked else None
        frame = rec.frame(*rec.recommend_for_new_user(liked_items=liked, text=args.text, N=args.n,
                                                      items=candidates, include_cold=not args.no_cold, **shaping))
        explained = rec.explain_new_user(frame["item_id"].tolist(), liked_items=liked, text=args.text) \
            if args.why else None
    if explained is not None:
        frame["why"] = [rec.why(entry) for entry in explained]
        if args.json:
            frame["explanation"] = explained
    _print_frame(frame, args.json)
    return 0


def cmd_similar(args) -> int:
    _check_n(args.n)
    if (args.item is None) == (args.text is None):
        raise ArgumentError("give exactly one of --item or --text")
    rec = _load_recommender(args)
    frame = rec.frame(*(rec.similar_items(args.item, N=args.n, by=args.by) if args.item is not None
                        else rec.similar_to_text(args.text, N=args.n)))
    _print_frame(frame, args.json)
    return 0


def cmd_serve(args) -> int:
    from hybrid.core.config import check_count
    from hybrid.serving.handover import serve
    from hybrid.serving.slot import ServiceLimits, allowed_hosts

    if not (Path(args.model) / "manifest.json").is_file():
        raise ArgumentError(f"{args.model} holds no saved recommender: run `hybrid run` first (it writes "
                            "artifacts/recommender), or give --model DIR")
    if not 0 < args.port < 65536:
        raise ArgumentError(f"--port must be 1 to 65535, got {args.port}")
    limits = ServiceLimits(max_n=check_count(args.max_n, "--max-n"),
                           max_batch=check_count(args.max_batch, "--max-batch", "ids"),
                           max_answers=check_count(args.max_answers, "--max-answers", "answers"),
                           admin_token=_admin_token(args.admin_token_file),
                           allowed_hosts=allowed_hosts(args.host, args.allowed_host))
    serve(args.model, args.host, args.port, limits, log_level=args.log_level,
          threads=check_count(args.threads, "--threads", "threads"),
          workers=check_count(args.workers, "--workers", "processes"))
    return 0


def _admin_token(path: str | None) -> str | None:
    """The admin token: the first line of ``path``, else ``HYBRID_ADMIN_TOKEN``, else None (the
    state-changing endpoints are off). A token under 16 characters is refused."""
    if path is not None:
        try:
            token = open(path, encoding="utf-8").readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ArgumentError(f"--admin-token-file {path}: cannot read it ({exc})") from None
        where = f"--admin-token-file {path}"
    else:
        token, where = os.environ.get("HYBRID_ADMIN_TOKEN", "").strip() or None, "HYBRID_ADMIN_TOKEN"
    if token is not None and len(token) < 16:
        raise ArgumentError(f"{where}: the admin token must be at least 16 characters "
                            "(python -c 'import secrets; print(secrets.token_urlsafe())')")
    return token


def cmd_status(args) -> int:
    runner = _runner(args)
    if args.json:
        print(json.dumps(runner.status(), indent=2))
        return 0
    for name, status in runner.status().items():
        print(f"{name:10s} {status}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="hybrid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from hybrid import __version__

    parser.add_argument("--version", action="version", version=f"hybrid {__version__}")
    sub = parser.add_subparsers(dest="command")
    commands = {**_pipeline_commands(sub), **_answer_commands(sub)}
    args = parser.parse_args(argv)
    if args.command is None:  # nothing asked: say what can be
        parser.print_help()
        return 0
    try:
        if getattr(args, "config", None) is not None:
            after = argv[argv.index(args.command) + 1:]  # the global flags end at the command's name
            settings.apply(args, commands[args.command], after, setting_names(), args.config)
        return args.func(args)
    except HybridError as exc:
        print(f"hybrid: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused: a read-only or full disk, a path under a file...
        print(f"hybrid: error: {os_error(exc)}", file=sys.stderr)
        return 1


def os_error(exc: OSError) -> str:
    """One line for an error of the system: the path(s) it names and the system's reason.

    Example:
        >>> os_error(PermissionError(13, "Permission denied", "/srv/out/state.json"))
        '/srv/out/state.json: Permission denied'
    """
    from hybrid.data.io import shown_path

    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    paths = shown_path(exc.filename) + (f" -> {shown_path(exc.filename2)}" if exc.filename2 else "")
    return f"{paths}: {reason}"


def _pipeline_commands(sub) -> dict:
    in_process = ("run every stage in this process (for a debugger); by default the model stages, "
                  "and the local engine's data stages, each run in a fresh process of their own, "
                  "whose memory goes back to the system when it ends")
    stage_names = f"one of {', '.join(STAGES)}"
    commands = {}
    for name, func, text in (
            ("run", cmd_run, "run the stale stages of the pipeline"),
            ("train", cmd_train, "train the recommender (and what it needs)"),
            ("evaluate", cmd_evaluate, "evaluate every model and baseline (and what it needs)"),
            ("status", cmd_status, "show which stages are fresh or stale, and why; writes nothing"),
            ("config", cmd_config, "print the settings a run would use (flags over --config over "
                                   "defaults) as a --config file; writes nothing")):
        command = commands[name] = sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)
        command.add_argument("--config", metavar="FILE",
                             help="TOML file of settings: keys are the flags below without their dashes, "
                                  "lists for repeatable flags, tables for KEY=VALUE ones; flags win over it; "
                                  "every run writes OUT/settings.toml")
        command.add_argument("--json", action="store_true", help="print the result as JSON")
        _pipeline_args(command)
        if name in ("run", "train", "evaluate"):
            command.add_argument("--force", action="store_true", help="run the selected stages even if fresh")
            command.add_argument("--in-process", action="store_true", help=in_process)
        if name == "run":
            command.add_argument("--until", metavar="STAGE", help=f"run up to and including STAGE: {stage_names}")
            command.add_argument("--stage", metavar="STAGE", help=f"run only STAGE: {stage_names}")
        command.set_defaults(func=func, until=None, stage=None)
    # train and evaluate also take --model-param/--train-param: evaluate applies them to every Keras model it fits
    return commands


def _answer_commands(sub) -> dict:
    def command(name, text):
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    recommend = command("recommend", "top-N for a known user, or a new one")
    recommend.add_argument("--user", help="a known user id")
    recommend.add_argument("--liked", help="comma-separated item ids a new user likes")
    recommend.add_argument("--text", help="a new user's taste in words")
    recommend.add_argument("--candidates", help="comma-separated item ids to choose from")
    recommend.add_argument("--include-rated", action="store_true", help="keep the items the user rated")
    recommend.add_argument("--no-cold", action="store_true", help="leave out items without ratings")
    recommend.add_argument("--diversity", type=float, default=0.0,
                           help="0 to 1: how much each next product must differ in content from those above it")
    recommend.add_argument("--popularity-penalty", type=float, default=0.0,
                           help="0 or more: how much a product's popularity counts against it")
    recommend.add_argument("--why", action="store_true",
                           help="say why each product is recommended (with --json each part's share "
                                "of the score, the liked products and the words that led to it)")
    similar = command("similar", "products similar in content to an item or text")
    similar.add_argument("--item", help="an item id")
    similar.add_argument("--text", help="free text")
    similar.add_argument("--by", default="content", choices=["content", "collaborative"],
                         help="similar in text, or liked by the same people (two-stage recommender)")
    for answer, func in ((recommend, cmd_recommend), (similar, cmd_similar)):
        answer.add_argument("--n", type=int, default=10, help="how many items")
        answer.add_argument("--model-dir", default="artifacts/recommender",
                            help="saved recommender, any kind (artifacts/recommender is the two-stage one "
                                 "that run writes; artifacts/model is the HybridRecommender)")
        answer.add_argument("--json", action="store_true", help="JSON records instead of a table")
        answer.set_defaults(func=func)
    serve_cmd = command("serve", "answer over HTTP (API under /api, docs at /docs, a page at /)")
    serve_cmd.add_argument("--model", default="artifacts/recommender",
                           help="saved two-stage recommender (run writes artifacts/recommender)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless told)")
    serve_cmd.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve_cmd.add_argument("--max-n", type=int, default=100, help="largest N a request may ask for")
    serve_cmd.add_argument("--max-batch", type=int, default=1000, help="most ids in one batch request")
    serve_cmd.add_argument("--max-answers", type=int, default=20_000,
                           help="most answers (ids x n) in one batch request")
    serve_cmd.add_argument("--admin-token-file", metavar="FILE",
                           help="file whose first line is the token that reloading and adding products "
                                "need (or set HYBRID_ADMIN_TOKEN); without one those endpoints are off")
    serve_cmd.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                           help="a Host name to answer besides the bound address and loopback (repeatable)")
    serve_cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                           help="uvicorn's log level")
    serve_cmd.add_argument("--threads", type=int, default=1,
                           help="threads per model call (BLAS, faiss); 1 is fastest for single "
                                "requests, more can help large batch requests")
    serve_cmd.add_argument("--workers", type=int, default=1,
                           help="serving processes side by side, each holding the model (memory times this); "
                                "up to one per core raises throughput")
    serve_cmd.set_defaults(func=cmd_serve)
    return {"recommend": recommend, "similar": similar, "serve": serve_cmd}


if __name__ == "__main__":
    raise SystemExit(main())
