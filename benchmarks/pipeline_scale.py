"""Pipeline scale benchmark: ingest throughput and peak memory at several sizes.

    python -m benchmarks.pipeline_scale --sizes 100000:1000000 300000:3000000 1000000:10000000

For each size (products:ratings) it generates synthetic Amazon-2018-format files (cached under
--data), measures metadata ingest throughput (median of --repeats runs, each in a fresh
process), then runs the pipeline up to the encoded dataset (ingest -> text -> vectors -> dataset) in a fresh
process and records each stage's seconds and peak RSS. Figures are printed and written to
benchmarks/results/pipeline_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.synthetic import write_metadata, write_ratings

RESULTS = Path(__file__).parent / "results"

INGEST_META = """
import json, resource, sys
from hybrid.data.ingest import ingest
report = ingest([sys.argv[1]], [], sys.argv[2] + '/i.parquet', sys.argv[2] + '/r.parquet',
                sys.argv[2] + '/q.jsonl')
print(json.dumps({'items': report['items'], 'quarantine': report['quarantine'],
                  'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def ensure_data(folder: Path, products: int, ratings: int) -> tuple[Path, Path, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / f"meta_synthetic_{products}.json.gz"
    rated = folder / f"ratings_synthetic_{products}_{ratings}.csv.gz"
    info = {}
    if not meta.exists():
        started = time.perf_counter()
        tmp = meta.with_suffix(".tmp")
        info["meta"] = write_metadata(tmp, products)
        os.replace(tmp, meta)
        info["meta"]["generate_seconds"] = round(time.perf_counter() - started, 1)
    if not rated.exists():
        started = time.perf_counter()
        tmp = rated.with_suffix(".tmp")
        info["ratings"] = write_ratings(tmp, products, ratings)
        os.replace(tmp, rated)
        info["ratings"]["generate_seconds"] = round(time.perf_counter() - started, 1)
    return meta, rated, info


def ingest_throughput(meta: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", INGEST_META, str(meta), out],
                                  capture_output=True, text=True, check=True)
            wall = time.perf_counter() - started
            result = json.loads(done.stdout.strip().splitlines()[-1])
            records = sum(f["records"] for f in result["items"]["files"].values())
            runs.append({"records": records, "seconds": result["items"]["seconds"],
                         "records_per_second": records / result["items"]["seconds"],
                         "process_wall_seconds": round(wall, 2),
                         "max_rss_mb": round(result["max_rss_mb"], 1),
                         "quarantined": result["quarantine"]["total"]})
    return {"runs": runs,
            "median_records_per_second": round(statistics.median(r["records_per_second"] for r in runs)),
            "median_max_rss_mb": statistics.median(r["max_rss_mb"] for r in runs)}


def pipeline_run(meta: Path, rated: Path, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hybrid", "run", "--meta", str(meta), "--ratings",
                        str(rated), "--out", out, "--epochs", str(epochs), "--until", "dataset"],
                       check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        stages = {}
        for name in ("ingest", "text", "vectors", "dataset"):
            report = json.loads((Path(out) / "reports" / f"{name}.json").read_text())
            stages[name] = {"seconds": report["seconds"], "peak_rss_mb": report["peak_rss_mb"]}
            if name == "vectors":
                stages[name].update(token_coverage=report.get("token_coverage"),
                                    product_coverage=report.get("product_coverage"))
            if name == "dataset":
                stages[name].update(ratings_out=report["ratings_out"], users=report["users"],
                                    items=report["items"])
        return {"wall_seconds": round(wall, 1), "stages": stages,
                "peak_rss_mb_up_to_vectors": max(stages[s]["peak_rss_mb"] for s in ("ingest", "text", "vectors")),
                "peak_rss_mb_all": max(s["peak_rss_mb"] for s in stages.values())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["100000:1000000", "300000:3000000",
                                                        "1000000:10000000"])
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "hybrid-bench-data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="Word2Vec epochs in the pipeline run")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args(argv)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               "date": time.strftime("%Y-%m-%d %H:%M"), "sizes": []}
    for size in args.sizes:
        products, ratings = (int(x) for x in size.split(":"))
        meta, rated, generated = ensure_data(Path(args.data), products, ratings)
        entry = {"products": products, "ratings": ratings, "meta_bytes": meta.stat().st_size,
                 "ratings_bytes": rated.stat().st_size, "generated": generated,
                 "ingest": ingest_throughput(meta, args.repeats)}
        print(f"{products:>9,} products: ingest {entry['ingest']['median_records_per_second']:,} records/s "
              f"(median of {args.repeats}), ingest max RSS {entry['ingest']['median_max_rss_mb']} MB",
              flush=True)
        if not args.skip_pipeline:
            entry["pipeline"] = pipeline_run(meta, rated, args.epochs)
            p = entry["pipeline"]
            print(f"{'':>9} {ratings:,} ratings: pipeline {p['wall_seconds']} s, peak RSS up to vectors "
                  f"{p['peak_rss_mb_up_to_vectors']} MB, all stages {p['peak_rss_mb_all']} MB; "
                  + ", ".join(f"{k} {v['seconds']}s/{v['peak_rss_mb']}MB" for k, v in p["stages"].items()),
                  flush=True)
        results["sizes"].append(entry)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline_scale.json").write_text(json.dumps(results, indent=2))
    lines = ["| products | ratings | ingest records/s (median) | ingest max RSS MB | pipeline s | "
             "peak RSS MB up to vectors | peak RSS MB all stages |", "|---|---|---|---|---|---|---|"]
    for e in results["sizes"]:
        p = e.get("pipeline", {})
        lines.append(f"| {e['products']:,} | {e['ratings']:,} | {e['ingest']['median_records_per_second']:,} | "
                     f"{e['ingest']['median_max_rss_mb']} | {p.get('wall_seconds', '-')} | "
                     f"{p.get('peak_rss_mb_up_to_vectors', '-')} | {p.get('peak_rss_mb_all', '-')} |")
    (RESULTS / "pipeline_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
