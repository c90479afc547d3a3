"""Readers for every supported input format, one parse function per line, and detection.

Each format turns one text line into one canonical record (see ``hybrid.data.schema``) or raises
``BadRecord`` with a short reason; the ingest stage quarantines those. Formats with a header
line read it once into a context that the line parser receives.

Supported:
    items:   amazon2018-meta (JSON), amazon2014-meta (2014 fields, as Python dict literals or
             JSON), amazon2023-meta
             (JSONL), movielens-100k-items (u.item), movielens-items (movies.csv),
             recbole-items (.item)
    ratings: amazon2018-ratings (item,user,rating,timestamp CSV), amazon-reviews (2014/2018
             5-core JSON), amazon2023-reviews (JSONL, ms timestamps), amazon-tsv (Customer
             Reviews TSV), movielens-100k-ratings (u.data), movielens-ratings (ratings.csv),
             recbole-ratings (.inter), delimited-ratings (any CSV/TSV with a header naming
             user, item and rating columns; see ``RATING_COLUMN_ALIASES``)

Ids must be strings (integers are accepted as their decimal text); a UTF-8 byte-order mark is
ignored; comma-separated fields may be quoted.
"""

from __future__ import annotations

import ast
import csv
import errno
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import orjson

from hybrid.core.errors import ArgumentError, InputFormatError
from hybrid.data.io import head_lines
from hybrid.data.schema import empty_item
from hybrid.data.text import display_text


class BadRecord(ValueError):
    """One line that cannot become a record; the message is the quarantine reason."""


# ---------------------------------------------------------------- value normalisation
def as_text(value) -> str | None:
    """A non-empty stripped string, or None (lists are joined; objects are not text)."""
    if value is None or isinstance(value, dict):
        return None
    if type(value) is not str:
        value = " ".join(as_text_list(value)) if isinstance(value, (list, tuple)) else str(value)
    return value.strip() or None


#: Deeper nesting than this in a text field is not product text but a broken or hostile line.
MAX_NESTING = 32


def as_text_list(value) -> list[str]:
    """Flatten strings / (nested) lists into a list of non-empty stripped strings.

    Example:
        >>> as_text_list(["a ", ["b", None, ["", "c"]]])
        ['a', 'b', 'c']
    """
    if not value:
        return []
    if type(value) is str:
        value = value.strip()
        return [value] if value else []
    if not isinstance(value, (list, tuple)):
        if isinstance(value, dict):  # e.g. a 2014 salesRank: its keys are the text
            return as_text_list(list(value))
        return as_text_list(str(value))
    out: list[str] = []
    stack = [(iter(value), 1)]  # explicit stack: no recursion limit to hit on deep nesting
    while stack:
        values, depth = stack[-1]
        for v in values:
            if type(v) is str:  # the common case, kept fast: this runs per field per record
                v = v.strip()
                if v:
                    out.append(v)
            elif isinstance(v, (list, tuple)):
                if depth >= MAX_NESTING:
                    raise BadRecord(f"text field nested more than {MAX_NESTING} levels deep")
                stack.append((iter(v), depth + 1))
                break
            elif v is not None and not isinstance(v, dict):
                text = str(v).strip()
                if text:
                    out.append(text)
        else:
            stack.pop()
    return out


def parse_rating(value, low: float, high: float) -> float:
    if type(value) is bool:
        raise BadRecord(f"rating is not a number: {value!r}")
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise BadRecord(f"rating is not a number: {value!r}") from None
    if math.isnan(rating) or not low <= rating <= high:
        raise BadRecord("rating out of range")
    return rating


#: Timestamps outside this many seconds either way are refused: they would overflow the int64
#: column. (Implausible ones inside it, milliseconds given as seconds, are kept and reported.)
TIMESTAMP_RANGE = (-9e18, 9e18)


def parse_timestamp(value, scale: float = 1.0) -> int | None:
    """Unix seconds from a number of seconds (``scale`` 1) or milliseconds (``scale`` 1000), in
    ``TIMESTAMP_RANGE`` (else ``BadRecord``: that record is quarantined, the file goes on).

    Example:
        >>> parse_timestamp("1700000000"), parse_timestamp(1.7e12, 1000.0)
        (1700000000, 1700000000)
    """
    if value is None or value == "":
        return None
    if type(value) is str:
        value = value.strip()
        if not value:
            return None
    elif type(value) is bool:
        raise BadRecord(f"timestamp is not a number: {value!r}")
    try:
        seconds = float(value) / scale
    except (TypeError, ValueError, OverflowError):
        raise BadRecord(f"timestamp is not a number: {value!r}") from None
    if not math.isfinite(seconds):
        raise BadRecord(f"timestamp is not a number: {value!r}")
    if not TIMESTAMP_RANGE[0] <= seconds <= TIMESTAMP_RANGE[1]:
        raise BadRecord(f"timestamp out of range (does not fit 64 bits): {str(value)[:40]!r}")
    return int(seconds)


def parse_date_or_timestamp(value) -> int | None:
    """Unix seconds from a number, or from a date ``YYYY-MM-DD`` (review dates)."""
    if isinstance(value, str) and len(value.strip()) == 10 and value.strip()[4] == "-":
        try:
            return int(datetime.strptime(value.strip(), "%Y-%m-%d")
                       .replace(tzinfo=timezone.utc).timestamp())
        except ValueError:
            raise BadRecord(f"date is not YYYY-MM-DD: {value!r}") from None
    return parse_timestamp(value)


def check_rating_range(rating_range) -> None:
    """``ArgumentError`` unless ``rating_range`` is None or ``(low, high)`` with low < high."""
    if rating_range is not None and not float(rating_range[0]) < float(rating_range[1]):
        raise ArgumentError(f"rating range {rating_range[0]:g} {rating_range[1]:g}: LOW must be "
                            "below HIGH")


#: Timestamps (unix seconds) outside this range are counted and reported as implausible:
#: milliseconds read as seconds land centuries ahead, seconds read as milliseconds in 1970.
PLAUSIBLE_TIMESTAMPS = (315_532_800, 4_102_444_800)  # 1980-01-01 .. 2100-01-01


def required_id(value, what: str) -> str:
    """An id as text. Strings are stripped; integers are accepted as their decimal text (JSON
    files sometimes write numeric ids as numbers); anything else is a bad record.

    Example:
        >>> required_id(" B001 ", "asin"), required_id(42, "asin")
        ('B001', '42')
    """
    if type(value) is str:
        text = value.strip()
    elif type(value) is int:
        text = str(value)
    elif value is None:
        text = ""
    else:
        raise BadRecord(f"{what} is not a string (got {type(value).__name__})")
    if not text:
        raise BadRecord(f"record without {what}")
    return text


def load_json_object(line: str) -> dict:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BadRecord("malformed JSON") from None
    if not isinstance(obj, dict):
        raise BadRecord("JSON line is not an object")
    return obj


def load_dict_literal(line: str) -> dict:
    """2014 metadata lines are Python dict literals; parse them without ``eval``."""
    if line.startswith("{") and '"' in line[:3]:
        try:
            obj = orjson.loads(line)
            if isinstance(obj, dict):
                return obj
        except orjson.JSONDecodeError:
            pass
    try:
        obj = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BadRecord("malformed dict literal") from None
    if not isinstance(obj, dict):
        raise BadRecord("line is not a dict literal")
    return obj


# ---------------------------------------------------------------- item parsers
# canonical field -> the keys each Amazon release uses for it, in order of preference: 2018
# files say category/main_cat, 2014 files categories/salesRank (whether written as JSON or as
# Python literals), 2023 files categories/main_category.
AMAZON_2018_KEYS = {"item_id": ("asin",), "brand": ("brand",),
                    "main_category": ("main_cat", "main_category", "salesRank"),
                    "feature": ("feature", "features"), "category": ("category", "categories")}
AMAZON_2023_KEYS = {"item_id": ("parent_asin", "asin"), "brand": ("store", "brand"),
                    "main_category": ("main_category", "main_cat"),
                    "feature": ("features", "feature"), "category": ("categories", "category")}


#: Attribute names whose values identify or ship a product rather than describe it: codes no two
#: products share, and weights, sizes and shipping terms most products have.
_NOT_DESCRIPTIVE = re.compile(r"\b(asin|isbn(-1[03])?|upc|ean|gtin|model number|part number|shipping|weight|"
                              r"dimensions|date first|rank|reviews|discontinued)\b", re.IGNORECASE)


def detail_texts(value) -> list[str]:
    """A product's ``details`` attributes as ``"name: value"`` texts, in the record's order,
    leaving out identifiers, shipping facts and values that are not text (nested objects).

    Example:
        >>> detail_texts({"\\n Publisher: \\n": "Conde Nast", "ASIN:": "B00005N7P0",
        ...               "Format:": "Print Magazine", "Best Sellers Rank": {"Magazines": 3}})
        ['Publisher: Conde Nast', 'Format: Print Magazine']
    """
    if not isinstance(value, dict):
        return as_text_list(value) if isinstance(value, (str, list, tuple)) else []
    texts = []
    for name, text in value.items():
        name = " ".join(str(name).split()).rstrip(":").strip()
        text = as_text(text)
        if text and not _NOT_DESCRIPTIVE.search(name):
            texts.append(f"{name}: {text}" if name else text)
    return texts


def _first(obj: dict, keys: tuple[str, ...]):
    for key in keys:
        value = obj.get(key)
        if value:
            return value
    return obj.get(keys[0])


def _amazon_item(obj: dict, keys: dict) -> dict:
    item = empty_item(required_id(_first(obj, keys["item_id"]), keys["item_id"][0]))
    item["title"] = display_text(as_text(obj.get("title")))
    item["brand"] = display_text(as_text(_first(obj, keys["brand"])))
    main = _first(obj, keys["main_category"])
    item["main_category"] = as_text(list(main)[:1] if isinstance(main, dict) else main)
    item["feature"] = as_text_list(_first(obj, keys["feature"]))
    item["description"] = as_text_list(obj.get("description"))
    item["category"] = as_text_list(_first(obj, keys["category"]))
    item["details"] = detail_texts(obj.get("details"))
    return item


def parse_amazon2018_meta(line: str, ctx: dict) -> dict:
    return _amazon_item(load_json_object(line), AMAZON_2018_KEYS)


def parse_amazon2014_meta(line: str, ctx: dict) -> dict:
    return _amazon_item(load_dict_literal(line), AMAZON_2018_KEYS)


def parse_amazon2023_meta(line: str, ctx: dict) -> dict:
    return _amazon_item(load_json_object(line), AMAZON_2023_KEYS)


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def parse_ml100k_item(line: str, ctx: dict) -> dict:
    parts = line.split("|")
    if len(parts) != 5 + len(ML100K_GENRES):
        raise BadRecord(f"expected {5 + len(ML100K_GENRES)} '|'-separated fields, got {len(parts)}")
    item = empty_item(required_id(parts[0], "movie id"))
    item["title"] = as_text(parts[1])
    item["category"] = [g for g, flag in zip(ML100K_GENRES, parts[5:]) if flag.strip() == "1"]
    return item


def parse_movielens_movie(line: str, ctx: dict) -> dict:
    parts = next(csv.reader([line]))
    if len(parts) != 3:
        raise BadRecord(f"expected movieId,title,genres, got {len(parts)} fields")
    item = empty_item(required_id(parts[0], "movieId"))
    item["title"] = as_text(parts[1])
    genres = [g for g in parts[2].split("|") if g and g != "(no genres listed)"]
    item["category"] = genres
    return item


# ---------------------------------------------------------------- rating parsers
def _rating(user, item, rating, timestamp, ctx, what=("user", "item")) -> dict:
    low, high = ctx["rating_range"]
    return {
        "user_id": required_id(user, what[0]),
        "item_id": required_id(item, what[1]),
        "rating": parse_rating(rating, low, high),
        "timestamp": timestamp,
    }


def split_fields(line: str, sep: str) -> list[str]:
    """Split a delimited line; comma-separated lines honour CSV quoting (``"a,b"``, ``""``).

    Tab-separated files (Amazon Customer Reviews, MovieLens, RecBole) are not quoted: a quote
    there is part of the text. Empty trailing fields are kept.

    Example:
        >>> split_fields('"B001,X",u1,5.0,', ",")
        ['B001,X', 'u1', '5.0', '']
    """
    if sep != "\t" and '"' in line:
        try:
            return next(csv.reader([line], delimiter=sep, strict=True))
        except (csv.Error, StopIteration):
            raise BadRecord("badly quoted delimited line") from None
    return line.split(sep)


def _split_exactly(line: str, sep: str, expected: str) -> list[str]:
    """Split a header-less line that must have exactly the fields named in ``expected``."""
    parts = split_fields(line, sep)
    if len(parts) != expected.count(",") + 1:
        raise BadRecord(f"expected {expected}, got {len(parts)} fields")
    return parts


def parse_amazon2018_ratings(line: str, ctx: dict) -> dict:
    item, user, rating, timestamp = _split_exactly(line, ",", "item,user,rating,timestamp")
    return _rating(user, item, rating, parse_timestamp(timestamp), ctx)


def parse_amazon_reviews(line: str, ctx: dict) -> dict:
    obj = load_json_object(line)
    return _rating(obj.get("reviewerID"), obj.get("asin"), obj.get("overall"),
                   parse_timestamp(obj.get("unixReviewTime")), ctx, ("reviewerID", "asin"))


def parse_amazon2023_reviews(line: str, ctx: dict) -> dict:
    obj = load_json_object(line)
    return _rating(obj.get("user_id"), obj.get("parent_asin") or obj.get("asin"),
                   obj.get("rating"), parse_timestamp(obj.get("timestamp"), 1000.0), ctx,
                   ("user_id", "parent_asin"))


def _header_name(name: str) -> str:
    """A column name of a header line, without quotes or a RecBole type (``user_id:token``)."""
    return name.strip().strip('"').split(":")[0]


def _split_header(line: str, sep: str) -> dict:
    names = [_header_name(name) for name in split_fields(line, sep)]
    return {"columns": {name: i for i, name in enumerate(names)}, "sep": sep}


def _fields(line: str, ctx: dict, names: tuple[str, ...]) -> list[str]:
    parts = split_fields(line, ctx["sep"])
    columns = ctx["columns"]
    if len(parts) < len(columns):
        raise BadRecord(f"expected {len(columns)} fields, got {len(parts)}")
    return [parts[columns[name]] for name in names]


def parse_amazon_tsv(line: str, ctx: dict) -> dict:
    user, item, stars, date = _fields(line, ctx, ("customer_id", "product_id", "star_rating",
                                                   "review_date"))
    return _rating(user, item, stars, parse_date_or_timestamp(date), ctx,
                   ("customer_id", "product_id"))


def parse_ml100k_rating(line: str, ctx: dict) -> dict:
    user, item, rating, timestamp = _split_exactly(line, "\t", "user,item,rating,timestamp (tab-separated)")
    return _rating(user, item, rating, parse_timestamp(timestamp), ctx)


def parse_movielens_rating(line: str, ctx: dict) -> dict:
    user, item, rating, ts = _fields(line, ctx, ("userId", "movieId", "rating", "timestamp"))
    return _rating(user, item, rating, parse_timestamp(ts), ctx)


def parse_recbole_rating(line: str, ctx: dict) -> dict:
    user, item, rating = _fields(line, ctx, ("user_id", "item_id", "rating"))
    ts = _fields(line, ctx, ("timestamp",))[0] if "timestamp" in ctx["columns"] else None
    return _rating(user, item, rating, parse_timestamp(ts), ctx)


# ------------------------------------------------- any delimited ratings file with a header
#: Column names recognised in a ratings header (compared case-insensitively, spaces and
#: underscores ignored), per canonical field.
RATING_COLUMN_ALIASES = {
    "user": ("reviewerid", "user", "userid", "customerid", "uid", "reviewer"),
    "item": ("asin", "item", "itemid", "productid", "movieid", "parentasin", "product", "iid"),
    "rating": ("overall", "rating", "starrating", "score", "stars", "ratingvalue"),
    "timestamp": ("unixreviewtime", "timestamp", "reviewdate", "time", "date", "ts"),
}
RATING_FIELDS = ("user", "item", "rating", "timestamp")


def _column_key(name: str) -> str:
    """A header name compared loosely: ``unixReviewTime`` = ``unix_review_time``."""
    return _header_name(name).lower().replace("_", "").replace(" ", "").replace("-", "")


def parse_column_names(spec: str | dict | None) -> dict[str, str]:
    """``user=reviewerID,item=asin,rating=overall[,timestamp=unixReviewTime]`` -> a dict.

    Example:
        >>> parse_column_names("user=reviewerID,item=asin,rating=overall")
        {'user': 'reviewerID', 'item': 'asin', 'rating': 'overall'}
    """
    if not spec:
        return {}
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        pairs = []
        for part in str(spec).split(","):
            if "=" not in part:
                raise ArgumentError(f"--ratings-columns: expected FIELD=COLUMN, got {part!r}")
            key, value = part.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    out = {}
    for key, value in pairs:
        if key not in RATING_FIELDS:
            raise ArgumentError(f"--ratings-columns: unknown field {key!r}; "
                                f"the fields are {', '.join(RATING_FIELDS)}")
        if not value:
            raise ArgumentError(f"--ratings-columns: no column named for {key!r}")
        out[key] = value
    return out


def _sniff_separator(line: str) -> str:
    counts = {sep: line.count(sep) for sep in ("\t", ",", ";", "|")}
    return max(counts, key=counts.get)


def delimited_header(line: str, ctx: dict | None = None) -> dict:
    """Map a header line to the positions of user, item, rating (and timestamp).

    Column names given in ``ctx["column_names"]`` (from ``--ratings-columns``) win over the
    aliases. Raises ``BadRecord`` when user, item or rating cannot be found.
    """
    sep = _sniff_separator(line)
    names = [_column_key(n) for n in split_fields(line, sep)]
    given = {k: _column_key(v) for k, v in ((ctx or {}).get("column_names") or {}).items()}
    positions: dict[str, int] = {}
    for fieldname in RATING_FIELDS:
        if fieldname in given:
            if given[fieldname] not in names:
                raise BadRecord(f"column {given[fieldname]!r} (for {fieldname}) is not in the "
                                f"header {names}")
            positions[fieldname] = names.index(given[fieldname])
            continue
        for alias in RATING_COLUMN_ALIASES[fieldname]:
            if alias in names and names.index(alias) not in positions.values():
                positions[fieldname] = names.index(alias)
                break
    missing = [f for f in ("user", "item", "rating") if f not in positions]
    if missing:
        raise BadRecord(f"header names no column for {', '.join(missing)} (columns: {names}); "
                        "name them with --ratings-columns user=...,item=...,rating=...")
    return {"sep": sep, "positions": positions, "n_columns": len(names)}


def parse_delimited_rating(line: str, ctx: dict) -> dict:
    parts = split_fields(line, ctx["sep"])
    positions = ctx["positions"]
    if len(parts) < ctx["n_columns"]:
        raise BadRecord(f"expected {ctx['n_columns']} fields, got {len(parts)}")
    ts = positions.get("timestamp")
    return _rating(parts[positions["user"]], parts[positions["item"]], parts[positions["rating"]],
                   parse_date_or_timestamp(parts[ts]) if ts is not None else None, ctx)


def looks_like_ratings_header(line: str) -> bool:
    try:
        delimited_header(line)
    except BadRecord:
        return False
    return True


def parse_recbole_item(line: str, ctx: dict) -> dict:
    columns = ctx["columns"]
    parts = line.split(ctx["sep"])
    item = empty_item(required_id(parts[columns["item_id"]], "item_id"))
    title_col = next((c for c in ("movie_title", "title", "item_name") if c in columns), None)
    if title_col is not None and columns[title_col] < len(parts):
        item["title"] = as_text(parts[columns[title_col]])
    genre_col = next((c for c in ("class", "genre", "categories") if c in columns), None)
    if genre_col is not None and columns[genre_col] < len(parts):
        item["category"] = parts[columns[genre_col]].split()
    return item


# ---------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # "items" or "ratings"
    parse: Callable[[str, dict], dict]
    expected: str  # what a line looks like, for error messages
    header: Callable[[str, dict], dict] | None = None  # (header line, context) -> context
    required_columns: tuple[str, ...] = ()
    encoding: str = "utf-8"
    rating_range: tuple[float, float] = (1.0, 5.0)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("amazon2018-meta", "items", parse_amazon2018_meta,
           "one JSON object per line with 'asin' (Amazon 2018 metadata)"),
    Format("amazon2014-meta", "items", parse_amazon2014_meta,
           "one Python dict literal per line with 'asin' (Amazon 2014 metadata)"),
    Format("amazon2023-meta", "items", parse_amazon2023_meta,
           "one JSON object per line with 'parent_asin' (Amazon 2023 metadata)"),
    Format("amazon2018-ratings", "ratings", parse_amazon2018_ratings,
           "CSV lines item,user,rating,timestamp without header (Amazon 2018 ratings)"),
    Format("amazon-reviews", "ratings", parse_amazon_reviews,
           "JSON lines with reviewerID, asin, overall (Amazon 2014/2018 reviews)"),
    Format("amazon2023-reviews", "ratings", parse_amazon2023_reviews,
           "JSON lines with user_id, parent_asin, rating (Amazon 2023 reviews)"),
    Format("amazon-tsv", "ratings", parse_amazon_tsv,
           "tab-separated with a header naming customer_id, product_id, star_rating",
           header=lambda line, ctx: _split_header(line, "\t"),
           required_columns=("customer_id", "product_id", "star_rating", "review_date")),
    Format("delimited-ratings", "ratings", parse_delimited_rating,
           "a CSV/TSV with a header naming user, item and rating columns (reviewerID/user_id/"
           "userId/customer_id, asin/item_id/productId/movieId, overall/rating/star_rating/score"
           "; timestamp optional); other names with --ratings-columns",
           header=delimited_header),
    Format("movielens-100k-ratings", "ratings", parse_ml100k_rating,
           "u.data: user<TAB>item<TAB>rating<TAB>timestamp", rating_range=(0.5, 5.0)),
    Format("movielens-100k-items", "items", parse_ml100k_item,
           "u.item: id|title|date|video date|url|19 genre flags", encoding="latin-1"),
    Format("movielens-ratings", "ratings", parse_movielens_rating,
           "ratings.csv with header userId,movieId,rating,timestamp",
           header=lambda line, ctx: _split_header(line, ","),
           required_columns=("userId", "movieId", "rating", "timestamp"), rating_range=(0.5, 5.0)),
    Format("movielens-items", "items", parse_movielens_movie,
           "movies.csv with header movieId,title,genres",
           header=lambda line, ctx: _split_header(line, ","), required_columns=("movieId",)),
    Format("recbole-ratings", "ratings", parse_recbole_rating,
           "RecBole .inter file with header user_id:token item_id:token rating:float ...",
           header=lambda line, ctx: _split_header(line, "\t"),
           required_columns=("user_id", "item_id", "rating"), rating_range=(0.5, 5.0)),
    Format("recbole-items", "items", parse_recbole_item,
           "RecBole .item file with header item_id:token ...",
           header=lambda line, ctx: _split_header(line, "\t"), required_columns=("item_id",)),
]}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise InputFormatError(
            f"unknown format {name!r}; choose one of: {', '.join(sorted(FORMATS))}") from None


def _by_name(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in (".gz",):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name == "u.data" or name.startswith("u") and name.endswith((".base", ".test")):
        return "movielens-100k-ratings"
    if name == "u.item":
        return "movielens-100k-items"
    if name.endswith(".inter"):
        return "recbole-ratings"
    if name.endswith(".item"):
        return "recbole-items"
    return None


AMAZON_2014_ONLY_KEYS = ("categories", "salesRank", "related", "imUrl")


def _by_content(line: str) -> str | None:
    if line.startswith("{"):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            if "reviewerID" in obj and "asin" in obj:
                return "amazon-reviews"
            if "user_id" in obj and "rating" in obj:
                return "amazon2023-reviews"
            if "parent_asin" in obj:
                return "amazon2023-meta"
            if "asin" in obj:
                if any(k in obj for k in AMAZON_2014_ONLY_KEYS) and "category" not in obj:
                    return "amazon2014-meta"  # the 2014 release written as JSON
                return "amazon2018-meta"
            return None
        if "'asin'" in line[:2000]:
            return "amazon2014-meta"
        return None
    lowered = line.lower()
    if "\t" in line and "customer_id" in lowered and "star_rating" in lowered:
        return "amazon-tsv"
    if lowered.startswith("userid,movieid,rating"):
        return "movielens-ratings"
    if lowered.startswith("movieid,title"):
        return "movielens-items"
    if looks_like_ratings_header(line):
        return "delimited-ratings"
    try:
        parts = split_fields(line, ",")
    except BadRecord:
        return None
    if len(parts) == 4:
        try:
            float(parts[2]), float(parts[3] or 0)
            return "amazon2018-ratings"
        except ValueError:
            return None
    return None


def check_input_file(path: str | os.PathLike) -> None:
    """Raise ``InputFormatError`` unless ``path`` is a readable file (not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise InputFormatError(f"{path}: is a directory; give the data file(s) inside it")
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # (Python 3.11 says a loop so; later versions raise OSError)
            raise InputFormatError(f"{path}: a symbolic link loop") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputFormatError(f"{path}: a symbolic link loop") from None
            raise InputFormatError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist") from None
    if not path.exists():
        raise InputFormatError(f"{path}: no such file")
    if not path.is_file():
        raise InputFormatError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InputFormatError(f"{path}: not readable (check its permissions)")


def detect_format(path: str | os.PathLike, kind: str | None = None) -> Format:
    """Guess a file's format from its name (MovieLens, RecBole) or its first line.

    Raises ``InputFormatError`` naming the file when nothing matches, or when the match is of
    the wrong kind (items given as ratings, say).

    Example:
        >>> detect_format("meta_Gift_Cards.json.gz").name  # doctest: +SKIP
        'amazon2018-meta'
    """
    path = Path(path)
    check_input_file(path)
    name = _by_name(path)
    if name is None:
        lines = head_lines(path, 1)
        if not lines:
            raise InputFormatError(f"{path}: the file is empty or unreadable")
        name = _by_content(lines[0])
    expected = [f for f in FORMATS.values() if kind is None or f.kind == kind]
    if name is None:
        raise InputFormatError(
            f"{path}: not a recognised {kind or 'input'} file; expected one of:\n  "
            + "\n  ".join(f"{f.name}: {f.expected}" for f in expected)
            + "\nname the format explicitly with --meta-format/--ratings-format if it is one of these")
    fmt = FORMATS[name]
    if kind is not None and fmt.kind != kind:
        raise InputFormatError(
            f"{path}: looks like {fmt.name} ({fmt.expected}), which holds {fmt.kind}, "
            f"but it was given as {kind}")
    return fmt
