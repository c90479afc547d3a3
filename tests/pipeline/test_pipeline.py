"""The whole pipeline through the CLI, on the real Amazon samples and on MovieLens-100k."""

import json

import numpy as np
import pyarrow.parquet as pq

import hybrid
from hybrid.cli import main
from hybrid.content.vectors import TextEncoder
from hybrid.data.dataset import load_dataset


def test_amazon_samples_end_to_end(tmp_path, amazon_dir, capsys):
    out = tmp_path / "art"
    args = ["run", "--out", str(out),
            "--meta", str(amazon_dir / "meta_Magazine_Subscriptions.json.gz"),
            "--meta", str(amazon_dir / "meta_Gift_Cards.json.gz"),
            "--ratings", str(amazon_dir / "Magazine_Subscriptions_5.json.gz"),
            "--ratings", str(amazon_dir / "Gift_Cards_5.json.gz"),
            "--min-user-ratings", "3", "--min-item-ratings", "3", "--kcore", "--until", "dataset"]
    assert main(args) == 0
    data = load_dataset(out / "dataset")
    report = json.loads((out / "reports" / "dataset.json").read_text())
    assert report["ratings_dropped_no_metadata"] > 0  # the 6 magazines without metadata
    assert report["ratings_dropped_no_text"] == 0  # every item with metadata has some text
    assert len(data.rating) == report["ratings_out"] > 1000
    # k-core: every kept user and rated item has at least 3 ratings
    assert np.bincount(data.user_index).min() >= 3
    assert data.item_ratings[data.item_ratings > 0].min() >= 3
    assert len(data.cold_items) > 3000  # catalogue items without ratings stay as cold candidates
    assert data.item_vectors.shape == (len(data.items), 50)
    assert not any("<" in t for t in data.item_titles if t)
    # the text stage keeps every field cleaned beside the one-field text (what the content part reads)
    from hybrid.data.text import TEXT_FIELDS

    texts = pq.read_table(out / "text" / "item_text.parquet").to_pylist()
    assert all(len(row["fields"]) == len(TEXT_FIELDS) for row in texts)
    titled = [row for row in texts if row["fields"][TEXT_FIELDS.index("title")]]
    assert len(titled) > 1000 and not any("<" in f for row in titled for f in row["fields"])
    assert all(row["text"] in row["fields"] for row in texts if row["source"] in TEXT_FIELDS)
    vectors = json.loads((out / "reports" / "vectors.json").read_text())
    assert vectors["token_coverage"] > 0.9 and vectors["product_coverage"] > 0.9
    assert vectors["own_process"] and report["own_process"]  # each stage in a fresh process
    capsys.readouterr()
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    # --in-process (a debugger's run) gives the same outputs, the stages run in this process
    assert main(args + ["--force", "--in-process"]) == 0
    again = load_dataset(out / "dataset")
    assert np.array_equal(again.rating, data.rating) and again.item_vectors.shape == data.item_vectors.shape
    assert not json.loads((out / "reports" / "dataset.json").read_text())["own_process"]


def test_changing_a_parameter_reruns_from_that_stage(tmp_path, amazon_dir, capsys):
    out = tmp_path / "art"
    base = ["--out", str(out), "--meta", str(amazon_dir / "meta_Gift_Cards.json.gz"),
            "--ratings", str(amazon_dir / "Gift_Cards_5.json.gz")]
    assert main(["run", *base, "--until", "dataset"]) == 0
    capsys.readouterr()
    assert main(["status", *base, "--vector-method", "tfidf", "--dim", "16"]) == 0
    status = capsys.readouterr().out
    assert "ingest     fresh" in status and "text       fresh" in status
    assert "vectors    stale: parameters changed" in status
    assert main(["run", *base, "--vector-method", "tfidf", "--dim", "16", "--until", "dataset"]) == 0
    assert load_dataset(out / "dataset").item_vectors.shape[1] == 16


def test_bad_files_give_a_clear_error_not_a_traceback(tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing useful\n")
    assert main(["run", "--out", str(tmp_path / "o"), "--meta", str(junk), "--ratings", str(junk)]) == 2
    assert "junk.txt: not a recognised items file" in capsys.readouterr().err


def test_default_dataset_is_movielens_100k(tmp_path, capsys):
    out = tmp_path / "art"
    assert main(["run", "--out", str(out), "--until", "dataset"]) == 0
    fetch = json.loads((out / "reports" / "fetch.json").read_text())
    assert fetch["ratings"] == 100_000 and fetch["items"] == 1_682
    data = load_dataset(out / "dataset")
    assert (len(data.users), len(data.items), len(data.rating)) == (943, 1682, 100_000)
    row = data.items.index(["1"])[0]
    assert data.item_titles[row] == "Toy Story"
    encoder = TextEncoder.load(out / "vectors" / "text_encoder.npz")
    # the encoder embeds free text in the same space as the films
    query = encoder.encode("toy story animation children comedy")
    sims = data.item_vectors @ query / (np.linalg.norm(data.item_vectors, axis=1) * np.linalg.norm(query) + 1e-9)
    assert row in np.argsort(-sims)[:5]


def test_train_recommend_similar_and_evaluate_from_the_command_line(ml100k, capsys):
    _, _, out = ml100k
    fast = ["--train-param", "epochs=2", "--train-param", "batch_size=4096"]
    assert main(["train", "--out", str(out), *fast]) == 0
    assert (out / "model" / "model.keras").is_file()
    assert (out / "model" / "learning_curve.png").stat().st_size > 1000  # the train stage draws it
    # the saved folder is the whole model: its rating blend too, so it answers as the fitted one
    assert hybrid.load(out / "model").blend is not None
    capsys.readouterr()
    assert main(["recommend", "--user", "196", "--n", "3", "--json", "--model-dir", str(out / "model")]) == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 3 and {"item_id", "score", "title", "cold"} <= set(top[0])
    assert main(["recommend", "--liked", "50,172", "--text", "space", "--json",
                 "--model-dir", str(out / "model")]) == 0
    picks = json.loads(capsys.readouterr().out)
    assert len(picks) == 10 and not {"50", "172"} & {p["item_id"] for p in picks}  # liked ones left out
    assert main(["similar", "--item", "1", "--n", "3", "--model-dir", str(out / "model")]) == 0
    assert main(["similar", "--item", "nope", "--model-dir", str(out / "model")]) == 2
    capsys.readouterr()
    assert main(["evaluate", "--out", str(out), *fast, "--models", "mf-bias",
                 "--baselines", "biases,random", "--protocol", "cold-items"]) == 0
    printed = capsys.readouterr().out
    assert "| mf-bias |" in printed and "| random |" in printed
    assert f"report: {out / 'evaluation' / 'report.html'}" in printed  # the next step names the page
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["protocol"] == "cold-items" and metrics["results"]["mf-bias"]["rmse"] < 1.2
    assert (out / "evaluation" / "ndcg_at_10.png").is_file()
    report = (out / "evaluation" / "report.html").read_text()
    assert "| mf-bias |" not in report and "<td>mf-bias</td>" in report and report.count("<svg") >= 3


def test_predefined_test_file_is_the_split(ml100k, tmp_path, capsys):
    data, _, out = ml100k
    rows = np.arange(0, len(data.rating), 10)
    test_file = tmp_path / "u1.test"
    test_file.write_text("".join(f"{data.users.ids([u])[0]}\t{data.items.ids([i])[0]}\t{r:g}\t0\n"
                                 for u, i, r in zip(data.user_index[rows], data.item_index[rows], data.rating[rows])))
    assert main(["evaluate", "--out", str(out), "--models", "", "--baselines", "biases",
                 "--test-file", str(test_file)]) == 0
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    test_mask = np.zeros(len(data.rating), bool)
    test_mask[rows] = True
    # users ranked: those with a relevant (>= 4) test rating
    ranked = len(np.unique(data.user_index[test_mask & (data.rating >= 4)]))
    assert metrics["split"] == {"train": len(data.rating) - len(rows), "test": len(rows),
                                "ranked_users": ranked, "candidates": 1682}


def test_command_line_refuses_bad_requests_with_a_clear_message(ml100k, capsys):
    _, _, out = ml100k
    fast = ["--train-param", "epochs=2", "--train-param", "batch_size=4096"]
    assert main(["train", "--out", str(out), *fast]) == 0
    model = ["--model-dir", str(out / "model")]
    capsys.readouterr()
    for n in ("0", "-5"):
        assert main(["recommend", "--user", "196", "--n", n, *model]) == 2
        assert f"--n must be at least 1, got {n}" in capsys.readouterr().err
    assert main(["recommend", "--text", "the and of", *model]) == 2
    assert "no known word" in capsys.readouterr().err
    assert main(["similar", "--text", "the and of", *model]) == 2
    assert "no known word" in capsys.readouterr().err
    assert main(["recommend", "--user", "no-such-user", *model]) == 2
    err = capsys.readouterr().err
    assert "--liked" in err and "--text" in err and "recommend_for_new_user" not in err


def test_evaluate_uses_its_model_and_train_params(ml100k, capsys):
    _, _, out = ml100k
    args = ["evaluate", "--out", str(out), "--models", "mf-bias", "--baselines", "biases",
            "--train-param", "epochs=1", "--model-param", "factors=4"]
    assert main(args) == 0
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["results"]["mf-bias"]["epochs_run"] == 1
    capsys.readouterr()
    assert main(["status", *args[1:-2], "--model-param", "factors=8"]) == 0
    assert "evaluate   stale: parameters changed" in capsys.readouterr().out


def test_the_default_pipeline_is_reproducible(tmp_path):
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["run", "--out", str(out), "--until", "vectors"]) == 0
        outs.append(out)
    first, second = (load_dataset_vectors(o) for o in outs)
    assert np.array_equal(first, second)
    report = json.loads((outs[0] / "reports" / "vectors.json").read_text())
    assert report["deterministic"] is True and report["threads"] == 1


def load_dataset_vectors(out):
    import pyarrow.parquet as pq

    table = pq.read_table(out / "vectors" / "item_vectors.parquet")
    return np.stack(table.column("vector").to_numpy(zero_copy_only=False))


def test_evaluate_can_rank_a_sample_of_users(ml100k, capsys):
    _, _, out = ml100k
    assert main(["evaluate", "--out", str(out), "--models", "", "--baselines", "popularity",
                 "--eval-users", "100"]) == 0
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["split"]["ranked_users"] == 100 and metrics["results"]["popularity"]["users"] == 100
    assert main(["evaluate", "--out", str(out), "--eval-users", "0"]) == 2


def test_evaluate_ranks_with_the_two_stage_recommender_that_serves(ml100k, capsys):
    """`--models two-stage`: the recommender `hybrid serve` answers from, fitted on the training
    split with the products' texts, ranks the test users through its serving path."""
    _, _, out = ml100k
    assert main(["evaluate", "--out", str(out), "--models", "two-stage", "--baselines", "popularity",
                 "--recommender-param", "retrieval.epochs=4", "--recommender-param", "train.epochs=3",
                 "--recommender-param", "validation_share=0"]) == 0  # one fit: the blend's choice has tests of its own
    assert "| two-stage |" in capsys.readouterr().out
    results = json.loads((out / "evaluation" / "metrics.json").read_text())["results"]
    two_stage, popularity = results["two-stage"], results["popularity"]
    assert two_stage["users"] == popularity["users"] > 500
    assert two_stage["ndcg@10"] > 1.3 * popularity["ndcg@10"]
    assert "content" in two_stage["weights"]["full"]  # the texts reached it
    assert main(["evaluate", "--out", str(out), "--models", "two-stages"]) == 2
