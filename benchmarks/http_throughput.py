"""Throughput of known-user recommendations over HTTP: ``hybrid serve`` under closed-loop load from
``wrk`` (Debian package ``wrk``), on loopback.

    python -m benchmarks.http_throughput [--model artifacts/recommender] [--connections 1 8 32]
                                         [--seconds 15] [--repeat 3] [--build LABEL=SOURCE ...]
                                         [--serve-args LABEL=ARGS ...]

Each ``--build`` is a source tree of this project (``SOURCE`` goes first on ``PYTHONPATH`` of the
service's process; without any, the installed one, labelled "this"), served with the
``--serve-args`` given for its label (e.g. ``after=--workers 2``); for each the service is
started on a free 127.0.0.1 port with the model, warmed for 3 s, then loaded by one wrk thread
keeping ``--connections`` requests in flight for ``--seconds``: ``GET
/api/users/{id}/recommendations?n=10`` for every user of the model in turn. Builds are interleaved
within each of ``--repeat`` rounds, each round starting every service afresh. Printed and written
to benchmarks/results/http_throughput.{json,md}: requests per second, p50 and p99 latency (wrk's,
from a request's send to its answer) and errors (transport failures and non-2xx answers; target
0), per build and connection count, medians of the rounds. The target (issue 30): >= 1,000
requests/s with p99 <= 50 ms on the MovieLens-100k model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from benchmarks.service_load import free_port, start_server

RESULTS = Path(__file__).parent / "results"

LUA = """
local users = {%s}
local k = 0
request = function()
  k = k %% #users + 1
  return wrk.format("GET", "/api/users/" .. users[k] .. "/recommendations?n=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT {\\"requests\\": %%d, \\"microseconds\\": %%d, \\"errors\\": %%d, \\"non2xx\\": %%d, "
    .. "\\"p50_ms\\": %%.3f, \\"p99_ms\\": %%.3f, \\"max_ms\\": %%.3f}\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def _user_ids(model: str, limit: int = 5000) -> list[str]:
    """The model's first ``limit`` user ids, quoted for a URL path."""
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = TwoStageRecommender.load(model)
    return [quote(str(u), safe="") for u in rec.users.ids(range(min(len(rec.users), limit)))]


def _wrk(port: int, script: str, connections: int, seconds: float) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", script,
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    figures = json.loads(line[len("RESULT "):])
    figures["requests_per_second"] = round(figures["requests"] / (figures["microseconds"] / 1e6), 1)
    return figures


def run(model: str, builds: dict[str, str | None], connections: list[int], seconds: float, repeat: int,
        serve_args: dict[str, list[str]] | None = None) -> dict:
    users = _user_ids(model)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % ", ".join(json.dumps(u) for u in users))
        script = f.name
    runs: dict = {label: {str(c): [] for c in connections} for label in builds}
    try:
        for round_ in range(repeat):
            for label, source in builds.items():
                port = free_port()
                process = start_server(model, port, source, tuple((serve_args or {}).get(label, ())))
                try:
                    _wrk(port, script, max(connections), 3)  # warm: first requests build what answers need
                    for c in connections:
                        figures = _wrk(port, script, c, seconds)
                        runs[label][str(c)].append(figures)
                        print(f"round {round_ + 1} {label} {c} connections: {figures['requests_per_second']:,.0f} "
                              f"requests/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                              f"errors {figures['errors'] + figures['non2xx']}", flush=True)
                finally:
                    process.terminate()
                    process.wait(30)
    finally:
        os.unlink(script)
    medians = {label: {c: {key: statistics.median(r[key] for r in rounds)
                           for key in ("requests_per_second", "p50_ms", "p99_ms")} | {
                               "errors": sum(r["errors"] + r["non2xx"] for r in rounds)}
                       for c, rounds in by_c.items()} for label, by_c in runs.items()}
    return {"model": model, "users": len(users), "seconds": seconds, "repeat": repeat,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "builds": {k: " ".join([v or "installed", *(serve_args or {}).get(k, ())]) for k, v in builds.items()},
            "runs": runs, "medians": medians}


def markdown(result: dict) -> str:
    lines = ["# Known-user recommendations over HTTP: throughput", "",
             f"`python -m benchmarks.http_throughput`: `hybrid serve` with `{result['model']}` "
             f"({result['users']:,} users asked in turn, n=10) on loopback, loaded by `wrk` (one thread, closed "
             f"loop) for {result['seconds']:g} s per connection count; {result['machine']}, client and server on "
             f"the same machine; medians of {result['repeat']} rounds, builds interleaved. Targets: >= 1,000 "
             "requests/s at p99 <= 50 ms on the MovieLens-100k model, >= 300 on the 1M-product one.", "",
             "| build | connections | requests/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for label, by_c in result["medians"].items():
        for c, m in by_c.items():
            lines.append(f"| {label} | {c} | {m['requests_per_second']:,.0f} | {m['p50_ms']:.1f} | "
                         f"{m['p99_ms']:.1f} | {m['errors']} |")
    lines += ["", "Builds: " + "; ".join(f"{k}: {v}" for k, v in result["builds"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="artifacts/recommender")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build", action="append", default=[], metavar="LABEL=SOURCE",
                        help="a source tree of this project to serve from (repeatable)")
    parser.add_argument("--serve-args", action="append", default=[], metavar="LABEL=ARGS",
                        help="more arguments of hybrid serve for the build LABEL, e.g. 'after=--workers 2'")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default="http_throughput")
    args = parser.parse_args(argv)
    builds: dict[str, str | None] = {}
    for spec in args.build:
        label, _, source = spec.partition("=")
        if not label or not source or not Path(source, "hybrid").is_dir():
            raise SystemExit(f"--build {spec!r}: give LABEL=SOURCE, SOURCE a tree with hybrid/ in it")
        builds[label] = str(Path(source).resolve())
    if not builds:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
        builds = {f"this ({commit})" if commit else "this": None}
    serve_args = {}
    for spec in args.serve_args:
        label, _, extra = spec.partition("=")
        if label not in builds:
            raise SystemExit(f"--serve-args {spec!r}: no build is labelled {label!r}")
        serve_args[label] = shlex.split(extra)
    if not Path(args.model).is_dir():
        raise SystemExit(f"no saved recommender at {args.model} (hybrid run writes artifacts/recommender)")
    result = run(str(Path(args.model).resolve()), builds, args.connections, args.seconds, args.repeat, serve_args)
    result["model"] = args.model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
