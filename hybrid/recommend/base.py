"""The contract every id-level recommender implements, in implicit's vocabulary.

Ids are the catalogue's own (strings); answers are ``(ids, scores)``: 1-D arrays for one query,
2-D for a list of them, as wide as the longest answer (at most ``N``), shorter answers padded with
``None`` ids and NaN scores; where nothing qualifies the arrays are empty. ``frame(ids, scores)`` turns an answer into a DataFrame. The classes
document each method once, here; ``help()`` shows these texts on every implementation.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Iterable

import numpy as np
import pandas as pd

from hybrid.core.errors import UnknownIdError
from hybrid.data.ids import IdMap


def is_single(ids) -> bool:
    """One id (answered with 1-D arrays) rather than a sequence of them (2-D)."""
    return isinstance(ids, (str, int, np.integer))


def padded_answer(rows: np.ndarray, scores: np.ndarray, names: IdMap, single: bool):
    """``(ids, scores)`` from rows of ``names`` (-1: no product): None ids and NaN scores where a
    row is -1, trimmed to the widest row's count; the first row alone when ``single``."""
    width = int((rows >= 0).sum(axis=1).max()) if rows.size else 0
    rows, scores = rows[:, :width], scores[:, :width]
    ids = np.full(rows.shape, None, object)
    ids[rows >= 0] = names.ids(rows[rows >= 0])
    scores = np.where(rows >= 0, scores, np.nan)
    return (ids[0], scores[0]) if single else (ids, scores)


def renamed(**old_to_new):
    """Accept a method's former keyword names for one release, with a ``DeprecationWarning``
    that names the new one."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    warnings.warn(f"{type(self).__name__}.{method.__name__}: {old!r} is deprecated, use {new!r}",
                                  DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return method(self, *args, **kwargs)
        return call
    return wrap


class Recommender:
    """A fitted recommender answers by external ids (see the module's docstring).

    A fitted one has ``users`` (``hybrid.data.ids.IdMap``: the users it knows) and ``catalogue``
    (``hybrid.recommend.catalogue.Catalogue``: every product it can answer, in row order).
    """

    def recommend(self, user_ids, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: Iterable | None = None, items: Iterable | None = None,
                  include_cold: bool = True, diversity: float = 0.0, popularity_penalty: float = 0.0):
        """Top-``N`` products for known users.

        Parameters
        ----------
        user_ids : one user id, or a sequence of them (a batch).
        N : how many products per user (at least 1).
        filter_already_liked_items : leave out what each user rated in training.
        filter_items : product ids left out for everyone.
        items : product ids to rank (each of them scored); default the whole catalogue.
        include_cold : rank products without training ratings too (scored from their text).
        diversity : 0 to 1: how much each next product must differ in content from those above
            it (maximal marginal relevance over the text vectors; 0: by score alone).
        popularity_penalty : 0 or more: how much a product's popularity (its training ratings)
            counts against it, in standard deviations of score per standard deviation of
            popularity (0: not at all). Both change the order only (``hybrid.recommend.shaping``).

        Returns
        -------
        (ids, scores) : object and float arrays, 1-D for one user, 2-D for a batch (users x at
            most ``N``); shorter answers padded with None and NaN. The scores are the model's,
            in the answer's order (not descending when ``diversity`` or ``popularity_penalty``
            reorder the list).

        Raises
        ------
        UnknownIdError
            A user or product id the model does not know (``recommend_for_new_user`` answers
            people it never saw).
        ArgumentError
            ``N`` below 1, or ``diversity``/``popularity_penalty`` out of range.

        Example:
            >>> ids, scores = rec.recommend("196", N=5)  # doctest: +SKIP
            >>> ids, scores = rec.recommend("196", N=5, diversity=0.3)  # doctest: +SKIP
        """
        raise NotImplementedError

    def recommend_for_new_user(self, liked_items: Iterable | None = None, text: str | None = None,
                               N: int = 10, filter_items: Iterable | None = None,
                               items: Iterable | None = None, include_cold: bool = True,
                               diversity: float = 0.0, popularity_penalty: float = 0.0):
        """Top-``N`` for someone the model never saw, from liked product ids and/or a sentence,
        without refitting. The liked products are left out of the answer.

        Parameters
        ----------
        liked_items : product ids the person likes.
        text : what they want, in words (cleaned like product text).
        N, filter_items, items, include_cold, diversity, popularity_penalty : as for ``recommend``.

        Returns
        -------
        (ids, scores) : 1-D arrays, padded as ``recommend``'s.

        Raises
        ------
        ArgumentError
            Neither liked products nor a text, or a text without one known word.
        UnknownIdError
            A product id the model does not know.

        Example:
            >>> ids, scores = rec.recommend_for_new_user(["50", "172"], text="space war")  # doctest: +SKIP
        """
        raise NotImplementedError

    def similar_items(self, item_ids, N: int = 10, by: str = "content", filter_items: Iterable | None = None):
        """Products nearest to each given product; the product itself is left out.

        Parameters
        ----------
        item_ids : one product id, or a sequence of them.
        N : how many per product.
        by : ``"content"`` (cosine of text vectors) or ``"collaborative"`` (learned item vectors,
            where the recommender has them).
        filter_items : product ids left out.

        Returns
        -------
        (ids, scores) : 1-D for one id, 2-D for a sequence; padded as ``recommend``'s.

        Raises
        ------
        UnknownIdError
            An unknown product id.
        ArgumentError
            An unknown ``by``, or a product without a text vector asked ``by="content"``.
        """
        raise NotImplementedError

    def similar_to_text(self, text: str, N: int = 10, filter_items: Iterable | None = None):
        """Products nearest in content to free text.

        Returns
        -------
        (ids, scores) : 1-D arrays.

        Raises
        ------
        ArgumentError
            An empty text, or one without a known word.
        """
        raise NotImplementedError

    def similar_users(self, user_ids, N: int = 10):
        """Known users nearest to each given user in the model's user space; the user itself is
        left out.

        Returns
        -------
        (ids, scores) : user ids and similarities, 1-D for one id, 2-D for a sequence.

        Raises
        ------
        UnknownIdError
            An unknown user id.
        """
        raise NotImplementedError

    def add_items(self, items: pd.DataFrame, item_vectors: np.ndarray | None = None) -> int:
        """Make new products (metadata only: ``item_id`` and text fields) answerable at once,
        from their text.

        Returns
        -------
        int : how many products were added.

        Raises
        ------
        ArgumentError
            No ``item_id`` column, or ids the catalogue already holds or repeats.
        """
        raise NotImplementedError

    def frame(self, ids, scores, user_ids=None) -> pd.DataFrame:
        """An answer as a DataFrame: ``item_id, score, title, cold``, padding dropped; with
        ``user_ids`` (a batch's queries) also ``user_id`` and ``rank``.

        Example:
            >>> rec.frame(*rec.recommend("196", N=5))  # doctest: +SKIP
        """
        ids, scores = np.atleast_2d(np.asarray(ids, object)), np.atleast_2d(scores)
        keep = ids != None  # noqa: E711  (elementwise)
        titles, cold = self._item_columns(ids[keep])
        frame = pd.DataFrame({"item_id": ids[keep].astype(object), "score": scores[keep],
                              "title": titles, "cold": cold})
        if user_ids is not None:
            users = np.asarray([user_ids] if is_single(user_ids) else list(user_ids), object)
            frame.insert(0, "user_id", np.repeat(users, keep.sum(axis=1)))
            frame.insert(1, "rank", np.concatenate([np.arange(1, k + 1) for k in keep.sum(axis=1)]))
        return frame

    def top_rows(self, user_rows: np.ndarray, N: int = 10) -> np.ndarray:
        """``recommend`` for users given by row, answered as product rows (-1 padding), users x
        ``N``: what ``hybrid.evaluation.metrics.evaluate_recommendations`` measures.

        Example:
            >>> evaluate_recommendations(rec.top_rows, task)  # doctest: +SKIP
        """
        ids, _ = self.recommend(list(self.users.ids(np.asarray(user_rows))), N=N)
        rows = np.full(ids.shape, -1, np.int64)
        keep = ids != None  # noqa: E711  (elementwise)
        if keep.any():
            rows[keep] = self._item_rows(ids[keep])
        return rows

    def _item_rows(self, ids) -> np.ndarray:
        """Catalogue rows of product ids, one id or any sequence of them; unknown ids raise
        ``UnknownIdError`` naming them."""
        return self.catalogue.index([ids] if is_single(ids) else list(ids))

    def _user_rows(self, user_ids) -> tuple[np.ndarray, bool]:
        """Rows of known user ids and whether one id was given; unknown ids raise
        ``UnknownIdError`` naming them and pointing to ``recommend_for_new_user``."""
        single = is_single(user_ids)
        wanted = [str(user_ids)] if single else [str(u) for u in user_ids]
        users = self.users.index(wanted, missing="ignore")
        if (users < 0).any():
            unknown = [wanted[i] for i in np.flatnonzero(users < 0)[:5]]
            raise UnknownIdError(f"unknown user id(s) {unknown}; for a new user call "
                                 "recommend_for_new_user(liked_items=..., text=...)")
        return users, single

    def _item_columns(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Titles and cold flags of the given product ids (for ``frame``)."""
        rows = self.catalogue.index(item_ids) if len(item_ids) else np.zeros(0, np.int64)
        return self.catalogue.titles[rows], self.catalogue.cold[rows]

    def save(self, directory: str | os.PathLike) -> None:
        """Write what is needed to answer to ``directory``: a ``manifest.json`` (kind, format
        version) and arrays beside it; ``hybrid.load(directory)`` reads it back."""
        raise NotImplementedError
