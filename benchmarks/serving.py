"""Serving benchmark of the two-stage recommender: latency per call, index recall, peak memory.

    python -m benchmarks.serving --sizes 100000:1000000 1000000:5000000 [--epochs 2] [--queries 300]

For each size (products:ratings): synthetic Amazon-format metadata and ratings (cached under
--data; ``benchmarks.synthetic``) go through the real pipeline up to the encoded dataset
(ingest, text cleaning, GloVe-initialised Word2Vec vectors); a ``TwoStageRecommender`` is trained
on it in one process (real weights, ``--epochs`` epochs per model, no blend-weight search: the
weights stay at their defaults, so every request runs all four re-ranking parts: retrieval,
item-item, network and the TF-IDF content score of the products' cleaned texts) and saved;
then a fresh process loads it and measures, after a warm-up, each call on its own:

    recommend            1 known user, N=10, candidates retrieved and re-ranked by the network
    recommend batch      100 users per call, time per user
    new user (items)     5 liked items
    new user (text)      a sentence of catalogue words
    similar (content)    / similar (collaborative) / similar to text
    add 1,000 items      appended to the catalogue and both indexes

plus recall@10 of the approximate indexes against exact search of the same vectors, and the
serving process's peak RSS (after loading, every timed call and the adds; the recall checks,
which build exact score matrices no serving process holds, are measured after it). Figures go to benchmarks/results/serving.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.pipeline_scale import ensure_data

RESULTS = Path(__file__).parent / "results"

FIT = """
import json, resource, sys, time
import pyarrow.parquet as pq
from hybrid.data.dataset import load_dataset
from hybrid.recommend.two_stage import TwoStageRecommender
from hybrid.content.vectors import TextEncoder
work, epochs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = load_dataset(work + '/dataset')
encoder = TextEncoder.load(work + '/vectors/text_encoder.npz')
table = pq.read_table(work + '/text/item_text.parquet', columns=['item_id', 'text']).to_pydict()
by_id = dict(zip(table['item_id'], table['text']))
texts = [by_id.get(i, '') for i in data.items.values]
started = time.perf_counter()
rec = TwoStageRecommender(retrieval={'epochs': epochs, 'batch_size': batch}, train={'epochs': epochs, 'batch_size': batch},
                          config={'validation_share': 0.0}, log=lambda line: print(line, file=sys.stderr))
rec.fit_dataset(data, encoder=encoder, texts=texts)
fit = time.perf_counter() - started
rec.save(work + '/model')
print(json.dumps({'fit_seconds': round(fit, 1), 'users': len(data.users), 'products': len(data.items),
                  'ratings': int(len(data.rating)), 'likes': rec.info['likes'],
                  'item_item': rec.info['item_item'], 'index': rec.retrieval_index.kind,
                  'fit_peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""

SERVE = """
import json, resource, sys, time
import numpy as np, pandas as pd
from hybrid.recommend.two_stage import TwoStageRecommender
work, queries = sys.argv[1], int(sys.argv[2])
started = time.perf_counter()
rec = TwoStageRecommender.load(work + '/model')
load_seconds = time.perf_counter() - started
load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rng = np.random.default_rng(0)
users = rec.users.ids(rng.choice(len(rec.users), queries, replace=False))
warm = np.flatnonzero(rec.catalogue.trained)
items = rec.catalogue.ids.ids(rng.choice(warm, queries, replace=False))
words = [w for w in rec.encoder.words[:3000] if w.isalpha()]
texts = [' '.join(rng.choice(words, 6)) for _ in range(queries)]

def timed(call, arguments, warmup=10):
    for a in arguments[:warmup]:
        call(a)
    out = []
    for a in arguments:
        t = time.perf_counter(); call(a); out.append(time.perf_counter() - t)
    ms = np.array(out) * 1000
    return {'p50_ms': round(float(np.percentile(ms, 50)), 3), 'p99_ms': round(float(np.percentile(ms, 99)), 3),
            'calls': len(ms)}

result = {'load_seconds': round(load_seconds, 1)}
result['recommend'] = timed(lambda u: rec.recommend(u, N=10), list(users))
batches = [list(users[i:i + 100]) for i in range(0, min(len(users), 1000), 100)] * 2
batch = timed(lambda b: rec.recommend(b, N=10), batches, warmup=2)
result['recommend batch of 100 (per user)'] = {k: (round(v / 100, 3) if k.endswith('ms') else v) for k, v in batch.items()}
liked = [list(rng.choice(items, 5, replace=False)) for _ in range(queries)]
result['new user (5 liked items)'] = timed(lambda l: rec.recommend_for_new_user(liked_items=l, N=10), liked)
result['new user (text)'] = timed(lambda t: rec.recommend_for_new_user(text=t, N=10), texts)
result['similar (content)'] = timed(lambda i: rec.similar_items(i, N=10, by='content'), list(items))
result['similar (collaborative)'] = timed(lambda i: rec.similar_items(i, N=10, by='collaborative'), list(items))
result['similar to text'] = timed(lambda t: rec.similar_to_text(t, N=10), texts)

adds = []
for round_ in range(3):
    new = pd.DataFrame({'item_id': [f'new-{round_}-{i}' for i in range(1000)],
                        'title': ['new product'] * 1000,
                        'text': [' '.join(rng.choice(words, 20)) for _ in range(1000)]})
    t = time.perf_counter(); rec.add_items(new); adds.append(time.perf_counter() - t)
result['add 1,000 items'] = {'median_s': round(float(np.median(adds)), 3), 'runs': [round(a, 3) for a in adds]}
ids, _ = rec.similar_to_text(new['text'][0], N=10)
result['added item found by its text'] = bool(f'new-2-0' in set(ids))
# serving's peak: loading, every timed call and the adds (the recall checks below build exact
# score matrices of their own, which a serving process never holds)
result['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
result['load_peak_rss_mb'] = round(load_peak)

def recall(index, vectors, queries_):
    # as ann-benchmarks counts it: a returned row is a hit when its exact score reaches the 10th
    # best exact score (less 1e-4), so that equal vectors (duplicate texts) tie instead of missing
    # (50 queries at a time: an all-queries x catalogue block would dominate the peak RSS)
    _, found = index.search(queries_, 10)
    hits = []
    for start in range(0, len(queries_), 50):
        exact = queries_[start:start + 50] @ vectors.T
        tenth = -np.partition(-exact, 9, axis=1)[:, 9]
        for q, f in enumerate(found[start:start + 50]):
            hits.append((exact[q, f[f >= 0]] >= tenth[q] - 1e-4).sum() / 10)
    return round(float(np.mean(hits)), 4)

sample = rng.choice(len(rec.users), 500, replace=False)
result['recall@10 retrieval index'] = recall(rec.retrieval_index, rec.scorer.item_matrix, rec.scorer.user_matrix[sample])
unit = rec.catalogue.vectors / np.maximum(np.linalg.norm(rec.catalogue.vectors, axis=1, keepdims=True), 1e-12)
queries_ = unit[rng.choice(warm, 500, replace=False)].astype(np.float32)
result['recall@10 content index'] = recall(rec.content_index, unit.astype(np.float32), queries_)
result['index'] = rec.retrieval_index.kind
result['peak_rss_with_recall_checks_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(result))
"""

TARGETS = {"recommend": 10.0, "recommend batch of 100 (per user)": 10.0, "new user (5 liked items)": 20.0,
           "new user (text)": 20.0, "similar (content)": 2.0, "similar (collaborative)": 2.0,
           "similar to text": 2.0}


def run_size(products: int, ratings: int, data: Path, epochs: int, queries: int, keep: str | None = None,
             batch: int = 1024) -> dict:
    meta, rated, _ = ensure_data(data, products, ratings)
    with tempfile.TemporaryDirectory(prefix="hybrid-serving-") as scratch:
        work = scratch if keep is None else str(Path(keep) / f"{products}")
        if (Path(work) / "model" / "manifest.json").is_file():  # kept from an earlier run: serve only
            fitted = json.loads((Path(work) / "fit.json").read_text())
        else:
            subprocess.run([sys.executable, "-m", "hybrid", "run", "--meta", str(meta), "--ratings", str(rated),
                            "--out", work, "--until", "dataset"], check=True, capture_output=True, text=True)
            fit = subprocess.run([sys.executable, "-c", FIT, work, str(epochs), str(batch)], capture_output=True, text=True)
            if fit.returncode:
                raise SystemExit(fit.stderr[-3000:])
            fitted = json.loads(fit.stdout.strip().splitlines()[-1])
            (Path(work) / "fit.json").write_text(json.dumps(fitted))
        serve = subprocess.run([sys.executable, "-c", SERVE, work, str(queries)], capture_output=True, text=True)
        if serve.returncode:
            raise SystemExit(serve.stderr[-3000:])
        return {"products": products, "ratings_generated": ratings, **fitted,
                **json.loads(serve.stdout.strip().splitlines()[-1])}


def table(runs: list[dict]) -> list[str]:
    lines = ["| call | " + " | ".join(f"{r['products']:,} products p50 / p99 ms" for r in runs) + " | target p50 (1M) |",
             "|---|" + "---|" * len(runs) + "---|"]
    for call, target in TARGETS.items():
        cells = [f"{r[call]['p50_ms']:.2f} / {r[call]['p99_ms']:.2f}" for r in runs]
        lines.append(f"| {call} | " + " | ".join(cells) + f" | <= {target:g} |")
    lines.append("| add 1,000 items (median s) | " + " | ".join(f"{r['add 1,000 items']['median_s']:.2f}" for r in runs) + " | |")
    for key, target in (("recall@10 retrieval index", ">= 0.95"), ("recall@10 content index", ">= 0.95")):
        lines.append(f"| {key} | " + " | ".join(f"{r[key]:.3f}" for r in runs) + f" | {target} |")
    lines.append("| serving peak RSS MB (load, calls, adds) | " + " | ".join(str(r["peak_rss_mb"]) for r in runs) + " | <= 4096 |")
    lines.append("| of which loading | " + " | ".join(str(r.get("load_peak_rss_mb", "-")) for r in runs) + " | |")
    lines.append("| with the recall checks' exact scoring | " + " | ".join(
        str(r.get("peak_rss_with_recall_checks_mb", "-")) for r in runs) + " | |")
    lines.append("| index kind | " + " | ".join(r["index"] for r in runs) + " | |")
    lines.append("| users / ratings / likes | " + " | ".join(f"{r['users']:,} / {r['ratings']:,} / {r['likes']:,}" for r in runs) + " | |")
    lines.append("| fit s / fit peak RSS MB | " + " | ".join(f"{r['fit_seconds']} / {r['fit_peak_rss_mb']}" for r in runs) + " | |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["100000:1000000", "1000000:5000000"])
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "hybrid-bench-data"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=1024, help="training batch of both models (larger: "
                        "fewer steps; at 1M products each step updates the whole embedding tables)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--keep", metavar="DIR", help="keep each size's pipeline outputs and saved model under "
                        "DIR/PRODUCTS (a later run with the same DIR measures serving again without refitting; "
                        "benchmarks.service_load serves them)")
    args = parser.parse_args(argv)
    runs = []
    for size in args.sizes:
        products, ratings = (int(x) for x in size.split(":"))
        runs.append(run_size(products, ratings, Path(args.data), args.epochs, args.queries, args.keep,
                             args.batch_size))
        print(json.dumps(runs[-1]), flush=True)
    lines = ["# Serving benchmark: two-stage recommender", "",
             f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores; "
             f"{args.epochs} training epoch(s) per model, batch {args.batch_size}; {args.queries} calls per row after a warm-up, each "
             "timed on its own; a fresh process loads the saved recommender (indexes are loaded, not rebuilt).",
             ""] + table(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    (out / "serving.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
