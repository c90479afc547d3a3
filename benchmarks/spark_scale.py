"""The data stages on Spark (``local[2]``) against the single-machine engine, at Amazon
Electronics size and beyond: time and peak memory per stage.

    python -m benchmarks.spark_scale                                  # 800k products, 20M ratings
    python -m benchmarks.spark_scale --ratings 20000000 40000000 80000000   # 1x, 2x, 4x
    python -m benchmarks.spark_scale --ratings 40000000 --merge       # add a size to the table

Data: the synthetic Electronics-shaped files of ``benchmarks.electronics_scale`` (generated once,
seeded), decompressed once to plain files: a gzip file cannot be split, so Spark would read each
with a single task, and data this size is kept in splittable form (or in many parts) where Spark
runs. Both engines read the same plain files.

Each engine runs ``hybrid run --until dataset --min-user-ratings 11 --min-item-ratings 11`` in a
fresh process (``--engine spark --spark-master local[2]`` for Spark), so every stage starts
cold. Per stage: wall time, peak RSS of the driver process, and peak RSS of the driver with
every process it started (Spark's JVM and its Python workers; ingest's worker processes).
Written to benchmarks/results/spark_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.electronics_scale import ensure_data, watched_run

RESULTS = Path(__file__).parent / "results"
STAGES = ("ingest", "text", "vectors", "dataset")
ENGINES = ("local", "spark")


def plain_copy(path: Path) -> Path:
    """``path`` decompressed beside it (once)."""
    plain = path.with_name(path.name.removesuffix(".gz"))
    if not plain.exists():
        tmp = plain.with_name(plain.name + ".tmp")
        with gzip.open(path, "rb") as source, open(tmp, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 22)
        os.replace(tmp, plain)
    return plain


def stage_figures(out: Path) -> dict:
    figures = {}
    for name in STAGES:
        path = out / "reports" / f"{name}.json"
        if path.exists():
            report = json.loads(path.read_text())
            figures[name] = {key: report.get(key) for key in ("seconds", "peak_rss_mb", "peak_tree_rss_mb")}
            if name == "dataset":
                figures[name]["ratings_out"] = report.get("ratings_out")
    return figures


def run_engine(engine: str, meta: Path, ratings: Path, args, size: int) -> dict:
    out = Path(args.work) / f"{engine}_{size}"
    command = [sys.executable, "-m", "hybrid", "run", "--meta", str(meta), "--ratings", str(ratings),
               "--out", str(out), "--min-user-ratings", "11", "--min-item-ratings", "11",
               "--until", "dataset", "--force"]
    if engine == "spark":
        command += ["--engine", "spark", "--spark-master", args.master]
        for setting in args.spark_conf:
            command += ["--spark-conf", setting]
    out.mkdir(parents=True, exist_ok=True)
    print(" ".join(command), flush=True)
    run = watched_run(command, out / "run.log", args.timeout)
    return {**run, "stages": stage_figures(out)}


def markdown(results: dict) -> str:
    lines = ["# The data stages on Spark local[2] and on one machine", "",
             f"{results['machine']['cpus']} CPUs, {results['date']}; plain (uncompressed) input files; "
             "peak RSS of the `hybrid` process, and with every process it started (Spark's JVM and "
             "Python workers, ingest's workers).", "",
             "| ratings | stage | local s | spark s | local peak MB (with children) | spark peak MB (with children) |",
             "|---|---|---|---|---|---|"]
    for entry in results["sizes"]:
        runs = entry["engines"]
        for stage in STAGES + ("whole",):
            cells = []
            for engine in ENGINES:
                run = runs.get(engine, {})
                if stage == "whole":
                    cells.append((run.get("wall_seconds", "-"), f"exit {run.get('exit', '-')}"))
                    continue
                figures = run.get("stages", {}).get(stage, {})
                cells.append((figures.get("seconds", "-"),
                              f"{figures.get('peak_rss_mb', '-')} ({figures.get('peak_tree_rss_mb', '-')})"))
            lines.append(f"| {entry['ratings']:,} | {stage} | {cells[0][0]} | {cells[1][0]} | "
                         f"{cells[0][1]} | {cells[1][1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=800_000)
    parser.add_argument("--ratings", type=int, nargs="+", default=[20_000_000])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "hybrid-bench-data"))
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "hybrid-spark-scale"))
    parser.add_argument("--timeout", type=float, help="stop a run after this many seconds")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--merge", action="store_true",
                        help="keep the sizes and engines already in --out that this run does not measure")
    args = parser.parse_args(argv)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               "date": time.strftime("%Y-%m-%d %H:%M"), "master": args.master, "sizes": []}
    out = Path(args.out)
    earlier = json.loads((out / "spark_scale.json").read_text()) if args.merge and (out / "spark_scale.json").exists() else None
    for size in args.ratings:
        meta, rated, _ = ensure_data(Path(args.data), args.products, size, args.seed)
        meta, rated = plain_copy(meta), plain_copy(rated)
        entry = {"products": args.products, "ratings": size, "engines": {}}
        if earlier:
            entry["engines"].update(next((e["engines"] for e in earlier["sizes"] if e["ratings"] == size), {}))
        for engine in args.engines:
            entry["engines"][engine] = run_engine(engine, meta, rated, args, size)
            print(json.dumps(entry["engines"][engine], indent=1), flush=True)
        results["sizes"].append(entry)
    if earlier:
        measured = {e["ratings"] for e in results["sizes"]}
        results["sizes"] = sorted([e for e in earlier["sizes"] if e["ratings"] not in measured] + results["sizes"],
                                  key=lambda e: e["ratings"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "spark_scale.json").write_text(json.dumps(results, indent=2))
    (out / "spark_scale.md").write_text(markdown(results))
    print(markdown(results))
    return 0 if all(run["exit"] == 0 for e in results["sizes"] for run in e["engines"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
