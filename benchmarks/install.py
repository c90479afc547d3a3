"""What the README's first command installs: time and size of a fresh environment with the core
install (``pip install -e .``) against one with the test extra (``pip install -e '.[test]'``,
what the first command installed before the extras were split).

    python benchmarks/install.py [--repeat 3]

Each run makes a new virtual environment in a temporary folder and installs into it with pip's
cache as it is (warm after the first install on a machine: the figures are installs, not
downloads). Writes benchmarks/results/install.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"core (README command 1)": ".", "test extra (README command 2)": ".[test]"}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def install(target: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = Path(tmp) / "env"
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        start = time.perf_counter()
        subprocess.run([str(env / "bin" / "pip"), "install", "--quiet", "-e", target], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        listed = subprocess.run([str(env / "bin" / "pip"), "list", "--format=json"], capture_output=True,
                                text=True, check=True).stdout
        names = {p["name"].lower() for p in json.loads(listed)}
        return {"seconds": seconds, "mb": folder_mb(env), "packages": len(names),
                "pyspark": "pyspark" in names, "playwright": "playwright" in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = {name: [] for name in TARGETS}
    for _ in range(args.repeat):
        for name, target in TARGETS.items():
            runs[name].append(install(target))
            print(name, runs[name][-1], flush=True)
    summary = {name: {"seconds_median": statistics.median(r["seconds"] for r in rows),
                      "mb_median": statistics.median(r["mb"] for r in rows), "packages": rows[0]["packages"],
                      "pyspark": rows[0]["pyspark"], "playwright": rows[0]["playwright"], "runs": rows}
               for name, rows in runs.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "install.json").write_text(json.dumps({"repeat": args.repeat, "results": summary}, indent=2))
    lines = ["# Install: the core against the test extra",
             "",
             f"A fresh virtual environment each time, pip's cache warm; medians of {args.repeat} runs, "
             "on one machine in one run of `benchmarks/install.py`.",
             "",
             "| install | seconds | size (MB) | packages | pyspark | Playwright |",
             "|---|---|---|---|---|---|"]
    for name, row in summary.items():
        lines.append(f"| {name} | {row['seconds_median']:.1f} | {row['mb_median']:.0f} | {row['packages']} | "
                     f"{'yes' if row['pyspark'] else 'no'} | {'yes' if row['playwright'] else 'no'} |")
    (RESULTS / "install.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
