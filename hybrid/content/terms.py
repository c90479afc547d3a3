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

import math
import os
from collections import Counter

import numpy as np
import scipy.sparse as sp


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

    def __init__(self, terms, idf: np.ndarray, rare_idf: float, rows: sp.csr_matrix, max_terms: int):
        self.terms = list(terms)  # the vocabulary, in column order
        self.column = {term: k for k, term in enumerate(self.terms)}
        self.idf, self.rare_idf = np.asarray(idf, np.float32), float(rare_idf)
        self.max_terms = int(max_terms)
        self.rows = sp.csr_matrix(rows, dtype=np.float32)

    @classmethod
    def fit(cls, token_strings, max_terms: int = 64, min_df: int = 2) -> "TermWeights":
        """Fit on cleaned token strings (space-separated, one per product; empty allowed).
        Terms in fewer than ``min_df`` products leave the vocabulary (they still count in their
        product's length); when that would leave no term at all (a tiny catalogue) all are kept.

        Example:
            >>> TermWeights.fit(["red strap", "red cable", "blue cable"]).terms
            ['cable', 'red']
        """
        from sklearn.feature_extraction.text import CountVectorizer

        texts = [t or "" for t in token_strings]
        counter = CountVectorizer(token_pattern=r"\S+", lowercase=False, dtype=np.float32)
        try:
            weights = sp.csr_matrix(counter.fit_transform(texts), dtype=np.float32)  # the counts, at first
            terms = counter.get_feature_names_out().tolist()
        except ValueError:  # no word in any text
            weights, terms = sp.csr_matrix((len(texts), 0), dtype=np.float32), []
        del counter  # its vocabulary holds every word, rare ones included
        df = np.bincount(weights.indices, minlength=len(terms))
        idf = _idf(df, len(texts))
        # in place: the matrix is the largest thing here (tens of millions of entries at 800k products)
        np.log(weights.data, out=weights.data)
        weights.data += 1.0  # sublinear term frequency
        weights.data *= idf[weights.indices]
        _unit_rows_in_place(weights)
        kept = df >= min_df
        if not kept.any():
            kept[:] = True
        if not kept.all():  # rare terms leave the vocabulary, not their products' lengths
            weights.data[~kept[weights.indices]] = 0.0
            weights.eliminate_zeros()
            columns = (np.cumsum(kept) - 1).astype(weights.indices.dtype)[weights.indices]
            weights = sp.csr_matrix((weights.data, columns, weights.indptr), shape=(len(texts), int(kept.sum())))
        return cls([t for t, k in zip(terms, kept) if k], idf[kept], _idf(np.ones(1), len(texts))[0],
                   keep_heaviest(weights, max_terms), max_terms)

    def transform(self, token_strings) -> sp.csr_matrix:
        """Term rows of more cleaned texts, made as ``fit`` makes the catalogue's: a word outside
        the vocabulary has no column but counts in the row's length, with the weight of a word
        that one product of the catalogue has (what most words outside it are)."""
        indptr, columns, values = [0], [], []
        for text in token_strings:
            known, unknown = {}, 0.0
            for term, count in Counter((text or "").split()).items():
                weight = 1.0 + math.log(count)
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

    @property
    def vocabulary(self) -> int:
        return self.rows.shape[1]

    def append(self, token_strings) -> None:
        """Term rows for products added to the catalogue (same vocabulary)."""
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

        save_bundle(os.path.join(directory, "terms.npz"), {"rare_idf": self.rare_idf, "max_terms": self.max_terms},
                    {"terms": self.terms}, idf=self.idf)
        save_csr(directory, "terms", self.rows)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TermWeights":
        """Terms ``save`` wrote; the rows memory-mapped. Loading runs no code from the files (a
        recommender's load reports a damaged folder: ``persistence.reading_folder``)."""
        from hybrid.core.persistence import load_bundle, load_csr

        meta, strings, arrays = load_bundle(os.path.join(directory, "terms.npz"))
        return cls(strings["terms"], arrays["idf"], meta["rare_idf"], load_csr(directory, "terms"), meta["max_terms"])

    @staticmethod
    def saved_in(directory: str | os.PathLike) -> bool:
        return os.path.isfile(os.path.join(directory, "terms.npz"))
