"""Retrieval benchmark on MovieLens-100k (issue 6, work in progress): the two-tower retrieval
model alone, EASE, popularity, and a first two-stage prototype - the retrieval model's top-200
candidates re-ordered by a blend of the retrieval score and EASE's item-item score.

Every choice is made on a validation split carved from the training rows (never the test rows):
EASE's L2 (inside ``EASE.fit``) and the blend weight (fitted on the training rows minus the
validation rows, scored on the validation rows); then everything is refitted on all training
rows and measured once on the test rows. Random 80/20 splits, seeds 0 1 2.

    python -m benchmarks.retrieval [--seeds 0 1 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hybrid.core.config import RetrievalConfig
from hybrid.evaluation.metrics import evaluate_ranking, ranking_task
from hybrid.evaluation.splits import random_split
from hybrid.models.baselines import EASE, Popularity
from hybrid.models.keras.retrieval import fit_retrieval
from hybrid.models.retrieval_scorer import RetrievalScorer
from pipelines.recommender import prepare

RESULTS = Path(__file__).parent / "results"
CANDIDATES = 200
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the retrieval score in the blend


def _standardised(matrix: np.ndarray) -> np.ndarray:
    return (matrix - matrix.mean(1, keepdims=True)) / (matrix.std(1, keepdims=True) + 1e-9)


def fit_all(data, rows, seed):
    u, i, r = data.user_index[rows], data.item_index[rows], data.rating[rows]
    n_users, n_items = len(data.users), len(data.items)
    started = time.perf_counter()
    model, info = fit_retrieval(u, i, r, data.item_vectors, n_users, n_items, RetrievalConfig(seed=seed))
    retrieval = RetrievalScorer.from_model(model, info["trained_items"])
    seconds = time.perf_counter() - started
    return retrieval, EASE(seed=seed).fit(u, i, r, n_users, n_items), Popularity().fit(u, i, r, n_users, n_items), seconds


def two_stage(retrieval, ease, weight):
    def score(users, candidates):
        first = retrieval.score(users, candidates)
        blended = weight * _standardised(first) + (1 - weight) * _standardised(ease.score(users, candidates))
        keep = np.argsort(-first, axis=1)[:, :CANDIDATES]  # the retrieved candidates
        out = np.full(first.shape, -1e9)
        np.put_along_axis(out, keep, np.take_along_axis(blended, keep, 1), 1)
        return out
    return score


def run_seed(data, seed):
    u, i, r = data.user_index, data.item_index, data.rating
    everything = np.arange(len(data.items))
    train, test = random_split(len(r), 0.2, seed)
    inner, held = random_split(len(train), 0.125, seed + 100)  # validation: 10% of all rows
    fit_rows, val_rows = train[inner], train[held]
    retrieval, ease, _, _ = fit_all(data, fit_rows, seed)
    val_task = ranking_task(u[fit_rows], i[fit_rows], u[val_rows], i[val_rows], r[val_rows], everything)
    validation = {w: evaluate_ranking(two_stage(retrieval, ease, w), val_task, (10,))["ndcg@10"] for w in WEIGHTS}
    weight = max(validation, key=validation.get)
    retrieval, ease, popularity, seconds = fit_all(data, train, seed)
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], everything)
    results = {
        "popularity": evaluate_ranking(popularity.score, task, (10,)),
        "ease": {**evaluate_ranking(ease.score, task, (10,)), "l2": ease.chosen_l2},
        "two-tower retrieval": {**evaluate_ranking(retrieval.score, task, (10,)), "fit_seconds": round(seconds, 1)},
        "two-stage prototype": {**evaluate_ranking(two_stage(retrieval, ease, weight), task, (10,)),
                                "weight": weight, "validation_ndcg@10": validation},
    }
    for name, metrics in results.items():
        print(f"seed {seed} {name:22s} ndcg@10={metrics['ndcg@10']:.4f}", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hybrid-retrieval-"))
    data = prepare(work).data
    runs = [run_seed(data, seed) for seed in args.seeds]
    lines = ["# Retrieval benchmark: MovieLens-100k (work in progress, issue 6)", "",
             f"Random 80/20, seeds {args.seeds}; NDCG@10 etc. over all items a user did not rate in "
             "training, relevant = test rating >= 4; mean ± std over seeds. Settings chosen on a "
             "validation split carved from the training rows.", "",
             "| model | ndcg@10 | recall@10 | hit_rate@10 | coverage@10 | chosen |", "|---|---|---|---|---|---|"]
    for name in runs[0]:
        cells = []
        for key in ("ndcg@10", "recall@10", "hit_rate@10", "coverage@10"):
            values = [run[name][key] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4f} ± {spread:.4f}")
        chosen = {"ease": "L2 " + "/".join(f"{run['ease']['l2']:g}" for run in runs),
                  "two-stage prototype": "weight " + "/".join(f"{run[name]['weight']:g}" for run in runs)
                  if name == "two-stage prototype" else ""}.get(name, "")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {chosen} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(json.dumps({"seeds": args.seeds, "runs": runs}, indent=2, default=float))
    (out / "retrieval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
