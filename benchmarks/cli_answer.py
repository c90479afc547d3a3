"""Wall time and peak memory of one answer from the command line, each in a fresh process, as a
user waits for it: ``hybrid recommend --user``, ``hybrid similar --item`` and ``--text``.

    python -m benchmarks.cli_answer --model-dir artifacts/recommender [--repeat 5]
    python -m benchmarks.cli_answer --build NAME=HYBRID_COMMAND:MODEL_DIR ...   # several builds, one table

``--build`` compares installs (e.g. an older checkout's ``.venv/bin/hybrid`` and the model it
saved) in one run on one machine. Writes benchmarks/results/cli_answer.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.two_stage import RESULTS


def calls(model_dir: str, user: str, item: str) -> dict[str, list[str]]:
    model = ["--model-dir", model_dir]
    return {"recommend --user": ["recommend", "--user", user, *model],
            "similar --item": ["similar", "--item", item, *model],
            "similar --text": ["similar", "--text", "space adventure", *model]}


def timed(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one run of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="artifacts/recommender")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=HYBRID_COMMAND:MODEL_DIR")
    parser.add_argument("--user", default="196")
    parser.add_argument("--item", default="50")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--note", default="", help="a sentence for the table (what the builds are)")
    args = parser.parse_args()
    builds = {}
    for spec in args.build:
        name, _, rest = spec.partition("=")
        command, _, model_dir = rest.rpartition(":")
        builds[name] = (command, model_dir)
    if not builds:
        builds["this checkout"] = (str(Path(sys.executable).with_name("hybrid")), args.model_dir)
    runs: dict = {}
    for _ in range(args.repeat):  # interleaved: a busy spell of the machine hits every build alike
        for name, (command, model_dir) in builds.items():
            for call, words in calls(model_dir, args.user, args.item).items():
                runs.setdefault(name, {}).setdefault(call, []).append(timed([command, *words]))
    summary = {name: {call: {"seconds_median": round(statistics.median(s for s, _ in rows), 2),
                             "mb_median": round(statistics.median(m for _, m in rows)),
                             "runs": [[round(s, 2), round(m)] for s, m in rows]}
                      for call, rows in per_call.items()} for name, per_call in runs.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli_answer.json").write_text(json.dumps({"repeat": args.repeat, "note": args.note, "builds": {
        name: {"command": c, "model_dir": m} for name, (c, m) in builds.items()}, "results": summary}, indent=2))
    lines = ["# One answer from the command line",
             "",
             f"`python -m benchmarks.cli_answer`: each call in a fresh process (import, load, answer, print); "
             f"medians of {args.repeat} runs, builds interleaved, on one machine in one run. {args.note}".rstrip(),
             "",
             "| build | call | seconds | peak RSS (MB) |", "|---|---|---|---|"]
    for name, per_call in summary.items():
        for call, row in per_call.items():
            lines.append(f"| {name} | `hybrid {call}` | {row['seconds_median']:.2f} | {row['mb_median']} |")
    (RESULTS / "cli_answer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
