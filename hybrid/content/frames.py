"""DataFrame adapters: what a recommender's ``fit(ratings, items)`` reads from pandas frames -
the id maps, titles, texts and text vectors of the products - and the text vector of a query."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from hybrid.content.vectors import TextEncoder, fit_word2vec_encoder
from hybrid.core.errors import ArgumentError, InputFormatError
from hybrid.data.ids import IdMap
from hybrid.data.text import TEXT_FIELDS, TextConfig, field_texts, product_tokens, stop_words, tokenize


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputFormatError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


def item_token_strings(items: pd.DataFrame, config: TextConfig = TextConfig()) -> list[str]:
    """Cleaned token strings for an items DataFrame: per row its ``text`` (free text) when it has
    one, else its canonical fields (feature, description, category, title...)."""
    stop = stop_words()[0]
    out = []
    for record in items.to_dict("records"):
        text = record.get("text")
        if isinstance(text, str) and text.strip():  # free text wins; else the canonical fields
            out.append(" ".join(tokenize(text)))
        else:
            out.append(" ".join(product_tokens({k: v for k, v in record.items() if _present(v)}, config, stop)[0]))
    return out


def item_fields(items: pd.DataFrame) -> dict[str, list[str]] | None:
    """Each text field's cleaned token strings for an items DataFrame with the canonical fields
    (``hybrid.data.text.TEXT_FIELDS``; a field it lacks is left out), or None for a frame of free
    ``text`` or no field at all (then its one text is all there is)."""
    if "text" in items.columns and items["text"].map(lambda t: isinstance(t, str) and bool(t.strip())).any():
        return None
    names = [name for name in TEXT_FIELDS if name in items.columns]
    if not names:
        return None
    stop = stop_words()[0]
    out: dict[str, list[str]] = {name: [] for name in names}
    for record in items[names].to_dict("records"):
        cleaned = field_texts({k: v for k, v in record.items() if _present(v)}, names, stop)
        for name in names:
            out[name].append(cleaned[name])
    return out


def _present(value) -> bool:
    """A DataFrame cell that holds something (not NaN/None from a column other rows filled)."""
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def frame_ids(ratings: pd.DataFrame, items: pd.DataFrame | None) -> tuple[IdMap, IdMap]:
    """User and item id maps of ratings and items DataFrames: items in the order of ``items``,
    then the rated items it lacks (sorted); users sorted. An item id on two rows of ``items`` is
    an ``ArgumentError``: which row's text would be the product's is the caller's choice."""
    require_columns(ratings, ["user_id", "item_id", "rating"], "ratings")
    if len(ratings) == 0:
        raise ArgumentError("ratings is empty")
    if items is not None:
        require_columns(items, ["item_id"], "items")
        repeated = pd.Index(items["item_id"].astype(str))
        repeated = repeated[repeated.duplicated()].unique()
        if len(repeated):
            raise ArgumentError(f"items has {len(repeated)} item_id(s) on more than one row "
                                f"(first: {repeated[0]!r}); give each product one row")
    catalogue_ids = list(dict.fromkeys(
        ([str(i) for i in items["item_id"]] if items is not None else [])
        + sorted(set(map(str, ratings["item_id"])))))
    return IdMap.from_values(map(str, ratings["user_id"]), "user"), IdMap(catalogue_ids, "item")


def frame_titles(items: pd.DataFrame | None, item_map: IdMap | None = None) -> np.ndarray | None:
    """Titles of ``items`` in ``item_map`` order (or the frame's own without a map); None for
    missing ones (NaN included), and None for all when there is no title column."""
    if items is None or "title" not in items.columns:
        return None if item_map is None else np.full(len(item_map), None, dtype=object)
    column = np.array([t if isinstance(t, str) else None for t in items["title"]], dtype=object)
    if item_map is None:
        return column
    titles = np.full(len(item_map), None, dtype=object)
    titles[item_map.index(items["item_id"].astype(str))] = column
    return titles


def item_text_vectors(items: pd.DataFrame | None, item_vectors, encoder: TextEncoder | None,
                      item_map: IdMap, text_config: TextConfig, pretrained: str | None,
                      seed: int) -> tuple[np.ndarray, TextEncoder | None]:
    """Text vectors aligned with ``item_map`` and the encoder that reads new text.

    ``item_vectors`` (a DataFrame with ``item_id`` and ``vector``, or an array aligned with
    ``items``' rows) are taken as they are; otherwise a Word2Vec encoder is fitted on the items'
    text (initialised from ``pretrained``) unless ``encoder`` is given. Items without text or
    vectors get zeros.
    """
    if item_vectors is not None:
        if isinstance(item_vectors, pd.DataFrame):
            require_columns(item_vectors, ["item_id", "vector"], "item_vectors")
            matrix = np.vstack(item_vectors["vector"].to_numpy()).astype(np.float32)
            ids = item_vectors["item_id"].astype(str)
        else:
            if items is None:
                raise ArgumentError("an item_vectors array needs the items DataFrame it is aligned with")
            matrix = np.asarray(item_vectors, np.float32)
            ids = items["item_id"].astype(str)
            if len(matrix) != len(ids):
                raise ArgumentError(f"item_vectors has {len(matrix)} rows but items has {len(ids)}")
        out = np.zeros((len(item_map), matrix.shape[1]), np.float32)
        out[item_map.index(ids)] = matrix
        return out, encoder
    if items is None:
        raise ArgumentError("give items (with text) or item_vectors: the hybrid needs item text")
    texts = item_token_strings(items, text_config)
    encoder = encoder or fit_word2vec_encoder(
        lambda: (t.split() for t in texts if t), pretrained=pretrained,
        epochs=5, min_count=1, seed=seed, workers=1)
    matrix, _ = encoder.transform(texts)
    out = np.zeros((len(item_map), matrix.shape[1]), np.float32)
    out[item_map.index(items["item_id"].astype(str))] = matrix
    return out, encoder



def encode_query(encoder: TextEncoder | None, text: str) -> np.ndarray:
    """The text vector of a free-text query, or an ``ArgumentError`` saying why there is none."""
    if encoder is None:
        raise ArgumentError("this recommender has no text encoder (it was fitted with item_vectors "
                            "only), so it cannot read free text")
    vector = encoder.encode(text)
    if not np.any(vector):
        raise ArgumentError(f"no known word in the text {text!r} (after cleaning and stop words): "
                            "describe it with other words")
    return vector


def display_texts(items: pd.DataFrame | None, item_map: IdMap | None):
    """Texts to show for ``items`` (each row's ``text``, else its cleaned canonical fields), in
    ``item_map`` order (None for items it lacks), or in the frame's order without a map."""
    if items is None:
        return None
    texts = items["text"].tolist() if "text" in items.columns else [None] * len(items)
    missing = [k for k, t in enumerate(texts) if not (isinstance(t, str) and t.strip())]
    if missing:  # cleaned only where there is no free text
        for k, cleaned in zip(missing, item_token_strings(items.iloc[missing])):
            texts[k] = cleaned
    if item_map is None:
        return texts
    out = [None] * len(item_map)
    for row, text in zip(item_map.index(items["item_id"].astype(str)), texts):
        out[row] = text if isinstance(text, str) else None
    return out


def new_item_vectors(items: pd.DataFrame, encoder: TextEncoder | None, config: TextConfig,
                     item_vectors: np.ndarray | None = None, tokens: bool = False):
    """The text vectors of products being added to a fitted recommender, and (``tokens``) their
    cleaned token strings: ``(vectors, token_strings or None)``. Without ``item_vectors`` every
    product needs text the encoder reads; a product without any is an ``ArgumentError``."""
    require_columns(items, ["item_id"], "items")
    strings = item_token_strings(items, config) if item_vectors is None or tokens else None
    if item_vectors is None:
        if encoder is None:
            raise ArgumentError("no text encoder: pass item_vectors for the new items")
        empty = [str(i) for i, t in zip(items["item_id"], strings) if not t.strip()]
        if empty:
            raise ArgumentError(f"items {empty[:5]} have no usable text: give a text, title, description "
                                "or feature (or item_vectors)")
        item_vectors, _ = encoder.transform(strings)
    return np.asarray(item_vectors, np.float32), strings
