"""Where a two-stage fit spends its time: seconds per part and per validation share.

    python -m benchmarks.profile_fit [--datasets movielens-100k musical-instruments] [--seed 0]

One ``TwoStageRecommender.fit_dataset`` on the warm protocol's 80% training split (as
``benchmarks/two_stage.py`` makes it) per dataset, with each part of the fit timed where it is
called: the TF-IDF terms, the retrieval towers, the re-ranking network, the retrieval vectors, the
item-item neighbours, the indexes and score scales, and the blend's grid searches. Every
``ScoringParts.fit`` is a column: the first validation share without the products held out as new,
each further validation share, then the refit on every training row; the blend's grid searches run
between them. Writes benchmarks/results/profile_two_stage.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.two_stage import DATASETS, RESULTS, prepared
from hybrid.evaluation.splits import random_split

#: (module, attribute path, part): what is timed, by the name it is called by.
TIMED = [
    ("hybrid.recommend.two_stage", "TwoStageRecommender._fit_terms", "TF-IDF terms"),
    ("hybrid.models.keras.retrieval", "fit_retrieval", "retrieval towers (training)"),
    ("hybrid.models.keras.training", "fit_model", "re-ranking network (training)"),
    ("hybrid.recommend.parts", "RetrievalScorer.from_model", "retrieval vectors"),
    ("hybrid.recommend.parts", "item_neighbours", "item-item neighbours"),
    ("hybrid.recommend.parts", "ScoringParts.build_indexes", "indexes"),
    ("hybrid.recommend.parts", "ScoringParts.scales_over", "score scales"),
    ("hybrid.recommend.blend_choice", "grid_ndcg", "blend: weight grids"),
    ("hybrid.recommend.blend_choice", "offset_ndcg", "blend: cold offset"),
]


class Profile:
    """Seconds per (share, part), the share being the ``ScoringParts.fit`` call under way."""

    def __init__(self):
        self.seconds: dict = defaultdict(float)
        self.share = "before the fits"
        self.probes = 0

    def timed(self, part: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[(self.share, part)] += time.perf_counter() - started
        return wrapper

    def share_of(self, function):
        def wrapper(parts, *args, **kwargs):
            final = kwargs.get("final", True)
            self.probes += not final
            # choose_blend fits the first share without the products held out as new, then each
            # further validation share; the last fit is on every training row
            self.share = "refit on all rows" if final else \
                "share 1 without the new products" if self.probes == 1 else f"validation share {self.probes}"
            started = time.perf_counter()
            try:
                return function(parts, *args, **kwargs)
            finally:
                self.seconds[(self.share, "total of the share")] += time.perf_counter() - started
                self.share = "blend search"
        return wrapper


@contextlib.contextmanager
def profiled(profile: Profile):
    import importlib

    patched = []
    try:
        for module_name, path, part in TIMED:
            owner = importlib.import_module(module_name)
            *outer, name = path.split(".")
            for step in outer:
                owner = getattr(owner, step)
            original = owner.__dict__[name]
            function = original.__func__ if isinstance(original, (classmethod, staticmethod)) else original
            wrapped = profile.timed(part, function)
            setattr(owner, name, type(original)(wrapped) if isinstance(original, (classmethod, staticmethod)) else wrapped)
            patched.append((owner, name, original))
        from hybrid.recommend.parts import ScoringParts

        patched.append((ScoringParts, "fit", ScoringParts.__dict__["fit"]))
        ScoringParts.fit = profile.share_of(ScoringParts.fit)
        yield profile
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def profile_dataset(name: str, seed: int, work: Path) -> dict:
    from hybrid.recommend.two_stage import TwoStageRecommender

    data, encoder, texts, _ = prepared(name, work / name)
    train, _ = random_split(len(data.rating), 0.2, seed)
    profile = Profile()
    with profiled(profile):
        started = time.perf_counter()
        rec = TwoStageRecommender(seed=seed).fit_dataset(data, train, encoder=encoder, texts=texts[0],
                                                         fields=texts[1])
        total = time.perf_counter() - started
    shares: dict = defaultdict(dict)
    for (share, part), seconds in profile.seconds.items():
        shares[share][part] = round(seconds, 2)
    return {"dataset": name, "seed": seed, "ratings": int(len(train)), "fit_seconds": round(total, 1),
            "folds": rec.validation.get("folds"), "shares": dict(shares)}


def markdown(results: list[dict]) -> str:
    parts = [part for _, _, part in TIMED] + ["total of the share"]
    lines = ["# Where a two-stage fit spends its time",
             "",
             "`python -m benchmarks.profile_fit`: one `TwoStageRecommender.fit_dataset` on the warm "
             "protocol's 80% training split, each part timed where it is called (seconds). A column is a "
             "`ScoringParts.fit`: the first validation share without the products held out as new (the "
             "unliked blends are chosen on those products, the warm blends and the offset on the share's "
             "other held-out likes), each further validation share, then the refit on every training row "
             "(each model as many epochs as the validation fits' early stopping kept, the median); the "
             "blend's grid searches run between them (\"blend search\")."]
    for result in results:
        columns = [c for c in result["shares"] if any(result["shares"][c].values())]
        lines += ["", f"## {result['dataset']} ({result['ratings']:,} training ratings, seed {result['seed']}): "
                      f"fit {result['fit_seconds']} s, {result['folds']} validation share(s)", "",
                  "| part | " + " | ".join(columns) + " | all |", "|---" * (len(columns) + 2) + "|"]
        for part in parts:
            row = [result["shares"][c].get(part, 0.0) for c in columns]
            if any(row):
                lines.append(f"| {part} | " + " | ".join(f"{v:.1f}" for v in row) + f" | {sum(row):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["movielens-100k", "musical-instruments"], choices=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the prepared datasets (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        results = [profile_dataset(name, args.seed, work) for name in args.datasets]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile_two_stage.json").write_text(json.dumps(results, indent=2))
    text = markdown(results)
    (RESULTS / "profile_two_stage.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
