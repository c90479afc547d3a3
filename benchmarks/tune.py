"""Hyper-parameter search on a validation split carved from the training data.

    python -m benchmarks.tune --model neumf --grid factors=8,16,32 l2=1e-4,0.01,0.03

The MovieLens-100k ratings are split 80/20 (seed 0) exactly as in benchmarks.models; only the
80% training part is used here: every configuration trains on it with its own 10% validation
split (carved from the training rows) and is ranked by its best validation RMSE. The test rows
are never touched, so choosing defaults from this table does not leak the test set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

from hybrid.evaluation.splits import random_split
from hybrid.recommend.hybrid_recommender import HybridRecommender
from pipelines.recommender import prepare

RESULTS = Path(__file__).parent / "results"


def parse_grid(items: list[str]) -> dict:
    grid = {}
    for item in items:
        key, values = item.split("=", 1)
        grid[key] = [json.loads(v) for v in values.split(",")]
    return grid


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="hybrid")
    parser.add_argument("--grid", nargs="+", default=["factors=16,32", "l2=0.0001,0.03"])
    parser.add_argument("--train-grid", nargs="*", default=[])
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hybrid-tune-"))
    ready = prepare(work)
    data, encoder = ready.data, ready.encoder
    train, _ = random_split(len(data.rating), 0.2, seed=0)  # the test part is left alone
    grid, train_grid = parse_grid(args.grid), parse_grid(args.train_grid)
    rows = []
    keys, train_keys = list(grid), list(train_grid)
    for values in itertools.product(*grid.values(), *train_grid.values()):
        model_config = dict(zip(keys, values[: len(keys)]))
        train_config = dict(zip(train_keys, values[len(keys):]))
        rec = HybridRecommender(args.model, model_config=dict(model_config), train_config=train_config)
        rec.fit_dataset(data, train, encoder)
        best = float(np.sqrt(min(rec.training["history"]["val_loss"])))
        rows.append({"model": args.model, **model_config, **train_config, "validation_rmse": best,
                     "best_epoch": rec.training["best_epoch"], "seconds": rec.training["seconds"]})
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: r["validation_rmse"])
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tune_{args.model}.json"
    path.write_text(json.dumps(rows, indent=2))
    print(f"best: {json.dumps(rows[0])}\nall rows in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
