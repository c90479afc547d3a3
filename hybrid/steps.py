"""File-level stage functions for text, vectors and the encoded dataset.

Each reads its input files, calls the pure functions of its layer and writes its outputs; the
runner (``hybrid.runner``) gives it the paths and parameters and decides whether it runs.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .dataset import encode, save_dataset
from .errors import StageError
from .io import ParquetBatchWriter, iter_parquet_batches
from .schema import ITEM_TEXT_SCHEMA, item_vectors_schema
from .text import TextConfig, clean_corpus, stop_words
from .vectors import TextEncoder, fit_tfidf_encoder, fit_word2vec_encoder

VECTOR_METHODS = ("word2vec", "word2vec-tfidf", "tfidf")


def clean_text_step(items_path, item_text_path, fields=("feature", "description", "category"),
                    title: bool = False, brand: bool = False) -> dict:
    """items.parquet -> item_text.parquet (item_id, cleaned text, source field)."""
    config = TextConfig(tuple(fields), title, brand)
    sources: Counter = Counter()
    with ParquetBatchWriter(item_text_path, ITEM_TEXT_SCHEMA) as writer:
        for batch in iter_parquet_batches(items_path):
            for item_id, text, source in clean_corpus(batch.to_pylist(), config):
                sources[source] += 1
                writer.append({"item_id": item_id, "text": text, "source": source})
    return {"items": writer.rows, "empty_text": sources.get("none", 0), "text_source": dict(sources),
            "stop_words": stop_words()[1], "fields": list(fields), "title": title, "brand": brand}


def _corpus(item_text_path) -> Iterator[list[str]]:
    for batch in iter_parquet_batches(item_text_path, columns=["text"]):
        for text in batch.column(0).to_pylist():
            if text:
                yield text.split()


def vectors_step(item_text_path, item_vectors_path, encoder_path, method: str = "word2vec",
                 pretrained: str | None = "glove-6b-50d", dim: int | None = None,
                 epochs: int = 5, min_count: int = 2, window: int = 5, seed: int = 42,
                 workers: int | None = None) -> dict:
    """item_text.parquet -> item_vectors.parquet + the fitted text encoder (joblib)."""
    if method not in VECTOR_METHODS:
        raise StageError(f"unknown vector method {method!r}; choose one of {VECTOR_METHODS}")
    corpus = lambda: _corpus(item_text_path)  # noqa: E731 - a restartable corpus
    if method == "tfidf":
        encoder = fit_tfidf_encoder(corpus, dim=dim or 100, seed=seed)
        in_pretrained = None
    else:
        encoder = fit_word2vec_encoder(corpus, pretrained=pretrained, dim=dim, epochs=epochs,
                                       min_count=min_count, window=window, seed=seed,
                                       workers=workers, tfidf_weighted=method == "word2vec-tfidf")
        in_pretrained = encoder.info.pop("in_pretrained")
    products = with_known = with_pretrained = 0
    with ParquetBatchWriter(item_vectors_path, item_vectors_schema(encoder.dim)) as writer:
        for batch in iter_parquet_batches(item_text_path, columns=["item_id", "text"]):
            texts = batch.column("text").to_pylist()
            vectors, known = encoder.transform(texts)
            if in_pretrained is not None:
                counts = encoder.counts(texts)
                with_pretrained += int(((counts @ in_pretrained.astype(np.float32)) > 0).sum())
            products += len(texts)
            with_known += int(known.sum())
            flat = pa.array(vectors.reshape(-1), pa.float32())
            writer.write_table(pa.table({
                "item_id": batch.column("item_id"),
                "vector": pa.FixedSizeListArray.from_arrays(flat, encoder.dim),
                "known": pa.array(known, pa.bool_()),
            }))
    encoder.save(encoder_path)
    report = dict(encoder.info)
    report.update(products=products, dim=encoder.dim, products_with_vector=with_known,
                  products_without_known_words=products - with_known,
                  fallback="zero vector, known=False")
    if in_pretrained is not None and products:
        report["product_coverage"] = round(with_pretrained / products, 4)
    return report


def dataset_step(ratings_path, item_text_path, item_vectors_path, items_path,
                 out_ratings, out_users, out_items, out_vectors,
                 min_user_ratings: int = 1, min_item_ratings: int = 1, iterate: bool = False) -> dict:
    """Merge, filter and encode into the dataset files the models read."""
    # only whether an item has text matters here, not the text itself (it can be GBs)
    has_text = [pa.table({"item_id": b.column("item_id"),
                          "has_text": pc.not_equal(b.column("text"), "")})
                for b in iter_parquet_batches(item_text_path, columns=["item_id", "text"])]
    dataset, report = encode(
        pq.read_table(ratings_path),
        pa.concat_tables(has_text) if has_text else pa.table({"item_id": pa.array([], pa.string()),
                                                              "has_text": pa.array([], pa.bool_())}),
        pq.read_table(item_vectors_path),
        pq.read_table(items_path, columns=["item_id", "title"]),
        min_user_ratings, min_item_ratings, iterate)
    save_dataset(dataset, out_ratings, out_users, out_items, out_vectors)
    report.update(min_user_ratings=min_user_ratings, min_item_ratings=min_item_ratings,
                  iterate=iterate)
    return report


__all__ = ["clean_text_step", "vectors_step", "dataset_step", "TextEncoder", "VECTOR_METHODS"]
