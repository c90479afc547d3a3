"""Fitting the text encoder on a corpus file and encoding products with it: the work of the
vectors stage on either engine (``hybrid.pipeline``), on streamed batches of ``item_id, text``."""

from __future__ import annotations

from collections import Counter
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybrid.content.vectors import TextEncoder, fit_tfidf_encoder, fit_word2vec_encoder
from hybrid.core.errors import StageError
from hybrid.data.io import iter_parquet_batches

VECTOR_METHODS = ("word2vec", "word2vec-tfidf", "tfidf")



def _corpus(item_text_path, keep: np.ndarray | None = None) -> Iterator[list[str]]:
    """The token lists of the products with text (of those ``keep`` marks, by row)."""
    start = 0
    for batch in iter_parquet_batches(item_text_path, columns=["text"]):
        texts = batch.column(0).to_pylist()
        chosen = keep[start:start + len(texts)] if keep is not None else None
        start += len(texts)
        for row, text in enumerate(texts):
            if text and (chosen is None or chosen[row]):
                yield text.split()


def corpus_sample(item_text_path, documents: int | None, seed: int = 42) -> np.ndarray | None:
    """The rows of ``item_text_path`` the text encoder is fitted on when the corpus is too large
    for one fit: ``documents`` products with text, chosen by a seeded hash of their ids (the
    same products on either engine and in any row order; a product's vectors never depend on
    which partition read it). None (every product) when ``documents`` is None or covers them all.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
        >>> path = tempfile.mkdtemp() + "/t.parquet"
        >>> pq.write_table(pa.table({"item_id": [f"p{i}" for i in range(10)], "text": ["a b"] * 9 + [""]}), path)
        >>> int(corpus_sample(path, 4).sum()), corpus_sample(path, 9)
        (4, None)
    """
    if documents is None:
        return None
    if documents < 1:
        raise StageError(f"the encoder's sample must hold at least 1 product, got {documents}")
    import pandas as pd

    key = f"{seed:016d}"[-16:]
    hashes = np.empty(pq.ParquetFile(item_text_path).metadata.num_rows, np.uint64)
    start = 0
    for batch in iter_parquet_batches(item_text_path, columns=["item_id", "text"]):
        part = pd.util.hash_array(batch.column(0).to_numpy(zero_copy_only=False).astype(object), hash_key=key)
        part[~np.asarray(pc.fill_null(pc.not_equal(batch.column(1), ""), False))] = np.iinfo(np.uint64).max
        hashes[start:start + len(part)] = part
        start += len(part)
    with_text = int((hashes != np.iinfo(np.uint64).max).sum())
    if documents >= with_text:
        return None
    return hashes <= np.partition(hashes, documents - 1)[documents - 1]


def fit_text_encoder(item_text_path, method: str = "word2vec", pretrained: str | None = "glove-6b-50d",
                     dim: int | None = None, epochs: int = 5, min_count: int = 2, window: int = 5,
                     seed: int = 42, workers: int | None = None,
                     deterministic: bool | None = None,
                     fit_documents: int | None = None) -> tuple[TextEncoder, np.ndarray | None]:
    """The vectors stage's encoder, fitted on the corpus of ``item_text_path`` (streamed), and
    which of its words came from the pretrained vectors (None for TF-IDF).

    ``fit_documents``: fit on a seeded sample of that many products (``corpus_sample``) when the
    corpus is too large for one fit; every product is still encoded, from the words the sample
    knows (a word only unsampled products use has no vector; the report's coverage says how
    many products that left without one)."""
    if method not in VECTOR_METHODS:
        raise StageError(f"unknown vector method {method!r}; choose one of {VECTOR_METHODS}")
    keep = corpus_sample(item_text_path, fit_documents, seed)
    corpus = lambda: _corpus(item_text_path, keep)  # noqa: E731 - a restartable corpus
    if method == "tfidf":
        encoder, in_pretrained = fit_tfidf_encoder(corpus, dim=dim or 100, seed=seed), None
    else:
        encoder = fit_word2vec_encoder(corpus, pretrained=pretrained, dim=dim, epochs=epochs,
                                       min_count=min_count, window=window, seed=seed,
                                       workers=workers, tfidf_weighted=method == "word2vec-tfidf",
                                       deterministic=deterministic)
        in_pretrained = encoder.info.pop("in_pretrained")
    encoder.info["fitted_on"] = "every product" if keep is None else f"a sample of {int(keep.sum()):,} products"
    return encoder, in_pretrained


def encode_vectors(encoder: TextEncoder, in_pretrained: np.ndarray | None,
                   batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """One batch of ``item_id, text`` rows -> its rows of the item_vectors table, plus a column
    ``pretrained``: the product has a word of the pretrained vectors (False without them)."""
    texts = batch.column("text").to_pylist()
    vectors, known = encoder.transform(texts)
    pretrained = np.zeros(len(texts), dtype=bool)
    if in_pretrained is not None:
        pretrained = (encoder.counts(texts) @ in_pretrained.astype(np.float32)) > 0
    flat = pa.array(vectors.reshape(-1), pa.float32())
    return pa.table({"item_id": batch.column("item_id"),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, encoder.dim),
                     "known": pa.array(known, pa.bool_()),
                     "pretrained": pa.array(np.asarray(pretrained).ravel(), pa.bool_())})


def vector_counts(table: pa.Table) -> Counter:
    """Products, those with a vector from known words, those with a pretrained word."""
    return Counter(products=table.num_rows,
                   with_known=int(pc.sum(table.column("known")).as_py() or 0),
                   with_pretrained=int(pc.sum(table.column("pretrained")).as_py() or 0))


def vectors_report(encoder: TextEncoder, in_pretrained: np.ndarray | None, counts: Counter) -> dict:
    report = dict(encoder.info)
    products, with_known = counts["products"], counts["with_known"]
    report.update(products=products, dim=encoder.dim, products_with_vector=with_known,
                  products_without_known_words=products - with_known,
                  fallback="zero vector, known=False")
    if in_pretrained is not None and products:
        report["product_coverage"] = round(counts["with_pretrained"] / products, 4)
    return report
