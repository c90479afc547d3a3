"""The text cleaner on the nasty cases real catalogues contain."""

from pathlib import Path

import pytest

from hybrid.core.errors import ArgumentError
from hybrid.data.text import BUILTIN_STOP_WORDS, TextConfig, product_tokens, stop_words, strip_html, tokenize


def test_style_and_script_blocks_vanish_with_their_content():
    text = ('<div><style type="text/css">.a-list{color:red}</style>Quiet fan'
            '<SCRIPT>var tracking = 1;</SCRIPT></div><!-- hidden note -->')
    assert tokenize(text) == ["quiet", "fan"]


def test_unclosed_style_block_does_not_leak_css():
    assert tokenize("Great charger <style> .x { margin: 0 } ") == ["great", "charger"]


def test_entities_are_unescaped_and_encoded_markup_removed():
    assert strip_html("Salt &amp; Pepper &lt;b&gt;set&lt;/b&gt; &quot;deluxe&quot;") == 'Salt & Pepper set "deluxe"'


def test_html_fragment_title_leaves_no_markup():
    assert tokenize('<span class="a-size-medium a-color-secondary"') == []


def test_non_ascii_is_folded_or_dropped():
    assert tokenize("Crème brûlée kit 日本 edition") == ["creme", "brulee", "kit", "edition"]


def test_stop_words_and_punctuation_are_dropped():
    assert tokenize("This is THE best-selling cable, isn't it?") == ["best", "selling", "cable"]


def test_junk_feature_falls_back_to_description_then_category():
    item = {"feature": [".", "??"], "description": ["<br/>", "&nbsp;"],
            "category": ["Electronics", "Camera &amp; Photo"]}
    assert product_tokens(item) == (["electronics", "camera", "photo"], "category")


def test_category_is_tried_again_when_not_among_the_fields():
    item = {"feature": ["??"], "category": ["Gift Cards"]}
    assert product_tokens(item, TextConfig(fields=("feature",))) == (["gift", "cards"], "category")


def test_item_without_any_text_is_marked_none():
    assert product_tokens({"feature": [], "description": [], "category": []}) == ([], "none")


def test_field_order_is_configurable_and_title_optional():
    item = {"title": "Blue Mug", "feature": ["ceramic"], "description": ["Holds tea"],
            "category": ["Kitchen"]}
    assert product_tokens(item, TextConfig(fields=("description", "feature"))) == (
        ["holds", "tea"], "description")
    assert product_tokens(item, TextConfig(title=True)) == (["blue", "mug", "ceramic"], "title+feature")


def _without_stop_word_cache(monkeypatch):
    stop_words.cache_clear()
    monkeypatch.setattr("nltk.download", lambda *a, **k: pytest.fail("tried to download"))


def test_stop_words_fall_back_to_the_builtin_list_without_a_download(monkeypatch):
    import nltk.corpus

    _without_stop_word_cache(monkeypatch)

    class Missing:
        def words(self, *args):
            raise LookupError("Resource stopwords not found")

    monkeypatch.setattr(nltk.corpus, "stopwords", Missing())
    try:
        assert stop_words() == (BUILTIN_STOP_WORDS, "builtin")
    finally:
        stop_words.cache_clear()


def test_a_locally_installed_nltk_list_is_used(monkeypatch, tmp_path):
    import nltk.corpus

    _without_stop_word_cache(monkeypatch)
    (tmp_path / "corpora" / "stopwords").mkdir(parents=True)  # where the corpus is looked for first
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))

    class Installed:
        def words(self, language):
            return ["The", "and", "qwzx"]

    monkeypatch.setattr(nltk.corpus, "stopwords", Installed())
    try:
        words, source = stop_words()
        assert source == "nltk" and words == {"the", "and", "qwzx"}
    finally:
        stop_words.cache_clear()


def test_without_an_nltk_corpus_nltk_is_not_imported(tmp_path):
    """Importing nltk costs over a second of a query's first answer: where no corpus can be,
    the built-in list is used without it."""
    import os
    import subprocess
    import sys

    code = ("import sys; from hybrid.data.text import stop_words; "
            "print(stop_words()[1], 'nltk' in sys.modules)")
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("NLTK_DATA", None)
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    if any(Path(d, "corpora", "stopwords").exists() for d in ("/usr/share/nltk_data", "/usr/local/share/nltk_data",
                                                               "/usr/lib/nltk_data", "/usr/local/lib/nltk_data",
                                                               Path(sys.prefix, "nltk_data"))):
        pytest.skip("this machine has an NLTK stop-word corpus installed")
    assert shown.split() == ["builtin", "False"]


def test_symbols_separate_words_and_are_not_spelled_out():
    assert tokenize("Dynafilter™ 9½ inch ©2019 filter") == ["dynafilter", "9", "inch", "2019", "filter"]


def test_escaped_script_block_leaves_no_code():
    text = "Mouse &lt;script&gt;alert(1)&lt;/script&gt; wireless"
    assert tokenize(text) == ["mouse", "wireless"]
    assert strip_html(text) == "Mouse wireless"


def test_title_is_the_last_fallback_before_an_item_is_textless():
    assert product_tokens({"title": "Gibson Strings", "feature": ["??"], "category": []}) == (
        ["gibson", "strings"], "title")


def test_unknown_text_fields_are_refused():
    with pytest.raises(ArgumentError, match="unknown text field.*nosuchfield"):
        TextConfig(fields=("feature", "nosuchfield"))
