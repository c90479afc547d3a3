"""Product text: choosing the field, cleaning HTML and junk, tokenising, stop words.

The one place that decides what a product's words are. Cleaning steps, in order:
``<style>``/``<script>`` blocks and HTML comments removed, tags (also unterminated
fragments such as ``<span class="a-size-medium"``) removed, entities unescaped,
symbols (™, ½) turned into spaces, accents folded and other non-ASCII dropped, lower-cased,
word tokens (``\\w+``) kept, stop words removed.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from hybrid.core.errors import ArgumentError
from hybrid.data.schema import ITEM_LIST_FIELDS, ITEM_TEXT_FIELDS

DEFAULT_FIELDS = ("feature", "description", "category")
#: Fields of the canonical items table that can make a product's text.
TEXT_FIELDS = ITEM_LIST_FIELDS + ITEM_TEXT_FIELDS

_BLOCKS = re.compile(r"<(style|script)\b.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_COMMENTS = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_TAGS = re.compile(r"</?[A-Za-z!][^<>]*(>|$)")
_WORDS = re.compile(r"\w+", re.ASCII)
_SPACES = re.compile(r"\s+")

# A common English stop-word list, used when NLTK's corpus is not installed locally.
BUILTIN_STOP_WORDS = frozenset("""
a about above after again against ain all am an and any are aren aren't as at be because been
before being below between both but by can couldn couldn't d did didn didn't do does doesn
doesn't doing don don't down during each few for from further had hadn hadn't has hasn hasn't
have haven haven't having he her here hers herself him himself his how i if in into is isn
isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my myself
needn needn't no nor not now o of off on once only or other our ours ourselves out over own re
s same shan shan't she she's should should've shouldn shouldn't so some such t than that
that'll the their theirs them themselves then there these they this those through to too under
until up ve very was wasn wasn't we were weren weren't what when where which while who whom why
will with won won't wouldn wouldn't y you you'd you'll you're you've your yours yourself
yourselves
""".split())


def _nltk_data_dirs() -> list[str]:
    """Where NLTK looks for its data by default on POSIX (``nltk.data.path``): ``NLTK_DATA``,
    ``~/nltk_data``, then under ``sys.prefix`` and ``/usr``."""
    import os
    import sys

    dirs = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    dirs.append(os.path.expanduser("~/nltk_data"))
    dirs += [os.path.join(sys.prefix, *parts, "nltk_data") for parts in ((), ("share",), ("lib",))]
    dirs += ["/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]
    return dirs


@lru_cache(maxsize=1)
def stop_words() -> tuple[frozenset[str], str]:
    """The stop-word set and where it came from ('nltk' or 'builtin'). Never downloads."""
    import os

    # importing nltk takes over a second (it imports scipy.stats): only where its stop-word
    # corpus may be (a query's first answer waits for this)
    if os.name == "posix" and not any(os.path.exists(os.path.join(d, "corpora", name))
                                      for d in _nltk_data_dirs() for name in ("stopwords", "stopwords.zip")):
        return BUILTIN_STOP_WORDS, "builtin"
    try:
        from nltk.corpus import stopwords

        words = frozenset(w.lower() for w in stopwords.words("english"))
        if words:
            return words, "nltk"
    except (LookupError, OSError, ImportError):
        pass
    return BUILTIN_STOP_WORDS, "builtin"


def strip_html(text: str) -> str:
    """Remove style/script blocks, comments and tags; unescape entities; squeeze spaces.

    Example:
        >>> strip_html('<p>Fast &amp; <b>quiet</b></p><style>p{color:red}</style>')
        'Fast & quiet'
    """
    if "<" in text:
        text = _remove_markup(text)
    if "&" in text:
        text = html.unescape(text)
        if "<" in text:  # entities may have encoded markup, even a whole &lt;script&gt; block
            text = _remove_markup(text)
    return _SPACES.sub(" ", text).strip()


def _remove_markup(text: str) -> str:
    text = _BLOCKS.sub(" ", text)
    text = _COMMENTS.sub(" ", text)
    return _TAGS.sub(" ", text)


def _is_symbol(char: str) -> bool:
    """Symbols (™ © € →) and number forms (½ ² ①) separate words; they are not spelled out."""
    category = unicodedata.category(char)
    return category[0] == "S" or category == "No"


def fold_to_ascii(text: str) -> str:
    """Compatibility-normalise, turn symbols into spaces, fold accents, drop other non-ASCII.

    Example:
        >>> fold_to_ascii("Dynafilter™ ½ inch Café ｆｕｌｌ").split()
        ['Dynafilter', 'inch', 'Cafe', 'full']
    """
    if text.isascii():
        return text
    text = "".join(" " if _is_symbol(c) else c for c in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(" " if _is_symbol(c) else c for c in text)  # symbols that NFKD revealed
    return text.encode("ascii", "ignore").decode("ascii")


def display_text(value: str | None) -> str | None:
    """A title or brand fit to show a person: markup removed, None when nothing is left."""
    if value is None:
        return None
    if "<" not in value and "&" not in value:
        return value.strip() or None
    cleaned = strip_html(value)
    return cleaned or None


def tokenize(text: str, stop: frozenset[str] | None = None) -> list[str]:
    """Clean ``text`` and return its word tokens without stop words.

    Example:
        >>> tokenize("The <b>Café</b> has 2 USB-C ports &amp; more!")
        ['cafe', '2', 'usb', 'c', 'ports']
    """
    if stop is None:
        stop = stop_words()[0]
    text = fold_to_ascii(strip_html(text)).lower()  # normalised before lower-casing
    return [t for t in _WORDS.findall(text) if t not in stop]


def _field_tokens(value, stop) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return tokenize(value, stop)
    tokens: list[str] = []
    for part in value:
        if part:
            tokens.extend(tokenize(part, stop))
    return tokens


@dataclass(frozen=True)
class TextConfig:
    """Which fields make a product's text, in order of preference.

    The first field in ``fields`` that still has tokens after cleaning wins; when none has,
    the category is tried again (it may not be in ``fields``), then the title: an item is
    textless (source 'none') only when none of them has a word. ``title``/``brand`` add those
    words in front.
    """

    fields: Sequence[str] = DEFAULT_FIELDS
    title: bool = False
    brand: bool = False

    def __post_init__(self):
        if isinstance(self.fields, str) or not self.fields:
            raise ArgumentError(f"text fields must be a non-empty list of names, got {self.fields!r}")
        unknown = [f for f in self.fields if f not in TEXT_FIELDS]
        if unknown:
            raise ArgumentError(f"unknown text field(s) {unknown}; the items table has "
                                f"{', '.join(TEXT_FIELDS)}")


def product_tokens(item: dict, config: TextConfig = TextConfig(),
                   stop: frozenset[str] | None = None, cleaned: dict[str, str] | None = None) -> tuple[list[str], str]:
    """The cleaned tokens of one canonical item record and the field(s) they came from
    (``cleaned``: the record's ``field_texts``, when already made).

    Example:
        >>> product_tokens({"feature": ["??"], "description": ["<p>Warm wool socks</p>"],
        ...                 "category": ["Clothing"]})
        (['warm', 'wool', 'socks'], 'description')
    """
    if stop is None:
        stop = stop_words()[0]

    def field(name: str) -> list[str]:
        return cleaned[name].split() if cleaned is not None else _field_tokens(item.get(name), stop)

    tokens: list[str] = []
    source = "none"
    fallbacks = ["category"] + ([] if config.title else ["title"])
    for name in list(config.fields) + fallbacks:
        tokens = field(name)
        if tokens:
            source = name
            break
    prefix: list[str] = []
    labels: list[str] = []
    for flag, name in ((config.title, "title"), (config.brand, "brand")):
        if flag:
            extra = field(name)
            if extra:
                prefix.extend(extra)
                labels.append(name)
    if prefix:
        tokens = prefix + tokens
        source = "+".join(labels + ([source] if source != "none" else []))
    return tokens, source


def field_texts(item: dict, fields: Sequence[str] = TEXT_FIELDS,
                stop: frozenset[str] | None = None) -> dict[str, str]:
    """Every one of ``fields`` of one canonical item record, cleaned (space-joined tokens; '' for
    a field it lacks): what a reader of every field sees, where ``product_tokens`` keeps one.

    Example:
        >>> field_texts({"title": "Fender <b>Strap</b>", "feature": [], "category": ["Straps"]},
        ...             ("title", "feature", "category"))
        {'title': 'fender strap', 'feature': '', 'category': 'straps'}
    """
    if stop is None:
        stop = stop_words()[0]
    return {name: " ".join(_field_tokens(item.get(name), stop)) for name in fields}


def clean_corpus(items: Iterable[dict], config: TextConfig = TextConfig()) -> Iterable[tuple[str, str, str, list[str]]]:
    """Yield ``(item_id, text, source, fields)`` for canonical item records: the one-field text
    (space-joined tokens) ``config`` chooses, its source, and every field cleaned in
    ``TEXT_FIELDS`` order (the text stage's ``item_text`` rows)."""
    stop = stop_words()[0]
    for item in items:
        cleaned = field_texts(item, TEXT_FIELDS, stop)
        tokens, source = product_tokens(item, config, stop, cleaned)
        yield item["item_id"], " ".join(tokens), source, [cleaned[name] for name in TEXT_FIELDS]
