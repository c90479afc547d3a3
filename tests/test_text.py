"""The text cleaner on the nasty cases real catalogues contain."""

from hybrid.text import (BUILTIN_STOP_WORDS, TextConfig, product_tokens, stop_words, strip_html,
                         tokenize)


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


def test_stop_words_never_need_a_download():
    words, source = stop_words()
    assert source in {"nltk", "builtin"}
    assert {"the", "and", "is"} <= words
    assert {"the", "and", "is"} <= BUILTIN_STOP_WORDS
