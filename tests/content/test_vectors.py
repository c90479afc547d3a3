"""Pretrained loading and the intersection, on tiny word2vec files the tests write."""

import gzip

import numpy as np
import pytest

from hybrid.content.vectors import TextEncoder, fit_tfidf_encoder, fit_word2vec_encoder, load_pretrained
from hybrid.core.errors import InputFormatError, StageError

WORDS = {"camera": [1, 0, 0, 0], "lens": [0, 1, 0, 0], "zoom": [0, 0, 1, 0],
         "banana": [0, 0, 0, 1], "tripod": [1, 1, 0, 0]}


def write_w2v_binary(path, words=WORDS, compress=False):
    dim = len(next(iter(words.values())))
    body = f"{len(words)} {dim}\n".encode()
    for word, vector in words.items():
        body += word.encode() + b" " + np.asarray(vector, np.float32).tobytes() + b"\n"
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def write_w2v_text(path, words=WORDS, header=True):
    dim = len(next(iter(words.values())))
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(str(float(x)) for x in v) for w, v in words.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["binary", "binary-gz", "text", "glove"])
def test_only_the_requested_words_are_loaded(tmp_path, kind):
    if kind.startswith("binary"):
        path = write_w2v_binary(tmp_path / ("v.bin.gz" if kind == "binary-gz" else "v.bin"),
                                compress=kind == "binary-gz")
    else:
        path = write_w2v_text(tmp_path / "v.txt", header=kind == "text")
    loaded = load_pretrained(path, {"lens", "tripod", "unknownword"})
    assert sorted(loaded.words) == ["lens", "tripod"]
    assert loaded.dim == 4 and loaded.scanned == 5
    np.testing.assert_array_equal(loaded.as_dict()["tripod"], [1, 1, 0, 0])


def test_truncated_binary_file_is_reported(tmp_path):
    path = write_w2v_binary(tmp_path / "v.bin")
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(InputFormatError, match="truncated"):
        load_pretrained(path)


def test_packaged_glove_is_the_default_source():
    glove = load_pretrained("glove-6b-50d", {"camera", "lens", "qqqzzzxx"})
    assert glove.dim == 50 and sorted(glove.words) == ["camera", "lens"]


CORPUS = [["camera", "lens", "zoom"], ["camera", "tripod"], ["lens", "zoom", "tripod"],
          ["banana", "smoothie"], ["smoothie", "banana", "fresh"]] * 20


def test_intersection_initialises_known_words_from_pretrained(tmp_path):
    path = write_w2v_binary(tmp_path / "v.bin")
    encoder = fit_word2vec_encoder(lambda: iter(CORPUS), pretrained=str(path), epochs=0,
                                   min_count=1, workers=1)
    vectors = dict(zip(encoder.words, encoder.vectors))
    for word, expected in WORDS.items():
        np.testing.assert_allclose(vectors[word], expected)
    assert {"smoothie", "fresh"} <= set(encoder.words)  # corpus words without a pretrained vector
    info = encoder.info
    assert info["pretrained_words"] == 5 and info["corpus_words"] == 7
    # 13 tokens per block of 5 docs; smoothie x2 and fresh x1 are not covered
    assert info["token_coverage"] == pytest.approx(10 / 13, abs=1e-4)


def test_training_moves_the_vectors_away_from_the_initialisation(tmp_path):
    path = write_w2v_binary(tmp_path / "v.bin")
    encoder = fit_word2vec_encoder(lambda: iter(CORPUS), pretrained=str(path), epochs=5,
                                   min_count=1, workers=1)
    vectors = dict(zip(encoder.words, encoder.vectors))
    assert not np.allclose(vectors["camera"], WORDS["camera"])


def test_product_vector_is_the_mean_and_unknown_products_get_the_fallback(tmp_path):
    path = write_w2v_binary(tmp_path / "v.bin")
    encoder = fit_word2vec_encoder(lambda: iter(CORPUS), pretrained=str(path), epochs=0,
                                   min_count=1, workers=1)
    vectors, known = encoder.transform(["camera lens", "camera camera lens", "nothing here", ""])
    np.testing.assert_allclose(vectors[0], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(vectors[1], [2 / 3, 1 / 3, 0, 0], rtol=1e-6)
    assert known.tolist() == [True, True, False, False]
    assert not vectors[2].any() and not vectors[3].any()


def test_rare_words_need_min_count_unless_pretrained_knows_them(tmp_path):
    path = write_w2v_binary(tmp_path / "v.bin")
    encoder = fit_word2vec_encoder(lambda: iter(CORPUS[:5]), pretrained=str(path), epochs=0,
                                   min_count=2, workers=1)
    assert "fresh" not in encoder.words  # once, unknown to the pretrained vectors
    assert "zoom" in encoder.words and "smoothie" in encoder.words


def test_dimension_mismatch_is_an_error(tmp_path):
    path = write_w2v_text(tmp_path / "v.txt")
    with pytest.raises(InputFormatError, match="4 dimensions, not 8"):
        fit_word2vec_encoder(lambda: iter(CORPUS), pretrained=str(path), dim=8)


def test_tfidf_weighting_favours_rare_words(tmp_path):
    path = write_w2v_binary(tmp_path / "v.bin")
    docs = [["camera", "lens"]] + [["camera", "zoom"]] * 30
    encoder = fit_word2vec_encoder(lambda: iter(docs), pretrained=str(path), epochs=0,
                                   min_count=1, workers=1, tfidf_weighted=True)
    vector = encoder.transform(["camera lens"])[0][0]
    assert vector[1] > vector[0]  # 'lens' (rare) outweighs 'camera' (everywhere)


def test_tfidf_encoder_round_trips_and_encodes_free_text(tmp_path):
    docs = [["red", "wine", "bottle"], ["white", "wine"], ["red", "sports", "car"],
            ["fast", "sports", "car"]] * 5
    encoder = fit_tfidf_encoder(lambda: iter(docs), dim=2)
    encoder.save(tmp_path / "enc.npz")
    loaded = TextEncoder.load(tmp_path / "enc.npz")
    np.testing.assert_allclose(loaded.encode("A <b>red</b> wine!"),
                               encoder.transform(["red wine"])[0][0], rtol=1e-6)
    assert loaded.transform(["unknown words"])[1].tolist() == [False]


def test_deterministic_word2vec_gives_identical_vectors_run_to_run():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    # ~120k tokens: many worker jobs, where thread scheduling used to change the result
    docs = [list(rng.choice(words, 40)) for _ in range(3000)]
    fits = [fit_word2vec_encoder(lambda: iter(docs), pretrained=None, dim=16, epochs=2,
                                 deterministic=True, workers=2) for _ in range(2)]
    assert fits[0].info["threads"] == 1 and fits[0].info["deterministic"] is True
    assert np.array_equal(fits[0].vectors, fits[1].vectors)
    auto = fit_word2vec_encoder(lambda: iter(docs), pretrained=None, dim=16, epochs=1)
    assert auto.info["deterministic"] is True  # small corpora are reproducible by default


def test_word2vec_reports_its_passes_in_lines_when_not_on_a_terminal(monkeypatch, capsys):
    import hybrid.core.progress

    monkeypatch.setattr(hybrid.core.progress, "LINE_EVERY", 0.0)
    docs = [["wireless", "mouse", "usb"], ["usb", "cable", "charger"]] * 50
    fit_word2vec_encoder(lambda: iter(docs), pretrained=None, dim=8, epochs=2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("vectors: counting words: 1 documents, ")
    assert any(line.startswith("vectors: counting words: 100 documents, ") for line in lines)
    training = [line for line in lines if line.startswith("vectors: Word2Vec, 2 epochs: ")]
    assert training[-1].startswith("vectors: Word2Vec, 2 epochs: 200 documents of 200 documents (100%), ")


def test_encoder_fitted_on_a_sample_of_the_corpus_still_encodes_every_product(tmp_path, amazon_dir):
    """`--vectors-sample`: Word2Vec fitted on a seeded sample of real Amazon product texts; the
    sample is the same whatever the row order (a hash of the id), every product gets its row,
    and the products whose words the sample knows get vectors."""
    import pyarrow.parquet as pq

    from hybrid.content.encoding import corpus_sample
    from hybrid.data.ingest import ingest
    from hybrid.pipeline.stages import clean_text_step, vectors_step

    ingest([str(amazon_dir / "meta_Magazine_Subscriptions.json.gz")], [str(amazon_dir / "Magazine_Subscriptions_5.json.gz")],
           tmp_path / "items.parquet", tmp_path / "ratings.parquet", tmp_path / "quarantine.jsonl")
    clean_text_step(tmp_path / "items.parquet", tmp_path / "text.parquet")
    texts = pq.read_table(tmp_path / "text.parquet")
    with_text = sum(1 for t in texts.column("text").to_pylist() if t)
    assert with_text > 1000
    keep = corpus_sample(tmp_path / "text.parquet", 300)
    assert keep.sum() == 300 and all(texts.column("text")[int(r)].as_py() for r in np.flatnonzero(keep))
    # the same products in reverse order: the same sample
    pq.write_table(texts.take(np.arange(len(texts))[::-1]), tmp_path / "reversed.parquet")
    reversed_keep = corpus_sample(tmp_path / "reversed.parquet", 300)
    assert set(np.asarray(texts.column("item_id"))[keep]) == set(np.asarray(texts.column("item_id"))[::-1][reversed_keep])
    assert not np.array_equal(keep, corpus_sample(tmp_path / "text.parquet", 300, seed=7))
    assert corpus_sample(tmp_path / "text.parquet", with_text) is None

    full = vectors_step(tmp_path / "text.parquet", tmp_path / "v_all.parquet", tmp_path / "e_all.npz",
                        pretrained=None, dim=16, epochs=2, min_count=1, deterministic=True)
    sample = vectors_step(tmp_path / "text.parquet", tmp_path / "v.parquet", tmp_path / "e.npz",
                          pretrained=None, dim=16, epochs=2, min_count=1, deterministic=True, fit_documents=300)
    assert full["fitted_on"] == "every product" and sample["fitted_on"] == "a sample of 300 products"
    assert sample["corpus_documents"] == 300 < full["corpus_documents"] == with_text
    assert sample["vocabulary"] < full["vocabulary"]
    assert sample["products"] == full["products"] == len(texts)
    # most products share words with 300 others; those that do not are counted, not dropped
    assert 0.8 * full["products_with_vector"] < sample["products_with_vector"] < full["products_with_vector"]
    vectors = pq.read_table(tmp_path / "v.parquet")
    assert vectors.column("item_id").to_pylist() == texts.column("item_id").to_pylist()
    encoder = TextEncoder.load(tmp_path / "e.npz")
    assert len(encoder.words) == sample["vocabulary"] and encoder.transform([encoder.words[0]])[1][0]
    with pytest.raises(StageError, match="at least 1"):
        corpus_sample(tmp_path / "text.parquet", 0)
