"""The reference job at Amazon Electronics size: the default ``hybrid run`` on synthetic data of
that shape, every stage timed, its memory and its silences measured.

    python -m benchmarks.electronics_scale                       # 800k products, 20M ratings
    python -m benchmarks.electronics_scale --ratings 20000000 40000000   # and at 2x the ratings
    python -m benchmarks.electronics_scale --until train         # the stages up to training
    python -m benchmarks.electronics_scale --ratings 40000000 --merge   # add a size to the table

Data (generated once, seeded, cached under --data): 800,000 products of noisy Amazon-2018
metadata whose words are drawn from all 325,943 alphabetic GloVe words with a Zipf law (real
Electronics text has hundreds of thousands of distinct words), and ratings from a latent factor
model where each user's number of ratings follows a Zipf law (exponent 2.45: some 9M users, most
with one or two ratings, a core of heavy ones), so that the reference notebook's filter (users
and products with more than 10 ratings) keeps 3-5M ratings of 20M. Every product stays in the
catalogue as a cold-start candidate.

The run is ``hybrid run --meta ... --ratings ... --min-user-ratings 11 --min-item-ratings 11``
in a fresh process. Printed and written to benchmarks/results/electronics_scale.{json,md}: each
stage's wall time and peak RSS (from the stage reports: the stage's own process), the whole
run's peak RSS (the runner and its stages' processes together, sampled every 0.2 s) and where
it happened, training examples/s, the longest time the run printed nothing, the exit status, and the evaluate stage's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.synthetic import write_metadata, write_ratings
from hybrid.pipeline.runner import tree_rss

RESULTS = Path(__file__).parent / "results"
STAGES = ("ingest", "text", "vectors", "dataset", "train", "recommender", "evaluate")
USER_ZIPF = 2.45


def ensure_data(folder: Path, products: int, ratings: int, seed: int = 0) -> tuple[Path, Path, dict]:
    """The metadata and ratings files (written once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / f"meta_electronics_{products}_s{seed}.json.gz"
    rated = folder / f"ratings_electronics_{products}_{ratings}_s{seed}.csv.gz"
    info = {}
    for path, write in ((meta, lambda tmp: write_metadata(tmp, products, seed, n_words=None, zipf=1.05)),
                        (rated, lambda tmp: write_ratings(tmp, products, ratings, seed=seed, user_zipf=USER_ZIPF))):
        if not path.exists():
            started = time.perf_counter()
            tmp = path.with_name(path.name + ".tmp")
            info[path.name] = write(tmp)
            os.replace(tmp, path)
            info[path.name]["generate_seconds"] = round(time.perf_counter() - started, 1)
            print(f"generated {path} in {info[path.name]['generate_seconds']} s: {info[path.name]}", flush=True)
    return meta, rated, info


def watched_run(command: list[str], log_path: Path, timeout: float | None = None) -> dict:
    """Run ``command``, copying its output (with the seconds since the start) to ``log_path``
    and this terminal; returns the exit status, wall time and the longest silence. After
    ``timeout`` seconds the run is stopped (exit "timeout")."""
    started = time.perf_counter()
    last = [started]
    longest = [0.0, ""]
    current = ["(start)"]  # the last line printed, and the most memory seen while it was the last
    memory_after: dict[str, float] = {}

    with open(log_path, "w") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, bufsize=1) as process:
        def watch():
            for line in process.stdout:
                now = time.perf_counter()
                if now - last[0] > longest[0]:
                    longest[:] = [now - last[0], line.strip()[:200]]
                last[0] = now
                stamped = f"[{now - started:7.0f} s] {line.rstrip()}"
                current[0] = stamped[:200]
                print(stamped, flush=True)
                log.write(stamped + "\n")
                log.flush()

        def sample():  # where in the run the memory peaks: the resident size after each line, of
            watched = psutil.Process(process.pid)  # the run's process and every one it started
            while process.poll() is None:
                try:
                    rss = tree_rss(watched)[1] / 2**20
                except psutil.Error:
                    break
                line = current[0]
                memory_after[line] = max(memory_after.get(line, 0.0), rss)
                time.sleep(0.2)

        reader = threading.Thread(target=watch, daemon=True)
        sampler = threading.Thread(target=sample, daemon=True)
        reader.start()
        sampler.start()
        try:
            rc = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
            rc = "timeout"
        reader.join()
        sampler.join()
    highest = sorted(memory_after.items(), key=lambda kv: -kv[1])[:8]
    return {"exit": rc, "wall_seconds": round(time.perf_counter() - started, 1),
            "longest_silence_seconds": round(longest[0], 1), "line_after_longest_silence": longest[1],
            "highest_rss_after": [{"rss_mb": round(mb, 1), "line": line} for line, mb in highest],
            "peak_tree_rss_mb": round(max(memory_after.values(), default=0.0), 1)}


def logged_run(log_path: Path) -> dict:
    """The figures of ``watched_run`` read back from its log (a run stopped from outside)."""
    stamps = [(float(line[1:line.index(" s]")]), line[line.index(" s]") + 4:].strip())
              for line in log_path.read_text().splitlines() if line.startswith("[")]
    gaps = [(b[0] - a[0], b[1]) for a, b in zip([(0.0, "")] + stamps, stamps)]
    longest = max(gaps, default=(0.0, ""))
    return {"exit": "stopped", "wall_seconds": stamps[-1][0] if stamps else 0.0,
            "longest_silence_seconds": round(longest[0], 1), "line_after_longest_silence": longest[1][:200],
            "last_line": stamps[-1][1][:200] if stamps else ""}


def stage_figures(out: Path) -> dict:
    stages = {}
    for name in STAGES:
        path = out / "reports" / f"{name}.json"
        if not path.exists():
            continue
        report = json.loads(path.read_text())
        entry = {"seconds": report["seconds"], "peak_rss_mb": report["peak_rss_mb"]}
        for key in ("ratings_out", "users", "token_coverage", "product_coverage", "vocabulary",
                    "epochs_run", "best_epoch", "train_rows", "examples_per_second", "epoch_seconds",
                    "train_seconds", "stopped",
                    "cold_items", "index"):
            if key in report:
                entry[key] = report[key]
        if isinstance(report.get("items"), int):
            entry["items"] = report["items"]
        stages[name] = entry
    metrics = out / "evaluation" / "metrics.json"
    if metrics.exists():
        outcome = json.loads(metrics.read_text())
        stages.setdefault("evaluate", {})["results"] = {
            name: {k: v for k, v in m.items() if k in ("rmse", "ndcg@10", "recall@10", "fit_seconds")}
            for name, m in outcome.get("results", {}).items()}
    return stages


def run_size(products: int, ratings: int, args) -> dict:
    meta, rated, generated = (None, None, {}) if args.from_log else ensure_data(Path(args.data), products,
                                                                                 ratings, args.seed)
    out = Path(args.work) / f"run_{products}_{ratings}"
    command = [sys.executable, "-m", "hybrid", "run", "--meta", str(meta), "--ratings", str(rated),
               "--out", str(out), "--min-user-ratings", "11", "--min-item-ratings", "11", "--force"]
    if args.until:
        command += ["--until", args.until]
    command += args.extra
    if args.from_log:
        run = logged_run(out / "run.log")
    else:
        print(" ".join(command), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        run = watched_run(command, out / "run.log", args.timeout)
    entry = {"products": products, "ratings": ratings, "command": command[1:], "generated": generated,
             **run, "stages": stage_figures(out)}
    # the whole run's peak: its processes together as sampled from outside (each stage may run in
    # a process of its own beside the runner's); the stages' own reports where it was not sampled
    entry["peak_rss_mb"] = run.get("peak_tree_rss_mb") or max(
        (s["peak_rss_mb"] for s in entry["stages"].values() if "peak_rss_mb" in s), default=None)
    return entry


def markdown(results: dict) -> str:
    lines = [f"# Electronics-size run ({results['date']}, {results['machine']['cpus']} CPUs)", "",
             "| ratings | stage | seconds | peak RSS MB | notes |", "|---|---|---|---|---|"]
    for e in results["sizes"]:
        for name, s in e["stages"].items():
            notes = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("seconds", "peak_rss_mb", "results"))
            lines.append(f"| {e['ratings']:,} | {name} | {s.get('seconds', '-')} | {s.get('peak_rss_mb', '-')} | {notes} |")
        lines.append(f"| {e['ratings']:,} | **whole run** | {e['wall_seconds']} | {e['peak_rss_mb']} | exit {e['exit']}, "
                     f"longest silence {e['longest_silence_seconds']} s"
                     + (f"; last line: {e['last_line']}" if e.get("last_line") else "") + " |")
        for stage in STAGES:  # a stage run again on its own, on the outputs of this run
            later = e.get(f"{stage}_run")
            if later:
                lines.append(f"| {e['ratings']:,} | {stage}, run on its own | {later['wall_seconds']} | "
                             f"{later.get('peak_tree_rss_mb', '-')} | exit {later['exit']}, longest silence "
                             f"{later['longest_silence_seconds']} s; {later.get('note', '')} |")
    for e in results["sizes"]:
        if e.get("highest_rss_after"):
            lines += ["", f"Where the run at {e['ratings']:,} ratings held the most memory (resident size while "
                      "each line was the last printed):", "", "| RSS MB | after the line |", "|---|---|"]
            lines += [f"| {h['rss_mb']} | {h['line'].replace('|', '/')} |" for h in e["highest_rss_after"]]
    for e in results["sizes"]:
        evaluated = e["stages"].get("evaluate", {}).get("results")
        if evaluated:
            lines += ["", f"Evaluate stage at {e['ratings']:,} ratings:", "", "| model | RMSE | NDCG@10 | fit s |",
                      "|---|---|---|---|"]
            for name, m in evaluated.items():
                lines.append(f"| {name} | {m.get('rmse', '-')} | {m.get('ndcg@10', '-')} | {m.get('fit_seconds', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=800_000)
    parser.add_argument("--ratings", type=int, nargs="+", default=[20_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "hybrid-bench-data"))
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "hybrid-electronics"))
    parser.add_argument("--until", choices=STAGES, help="stop after this stage")
    parser.add_argument("--timeout", type=float, help="stop the run after this many seconds")
    parser.add_argument("--from-log", action="store_true",
                        help="no run: the figures of the last one in --work (one stopped from outside)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--merge", action="store_true",
                        help="keep the sizes of the results already in --out that this run does not measure")
    parser.add_argument("extra", nargs="*", help="more `hybrid run` arguments (after --)")
    args = parser.parse_args(argv)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               "date": time.strftime("%Y-%m-%d %H:%M"), "until": args.until, "sizes": []}
    for ratings in args.ratings:
        entry = run_size(args.products, ratings, args)
        results["sizes"].append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k not in ("command", "generated")}, indent=1), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    earlier = out / "electronics_scale.json"
    if args.merge and earlier.exists():
        measured = {e["ratings"] for e in results["sizes"]}
        kept = [e for e in json.loads(earlier.read_text())["sizes"] if e["ratings"] not in measured]
        results["sizes"] = sorted(kept + results["sizes"], key=lambda e: e["ratings"])
    (out / "electronics_scale.json").write_text(json.dumps(results, indent=2))
    (out / "electronics_scale.md").write_text(markdown(results))
    print(markdown(results))
    return 0 if all(e["exit"] == 0 for e in results["sizes"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
