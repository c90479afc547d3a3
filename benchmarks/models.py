"""Model benchmark on MovieLens-100k: every Keras model and baseline, plus the libraries a data
scientist would pick instead (Surprise SVD / SVD++ / KNNBaseline, implicit ALS), on the same
splits, 3 seeds per protocol.

    pip install -e '.[bench]'            # scikit-surprise, implicit
    python -m benchmarks.models [--seeds 0 1 2] [--out benchmarks/results] [--spark]
    python -m benchmarks.models --protocols rating cv5 --spark --only als,als-implicit --merge

Protocols (see hybrid.experiments.protocols): ``rating`` (random 80/20; RMSE/MAE, and ranking metrics over
all unseen items, NDCG@10 etc.), ``cold-items`` (20% of rated items held out with all their
ratings; ranking among them) and ``cv5`` (5-fold cross-validation with folds seeded by the first
seed, the protocol of most published MovieLens-100k RMSE figures; rating models only, ranking
figures on 200 sampled test users). The rating and cold-items protocols also fit the two-stage
recommender (``two-stage``: retrieval, then re-ranking, with the products' cleaned texts; ranking
only). Early
stopping and the rating blend use a validation split carved from the training rows. The rating
protocols also fit the default hybrid without its neighbourhood blend and without its history
(rows ``hybrid-network``, ``hybrid-no-history``), to show what each part gains. Writes
models.json (every figure) and models.md (mean +- std over seeds or folds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hybrid.core.config import EVALUATED_MODELS, MODEL_NAMES, TWO_STAGE
from hybrid.evaluation.metrics import evaluate_ranking, mae, ranking_task, rmse
from hybrid.experiments.protocols import EvaluationConfig, evaluate_all, make_split
from pipelines.recommender import prepare

RESULTS = Path(__file__).parent / "results"


def external_rating_models(data, train, test, seed):
    """Surprise's SVD, SVD++ and KNNBaseline on the same rows."""
    import pandas as pd
    from surprise import SVD, Dataset, KNNBaseline, Reader, SVDpp

    frame = pd.DataFrame({"u": data.user_index[train], "i": data.item_index[train], "r": data.rating[train]})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    out = {}
    for name, algo in (("surprise-svd", SVD(random_state=seed)),
                       ("surprise-svdpp", SVDpp(random_state=seed, cache_ratings=True)),
                       ("surprise-knnbaseline", KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False},
                                                            verbose=False))):
        started = time.perf_counter()
        algo.fit(trainset)
        fit_seconds = time.perf_counter() - started
        predicted = np.array([algo.predict(int(u), int(i)).est
                              for u, i in zip(data.user_index[test], data.item_index[test])])
        out[name] = {"kind": "external", "fit_seconds": round(fit_seconds, 2),
                     "rmse": rmse(data.rating[test], predicted), "mae": mae(data.rating[test], predicted)}
        print(f"  {name:22s} rmse={out[name]['rmse']:.4f} fit={fit_seconds:.1f}s", flush=True)
    return out


def external_ranking_models(data, train, test, candidates, seed, threshold=4.0):
    """implicit's ALS (all training interactions as implicit feedback)."""
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares

    users, items = data.user_index[train], data.item_index[train]
    matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                           shape=(len(data.users), len(data.items)))
    model = AlternatingLeastSquares(factors=64, regularization=0.05, iterations=15,
                                    random_state=seed, num_threads=0)
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    fit_seconds = time.perf_counter() - started
    user_f, item_f = np.asarray(model.user_factors), np.asarray(model.item_factors)
    task = ranking_task(users, items, data.user_index[test], data.item_index[test], data.rating[test],
                        candidates, threshold)
    metrics = evaluate_ranking(lambda u, c: user_f[u] @ item_f[c].T, task, (10,),
                               np.bincount(items, minlength=len(data.items)))
    print(f"  implicit-als           ndcg@10={metrics['ndcg@10']:.4f} fit={fit_seconds:.1f}s", flush=True)
    return {"implicit-als": {"kind": "external", "fit_seconds": round(fit_seconds, 2), **metrics}}


def ablations(data, train, test, encoder, seed) -> dict:
    """The default hybrid without its blend, and without blend and history (RMSE/MAE only)."""
    from hybrid.recommend.hybrid_recommender import HybridRecommender

    out = {}
    for name, settings in (("hybrid-network", {"blend": False}),
                           ("hybrid-no-history", {"blend": False, "history": 0})):
        rec = HybridRecommender("hybrid", model_config=settings, seed=seed + 42)
        started = time.perf_counter()
        rec.fit_dataset(data, train, encoder)
        predicted = rec.score_index(data.user_index[test], data.item_index[test])
        out[name] = {"kind": "keras", "fit_seconds": round(time.perf_counter() - started, 2),
                     "rmse": rmse(data.rating[test], predicted), "mae": mae(data.rating[test], predicted)}
        print(f"  {name:22s} rmse={out[name]['rmse']:.4f} fit={out[name]['fit_seconds']}s", flush=True)
    return out


def folds(n: int, k: int, seed: int):
    """``k`` (train, test) row splits of a seeded permutation: every row tested once."""
    parts = np.array_split(np.random.default_rng(seed).permutation(n), k)
    for f in range(k):
        yield np.sort(np.concatenate(parts[:f] + parts[f + 1:])), np.sort(parts[f])


def summarise(runs: list[dict]) -> dict:
    """mean and std over seeds of every numeric metric, per model."""
    summary: dict = {}
    for name in runs[0]:
        metrics = {}
        for key in runs[0][name]:
            values = [r[name][key] for r in runs if isinstance(r[name].get(key), (int, float))]
            if len(values) == len(runs) and key not in ("history",):
                metrics[key] = {"mean": statistics.fmean(values),
                                "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        summary[name] = {"kind": runs[0][name]["kind"], **metrics}
    return summary


def markdown(protocol: str, summary: dict, columns: list[str]) -> str:
    lines = [f"### {protocol}", "", "| model | kind | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, metrics in summary.items():
        cells = [f"{metrics[c]['mean']:.4f} ± {metrics[c]['std']:.4f}" if c in metrics else "-"
                 for c in columns]
        lines.append(f"| {name} | {metrics['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


SPARK_BASELINES = {"rating": ("als", "als-implicit"), "cv5": ("als",)}
COLUMNS = ["rmse", "mae", "ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10",
           "coverage@10", "mean_popularity@10", "fit_seconds"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--protocols", nargs="+", default=["rating", "cold-items"])
    parser.add_argument("--no-external", action="store_true", help="skip Surprise and implicit")
    parser.add_argument("--spark", action="store_true",
                        help="add Spark MLlib ALS (als, als-implicit; pip install -e '.[spark]'), "
                             "on local[2] unless --spark-master says otherwise")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--only", help="comma-separated baselines and/or two-stage: run just these "
                                       "(no other models, ablations or external libraries)")
    parser.add_argument("--merge", action="store_true",
                        help="add this run's rows to the results already in --out (same seeds)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.spark:
        from hybrid.core.spark import configure

        configure(args.spark_master)
    work = Path(tempfile.mkdtemp(prefix="hybrid-bench-"))
    ready = prepare(work, log=lambda line: print(line, file=sys.stderr, flush=True))
    data, encoder, texts = ready.data, ready.encoder, ready.texts  # texts: the two-stage content part's
    out = Path(args.out)
    everything: dict = {"dataset": "MovieLens-100k", "seeds": args.seeds, "protocols": {}}
    if args.merge and (out / "models.json").exists():
        everything = json.loads((out / "models.json").read_text())
        if everything["seeds"] != args.seeds:
            raise SystemExit(f"--merge: the results in {out} are of seeds {everything['seeds']}, not {args.seeds}")
    for protocol in args.protocols:
        runs = []
        if protocol == "cv5":
            splits = [(f"fold {f + 1}", args.seeds[0] + f, *split, np.arange(len(data.items)))
                      for f, split in enumerate(folds(len(data.rating), 5, args.seeds[0]))]
        else:
            splits = [(f"seed {seed}", seed,
                       *make_split(data, EvaluationConfig(protocol=protocol, seed=seed))) for seed in args.seeds]
        for label, seed, train, test, candidates in splits:
            print(f"{protocol}, {label}", flush=True)
            config = EvaluationConfig(protocol="rating" if protocol == "cv5" else protocol, seed=seed)
            config.models = EVALUATED_MODELS
            if protocol == "cv5":  # a rating protocol: ranking figures on 200 sampled users only
                config.models = tuple(m for m in MODEL_NAMES if m != "implicit")
                config.baselines = ("global-mean", "biases", "item-knn", "user-knn")
                config.eval_users = 200
            if args.spark:
                config.baselines = tuple(config.baselines) + SPARK_BASELINES.get(protocol, ())
            if args.only:
                only = [b for b in args.only.split(",") if b]
                config.models = tuple(m for m in only if m == TWO_STAGE)
                config.baselines = tuple(b for b in only if b != TWO_STAGE)
            outcome = evaluate_all(data, config, encoder, train, test, candidates, texts=texts, fields=ready.fields)
            results = outcome["results"]
            for metrics in results.values():
                metrics.pop("history", None)
            if not args.only:
                if protocol in ("rating", "cv5"):
                    results.update(ablations(data, train, test, encoder, seed))
                if not args.no_external:
                    if protocol in ("rating", "cv5"):
                        results.update(external_rating_models(data, train, test, seed))
                    if protocol != "cv5":
                        results.update(external_ranking_models(data, train, test, candidates, seed))
            runs.append(results)
        earlier = everything["protocols"].get(protocol) if args.merge else None
        if earlier:
            for old, new in zip(earlier["runs"], runs):
                old.update(new)
            runs = earlier["runs"]
        everything["protocols"][protocol] = {"runs": runs, "summary": summarise(runs)}
    report = ["# Model benchmark: MovieLens-100k", "",
              f"Seeds {everything['seeds']} (cv5: 5 folds of a permutation seeded {everything['seeds'][0]}); "
              "mean ± std. Ranking: NDCG@10 etc. over all items a user did not "
              "rate in training (rating protocol) or over the held-out cold items (cold-items "
              "protocol); relevant = test rating >= 4. Spark MLlib ALS (als, als-implicit) ran "
              "on Spark local[2].", ""]
    for protocol, results in everything["protocols"].items():
        report.append(markdown(protocol, results["summary"], COLUMNS))
    out.mkdir(parents=True, exist_ok=True)
    (out / "models.json").write_text(json.dumps(everything, indent=2))
    (out / "models.md").write_text("\n".join(report))
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
