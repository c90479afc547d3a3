"""Ranking quality of the two-stage recommender against the baselines, three protocols, real data.

    python -m benchmarks.two_stage [--datasets movielens-100k musical-instruments]
                                   [--protocols warm cold-items new-users] [--seeds 0 1 2]

Datasets go through the project's own pipeline (ingest, text, vectors, dataset): MovieLens-100k
(the default dataset), Amazon 2014 Musical Instruments 5-core from ../shared/data/amazon2014, and
Amazon 2018 Magazine Subscriptions 5-core from ../shared/data/amazon (157 products, 2,375 ratings:
a small second real category, HTML in its titles) and Gift Cards 5-core beside it (148 products,
2,972 ratings, 93% of them 5 stars); ``--merge`` adds a dataset to the results already there.

    warm        random 80/20 of the ratings; every item a user did not rate in training is ranked
    cold-items  20% of the rated items held out with all their ratings; only they are ranked, so
                the models know them by their text alone
    new-users   20% of the users held out entirely; 5 of the likes of each (those with at least
                6) are given at query time, the rest are to be found among every other item

Two content baselines rank by the cosine of a user's TF-IDF profile (their liked products' rows)
and each product's row: ``tfidf-profile`` over the one-field text the pipeline builds (feature,
else description, else category), ``tfidf-all-fields`` over every text field a product has (title,
brand, main category, features, description, categories, details). ``--only NAME ...`` measures just those
baselines on the same seeded splits and merges them into the results already in ``--out``.

Relevant = rating >= 4; NDCG@10 etc.; mean ± std over seeds. Every setting is chosen on a
validation split carved from the training rows (EASE's L2 inside ``EASE.fit``, the two-stage
blend weights inside ``TwoStageRecommender.fit``); the test rows are used once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from hybrid.content.vectors import unit_rows
from hybrid.evaluation.metrics import (
    evaluate_ranking,
    evaluate_recommendations,
    ranking_metrics_from_lists,
    ranking_task,
)
from hybrid.evaluation.splits import cold_item_split, random_split
from hybrid.models.baselines import EASE, ContentOnly, Popularity, RandomRanking, TfidfProfile, tfidf_rows
from hybrid.recommend.two_stage import TwoStageRecommender
from pipelines.recommender import prepare

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "movielens-100k": {},
    "musical-instruments": {"ratings": [str(SHARED / "amazon2014" / "Musical_Instruments_5.csv.gz")],
                            "meta": [str(SHARED / "amazon2014" / "Musical_Instruments_meta_5.json.gz")]},
    "magazine-subscriptions": {"ratings": [str(SHARED / "amazon" / "Magazine_Subscriptions_5.json.gz")],
                               "meta": [str(SHARED / "amazon" / "meta_Magazine_Subscriptions.json.gz")]},
    "gift-cards": {"ratings": [str(SHARED / "amazon" / "Gift_Cards_5.json.gz")],
                   "meta": [str(SHARED / "amazon" / "meta_Gift_Cards.json.gz")]},
}
GIVEN = 5  # liked items a new user gives


TFIDF_BASELINES = ("tfidf-profile", "tfidf-all-fields")


def all_fields_texts(fields: dict[str, list[str]]) -> list[str]:
    """Every catalogue product's cleaned text fields (``Prepared.fields``) joined, in catalogue order."""
    return [" ".join(t for t in texts if t) for texts in zip(*fields.values())]


def prepared(name: str, work: Path):
    """``(data, encoder, texts, tfidf)``: the pipeline's dataset and text encoder, the products'
    texts as the recommender reads them (``(one-field texts, fields)``), and the TF-IDF rows of
    each TF-IDF baseline (``TFIDF_BASELINES``)."""
    ready = prepare(work, **DATASETS[name])
    tfidf = {"tfidf-profile": tfidf_rows(ready.texts), "tfidf-all-fields": tfidf_rows(all_fields_texts(ready.fields))}
    return ready.data, ready.encoder, (ready.texts, ready.fields), tfidf


def two_stage(data, rows, encoder, texts, seed, overrides):
    """A two-stage recommender fitted on ``rows`` (``texts``: ``prepared``'s) and its fit's seconds."""
    started = time.perf_counter()
    rec = TwoStageRecommender(seed=seed, **overrides).fit_dataset(data, rows, encoder=encoder, texts=texts[0],
                                                                   fields=texts[1])
    return rec, round(time.perf_counter() - started, 1)


def baselines(data, rows, tfidf, names, only=None):
    """The named baselines fitted on ``rows`` (those in ``only``, when given)."""
    u, i, r = data.user_index[rows], data.item_index[rows], data.rating[rows]
    n_users, n_items = len(data.users), len(data.items)
    made = {"popularity": Popularity, "ease": EASE, "random": RandomRanking, "content-only": ContentOnly,
            **{name: TfidfProfile for name in TFIDF_BASELINES}}
    return {name: made[name]().fit(u, i, r, n_users, n_items, tfidf.get(name, data.item_vectors))
            for name in names if only is None or name in only}


def warm(data, encoder, texts, tfidf, seed, overrides, only=None):
    u, i, r = data.user_index, data.item_index, data.rating
    train, test = random_split(len(r), 0.2, seed)
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], np.arange(len(data.items)))
    out = {name: evaluate_ranking(model.score, task, (10,))
           for name, model in baselines(data, train, tfidf, ("popularity", "ease", *TFIDF_BASELINES, "content-only"),
                                        only).items()}
    if only is not None:
        return out
    rec, seconds = two_stage(data, train, encoder, texts, seed, overrides)
    out["retrieval stage"] = evaluate_ranking(rec.scorer.score, task, (10,))
    out["two-stage"] = {**evaluate_recommendations(rec.top_rows, task, (10,)), "fit_seconds": seconds,
                        "weights": rec.weights["full"]}
    return out


def cold_items(data, encoder, texts, tfidf, seed, overrides, only=None):
    u, i, r = data.user_index, data.item_index, data.rating
    train, test, cold = cold_item_split(i, 0.2, seed)
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], cold)
    out = {name: evaluate_ranking(model.score, task, (10,))
           for name, model in baselines(data, train, tfidf, ("random", *TFIDF_BASELINES, "content-only"), only).items()}
    if only is not None:
        return out
    rec, seconds = two_stage(data, train, encoder, texts, seed, overrides)
    out["retrieval stage"] = evaluate_ranking(rec.scorer.score, task, (10,))
    out["two-stage"] = {**evaluate_ranking(rec.score, task, (10,)), "fit_seconds": seconds}
    return out


def held_out_users(data, seed):
    """20% of the users held out entirely: ``(rng, held users, training rows)``, the rng seeded
    for the draws of ``new_user_requests``."""
    rng = np.random.default_rng(seed)
    held = rng.choice(len(data.users), int(round(0.2 * len(data.users))), replace=False)
    return rng, np.sort(held), np.flatnonzero(~np.isin(data.user_index, held))


def new_user_requests(data, held, rng):
    """Each held-out user with more than ``GIVEN`` likes (rating >= 4): ``(given, others)``,
    ``GIVEN`` of their likes drawn and the rest."""
    u, i, r = data.user_index, data.item_index, data.rating
    for user in held:
        mine = np.flatnonzero(u == user)
        likes = i[mine][r[mine] >= 4]
        if len(likes) > GIVEN:
            chosen = rng.choice(likes, GIVEN, replace=False)
            yield chosen, np.setdiff1d(likes, chosen)


def mean_std(values, digits: int = 4) -> str:
    """``mean ± std`` of a run's figures over seeds (std 0 for one seed)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def new_users(data, encoder, texts, tfidf, seed, overrides, only=None):
    i = data.item_index
    rng, held, train = held_out_users(data, seed)
    fitted = baselines(data, train, tfidf, ("popularity", "ease", *TFIDF_BASELINES, "content-only"), only)
    given, relevant = [], []
    for chosen, others in new_user_requests(data, held, rng):
        given.append(chosen)
        relevant.append(set(others.tolist()))
    n_items = len(data.items)
    history = sp.csr_matrix((np.ones(len(given) * GIVEN, np.float32),
                             (np.repeat(np.arange(len(given)), GIVEN), np.concatenate(given))),
                            shape=(len(given), n_items))
    popularity = np.bincount(i[train], minlength=n_items).astype(float)
    unit = unit_rows(data.item_vectors)
    scores = {"popularity": lambda: np.tile(popularity, (len(given), 1)),
              "ease": lambda: np.asarray(history @ fitted["ease"].B),
              **{name: (lambda name=name: np.asarray((fitted[name].profile(history) @ tfidf[name].T).toarray()))
                 for name in TFIDF_BASELINES},
              "content-only": lambda: unit_rows(history @ unit) @ unit.T}
    out = {}
    for name, score in scores.items():
        if only is not None and name not in only:
            continue
        matrix = score()
        matrix[history.nonzero()] = -np.inf
        out[name] = ranking_metrics_from_lists(np.argsort(-matrix, axis=1, kind="stable")[:, :10], relevant, 10)
    if only is not None:
        return _at_10(out, len(given))
    rec, seconds = two_stage(data, train, encoder, texts, seed, overrides)
    tops, started = [], time.perf_counter()
    for items in given:
        ids, _ = rec.recommend_for_new_user(liked_items=data.items.ids(items), N=10)
        tops.append(data.items.index(ids))
    out["two-stage"] = {**ranking_metrics_from_lists(np.vstack(tops), relevant, 10), "fit_seconds": seconds,
                        "ms_per_user": round(1000 * (time.perf_counter() - started) / len(given), 2)}
    return _at_10(out, len(given))


def _at_10(out: dict, users: int) -> dict:
    """``ranking_metrics_from_lists``' figures named as ``evaluate_ranking`` names them, with the users."""
    return {name: {**{f"{k}@10" if k in ("precision", "recall", "ndcg", "map", "hit_rate") else k: v
                      for k, v in metrics.items()}, "users": users} for name, metrics in out.items()}


PROTOCOLS = {"warm": warm, "cold-items": cold_items, "new-users": new_users}


def summary_lines(dataset: str, protocol: str, runs: list[dict]) -> list[str]:
    lines = [f"### {dataset}, {protocol}", "", "| model | ndcg@10 | recall@10 | hit_rate@10 |", "|---|---|---|---|"]
    for name in runs[0]:
        cells = [mean_std([run[name][key] for run in runs]) for key in ("ndcg@10", "recall@10", "hit_rate@10")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="cap both models' epochs (quick runs)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--merge", action="store_true",
                        help="keep the results already in --out for the dataset/protocol pairs this run does not measure")
    parser.add_argument("--only", nargs="+", metavar="BASELINE", choices=list(TFIDF_BASELINES) +
                        ["popularity", "ease", "random", "content-only"],
                        help="measure only these baselines and add them to the results already in --out")
    args = parser.parse_args(argv)
    args.merge = args.merge or bool(args.only)
    overrides = {} if args.epochs is None else {"retrieval": {"epochs": args.epochs}, "train": {"epochs": args.epochs}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    everything = {"seeds": args.seeds, "epochs": args.epochs, "results": {}}
    earlier = out / "two_stage.json"
    if args.merge and earlier.exists():
        everything = json.loads(earlier.read_text())
        if (everything["seeds"], everything["epochs"]) != (args.seeds, args.epochs):
            raise SystemExit(f"--merge: the results in {out} are of seeds {everything['seeds']} and epochs "
                             f"{everything['epochs']}, not {args.seeds} and {args.epochs}")
    for dataset in args.datasets:
        data, encoder, texts, tfidf = prepared(dataset, Path(tempfile.mkdtemp(prefix=f"hybrid-{dataset}-")))
        for protocol in args.protocols:
            runs = []
            for seed in args.seeds:
                runs.append(PROTOCOLS[protocol](data, encoder, texts, tfidf, seed, overrides, args.only))
                print(dataset, protocol, seed, {k: round(v["ndcg@10"], 4) for k, v in runs[-1].items()}, flush=True)
            key = f"{dataset}/{protocol}"
            if args.only:
                if key not in everything["results"]:
                    raise SystemExit(f"--only: {out} has no results for {key} to add the baselines to")
                runs = [_with_baselines(old, new) for old, new in zip(everything["results"][key], runs)]
            everything["results"][key] = runs
            (out / "two_stage.json").write_text(json.dumps(everything, indent=2, default=float))
            (out / "two_stage.md").write_text(markdown(everything))
    print(markdown(everything))
    return 0


def _with_baselines(run: dict, baselines: dict) -> dict:
    """One seed's results with the newly measured baselines put after the others of their kind."""
    merged = {name: figures for name, figures in run.items() if name not in baselines}
    models = [name for name in merged if name not in ("retrieval stage", "two-stage")]
    before = {name: merged.pop(name) for name in list(merged) if name not in models}
    return {**merged, **baselines, **before}


def markdown(everything: dict) -> str:
    lines = ["# Two-stage recommender: ranking quality", "",
             f"Seeds {everything['seeds']}; mean ± std. Relevant = rating >= 4. Settings chosen on validation "
             "splits of the training rows. See `benchmarks/two_stage.py` for the protocols.", ""]
    for key, runs in everything["results"].items():
        dataset, protocol = key.split("/")
        lines += summary_lines(dataset, protocol, runs)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
