"""Load test of ``hybrid serve`` on loopback: a fixed-rate open-loop client in this process, the
service in its own, a model reload in the middle of the run.

    python -m benchmarks.service_load [--model artifacts/recommender ...] [--rate 100] [--seconds 60]

For each ``--model`` directory (a saved two-stage recommender; ``hybrid run`` writes
artifacts/recommender, ``benchmarks.serving --keep DIR`` keeps its 100k/1M models), the service
is started on a free 127.0.0.1 port, and requests are sent at ``--rate`` per second for
``--seconds`` seconds, each at its scheduled time whether or not earlier ones have answered (so
a slow server shows up as latency, not as a lower rate). The mix, by share of requests:

    35% recommendations for a known user         GET  /api/users/{id}/recommendations
     5% a batch of 10 known users                 POST /api/recommendations
    15% a new user from 3 liked products          POST /api/recommendations/new-user
    10% a new user from a sentence                POST /api/recommendations/new-user
    15% similar products by content               GET  /api/items/{id}/similar?by=content
    10% similar products, collaborative           GET  /api/items/{id}/similar?by=collaborative
    10% products matching free text               GET  /api/search

With ``--heavy``, one more client sends the largest batch the service takes (``max_answers / max_n``
users, n = ``max_n``) again as soon as each is answered; its batches are reported apart
("heavy batch", results ``service_load_heavy.*``), and the figures of the mix are those of the
other clients, whom the heavy one must not hold up.

Half-way through, ``POST /api/admin/reload`` loads the model again in a new server process, which
takes over the socket once loaded. Printed and written to benchmarks/results/service_load.{json,md}
(service_load_no_reload.* with ``--no-reload``), each of ``--repeat`` runs and their medians: per
call, overall and "during reload" (requests sent from the reload request until 10 s after its
answer) p50 / p99 / max latency (ms, measured by the client, connection set-up included), errors
(any non-2xx or transport failure, by kind; target 0), the rate achieved, and the reload's
duration and generation.
Bounded: at most rate x seconds requests, each with a 10 s timeout; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
MIX = (("recommend", 0.35), ("recommend batch of 10", 0.05), ("new user (3 items)", 0.15),
       ("new user (text)", 0.10), ("similar (content)", 0.15), ("similar (collaborative)", 0.10),
       ("search", 0.10))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the admin token of the service this benchmark starts (its reload needs one)
ADMIN_TOKEN = secrets.token_urlsafe()


def start_server(model: str, port: int, source: str | None = None, extra: tuple = ()) -> subprocess.Popen:
    """``hybrid serve`` of ``model`` on 127.0.0.1:``port``, once it answers; ``source``: a source
    tree of this project to serve from (first on the process's ``PYTHONPATH``) instead of the
    installed one; ``extra``: more arguments of ``hybrid serve``."""
    import httpx

    env = {**os.environ, "HYBRID_ADMIN_TOKEN": ADMIN_TOKEN}
    if source:
        env["PYTHONPATH"] = os.pathsep.join([source] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    process = subprocess.Popen([sys.executable, "-m", "hybrid", "serve", "--model", model, "--port", str(port),
                                "--log-level", "warning", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=source or None)
    deadline = time.time() + 600
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited: {process.stdout.read()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("the service did not answer within 600 s")


def request_plan(model: str, n: int, seed: int) -> list[tuple[str, str, str, dict | None]]:
    """``n`` requests (kind, method, path, json body) drawn from the mix, with ids and words of
    the served catalogue."""
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = TwoStageRecommender.load(model)  # ids and words only; the service loads its own copy
    rng = np.random.default_rng(seed)
    users = rec.users.ids(rng.integers(0, len(rec.users), 2000))
    items = rec.catalogue.ids.ids(rng.choice(np.flatnonzero(rec.catalogue.trained), 2000))
    words = [w for w in (rec.encoder.words[:3000] if rec.encoder is not None else []) if w.isalpha()] or ["good"]
    kinds = rng.choice(len(MIX), n, p=[share for _, share in MIX])
    plan = []
    for k in kinds:
        kind = MIX[k][0]
        user, item = str(rng.choice(users)), str(rng.choice(items))
        text = " ".join(rng.choice(words, 5))
        if kind == "recommend":
            plan.append((kind, "GET", f"/api/users/{user}/recommendations?n=10", None))
        elif kind == "recommend batch of 10":
            plan.append((kind, "POST", "/api/recommendations",
                         {"user_ids": [str(u) for u in rng.choice(users, 10, replace=False)], "n": 10}))
        elif kind == "new user (3 items)":
            plan.append((kind, "POST", "/api/recommendations/new-user",
                         {"liked_items": [str(i) for i in rng.choice(items, 3, replace=False)], "n": 10}))
        elif kind == "new user (text)":
            plan.append((kind, "POST", "/api/recommendations/new-user", {"text": text, "n": 10}))
        elif kind == "similar (content)":
            plan.append((kind, "GET", f"/api/items/{item}/similar?by=content&n=10", None))
        elif kind == "similar (collaborative)":
            plan.append((kind, "GET", f"/api/items/{item}/similar?by=collaborative&n=10", None))
        else:
            plan.append((kind, "GET", f"/api/search?n=10&text={text.replace(' ', '+')}", None))
    return plan


def heavy_request(model: str, limits: dict, seed: int) -> tuple[str, str, str, dict]:
    """The largest batch the service's limits allow: ``max_answers / max_n`` known users, n = ``max_n``."""
    from hybrid.data.ids import IdMap

    users = IdMap.load(Path(model) / "users.parquet", "user")
    n = limits["max_n"]
    count = max(1, min(limits["max_batch"], limits.get("max_answers", limits["max_batch"] * n) // n, len(users)))
    chosen = np.random.default_rng(seed).choice(len(users), count, replace=False)
    return ("heavy batch", "POST", "/api/recommendations", {"user_ids": [str(u) for u in users.ids(chosen)], "n": n})


async def drive(url: str, plan: list, rate: float, reload_at: float | None, heavy: tuple | None = None) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    results: list[tuple[str, float, int, float]] = []  # kind, ms, status, sent at (s from the start)
    failures: dict[str, int] = {}  # transport failures by exception, and non-2xx by status
    reload: dict = {}
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        async def one(kind, method, path, body):
            started = time.perf_counter()
            try:
                response = await client.request(method, path, json=body)
                status = response.status_code
                if not 200 <= status < 300:
                    failures[f"HTTP {status}"] = failures.get(f"HTTP {status}", 0) + 1
            except httpx.HTTPError as exc:
                status = -1
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            results.append((kind, (time.perf_counter() - started) * 1000, status, started - start))

        async def fresh_generation() -> int:  # on a new connection: the old process answers no new ones
            async with httpx.AsyncClient(base_url=url, timeout=10) as fresh:
                return (await fresh.get("/api/health")).json()["generation"]

        async def reload_midway():
            await asyncio.sleep(reload_at)
            before = (await client.get("/api/health")).json()["generation"]
            started = time.perf_counter()
            response = await client.post("/api/admin/reload", timeout=600,
                                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            reload.update(status=response.status_code, seconds=round(time.perf_counter() - started, 2),
                          window=[round(started - start, 2), round(time.perf_counter() - start, 2)],
                          generation_before=before, generation_after=await fresh_generation())

        sending = True

        async def heavy_client():  # closed loop: the next batch as soon as the last is answered
            while sending:
                await one(*heavy)

        start = time.perf_counter()
        tasks = [asyncio.create_task(reload_midway())] if reload_at is not None else []
        heavy_task = asyncio.create_task(heavy_client()) if heavy else None
        for k, request in enumerate(plan):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(*request)))
        sending = False
        await asyncio.gather(*tasks, *([heavy_task] if heavy_task else []))
        elapsed = time.perf_counter() - start
    return {"results": results, "reload": reload, "elapsed": elapsed, "failures": failures}


def run_loop(coroutine):
    """``asyncio.run``, on uvloop where it is installed (the client's own overhead is part of
    every latency it measures: keep it small)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def summarise(results: list, elapsed: float, rate: float, reload: dict, failures: dict) -> dict:
    def figures(ms: np.ndarray, statuses: np.ndarray) -> dict:
        return {"requests": int(len(ms)), "errors": int((statuses < 200).sum() + (statuses >= 300).sum()),
                "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                "max_ms": round(float(ms.max()), 2)}

    heavy = [r for r in results if r[0] == "heavy batch"]
    results = [r for r in results if r[0] != "heavy batch"]
    kinds = np.array([r[0] for r in results])
    ms = np.array([r[1] for r in results])
    statuses = np.array([r[2] for r in results])
    sent = np.array([r[3] for r in results])
    out = {"overall": figures(ms, statuses), "target_rate": rate,
           "achieved_rate": round(len(results) / elapsed, 1), "reload": reload, "failures": failures}
    if heavy:
        out["heavy batch"] = figures(np.array([r[1] for r in heavy]), np.array([r[2] for r in heavy]))
    if reload.get("window"):  # sent while the new model loaded, or in the 10 s after the handover
        during = (sent >= reload["window"][0]) & (sent <= reload["window"][1] + 10)
        if during.any():
            out["during reload"] = figures(ms[during], statuses[during])
    for kind, _ in MIX:
        mask = kinds == kind
        if mask.any():
            out[kind] = figures(ms[mask], statuses[mask])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="saved recommender folder (repeatable; "
                        "default artifacts/recommender)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reload", dest="reload", action="store_false", help="no model reload during the run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per model (each with its own request "
                        "plan seed); the table gives each run and the medians")
    parser.add_argument("--heavy", action="store_true", help="one more client sending the largest batches "
                        "the service takes, back to back")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.repeat < 1:
        parser.error("--rate, --seconds and --repeat must be positive")
    runs = []
    models = args.model or ["artifacts/recommender"]
    for model in models:
        if not (Path(model) / "manifest.json").is_file():
            parser.error(f"{model}: no saved recommender (run `hybrid run` first)")
    for model, repeat in [(m, k) for m in models for k in range(args.repeat)]:
        plan = request_plan(model, int(args.rate * args.seconds), args.seed + repeat)
        port = free_port()
        server = start_server(model, port)
        try:
            info = json.loads(__import__("httpx").get(f"http://127.0.0.1:{port}/api/model").text)
            heavy = heavy_request(model, info["limits"], args.seed + repeat) if args.heavy else None
            driven = run_loop(drive(f"http://127.0.0.1:{port}", plan, args.rate,
                                    args.seconds / 2 if args.reload else None, heavy))
        finally:
            server.terminate()
            log = server.communicate(timeout=60)[0]
        run = {"model": model, "run": repeat + 1, "items": info["items"], "users": info["users"], "index": info["index"],
               **summarise(driven["results"], driven["elapsed"], args.rate, driven["reload"], driven["failures"]),
               "server_tracebacks": log.count("Traceback")}
        runs.append(run)
        print(json.dumps(run), flush=True)
    lines = ["# Service load test: `hybrid serve` on loopback", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, client and server on the same machine; "
             f"{args.rate:g} requests/s open loop for {args.seconds:g} s, mixed calls "
             f"({', '.join(f'{k} {s:.0%}' for k, s in MIX)}); "
             + ("the model reloaded half-way through." if args.reload else "no reload.")
             + (" One more client sent the largest batch the service takes, back to back (`heavy batch`); "
                "the other figures are those of the mix." if args.heavy else ""), ""]
    lines += ["| model | products | runs | errors | p50 ms (median of runs) | p99 ms (median) | p99 ms (worst run) "
              "| p99 ms during reload (median) |", "|---|---|---|---|---|---|---|---|"]
    for model in models:
        mine = [r for r in runs if r["model"] == model]
        p99s = [r["overall"]["p99_ms"] for r in mine]
        during = [r["during reload"]["p99_ms"] for r in mine if "during reload" in r]
        lines.append(f"| {model} | {mine[0]['items']:,} | {len(mine)} | {sum(r['overall']['errors'] for r in mine)} "
                     f"| {np.median([r['overall']['p50_ms'] for r in mine]):.2f} | {np.median(p99s):.2f} "
                     f"| {max(p99s):.2f} | {f'{np.median(during):.2f}' if during else '-'} |")
    lines.append("")
    for run in runs:
        lines += [f"## {run['items']:,} products, {run['users']:,} users ({run['index']} index), run {run['run']}", "",
                  f"Achieved {run['achieved_rate']} requests/s; errors {run['overall']['errors']} of "
                  f"{run['overall']['requests']}; "
                  + (f"reload {run['reload'].get('seconds')} s, generation {run['reload'].get('generation_before')} "
                     f"-> {run['reload'].get('generation_after')} (status {run['reload'].get('status')})"
                     if run["reload"] else "no reload")
                  + f"; server tracebacks {run['server_tracebacks']}"
                  + (f"; failures {run['failures']}" if run["failures"] else "") + ".", "",
                  "| call | requests | errors | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
        for kind in ["overall", "during reload", "heavy batch"] + [k for k, _ in MIX]:
            if kind in run:
                f = run[kind]
                lines.append(f"| {kind} | {f['requests']} | {f['errors']} | {f['p50_ms']} | {f['p99_ms']} | {f['max_ms']} |")
        lines.append("")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = ("service_load" if args.reload else "service_load_no_reload") + ("_heavy" if args.heavy else "")
    (out / f"{name}.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    (out / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
