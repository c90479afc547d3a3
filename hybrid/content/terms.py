"""Sparse TF-IDF term weights of product texts: the content signal that keeps the specific words
(brands, product types, model names) an average of word vectors blurs.

A user's term profile is the unit-length sum of the term rows of the products they liked (plus,
for a new user, the row of their sentence); a product's content score for that user is the
cosine of the two. It keeps what ranks products nobody has rated (brands, product types, model
numbers), so the two-stage recommender blends it in (``hybrid.recommend.two_stage``).

Each product keeps the ``max_terms`` heaviest entries of its unit TF-IDF row (not scaled up
again), so memory is at most ``max_terms`` entries per product; terms in fewer than ``min_df``
products leave the vocabulary (they cannot link two products, and at a million products they are
most of the vocabulary) but not the length of their products' rows.

Example:
    >>> terms = TermWeights.fit(["red fender guitar strap", "fender amp", "usb cable"], min_df=1)
    >>> liked = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]]))  # one user who liked the strap
    >>> [round(float(s), 2) for s in terms.scores(terms.profiles(liked), np.array([[1, 2]]))[0]]
    [0.24, 0.0]
"""

from __future__ import annotations

import bisect
import math
import os
from collections import Counter
from functools import cached_property
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from hybrid.core.errors import ArgumentError


#: The most requests x products cells ``TermWeights`` scores as one product of the matrices
#: (float64: 32 MB); larger batches gather each cell's terms instead.
DENSE_CELLS = 1 << 22


def unit_sparse_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A copy with rows scaled to unit length (empty rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    _unit_rows_in_place(matrix)
    return matrix


def keep_heaviest(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries (ties by column), the others dropped; ``k <= 0`` keeps all.

    Example:
        >>> keep_heaviest(sp.csr_matrix(np.array([[0.1, 0.5, 0.3], [0.0, 0.2, 0.0]])), 2).toarray().tolist()
        [[0.0, 0.5, 0.3], [0.0, 0.2, 0.0]]
    """
    matrix = sp.csr_matrix(matrix)
    counts = np.diff(matrix.indptr)
    if k <= 0 or counts.max(initial=0) <= k:
        return matrix
    row = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((matrix.indices, -matrix.data, row))  # by row, heaviest first
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], counts)
    keep = rank < k
    out = sp.csr_matrix((matrix.data[keep], matrix.indices[keep], np.concatenate([[0], np.cumsum(np.minimum(counts, k))])),
                        shape=matrix.shape)
    out.sort_indices()
    return out


def _idf(df: np.ndarray, n_texts: int) -> np.ndarray:
    """Smoothed inverse document frequency, as scikit-learn's TF-IDF computes it."""
    return (np.log((1.0 + n_texts) / (1.0 + np.asarray(df, np.float64))) + 1.0).astype(np.float32)


def _unit_rows_in_place(matrix: sp.csr_matrix) -> None:
    """Scale a CSR matrix's rows to unit length in place (empty and all-zero rows stay)."""
    counts = np.diff(matrix.indptr)
    starts = matrix.indptr[:-1][counts > 0]
    norms = np.zeros(matrix.shape[0], np.float32)
    if len(starts):
        norms[counts > 0] = np.sqrt(np.add.reduceat(np.square(matrix.data), starts, dtype=np.float64))
    matrix.data /= np.repeat(np.where(norms > 0, norms, 1.0).astype(np.float32), counts)


class FieldCounts:
    """Term counts of each text field of the catalogue's products over one vocabulary (every word
    any field has): what ``TermWeights.from_fields`` weighs, once per choice of field weights.

    Example:
        >>> counts = FieldCounts.count({"title": ["red strap", ""], "category": ["straps", "cables"]})
        >>> counts.terms, counts.fields["title"].toarray().tolist()
        (['cables', 'red', 'strap', 'straps'], [[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    """

    def __init__(self, terms: list[str], fields: dict[str, sp.csr_matrix]):
        self.terms, self.fields = terms, fields

    @classmethod
    def count(cls, fields: dict[str, "Sequence[str | None]"]) -> "FieldCounts":
        """Count cleaned token strings (space-separated), one list per field, products in the same
        order in every list."""
        from sklearn.feature_extraction.text import CountVectorizer

        texts = {name: [t or "" for t in values] for name, values in fields.items()}
        lengths = {len(values) for values in texts.values()}
        if len(lengths) != 1:
            raise ArgumentError(f"every field needs one text per product; got {[len(v) for v in texts.values()]}")
        counter = CountVectorizer(token_pattern=r"\S+", lowercase=False, dtype=np.float32)
        try:
            if len(texts) == 1:  # one pass over one field
                (name, values), = texts.items()
                counted = {name: sp.csr_matrix(counter.fit_transform(values), dtype=np.float32)}
            else:
                counter.fit(text for values in texts.values() for text in values)
                counted = {name: sp.csr_matrix(counter.transform(values), dtype=np.float32)
                           for name, values in texts.items()}
        except ValueError:  # no word in any text
            return cls([], {name: sp.csr_matrix((lengths.pop(), 0), dtype=np.float32) for name in texts})
        return cls(counter.get_feature_names_out().tolist(), counted)

    def in_vocabulary(self, field: str, terms: "TermWeights") -> sp.csr_matrix | None:
        """Which of ``terms``' vocabulary each product's ``field`` has (products x terms, 1 =
        has it), or None where no product's field has a word of it.

        Example:
            >>> counts = FieldCounts.count({"title": ["red strap", "red cable"], "category": ["straps", "cables"]})
            >>> counts.in_vocabulary("category", TermWeights.from_fields(counts, {"title": 1, "category": 1}, min_df=1)).nnz
            2
        """
        counted = self.fields.get(field)
        if counted is None:
            return None
        column = np.array([terms.column.get(term, -1) for term in self.terms], np.int64)
        mapped = column[counted.indices]
        keep = mapped >= 0
        if not keep.any():
            return None
        row = np.repeat(np.arange(counted.shape[0]), np.diff(counted.indptr))[keep]
        out = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (row, mapped[keep])),
                            shape=(counted.shape[0], terms.vocabulary))
        out.sum_duplicates()
        out.data[:] = 1.0
        return out


class TermWeights:
    """A fitted TF-IDF vocabulary (sublinear term frequency) and the products' term rows.

    ``rows``: products x terms in catalogue order, at most ``max_terms`` entries each: the
    heaviest entries of the product's *full* unit-length TF-IDF row, not renormalised. A row's
    length stays that of every word the product has, rare and dropped ones included, so a score
    is the full cosine less what the dropped words would add (rare words only add to a product's
    own cosine, which is never asked for). Renormalising after the drop would make a product whose
    text is mostly rare words (a long title) look as much like a profile as one made of common
    ones. Build with ``TermWeights.fit(token_strings)``; grow with ``append``.
    """

    def __init__(self, terms, idf: np.ndarray, rare_idf: float, rows: sp.csr_matrix, max_terms: int,
                 field_weights: dict[str, float] | None = None):
        self.terms = list(terms)  # the vocabulary, in column order
        self.column = {term: k for k, term in enumerate(self.terms)}
        self.idf, self.rare_idf = np.asarray(idf, np.float32), float(rare_idf)
        self.max_terms = int(max_terms)
        self.rows = sp.csr_matrix(rows, dtype=np.float32)
        # the weight of each text field in a product's row (None: one text, no fields)
        self.field_weights = None if field_weights is None else {f: float(w) for f, w in field_weights.items()}

    @classmethod
    def fit(cls, token_strings, max_terms: int = 64, min_df: int = 2) -> "TermWeights":
        """Fit on cleaned token strings (space-separated, one per product; empty allowed).
        Terms in fewer than ``min_df`` products leave the vocabulary (they still count in their
        product's length); when that would leave no term at all (a tiny catalogue) all are kept.

        Example:
            >>> TermWeights.fit(["red strap", "red cable", "blue cable"]).terms
            ['cable', 'red']
        """
        terms = cls.from_fields(FieldCounts.count({"text": token_strings}), {"text": 1.0}, max_terms, min_df)
        terms.field_weights = None
        return terms

    @classmethod
    def from_fields(cls, counts: "FieldCounts", weights: dict[str, float], max_terms: int = 64,
                    min_df: int = 2) -> "TermWeights":
        """Fit on several text fields of every product, each weighted: a term's frequency in a
        product is the weighted sum of its sublinear frequencies (1 + log count) in the fields
        that have it (BM25F's idea without its saturation), and a product has a term, for its
        inverse document frequency, when a field of positive weight has it. One field of weight 1
        is ``fit``.

        Example:
            >>> counts = FieldCounts.count({"title": ["red strap", "blue cable"], "category": ["straps", "cables"]})
            >>> TermWeights.from_fields(counts, {"title": 1.0, "category": 0.0}, min_df=1).terms
            ['blue', 'cable', 'red', 'strap']
        """
        used = {f: float(w) for f, w in weights.items() if w > 0}
        if not used or any(f not in counts.fields for f in used):
            raise ArgumentError(f"field weights {weights} must weigh some of the fields {list(counts.fields)}")
        weighted = None
        for field, weight in used.items():
            part = counts.fields[field].copy()
            np.log(part.data, out=part.data)
            part.data += 1.0  # sublinear term frequency
            part.data *= weight
            weighted = part if weighted is None else weighted + part
        weighted = sp.csr_matrix(weighted, dtype=np.float32)
        weighted.eliminate_zeros()
        n, terms = weighted.shape[0], counts.terms
        df = np.bincount(weighted.indices, minlength=len(terms))
        idf = _idf(df, n)
        # in place: the matrix is the largest thing here (tens of millions of entries at 800k products)
        weighted.data *= idf[weighted.indices]
        _unit_rows_in_place(weighted)
        kept = df >= min_df
        if not kept.any():
            kept[:] = True
        if not kept.all():  # rare terms leave the vocabulary, not their products' lengths
            weighted.data[~kept[weighted.indices]] = 0.0
            weighted.eliminate_zeros()
            columns = (np.cumsum(kept) - 1).astype(weighted.indices.dtype)[weighted.indices]
            weighted = sp.csr_matrix((weighted.data, columns, weighted.indptr), shape=(n, int(kept.sum())))
        return cls([t for t, k in zip(terms, kept) if k], idf[kept], _idf(np.ones(1), n)[0],
                   keep_heaviest(weighted, max_terms), max_terms,
                   {f: float(w) for f, w in weights.items()})

    def transform(self, token_strings) -> sp.csr_matrix:
        """Term rows of more cleaned texts, made as ``fit`` makes the catalogue's: a word outside
        the vocabulary has no column but counts in the row's length, with the weight of a word
        that one product of the catalogue has (what most words outside it are).

        ``token_strings`` is one text per row (a sentence: one field of weight 1) or, for
        products of a catalogue fitted on fields, a dict of each field's texts weighed as
        ``from_fields`` weighs them."""
        if isinstance(token_strings, dict):
            weighted = [(texts, self.field_weights.get(field, 0.0)) for field, texts in token_strings.items()]
            weighted = [(texts, w) for texts, w in weighted if w > 0]
            n = len(next(iter(token_strings.values()), []))
        else:
            token_strings = list(token_strings)
            weighted, n = [(token_strings, 1.0)], len(token_strings)
        indptr, columns, values = [0], [], []
        for k in range(n):
            frequency: Counter = Counter()
            for texts, field_weight in weighted:
                for term, count in Counter((texts[k] or "").split()).items():
                    frequency[term] += field_weight * (1.0 + math.log(count))
            known, unknown = {}, 0.0
            for term, weight in frequency.items():
                column = self.column.get(term)
                if column is None:
                    unknown += (weight * self.rare_idf) ** 2
                else:
                    known[column] = weight * float(self.idf[column])
            norm = np.sqrt(sum(w * w for w in known.values()) + unknown)
            for column in sorted(known):
                columns.append(column)
                values.append(known[column] / norm)
            indptr.append(len(columns))
        rows = sp.csr_matrix((np.asarray(values, np.float32), np.asarray(columns, np.int64), indptr),
                             shape=(len(indptr) - 1, self.vocabulary))
        return keep_heaviest(rows, self.max_terms)

    def query(self, token_strings) -> sp.csr_matrix:
        """Term rows of people's words (one cleaned text per row), made as ``transform`` makes
        them after ``words_as_terms`` has put each word outside the vocabulary as the vocabulary's
        word of the same stem: someone who types "animated" means the products that say
        "animation".

        Example:
            >>> terms = TermWeights.fit(["animation comedy", "animation drama", "comedy film"])
            >>> bool((terms.query(["animated"]) != terms.transform(["animation"])).nnz == 0)
            True
        """
        return self.transform(self.words_as_terms(token_strings))

    def words_as_terms(self, token_strings) -> list[str]:
        """Each text with every word outside the vocabulary replaced by the vocabulary's word that
        has its stem (Snowball English; stems of at least 3 letters) and the most products; a word
        with none stays as it is.

        Example:
            >>> TermWeights.fit(["guitar strings", "bass strings", "guitar strap"]).words_as_terms(["guitars stringed cable"])
            ['guitar strings cable']
        """
        texts = []
        for text in token_strings:
            words = (text or "").split()
            texts.append(" ".join(word if word in self.column else self._same_stem(word) or word for word in words))
        return texts

    def _same_stem(self, word: str) -> str | None:
        stem = self._stemmer.stemWord(word)
        if len(stem) < 3:
            return None
        # A Snowball English stem differs from its word's start in its last letter at most
        # ("happi" <- "happy", "hope" <- "hoping"), so every term of that stem starts with the
        # stem less its last letter: only the terms with that prefix are stemmed.
        prefix = stem[:-1]
        ordered, order = self._sorted_terms
        start = bisect.bisect_left(ordered, prefix)
        best = None
        for k in range(start, len(ordered)):
            term = ordered[k]
            if not term.startswith(prefix):
                break
            column = order[k]
            if self._stemmer.stemWord(term) == stem and (best is None or self.idf[column] < self.idf[best]):
                best = column
        return None if best is None else self.terms[best]

    @cached_property
    def _stemmer(self):
        import snowballstemmer  # pure Python; imported by the first words outside the vocabulary

        return snowballstemmer.stemmer("english")

    @cached_property
    def _sorted_terms(self) -> tuple[list[str], list[int]]:
        order = sorted(range(len(self.terms)), key=self.terms.__getitem__)
        return [self.terms[k] for k in order], order

    @property
    def vocabulary(self) -> int:
        return self.rows.shape[1]

    def append(self, token_strings) -> None:
        """Term rows for products added to the catalogue (same vocabulary; ``transform``'s input)."""
        self.rows = sp.csr_matrix(sp.vstack([self.rows, self.transform(token_strings)]), dtype=np.float32)

    def profiles(self, histories: sp.csr_matrix, extra: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """Unit term profiles: for each row of ``histories`` (users x products, 1 = liked) the sum
        of its products' term rows, plus the matching row of ``extra`` (a sentence's terms)."""
        summed = sp.csr_matrix(histories, dtype=np.float32) @ self.rows
        if extra is not None:
            summed = summed + extra
        return unit_sparse_rows(summed)

    def scores(self, profiles: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """``profiles[b] . term_rows[rows[b, m]]`` for a B x M array of product rows (cosines)."""
        return self._dot(profiles, rows, presence=False)

    def coverage(self, queries: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """The share of each query's term weight that product ``rows[b, m]`` has (0 to 1): a
        product with every word of query ``b`` scores 1 however long its own text, so among the
        products that match, the other parts decide the order.

        Example:
            >>> terms = TermWeights.fit(["red strap", "red cable", "blue cable", "blue strap"])
            >>> [round(float(s), 2) for s in terms.coverage(terms.transform(["red cable"]), np.array([[0, 1, 2]]))[0]]
            [0.5, 1.0, 0.5]
        """
        queries = sp.csr_matrix(queries, dtype=np.float32, copy=True)
        totals = np.asarray(abs(queries).sum(axis=1)).ravel()
        queries.data /= np.repeat(np.where(totals > 0, totals, 1.0), np.diff(queries.indptr)).astype(np.float32)
        return self._dot(queries, rows, presence=True)

    def _dot(self, profiles: sp.csr_matrix, rows: np.ndarray, presence: bool) -> np.ndarray:
        """``profiles[b] . term_rows[rows[b, m]]``, the term rows read as 0/1 with ``presence``."""
        rows = np.asarray(rows)
        profiles = sp.csr_matrix(profiles)
        if profiles.nnz == 0 or rows.size == 0:
            return np.zeros(rows.shape, np.float32)
        unique, inverse = np.unique(rows, return_inverse=True)
        if 1 < profiles.shape[0] and profiles.shape[0] * len(unique) <= max(2 * rows.size, DENSE_CELLS):
            # many requests at once (validation, evaluation): one sparse product of the profiles
            # and the products' rows, requests x products, summed in float64 as below
            chosen = self.rows[unique].astype(np.float64)
            if presence:
                chosen.data[:] = 1.0
            products = (profiles.astype(np.float64) @ chosen.T).toarray()
            return np.take_along_axis(products, inverse.reshape(rows.shape), axis=1).astype(np.float32)
        profiles.sort_indices()
        width = np.int64(self.vocabulary)
        keys = np.repeat(np.arange(profiles.shape[0], dtype=np.int64), np.diff(profiles.indptr)) * width \
            + profiles.indices
        gathered = self.rows[rows.ravel()]
        counts = np.diff(gathered.indptr)
        entry = np.repeat(np.arange(rows.size), counts)  # the (b, m) cell of each gathered term
        wanted = (entry // rows.shape[1]) * width + gathered.indices
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        weights = 1.0 if presence else gathered.data
        products = np.where(keys[at] == wanted, weights * profiles.data[at], 0.0)
        return np.bincount(entry, products, minlength=rows.size).astype(np.float32).reshape(rows.shape)

    def save(self, directory: str | os.PathLike) -> None:
        """``terms.npz`` (the vocabulary, no pickle) and the rows (``save_csr``) in ``directory``."""
        from hybrid.core.persistence import save_bundle, save_csr

        save_bundle(os.path.join(directory, "terms.npz"), {"rare_idf": self.rare_idf, "max_terms": self.max_terms,
                                                           "field_weights": self.field_weights},
                    {"terms": self.terms}, idf=self.idf)
        save_csr(directory, "terms", self.rows)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TermWeights":
        """Terms ``save`` wrote; the rows memory-mapped. Loading runs no code from the files (a
        recommender's load reports a damaged folder: ``persistence.reading_folder``)."""
        from hybrid.core.persistence import load_bundle, load_csr

        meta, strings, arrays = load_bundle(os.path.join(directory, "terms.npz"))
        return cls(strings["terms"], arrays["idf"], meta["rare_idf"], load_csr(directory, "terms"), meta["max_terms"],
                   meta.get("field_weights"))

    @staticmethod
    def saved_in(directory: str | os.PathLike) -> bool:
        return os.path.isfile(os.path.join(directory, "terms.npz"))
