"""Writes walkthrough.ipynb (kept as code so the notebook's source stays reviewable).

    python notebooks/build_walkthrough.py
"""

from pathlib import Path

import nbformat as nbf

cells = []


def md(text):
    cells.append(nbf.v4.new_markdown_cell(text.strip()))


def code(text):
    cells.append(nbf.v4.new_code_cell(text.strip()))


md("""
# hybrid: a walk through the pipeline on MovieLens-100k

Raw files -> canonical tables -> cleaned text -> item vectors -> encoded dataset -> a Keras
hybrid model -> recommendations, including films nobody has rated yet. Set
`HYBRID_NOTEBOOK_OUT` to choose where outputs go (default `../artifacts`) and
`HYBRID_NOTEBOOK_FAST=1` for a quick run (fewer epochs).
""")
code("""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hybrid import HybridRecommender
from hybrid.content.vectors import TextEncoder
from hybrid.data.dataset import load_dataset
from hybrid.evaluation.splits import cold_item_split
from hybrid.pipeline.runner import Runner
from pipelines.recommender import PipelineConfig, build

OUT = Path(os.environ.get("HYBRID_NOTEBOOK_OUT", "../artifacts"))
FAST = os.environ.get("HYBRID_NOTEBOOK_FAST") == "1"
TRAIN = {"epochs": 3, "batch_size": 2048} if FAST else {}
""")
md("## 1. Run the pipeline up to the encoded dataset (stages that are fresh are skipped)")
code("""
runner = Runner(build(PipelineConfig(out=str(OUT))), OUT, log=print)
runner.run(until="dataset")
data = load_dataset(OUT / "dataset")
encoder = TextEncoder.load(OUT / "vectors" / "text_encoder.npz")
items = pq.read_table(OUT / "ingest" / "items.parquet").to_pandas()
print(f"{len(data.users)} users, {len(data.items)} films, {len(data.rating)} ratings, "
      f"text vectors {data.item_vectors.shape}")
""")
md("## 2. Data overview")
code("""
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
pd.Series(data.rating).value_counts().sort_index().plot.bar(ax=axes[0], title="ratings")
axes[1].hist(np.bincount(data.user_index), bins=40); axes[1].set_title("ratings per user")
axes[2].hist(np.bincount(data.item_index), bins=40); axes[2].set_title("ratings per film")
plt.tight_layout(); plt.show()
text = pq.read_table(OUT / "text" / "item_text.parquet").to_pandas()
text.head()
""")
md("## 3. Train the hybrid model (validation split carved from the training ratings)")
code("""
train_rows, test_rows, cold_items = cold_item_split(data.item_index, 0.1, seed=0)
rec = HybridRecommender("hybrid", train_config=TRAIN).fit_dataset(data, train_rows, encoder)
history = rec.training["history"]
plt.plot(history["loss"], label="training"); plt.plot(history["val_loss"], label="validation")
plt.xlabel("epoch"); plt.ylabel("MSE"); plt.legend(); plt.title("learning curve"); plt.show()
print(rec.training["best_epoch"], "best epoch of", rec.training["epochs_run"], "in", rec.training["seconds"], "s")
""")
md("## 4. Top-10 for a user, with titles (films they rated are left out)")
code("""
user = data.users.ids([0])[0]
rec.frame(*rec.recommend(user, N=10))
""")
md("""
## 5. Cold start

10% of the films were held out with all their ratings: the model never saw their ids, only their
text. They still get scores, from the text path the model learned through item-id dropout.
""")
code("""
cold_ids = data.items.ids(cold_items)
top_cold = rec.frame(*rec.recommend(user, N=5, items=cold_ids))
top_cold
""")
code("""
# A film that does not exist yet: metadata only, recommendable at once, no retraining.
rec.add_items(pd.DataFrame({"item_id": ["new-1"], "title": ["Robot Toy Story 5"],
                            "text": ["animation children comedy toys robots"]}))
rec.frame(*rec.recommend(user, N=3, items=["new-1", "1", "50"]))
""")
code("""
# A new user described by two liked films and a sentence
rec.frame(*rec.recommend_for_new_user(liked_items=["50", "181"], text="space adventure", N=5))
""")
md("## 6. Similar films by content")
code("""
rec.frame(*rec.similar_items("1", N=5))
""")
code("""
rec.frame(*rec.similar_to_text("haunted house horror", N=5))
""")
md("## 7. Learned item embeddings in 2-D, coloured by first genre")
code("""
from sklearn.decomposition import PCA

weights = rec.model.get_layer("item_embedding").get_weights()[0][: rec.n_model_items]
trained = rec.catalogue.trained[: rec.n_model_items]
points = PCA(n_components=2, random_state=0).fit_transform(weights[trained])
genre_of = items.set_index("item_id")["category"].map(lambda g: g[0] if len(g) else "none")
genres = genre_of.reindex(data.items.ids(np.flatnonzero(trained))).fillna("none").to_numpy()
fig, ax = plt.subplots(figsize=(7, 5))
for genre in pd.Series(genres).value_counts().index[:8]:
    mask = genres == genre
    ax.scatter(points[mask, 0], points[mask, 1], s=8, label=genre)
ax.legend(markerscale=2, fontsize=8); ax.set_title("item embeddings (PCA)"); plt.show()
""")

md("""
## 8. Two-stage recommending: candidates from indexes, then re-ranking

What `hybrid serve` answers from (`hybrid.recommend.two_stage`). A two-tower retrieval model and sparse
item-item neighbours give a few hundred candidates per user from vector indexes; the hybrid
network, the retrieval and item-item scores and a TF-IDF content score re-rank them, with
weights chosen on a validation share of the training likes. Films without training likes have
their own blend, chosen on training films held out as if new.
""")
code("""
from hybrid import TwoStageRecommender

FAST_TWO = {"retrieval": {"epochs": 2}, "train": {"epochs": 1}, "config": {"validation_users": 200}} if FAST else {}
two = TwoStageRecommender(seed=0, **FAST_TWO).fit_dataset(data, train_rows, encoder, texts=text.set_index("item_id")
                                                            .reindex(data.items.values)["text"].fillna("").tolist())
two.frame(*two.recommend(user, N=10))
""")
code("""
# The blend weights chosen on validation, for known users (full) and for films without likes in the fit (unliked)
weights = pd.DataFrame({case: two.weights[case] for case in ("full", "unliked") if case in two.weights}).fillna(0).T
weights.plot.barh(stacked=True, figsize=(7, 2.5), title=f"blend weights (unliked offset {two.unliked_offset:+.2f})")
plt.xlabel("weight"); plt.tight_layout(); plt.show()
""")
code("""
# Cold films (held out above) ranked for the user, a new user, and a text search
print(two.frame(*two.recommend(user, N=5, items=cold_ids)))
print(two.frame(*two.recommend_for_new_user(liked_items=["50", "181"], text="space adventure", N=5)))
two.frame(*two.similar_to_text("haunted house horror", N=5))
""")
md("""
Serving figures (`benchmarks/serving.py`: a fresh process loads the saved recommender; p50 / p99
latency per call on a 2-core machine) and ranking quality (`benchmarks/two_stage.py`) are kept in
`benchmarks/results/`:
""")
code("""
from IPython.display import Markdown

results = Path("../benchmarks/results")
Markdown("\\n".join((results / name).read_text() for name in ("serving.md", "serving_1m.md")
                     if (results / name).is_file()))
""")

notebook = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(notebook, Path(__file__).with_name("walkthrough.ipynb"))
