"""The canonical tables every stage after ingest relies on.

items (one row per item id; text fields kept separate so the text stage can choose):
    item_id        string, never null, unique
    title          string or null
    brand          string or null
    main_category  string or null
    feature        list<string>  (bullet points; empty list when absent)
    description    list<string>  (paragraphs; empty list when absent)
    category       list<string>  (category path or genres; empty list when absent)
    details        list<string>  (the product's attributes as "name: value", such as
                                  "Publisher: Conde Nast" or "Material: Cotton"; identifiers and
                                  shipping facts left out; empty list when absent)

ratings (one row per (user, item) pair; duplicates resolved to the latest):
    user_id        string, never null
    item_id        string, never null
    rating         float32
    timestamp      int64 unix seconds, or null when the source has none

item_text (output of the text stage):
    item_id        string
    text           string  cleaned tokens joined by single spaces ('' when none left)
    source         string  which field the text came from ('feature', 'description',
                           'category', 'title', ... or 'none')
    fields         list<string>  every text field cleaned, in ``TEXT_FIELDS`` order (feature,
                           description, category, details, title, brand, main_category; '' for a field
                           the product lacks): what the two-stage content part reads

item_vectors (output of the vector stage):
    item_id        string
    vector         fixed_size_list<float32>[dim]
    known          bool    False when no token had a vector (the vector is the fallback)
"""

from __future__ import annotations

import pyarrow as pa

ITEM_TEXT_FIELDS = ("title", "brand", "main_category")
ITEM_LIST_FIELDS = ("feature", "description", "category", "details")

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("main_category", pa.string()),
        pa.field("feature", pa.list_(pa.string())),
        pa.field("description", pa.list_(pa.string())),
        pa.field("category", pa.list_(pa.string())),
        pa.field("details", pa.list_(pa.string())),
    ]
)

RATINGS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("rating", pa.float32(), nullable=False),
        pa.field("timestamp", pa.int64()),
    ]
)

ITEM_TEXT_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("fields", pa.list_(pa.string())),
    ]
)


def item_vectors_schema(dim: int) -> pa.Schema:
    """Schema of the item_vectors table for vectors of ``dim`` floats."""
    return pa.schema(
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("known", pa.bool_(), nullable=False),
        ]
    )


def empty_item(item_id: str) -> dict:
    """A canonical item record with every field present and empty."""
    return {
        "item_id": item_id,
        "title": None,
        "brand": None,
        "main_category": None,
        "feature": [],
        "description": [],
        "category": [],
        "details": [],
    }
