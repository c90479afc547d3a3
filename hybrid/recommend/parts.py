"""The fitted parts of the two-stage recommender, with their tables and indexes: what generates
candidates and what scores them.

- interactions: the rated and liked matrices (users x products) the parts were fitted on;
- retrieval: the two towers (``hybrid.models.keras.retrieval``), their user and item vectors and
  the item index searched for candidates (``hybrid.models.ann``);
- item-item: sparse neighbours of every product (``hybrid.models.item_item``), the other source
  of candidates;
- network: the ``implicit`` Keras network, scoring (user, product) pairs (trained in TensorFlow,
  answering in NumPy: ``hybrid.models.like_network``);
- content: the catalogue's TF-IDF terms (``hybrid.content.terms``), fitted before the parts on
  every product's text, and the content index over the text vectors;
- scales: each part's mean and spread over training users' candidates (the blend's standardising).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from hybrid.content.terms import TermWeights
from hybrid.content.vectors import unit_rows
from hybrid.core.config import ModelConfig, RetrievalConfig, TrainConfig, TwoStageConfig
from hybrid.core.errors import ArgumentError
from hybrid.core.numeric import id_rows
from hybrid.core.persistence import load_array, load_arrays, load_csr, save_array, save_arrays, save_csr
from hybrid.data.ids import IdMap
from hybrid.models.ann import VectorIndex
from hybrid.models.item_item import item_neighbours
from hybrid.models.like_network import LikeNetwork
from hybrid.models.neighbours import row_values
from hybrid.models.retrieval_scorer import RetrievalScorer, load_scorer, save_two_tower
from hybrid.recommend.catalogue import Catalogue
from hybrid.recommend.shaping import popularity_scores


NETWORK_DIR = "network"  # the re-ranking network's weights, one .npy each


@dataclass
class Sentence:
    """New users' words: ``terms``, their unit TF-IDF term rows (B x terms)."""

    terms: sp.csr_matrix

    def __getitem__(self, rows) -> "Sentence":
        return Sentence(self.terms[rows])


class ScoringParts:
    """Candidate generation and part scores over one catalogue and one set of users.

    ``fit`` learns every part from integer-encoded ratings; ``features`` gives a batch of users'
    candidates and their unblended part scores; ``part_scores`` scores any (user, product) rows.
    """

    def __init__(self, config: TwoStageConfig, retrieval: RetrievalConfig, network: ModelConfig, train: TrainConfig,
                 users: IdMap, catalogue: Catalogue, terms: TermWeights | None, log=None):
        self.config, self.retrieval_config, self.network_config, self.train_config = config, retrieval, network, train
        self.users, self.catalogue, self.terms, self.log = users, catalogue, terms, log
        self.info: dict = {}
        self.scales: dict = {}
        self.network: LikeNetwork | None = None
        self._counts = None
        self._user_index = None

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    # ------------------------------------------------------------------ fitting
    def fit(self, user_index, item_index, rating, final: bool = True, epochs: dict | None = None) -> "ScoringParts":
        """Fit the models (retrieval towers, re-ranking network) on these rows, then the tables
        (``final``: the serving indexes too; else exact search, for choosing the blend).
        ``epochs`` (``retrieval``, ``network``): train each model that many epochs on every row,
        none held out for early stopping (the epochs validation chose); else each stops early on
        a share of the rows held out."""
        from hybrid.models.keras.networks import network_arrays
        from hybrid.models.keras.retrieval import fit_retrieval
        from hybrid.models.keras.training import fit_model

        config, n_users, n_items = self.config, len(self.users), len(self.catalogue)
        retrieval_config, train_config = self.retrieval_config, self.train_config
        if epochs is not None and "retrieval" in epochs:
            retrieval_config = replace(retrieval_config, epochs=epochs["retrieval"], validation_share=0.0)
        if epochs is not None and "network" in epochs:
            train_config = replace(train_config, epochs=epochs["network"], validation_share=0.0)
        liked = rating >= config.threshold
        self.tower, info = fit_retrieval(user_index, item_index, rating, self.catalogue.vectors, n_users, n_items,
                                         retrieval_config, log=self.log)
        self.tower_items = info.pop("trained_items")
        self.info = {"retrieval": info}
        self.network = None
        self.network_items = np.bincount(item_index[liked], minlength=n_items) > 0
        if config.network:  # its set-up and first epoch take a minute at millions of likes: say so
            self._log(f"recommender: re-ranking network ({self.network_config.name}) on {int(liked.sum()):,} likes")
            vectors = np.vstack([self.catalogue.vectors, np.zeros((1, self.catalogue.dim), np.float32)])
            network, self.info["network"] = fit_model(
                self.network_config, train_config, user_index[liked], item_index[liked],
                np.ones(liked.sum(), np.float32), vectors, n_users, n_items, log=self.log)
            self.network = LikeNetwork(network_arrays(network))
        self.n_network_items = n_items
        self.derive_tables(user_index, item_index, rating, final)
        return self

    def derive_tables(self, user_index, item_index, rating, final: bool = True) -> None:
        """What the fitted models read from these rows: the rated and liked matrices, the users'
        liked histories (their retrieval vectors), the item-item neighbours, the indexes and the
        parts' scales. Items the models did not learn keep their text-only vectors."""
        # tables derived before go before the new ones are built: the item-item neighbours
        # alone are hundreds of MB at 800k products
        self.rated = self.likes = self.neighbours = self.scorer = self.retrieval_index = self.content_index = None
        config, n_users, n_items = self.config, len(self.users), len(self.catalogue)
        liked = rating >= config.threshold
        shape = (n_users, n_items)
        self.rated = sp.csr_matrix((np.ones(len(rating), np.float32), (user_index, item_index)), shape=shape)
        self.rated.data[:] = 1.0
        self.likes = sp.csr_matrix((np.ones(liked.sum(), np.float32), (user_index[liked], item_index[liked])),
                                   shape=shape)
        self.likes.data[:] = 1.0
        self.catalogue.trained = np.bincount(item_index, minlength=n_items) > 0
        started = time.perf_counter()
        self.tower.set_likes(user_index[liked], item_index[liked])
        self.scorer = RetrievalScorer.from_model(self.tower, self.tower_items)
        self._log(f"recommender: retrieval vectors of {n_users:,} users and {n_items:,} products, "
                  f"{time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        self.neighbours, self.info["item_item"] = item_neighbours(self.likes, config.neighbours, config.item_item,
                                                                  l2=None, seed=config.seed)
        self._log(f"recommender: item-item neighbours ({self.info['item_item']}) from {int(liked.sum()):,} likes, "
                  f"{time.perf_counter() - started:.0f} s")
        self.info["likes"], self.info["ratings"] = int(liked.sum()), int(len(rating))
        started = time.perf_counter()
        self.build_indexes(final)
        trained_users = np.unique(user_index[liked])
        rng = np.random.default_rng(config.seed)
        self.scales = self.scales_over(rng.choice(trained_users, min(500, len(trained_users)), replace=False))
        self._log(f"recommender: {self.retrieval_index.kind} index{' and content index' if final else ''}, "
                  f"score scales, {time.perf_counter() - started:.0f} s")

    def build_indexes(self, final: bool = True) -> None:
        """The item index over the retrieval vectors and the content index over the text vectors;
        not ``final`` (parts fitted only to choose the blend): exact indexes, which answer a batch
        of users at once as fast and cost nothing to build (an HNSW graph over 800k products takes
        minutes)."""
        settings = {k: getattr(self.config, k) for k in ("exact_below", "hnsw_m", "ef_construction", "ef_search")}
        if not final:
            settings["exact_below"] = len(self.catalogue) + 1
            self.retrieval_index = VectorIndex(self.scorer.item_matrix, **settings)
        else:
            self.retrieval_index = VectorIndex(self.scorer.item_matrix, **settings, what="recommender: item index")
        # the retrieval vectors are read from the index's storage from now on, not held twice
        # (released before the content index is built: 200 MB at 800k products)
        self.scorer.item_matrix = self.retrieval_index.vectors()
        self.content_index = VectorIndex(unit_rows(self.catalogue.vectors).astype(np.float32), **settings,
                                         what="recommender: content index" if final else "")
        self._counts = None
        self._user_index = None

    def scales_over(self, users: np.ndarray) -> dict[str, tuple[float, float]]:
        """Mean and spread of every part's score over the candidates of ``users``."""
        _, valid, features = self.known_user_features(np.asarray(users))
        return {part: (float(values[valid].mean()), float(values[valid].std()) or 1.0)
                for part, values in features.items()}

    # ------------------------------------------------------------------ candidates and scores
    def features(self, user_vectors, histories: sp.csr_matrix, excluded: list, network_users,
                 allowed: np.ndarray | None, k: int, profiles=None, sentence: Sentence | None = None):
        """Candidates of each user (both sources, union; with a ``sentence``, also the ``k``
        products whose terms match it best) and their unblended scores.

        Returns ``rows`` (B x M product rows, -1 padding), ``valid`` (B x M) and a dict of
        B x M score arrays by part."""
        _, retrieved = self.retrieval_index.search(user_vectors, k, exclude=excluded)
        related = self.related(histories)
        matched = (sentence.terms @ self.terms.rows.T).tocsr() if sentence is not None else None
        lists = []
        for b in range(len(user_vectors)):
            mine = retrieved[b][retrieved[b] >= 0]
            if matched is not None and matched.indptr[b + 1] > matched.indptr[b]:
                lo, hi = matched.indptr[b], matched.indptr[b + 1]
                columns = matched.indices[lo:hi][np.argsort(-matched.data[lo:hi], kind="stable")]
                columns = columns[~np.isin(columns, excluded[b])][:k]
                mine = np.union1d(mine, columns)
            if related is not None and related.indptr[b + 1] > related.indptr[b]:
                lo, hi = related.indptr[b], related.indptr[b + 1]
                columns, values = related.indices[lo:hi], related.data[lo:hi]
                keep = ~np.isin(columns, excluded[b]) if len(excluded[b]) else np.ones(len(columns), bool)
                columns, values = columns[keep], values[keep]
                if len(columns) > k:
                    columns = columns[np.argpartition(-values, k - 1)[:k]]
                mine = np.union1d(mine, columns)
            lists.append(mine)
        width = max(1, max(len(m) for m in lists))
        rows = np.full((len(lists), width), -1, np.int64)
        for b, mine in enumerate(lists):
            rows[b, :len(mine)] = mine
        valid = rows >= 0
        if allowed is not None:
            valid &= allowed[np.maximum(rows, 0)]
        return rows, valid, self.part_scores(user_vectors, related, network_users, np.maximum(rows, 0), profiles,
                                             sentence)

    def known_user_features(self, users: np.ndarray):
        """``features`` of known users, their training products excluded."""
        likes = self.likes[users]
        return self.features(self.scorer.user_matrix[users], likes, self.rated_rows(users),
                             users, None, self.config.candidates, self.profiles(likes))

    def cold_features(self, cold_items: np.ndarray):
        """A ``features``-like function of known users over the given products only."""
        def features(users):
            rows = np.broadcast_to(np.asarray(cold_items, np.int64), (len(users), len(cold_items)))
            return rows, np.ones(rows.shape, bool), self.part_scores(
                self.scorer.user_matrix[users], self.related(self.likes[users]), users, rows,
                self.profiles(self.likes[users]))
        return features

    def related(self, histories: sp.csr_matrix):
        """Item-item scores of every product for each history row (None when all are empty)."""
        return (histories @ self.neighbours).tocsr() if histories.nnz else None

    def profiles(self, histories: sp.csr_matrix, text_terms: sp.csr_matrix | None = None):
        """Term profiles of users from their liked products (and a sentence's terms), or None
        without a content part."""
        return None if self.terms is None else self.terms.profiles(histories, text_terms)

    def rated_rows(self, users) -> list[np.ndarray]:
        indptr, indices = self.rated.indptr, self.rated.indices  # (a row slice of the matrix per user: 10x slower)
        return [indices[indptr[u]:indptr[u + 1]] for u in users]

    def pair_scores(self, user_vectors, histories, network_users, rows, profiles=None,
                    sentence: Sentence | None = None) -> dict:
        """The part scores of every given (user, product row) pair."""
        return self.part_scores(user_vectors, self.related(histories), network_users, rows, profiles, sentence)

    def part_scores(self, user_vectors, related, network_users, rows, profiles=None,
                    sentence: Sentence | None = None) -> dict:
        features = {"retrieval": np.einsum("bd,bmd->bm", user_vectors, self.scorer.item_matrix[rows])}
        if related is not None:
            features["item_item"] = row_values(related, rows)
        if network_users is not None and self.network is not None:
            features["network"] = self.network_scores(network_users, rows)
        if profiles is not None:
            features["content"] = self.terms.scores(profiles, rows)
        if sentence is not None:
            features["words"] = self.terms.coverage(sentence.terms, rows)
        return features

    def network_scores(self, users: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The network's like-probabilities for users x their candidate rows."""
        flat_items = rows.ravel()
        flat_users = np.repeat(np.asarray(users, np.int64), rows.shape[1])
        model_items = id_rows(flat_items, self.network_items, self.n_network_items)
        return self.network.scores(flat_users, model_items, self.catalogue.vectors[flat_items]).reshape(rows.shape)

    def item_counts(self) -> dict:
        """Training ratings and likes of every product."""
        if self._counts is None:
            self._counts = {name: np.bincount(getattr(self, name).indices, minlength=getattr(self, name).shape[1])
                            for name in ("rated", "likes")}
        return self._counts

    def popularity(self) -> np.ndarray:
        """Every product's ``popularity_scores`` of its training ratings (for shaping lists)."""
        counts = self.item_counts()
        if "popularity" not in counts:
            counts["popularity"] = popularity_scores(counts["rated"])
        return counts["popularity"]

    # ------------------------------------------------------------------ lookups
    def similar_products(self, rows: np.ndarray, n: int, by: str, blocked: np.ndarray):
        """The ``n`` products nearest to each of ``rows`` by text vectors (``content``) or by the
        retrieval model's item vectors (``collaborative``), each itself and ``blocked`` left out:
        ``(rows, scores)``."""
        if by == "content":
            queries, index = unit_rows(self.catalogue.vectors[rows]).astype(np.float32), self.content_index
            empty = rows[~queries.any(axis=1)]
            if len(empty):
                raise ArgumentError(f"item(s) {self.catalogue.ids.ids(empty[:5]).tolist()} have no text "
                                    "vector (no known word in their text): use by='collaborative'")
        else:
            queries, index = self.scorer.item_matrix[rows], self.retrieval_index
        scores, found = index.search(queries, n, exclude=[np.union1d([r], blocked) for r in rows])
        return found, scores

    def nearest_in_content(self, vector: np.ndarray, n: int, blocked: np.ndarray):
        """The ``n`` products nearest to a text vector, ``blocked`` left out: ``(rows, scores)``."""
        scores, found = self.content_index.search(unit_rows(vector).astype(np.float32)[None, :], n, exclude=[blocked])
        return found, scores

    def similar_users(self, users: np.ndarray, n: int):
        """The ``n`` users nearest to each of ``users`` in the retrieval model's user space."""
        if self._user_index is None:
            self._user_index = VectorIndex(self.scorer.user_matrix, self.config.exact_below, self.config.hnsw_m,
                                           self.config.ef_construction, self.config.ef_search)
        scores, found = self._user_index.search(self.scorer.user_matrix[users], n, exclude=[[u] for u in users])
        return found, scores

    def details(self, rows: np.ndarray) -> list[dict]:
        """Each product's id, title, display text, cold flag and training ratings and likes."""
        counts, catalogue = self.item_counts(), self.catalogue
        return [{"item_id": str(catalogue.ids.ids([r])[0]), "title": catalogue.titles[r], "text": catalogue.text(r),
                 "cold": bool(catalogue.cold[r]), "ratings": int(counts["rated"][r]), "likes": int(counts["likes"][r])}
                for r in rows]

    def history(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """The product rows a user rated in training and whether each was a like."""
        rows = self.rated[user].indices
        return rows, np.isin(rows, self.likes[user].indices)

    # ------------------------------------------------------------------ growth
    def add_products(self, rows: np.ndarray) -> None:
        """Products appended to the catalogue (its rows ``rows``) join every index and table,
        known by their text."""
        tower = self.scorer.text_items(self.catalogue.vectors[rows])
        self.retrieval_index.add(tower)
        self.scorer.item_matrix = self.retrieval_index.vectors()
        self.content_index.add(unit_rows(self.catalogue.vectors[rows]).astype(np.float32))
        n = len(self.catalogue)
        for name in ("rated", "likes"):
            getattr(self, name).resize((getattr(self, name).shape[0], n))
        self.neighbours.resize((n, n))
        self.network_items = np.concatenate([self.network_items, np.zeros(len(rows), bool)])
        self._counts = None

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        for name in ("rated", "likes", "neighbours"):
            save_csr(directory, name, getattr(self, name))
        save_two_tower(self.scorer, directory)
        save_array(directory / "user_vectors.npy", self.scorer.user_matrix)
        save_arrays(directory / "vectors.npz", network_items=self.network_items)
        self.retrieval_index.save(directory / "item_index")
        self.content_index.save(directory / "content_index")
        if self.network is not None:
            self.network.save(directory / NETWORK_DIR)

    def load_tables(self, directory: str | os.PathLike, n_network_items: int, has_network: bool) -> None:
        """The parts ``save`` wrote, into this (unfitted) instance; large tables memory-mapped."""
        directory = Path(directory)
        if has_network:
            self.network = LikeNetwork.load(directory / NETWORK_DIR)
        for name in ("rated", "likes", "neighbours"):  # memory-mapped: a request reads a few rows
            setattr(self, name, load_csr(directory, name))
        self.retrieval_index = VectorIndex.load(directory / "item_index")
        # the items' retrieval vectors: the item index's own storage
        self.scorer = load_scorer(directory, self.retrieval_config, self.retrieval_index.vectors(),
                                  load_array(directory / "user_vectors.npy"))
        self.network_items = load_arrays(directory / "vectors.npz")["network_items"]
        self.content_index = VectorIndex.load(directory / "content_index")
        self.n_network_items = n_network_items
