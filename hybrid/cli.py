"""Command line: ``hybrid run`` and ``hybrid status``.

    hybrid run                                   # MovieLens-100k, outputs under artifacts/
    hybrid run --ratings Electronics.csv --meta meta_Electronics.json.gz --out artifacts/el
    hybrid status                                # what is stale and why
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import HybridError


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (no files = MovieLens-100k)")
    data.add_argument("--ratings", action="append", default=[], metavar="FILE",
                      help="ratings/reviews file (repeatable); format detected unless given")
    data.add_argument("--meta", action="append", default=[], metavar="FILE",
                      help="item metadata file (repeatable)")
    data.add_argument("--ratings-format", action="append", default=None, metavar="NAME",
                      help="format of each --ratings file, e.g. amazon2018-ratings")
    data.add_argument("--meta-format", action="append", default=None, metavar="NAME",
                      help="format of each --meta file, e.g. amazon2014-meta")
    data.add_argument("--source", default="recbole",
                      help="where MovieLens-100k comes from: recbole (PyPI wheel, default), "
                           "grouplens, auto, or zip:PATH to a local ml-100k.zip")
    data.add_argument("--out", default="artifacts", help="output directory (default artifacts)")
    data.add_argument("--rating-range", nargs=2, type=float, metavar=("LOW", "HIGH"),
                      help="valid rating range; ratings outside it are quarantined")
    text = parser.add_argument_group("text and vectors")
    text.add_argument("--text-fields", help="comma-separated fields in order of preference "
                      "(default feature,description,category; category for MovieLens)")
    text.add_argument("--title", action=argparse.BooleanOptionalAction, default=None,
                      help="put the title's words in front of the text")
    text.add_argument("--brand", action="store_true", help="put the brand's words in front")
    text.add_argument("--vector-method", default="word2vec",
                      choices=["word2vec", "word2vec-tfidf", "tfidf"])
    text.add_argument("--pretrained", default="glove-6b-50d",
                      help="glove-6b-50d, a word2vec .bin/.txt or GloVe file, or 'none'")
    text.add_argument("--dim", type=int, help="vector size (default: the pretrained size; 100 for tfidf)")
    text.add_argument("--epochs", type=int, default=5, help="Word2Vec training epochs")
    text.add_argument("--seed", type=int, default=42)
    filt = parser.add_argument_group("filtering")
    filt.add_argument("--min-user-ratings", type=int, default=1)
    filt.add_argument("--min-item-ratings", type=int, default=1)
    filt.add_argument("--kcore", action="store_true",
                      help="repeat the minimum-count filter until nothing changes")


def _config(args):
    from pipelines.recommender import PipelineConfig

    return PipelineConfig(
        out=args.out, ratings=args.ratings, meta=args.meta,
        ratings_formats=args.ratings_format, meta_formats=args.meta_format, source=args.source,
        rating_range=tuple(args.rating_range) if args.rating_range else None,
        text_fields=tuple(f.strip() for f in args.text_fields.split(",")) if args.text_fields else None,
        title=args.title, brand=args.brand, vector_method=args.vector_method,
        pretrained=None if args.pretrained.lower() == "none" else args.pretrained,
        dim=args.dim, epochs=args.epochs, seed=args.seed,
        min_user_ratings=args.min_user_ratings, min_item_ratings=args.min_item_ratings,
        kcore=args.kcore)


def _runner(args):
    from pipelines.recommender import build

    from .runner import Runner

    return Runner(build(_config(args)), args.out)


def cmd_run(args) -> int:
    runner = _runner(args)
    ran = runner.run(force=args.force, until=args.until, only=args.stage)
    if not ran:
        print("nothing to do: every stage is fresh")
    else:
        print(f"ran {', '.join(ran)}; reports in {runner.reports_dir}")
        quarantine = ran.get("ingest", {}).get("quarantine", {})
        if quarantine.get("total"):
            print(f"quarantined {quarantine['total']} line(s): {json.dumps(quarantine['by_reason'])}")
    return 0


def cmd_status(args) -> int:
    runner = _runner(args)
    for name, status in runner.status().items():
        print(f"{name:10s} {status}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hybrid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the stale stages of the pipeline")
    _pipeline_args(run)
    run.add_argument("--force", action="store_true", help="run the selected stages even if fresh")
    run.add_argument("--until", metavar="STAGE", help="run up to and including STAGE")
    run.add_argument("--stage", metavar="STAGE", help="run only STAGE")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="show which stages are fresh or stale, and why")
    _pipeline_args(status)
    status.set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return args.func(args)
    except HybridError as exc:
        print(f"hybrid: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
