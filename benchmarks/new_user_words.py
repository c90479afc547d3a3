"""Does a new user's sentence shape their list when they give liked products too?

    python -m benchmarks.new_user_words [--datasets movielens-100k musical-instruments magazine-subscriptions]
                                        [--seeds 0 1 2]

For each dataset and seed: 20% of the users held out entirely (as ``benchmarks/two_stage.py``'s
new-users protocol), one ``TwoStageRecommender`` fitted on the others. Each held-out user with at
least 6 likes gives 5 of them and one category word: a category drawn (weighted by count) from
the categories of their other likes (MovieLens: the genres; Amazon: the product categories),
among those that cover at most 30% of the catalogue (a category every product has says
nothing). Three requests per user:

    likes only      the 5 likes
    words only      the category's name as the sentence
    likes + words   both

Measured on each top 10: the share of products in that category, and NDCG@10 on the user's
other likes (relevant: rating >= 4). The targets (issue 31): likes + words puts >= 0.8 of the top
10 in the category, with NDCG@10 no lower than likes only by more than 10%. Mean ± std over
seeds. The recommender's settings are chosen inside ``fit`` on validation data carved from the
training users; nothing here is tuned on these test users.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.two_stage import DATASETS, GIVEN, held_out_users, mean_std, new_user_requests, prepared, two_stage
from hybrid.evaluation.metrics import ranking_metrics_from_lists

RESULTS = Path(__file__).parent / "results"
MAX_COVER = 0.3  # a category on more of the catalogue than this is not drawn
REQUESTS = ("likes only", "words only", "likes + words")
# Gift Cards' categories are one name ("Gift Cards") and four slogans every gift card has: no word
# a person would type to narrow their list
WORD_DATASETS = ("movielens-100k", "musical-instruments", "magazine-subscriptions")


def categories(work: Path, data) -> list[set[str]]:
    """Each catalogue product's categories (as the ingest stage read them), in catalogue order."""
    table = pq.read_table(work / "ingest" / "items.parquet", columns=["item_id", "category"]).to_pylist()
    by_id = {row["item_id"]: set(row["category"] or []) for row in table}
    return [by_id.get(item, set()) for item in data.items.ids(np.arange(len(data.items)))]


def one_seed(data, encoder, texts, work: Path, seed: int) -> dict:
    rng, held, train = held_out_users(data, seed)
    rec, seconds = two_stage(data, train, encoder, texts, seed, {})
    cats = categories(work, data)
    counts: dict[str, int] = {}
    for c in cats:
        for name in c:
            counts[name] = counts.get(name, 0) + 1
    usable = {name for name, n in counts.items() if n <= MAX_COVER * len(cats)}
    tops = {request: [] for request in REQUESTS}
    matches = {request: [] for request in REQUESTS}
    relevant, words = [], []
    for given, others in new_user_requests(data, held, rng):
        pool = [name for row in others for name in sorted(cats[row] & usable)]
        if not pool:
            continue
        names, weights = np.unique(pool, return_counts=True)
        word = str(rng.choice(names, p=weights / weights.sum()))
        liked_ids = list(data.items.ids(given))
        sentence = word.lower()
        answers = {"likes only": rec.recommend_for_new_user(liked_items=liked_ids, N=10)[0],
                   "words only": rec.recommend_for_new_user(text=sentence, N=10, filter_items=liked_ids)[0],
                   "likes + words": rec.recommend_for_new_user(liked_items=liked_ids, text=sentence, N=10)[0]}
        for request, ids in answers.items():
            rows = data.items.index([x for x in ids if x is not None])
            tops[request].append(np.pad(rows, (0, 10 - len(rows)), constant_values=-1))
            matches[request].append(float(np.mean([word in cats[row] for row in rows])) if len(rows) else 0.0)
        relevant.append(set(others.tolist()))
        words.append(word)
    out = {"users": len(relevant), "fit_seconds": seconds, "words": dict(zip(*np.unique(words, return_counts=True)))}
    for request in REQUESTS:
        metrics = ranking_metrics_from_lists(np.vstack(tops[request]), relevant, 10)
        out[request] = {"ndcg@10": metrics["ndcg"], "in_category@10": float(np.mean(matches[request]))}
    print(seed, {request: {k: round(v, 4) for k, v in out[request].items()} for request in REQUESTS}, flush=True)
    return out


def markdown(everything: dict) -> str:
    lines = ["# A new user's words with their likes", "",
             f"`python -m benchmarks.new_user_words`: seeds {everything['seeds']}, mean ± std. Held-out users give "
             f"{GIVEN} likes and a category word drawn from their other likes; share of the top 10 in that "
             "category, NDCG@10 on their other likes. Target: likes + words >= 0.8 in the category, NDCG@10 >= 0.9 x "
             "likes only.", ""]
    for dataset, runs in everything["results"].items():
        lines += [f"## {dataset} ({runs[0]['users']} users a seed)", "",
                  "| request | in category@10 | ndcg@10 |", "|---|---|---|"]
        rows = [(request, request, runs) for request in REQUESTS]
        before = everything.get("before", {}).get("results", {}).get(dataset)
        if before:
            rows.insert(2, (f"likes + words, before ({everything['before']['commit']})", "likes + words", before))
        for label, request, measured in rows:
            cells = [mean_std([run[request][key] for run in measured]) for key in ("in_category@10", "ndcg@10")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(WORD_DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default="new_user_words", help="the results' file name (without suffix)")
    parser.add_argument("--before", nargs=2, metavar=("JSON", "COMMIT"),
                        help="results of this benchmark run on an earlier commit, shown beside these")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    everything = {"seeds": args.seeds, "results": {}}
    if args.before:
        everything["before"] = {"commit": args.before[1], "results": json.loads(Path(args.before[0]).read_text())["results"]}
    for dataset in args.datasets:
        work = Path(tempfile.mkdtemp(prefix=f"hybrid-{dataset}-"))
        data, encoder, texts, _ = prepared(dataset, work)
        everything["results"][dataset] = [one_seed(data, encoder, texts, work, seed) for seed in args.seeds]
        (out / f"{args.name}.json").write_text(json.dumps(everything, indent=2, default=int))
        (out / f"{args.name}.md").write_text(markdown(everything))
    print(markdown(everything))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
