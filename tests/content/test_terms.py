"""TF-IDF term weights of the two-stage recommender's content part (``hybrid.content.terms``)."""

import numpy as np
import pytest
import scipy.sparse as sp

from hybrid.content.terms import TermWeights, keep_heaviest
from hybrid.core.errors import ArgumentError


def corpus(n=400, seed=0):
    rng = np.random.default_rng(seed)
    words = [f"w{k}" for k in range(300)]
    texts = [" ".join(rng.choice(words, rng.integers(0, 40), p=np.linspace(2, 1, 300) / np.linspace(2, 1, 300).sum()))
             for _ in range(n)]
    texts[3], texts[7] = "", None  # no text at all
    return texts


def test_a_word_outside_the_vocabulary_is_read_as_the_term_of_its_stem():
    films = ["toy story animation children comedy", "aladdin animation children comedy musical",
             "heat action crime thriller", "fargo crime drama thriller", "babe children comedy drama",
             "pocahontas animation children musical romance", "string quartet strings", "strings music",
             "string theory strings", "no strings attached string comedy"]
    terms = TermWeights.fit(films)
    assert "animated" not in terms.column and "thrillers" not in terms.column
    np.testing.assert_allclose(terms.query(["animated thrillers"]).toarray(),
                               terms.transform(["animation thriller"]).toarray())
    covered = terms.coverage(terms.query(["animated"]), np.arange(len(films))[None, :])[0]
    assert set(np.flatnonzero(covered > 0)) == {0, 1, 5}
    # of the terms of one stem, the one most products have ("strings": 4, "string": 2)
    assert terms.words_as_terms(["stringed", "string comedy"]) == ["strings", "string comedy"]
    # a word of no known stem stays outside: no column, but it counts in the row's length
    row = terms.query(["animated spaceship"])
    assert row.nnz == 1 and 0 < row.data[0] < 1
    assert terms.query(["", None]).nnz == 0


def test_candidate_scores_are_the_cosines_of_profiles_and_product_terms():
    terms = TermWeights.fit(corpus(), max_terms=16)
    rng = np.random.default_rng(1)
    history = sp.random(30, 400, density=0.02, random_state=2, format="csr")
    history.data[:] = 1.0
    sentence = terms.transform(["w1 w5 w299 unknownword"])
    extra = sp.vstack([sentence] + [sp.csr_matrix((1, terms.vocabulary), dtype=np.float32)] * 29).tocsr()
    profiles = terms.profiles(history, extra)
    rows = rng.integers(0, 400, (30, 50))
    dense = (profiles @ terms.rows.T).toarray()
    np.testing.assert_allclose(terms.scores(profiles, rows), np.take_along_axis(dense, rows, 1), atol=1e-6)
    shared = np.broadcast_to(rows[0], rows.shape)  # one list for every profile: one sparse product
    np.testing.assert_allclose(terms.scores(profiles, shared), np.take_along_axis(dense, shared, 1), atol=1e-6)
    np.testing.assert_allclose(terms.scores(profiles, shared)[1:2], terms.scores(profiles[1], rows[:1]), rtol=1e-6)
    norms = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel())
    assert np.allclose(norms[norms > 0], 1.0) and norms[0] > 0
    # at most max_terms per product, the heaviest of its full TF-IDF row; empty texts stay empty
    full = TermWeights.fit(corpus(), max_terms=0).rows
    assert np.diff(terms.rows.indptr).max() == 16 and terms.rows[[3, 7]].nnz == 0
    for row in (0, 1, 2):
        kept = set(terms.rows[row].indices)
        weights = full[row].toarray().ravel()
        assert weights[list(kept)].min() >= np.sort(weights[weights > 0])[-16] - 1e-7


def test_coverage_is_the_share_of_a_sentences_weight_a_product_has():
    """1 for a product with every word of the sentence, whatever else it says; 0 for none."""
    terms = TermWeights.fit(corpus(), max_terms=0)
    sentences = terms.transform(["w1 w5 w299", "w2", "", "unknownword"])
    rows = np.random.default_rng(3).integers(0, 400, (4, 60))
    got = terms.coverage(sentences, rows)
    present = (terms.rows > 0).astype(np.float32)
    weights = sentences.toarray()
    expected = (weights @ present.T.toarray()) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(got, np.take_along_axis(expected, rows, 1), atol=1e-6)
    shared = np.broadcast_to(rows[0], rows.shape)
    np.testing.assert_allclose(terms.coverage(sentences, shared), np.take_along_axis(expected, shared, 1), atol=1e-6)
    assert got.min() >= 0 and got.max() <= 1 + 1e-6 and not got[2:].any()
    single = np.take_along_axis(present[:, [terms.column["w2"]]].toarray().T, rows[1:2], 1)
    assert np.array_equal(got[1], single[0])  # one word: has it or not


def test_keep_heaviest_and_degenerate_catalogues(tmp_path):
    matrix = sp.csr_matrix(np.array([[0.3, 0.1, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.4, 0.1, 0.2]]))
    assert keep_heaviest(matrix, 2).toarray().tolist() == [[0.3, 0, 0.3, 0], [0, 0, 0, 0], [0.5, 0.4, 0, 0]]
    # no text anywhere: no vocabulary, every score 0, nothing raised
    empty = TermWeights.fit(["", None, "  "])
    assert empty.vocabulary == 0 and not empty.scores(empty.profiles(sp.eye(3, format="csr")), np.array([[0, 1]])).any()
    # every word in one product only: min_df falls back so that a tiny catalogue still has terms
    tiny = TermWeights.fit(["red strap", "blue cable"], min_df=2)
    assert tiny.vocabulary == 4
    tiny.append(["red cable", "unknown words only"])
    assert tiny.rows.shape == (4, 4) and tiny.rows[3].nnz == 0
    tiny.save(tmp_path)
    loaded = TermWeights.load(tmp_path)
    assert TermWeights.saved_in(tmp_path) and (loaded.rows != tiny.rows).nnz == 0
    assert (loaded.transform(["blue strap"]) != tiny.transform(["blue strap"])).nnz == 0


def test_dropped_rare_words_still_count_in_a_products_length():
    # the same genre word, once in a short title and once among words no other product has:
    # the full TF-IDF cosine prefers the short one, and so must the rows that left the rare words out
    texts = ["comedy", "comedy zebra quokka narwhal", "drama", "drama comedy", "thriller", "thriller drama"]
    terms = TermWeights.fit(texts, max_terms=0, min_df=2)
    full = TermWeights.fit(texts, max_terms=0, min_df=1)
    assert "zebra" not in terms.terms and "zebra" in full.terms
    liked = sp.csr_matrix(np.array([[0, 0, 0, 1.0, 0, 0]]))  # liked "drama comedy"
    ours = terms.scores(terms.profiles(liked), np.array([[0, 1]]))[0]
    exact = full.scores(full.profiles(liked), np.array([[0, 1]]))[0]
    np.testing.assert_allclose(ours, exact, rtol=1e-5)
    assert ours[0] > 2 * ours[1]
    # each kept entry is the full row's entry, not scaled up
    columns = [full.terms.index(t) for t in terms.terms]
    np.testing.assert_allclose(terms.rows.toarray(), full.rows.toarray()[:, columns], rtol=1e-6)


def test_transforming_a_catalogue_text_gives_its_fitted_row():
    texts = corpus()
    texts[5] = texts[5] + " onlyhere alsoonlyhere onlyhere"  # words no other product has
    terms = TermWeights.fit(texts, max_terms=12, min_df=2)
    again = terms.transform(texts)
    np.testing.assert_allclose(again.toarray(), terms.rows.toarray(), atol=1e-6)
    assert 0 < np.linalg.norm(again[5].toarray()) < 0.99  # its rare words hold the rest of its length


def test_field_weights_decide_how_much_each_field_counts():
    from hybrid.content.terms import FieldCounts

    texts = corpus()
    other = corpus(seed=5)
    counts = FieldCounts.count({"title": texts, "description": other})
    alone = TermWeights.fit(texts, max_terms=0, min_df=1)
    one = TermWeights.from_fields(FieldCounts.count({"title": texts}), {"title": 1.0}, max_terms=0, min_df=1)
    assert one.terms == alone.terms and abs(one.rows - alone.rows).max() < 1e-6  # one field of weight 1 is fit
    title_only = TermWeights.from_fields(counts, {"title": 1.0, "description": 0.0}, max_terms=0, min_df=1)
    assert title_only.terms == alone.terms and abs(title_only.rows - alone.rows).max() < 1e-6
    # weighing the description up moves each product's row toward its description's terms
    described = TermWeights.fit(other, max_terms=0, min_df=1)
    columns = [title_only.column[t] for t in described.terms]

    def cosine_to_description(weights):
        terms = TermWeights.from_fields(counts, weights, max_terms=0, min_df=1)
        mine = terms.rows[:, columns].toarray()
        return np.mean([mine[k] @ described.rows[k].toarray().ravel() for k in range(50) if k not in (3, 7)])

    light, even, heavy = (cosine_to_description({"title": 1.0, "description": w}) for w in (0.5, 1.0, 4.0))
    assert light < even < heavy
    # new products by field, as the catalogue was; a sentence reads as one field of weight 1
    terms = TermWeights.from_fields(counts, {"title": 2.0, "description": 0.5}, max_terms=0, min_df=1)
    again = terms.transform({"title": texts[:5], "description": other[:5]})
    assert abs(again - terms.rows[:5]).max() < 1e-5
    assert terms.transform(["w1 w2"]).nnz == 2
    with pytest.raises(ArgumentError, match="must weigh some of the fields"):
        TermWeights.from_fields(counts, {"title": 0.0, "description": 0.0})


def test_field_weights_are_saved_with_the_terms(tmp_path):
    from hybrid.content.terms import FieldCounts

    counts = FieldCounts.count({"title": corpus(), "description": corpus(seed=5)})
    terms = TermWeights.from_fields(counts, {"title": 2.0, "description": 0.0}, max_terms=16)
    terms.save(tmp_path)
    loaded = TermWeights.load(tmp_path)
    assert loaded.field_weights == {"title": 2.0, "description": 0.0} and loaded.terms == terms.terms
    assert TermWeights.fit(corpus()).field_weights is None
