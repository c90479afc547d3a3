"""The Spark engine (Spark local mode) against the single-machine engine: the same tables, row
for row, the same quarantine and the same encoded dataset, on real Amazon samples, MovieLens-100k
and injected bad lines."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_lines

pytest.importorskip("pyspark", reason="the Spark engine's tests need the spark extra (pyspark)")


@pytest.fixture(scope="module")
def spark_engine():
    from hybrid.core.errors import StageError
    from hybrid.core.spark import check_available, configure
    from hybrid.pipeline import spark_stages

    try:
        check_available()
    except StageError as exc:
        pytest.skip(str(exc))
    configure("local[2]", {"spark.sql.shuffle.partitions": "4"})
    return spark_stages


def quarantine_entries(path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda e: (e["file"], e["line"] or 0))


def figures(report: dict) -> dict:
    """A stage report without what differs between engines by nature (time, engine, tasks)."""
    drop = {"seconds", "records_per_second", "engine", "tasks", "partitions"}
    if isinstance(report, dict):
        return {k: figures(v) for k, v in report.items() if k not in drop}
    return report


def assert_same_table(a, b):
    left, right = pq.read_table(a), pq.read_table(b)
    assert left.schema.equals(right.schema), (left.schema, right.schema)
    assert left.num_rows == right.num_rows
    assert left.equals(right)


def both_ingests(tmp_path, spark, meta, ratings, spark_params=None, **params):
    from hybrid.data.ingest import ingest

    out = {}
    for engine, run, extra in (("local", ingest, {}), ("spark", spark.ingest_spark, spark_params or {})):
        folder = tmp_path / engine
        folder.mkdir()
        report = run(meta, ratings, folder / "items.parquet", folder / "ratings.parquet",
                     folder / "quarantine.jsonl", **params, **extra)
        (folder / "report.json").write_text(json.dumps(report))
        out[engine] = (folder, report)
    (local, local_report), (remote, spark_report) = out["local"], out["spark"]
    for name in ("items.parquet", "ratings.parquet"):
        assert_same_table(local / name, remote / name)
    assert quarantine_entries(local / "quarantine.jsonl") == quarantine_entries(remote / "quarantine.jsonl")
    assert figures(local_report) == figures(spark_report)
    assert spark_report["items"]["engine"] == "spark"
    return local, remote, local_report


def test_amazon_samples_same_tables_text_and_dataset(tmp_path, amazon_dir, spark_engine):
    from hybrid.pipeline.stages import clean_text_step, dataset_step, vectors_step

    meta = [str(amazon_dir / "meta_Gift_Cards.json.gz"), str(amazon_dir / "meta_Magazine_Subscriptions.json.gz")]
    ratings = [str(amazon_dir / "Gift_Cards_5.json.gz"), str(amazon_dir / "Magazine_Subscriptions_5.json.gz")]
    local, remote, report = both_ingests(tmp_path, spark_engine, meta, ratings)
    assert report["items"]["duplicates_resolved"] > 0 and report["ratings"]["duplicates_resolved"] > 0

    text_local = clean_text_step(local / "items.parquet", local / "item_text.parquet")
    text_spark = spark_engine.clean_text_spark(remote / "items.parquet", remote / "item_text.parquet")
    assert_same_table(local / "item_text.parquet", remote / "item_text.parquet")
    assert figures(text_local) == figures(text_spark)

    vectors_step(local / "item_text.parquet", local / "item_vectors.parquet", local / "encoder.npz",
                 method="tfidf", dim=16)
    files = ("ratings.parquet", "users.parquet", "items.parquet", "item_vectors.npy")
    reports = {}
    for folder, run in ((local, dataset_step), (remote, spark_engine.dataset_spark)):
        out = folder / "dataset"
        out.mkdir()
        reports[folder] = run(folder / "ratings.parquet", folder / "item_text.parquet",
                              local / "item_vectors.parquet", folder / "items.parquet",
                              *(out / f for f in files), min_user_ratings=2, min_item_ratings=2,
                              iterate=True)
    assert figures(reports[local]) == figures(reports[remote])
    assert reports[local]["ratings_dropped_min_counts"] > 0
    for name in files[:3]:
        assert_same_table(local / "dataset" / name, remote / "dataset" / name)
    assert np.array_equal(np.load(local / "dataset" / files[3]), np.load(remote / "dataset" / files[3]))


def test_injected_bad_lines_same_records_and_quarantine(tmp_path, spark_engine):
    """Plain files split into several byte ranges (a BOM, CRLF, blank and undecodable lines,
    broken JSON, duplicates across ranges), a CSV with a header and a truncated gzip."""
    rng = np.random.default_rng(3)
    meta_lines = ["\ufeff" + json.dumps({"asin": "A0", "title": "first", "feature": ["red lamp"]})]
    for i in range(1, 3000):
        kind = rng.integers(0, 40)
        if kind == 0:
            meta_lines.append('{"asin": "broken", "title": ')
        elif kind == 1:
            meta_lines.append("")
        elif kind == 2:
            meta_lines.append(b"\xff\xfe not utf-8")
        elif kind == 3:  # a duplicate that fills an empty field of an earlier record
            j = int(rng.integers(0, i))
            meta_lines.append(json.dumps({"asin": f"A{j}", "title": f"late {j}",
                                          "description": [f"desc {j} " * 20]}))
        else:
            meta_lines.append(json.dumps({"asin": f"A{i}", "feature": [f"feature {i} " * 15],
                                          "category": ["Electronics", f"c{i % 7}"]}) + ("\r" if kind == 4 else ""))
    meta = write_lines(tmp_path / "meta.json", meta_lines)
    assert meta.stat().st_size > 3 * 2**16  # several ranges at the smallest split
    rows = ["user,item,rating,timestamp"]
    for i in range(6000):
        kind = rng.integers(0, 50)
        if kind == 0:
            rows.append(f"u{i},A{i % 300},eleven,1500000000")
        elif kind == 1:
            rows.append(f"u{i},A{i % 300},9,1500000000")  # out of range
        else:  # repeated pairs: the latest timestamp wins, ties to the later line
            rows.append(f"u{i % 400},A{i % 250},{1 + i % 5},{1500000000 + (i % 3) * 1000}")
    ratings = write_lines(tmp_path / "ratings.csv", rows)
    more = write_lines(tmp_path / "more.csv", rows[:1] + [f"u{i},A{i},4,1500000001" for i in range(2000)],
                       compress=True)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(more.read_bytes()[: more.stat().st_size // 2])
    local, remote, report = both_ingests(
        tmp_path, spark_engine, [str(meta)], [str(ratings), str(cut)], {"split_mb": 0.0625},
        ratings_columns="user=user,item=item,rating=rating,timestamp=timestamp", partition_mb=0.1)
    reasons = report["quarantine"]["by_reason"]
    assert report["quarantine"]["total"] > 100
    assert any("undecodable" in r for r in reasons) and any("truncated" in r for r in reasons)
    assert report["items"]["duplicates_resolved"] > 0 and report["ratings"]["duplicates_resolved"] > 0
    assert report["ratings"]["files"][str(cut)]["records"] > 100  # what came before the cut
    spark_report = json.loads((remote / "report.json").read_text())
    assert spark_report["items"]["tasks"] >= 3 and spark_report["items"]["partitions"] > 2


def test_movielens_same_stages(ml100k, tmp_path, spark_engine):
    """The default dataset's ingest, text, vectors (Word2Vec from GloVe) and dataset stages with the parameters the pipeline
    gives them, on both engines."""
    from pipelines.recommender import PipelineConfig, build

    _, _, out = ml100k
    stages = {s.name: s for s in build(PipelineConfig(out=str(out)))}
    remote = tmp_path / "spark"
    remote.mkdir()
    ingest = stages["ingest"]
    report = spark_engine.ingest_spark(**ingest.inputs, items_out=remote / "items.parquet",
                                       ratings_out=remote / "ratings.parquet",
                                       quarantine_out=remote / "quarantine.jsonl", **ingest.params)
    for key, name in (("items_out", "items.parquet"), ("ratings_out", "ratings.parquet")):
        assert_same_table(ingest.outputs[key], remote / name)
    assert quarantine_entries(ingest.outputs["quarantine_out"]) == quarantine_entries(remote / "quarantine.jsonl")
    assert report["ratings"]["rows"] == 100_000
    text = stages["text"]
    spark_engine.clean_text_spark(remote / "items.parquet", remote / "item_text.parquet", **text.params)
    assert_same_table(text.outputs["item_text_path"], remote / "item_text.parquet")
    vectors = stages["vectors"]
    local_report = json.loads((out / "reports" / "vectors.json").read_text())
    report = spark_engine.vectors_spark(remote / "item_text.parquet", remote / "item_vectors.parquet",
                                        remote / "encoder.npz", **vectors.params)
    assert_same_table(vectors.outputs["item_vectors_path"], remote / "item_vectors.parquet")
    assert report["product_coverage"] == local_report["product_coverage"] > 0.9
    assert report["products_with_vector"] == local_report["products_with_vector"]
    dataset = stages["dataset"]
    files = {key: remote / Path(path).name for key, path in dataset.outputs.items()}
    spark_engine.dataset_spark(remote / "ratings.parquet", remote / "item_text.parquet",
                               dataset.inputs["item_vectors_path"], remote / "items.parquet",
                               **files, **dataset.params)
    for key, path in dataset.outputs.items():
        if path.endswith(".npy"):
            assert np.array_equal(np.load(path), np.load(files[key]))
        else:
            assert_same_table(path, files[key])


def test_cli_run_with_spark_engine(tmp_path, amazon2014_dir, spark_engine, capsys):
    """`hybrid run --engine spark` up to the dataset: the stage reports say so, the dataset is
    the local engine's, and a second run finds every stage fresh."""
    from hybrid.cli import main
    from hybrid.data.dataset import load_dataset

    data = ["--ratings", str(amazon2014_dir / "Musical_Instruments_5.csv.gz"),
            "--meta", str(amazon2014_dir / "Musical_Instruments_meta_5.json.gz"),
            "--ratings-columns", "user=reviewerID,item=asin,rating=overall,timestamp=unixReviewTime",
            "--vector-method", "tfidf", "--dim", "16", "--vectors-sample", "600", "--min-user-ratings", "5",
            "--until", "dataset"]
    conf = tmp_path / "spark.conf"
    conf.write_text("# settings\nspark.sql.shuffle.partitions 3\n")
    assert main(["run", "--out", str(tmp_path / "spark"), "--engine", "spark", "--spark-master", "local[2]",
                 "--spark-conf-file", str(conf), "--spark-conf", "spark.sql.shuffle.partitions=5", *data]) == 0
    assert main(["run", "--out", str(tmp_path / "local"), *data]) == 0
    vectors = json.loads((tmp_path / "spark" / "reports" / "vectors.json").read_text())
    assert vectors["fitted_on"] == "a sample of 600 products"  # the same sample: the same vectors below
    for stage in ("ingest", "text", "vectors", "dataset"):
        report = json.loads((tmp_path / "spark" / "reports" / f"{stage}.json").read_text())
        assert report.get("engine") == "spark" or report["items"]["engine"] == "spark"
    spark_data, local_data = load_dataset(tmp_path / "spark" / "dataset"), load_dataset(tmp_path / "local" / "dataset")
    assert len(spark_data.rating) > 5000
    assert np.array_equal(spark_data.user_index, local_data.user_index)
    assert np.array_equal(spark_data.item_index, local_data.item_index)
    assert np.array_equal(spark_data.rating, local_data.rating)
    assert list(spark_data.items.values) == list(local_data.items.values)
    assert np.allclose(spark_data.item_vectors, local_data.item_vectors)
    capsys.readouterr()
    assert main(["run", "--out", str(tmp_path / "spark"), "--engine", "spark", "--spark-master", "local[2]",
                 "--spark-conf-file", str(conf), "--spark-conf", "spark.sql.shuffle.partitions=5", *data]) == 0
    assert "every stage is fresh" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark", "--spark-conf", "no-equals-sign"], "KEY=VALUE"),
    (["--spark-master", "local[2]"], "need --engine spark"),
    (["--engine", "spark", "--spark-conf-file", "/no/such/file"], "spark-conf-file"),
])
def test_cli_spark_settings_errors(tmp_path, capsys, args, message):
    from hybrid.cli import main

    assert main(["run", "--out", str(tmp_path), "--until", "ingest", *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_pyspark_or_java_is_a_clear_error(monkeypatch):
    import sys

    from hybrid.core import spark
    from hybrid.core.errors import StageError

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(StageError, match="Java 17"):
        spark.check_available()
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(StageError, match=r"pip install -e '\.\[spark\]'"):
        spark.check_available()


def test_spark_als_baselines_on_movielens(ml100k, spark_engine):
    """Spark MLlib ALS, explicit (TrainValidationSplit on the training ratings) and implicit
    (validation NDCG@10 on held-out training likes): real factors, sensible figures, and no NaN
    for an id the training data never had."""
    from hybrid.evaluation.metrics import evaluate_ranking, ranking_task, rmse
    from hybrid.evaluation.splits import random_split
    from hybrid.models.als import SparkALS, SparkImplicitALS
    from hybrid.models.baselines import Popularity

    data, _, _ = ml100k
    train, test = random_split(len(data.rating), 0.2, seed=0)
    u, i, r = data.user_index, data.item_index, data.rating
    n_users, n_items = len(data.users), len(data.items)
    als = SparkALS(ranks=(10,), reg_params=(0.1, 0.5), max_iter=10).fit(u[train], i[train], r[train], n_users, n_items)
    assert len(als.validation) == 2
    assert als.chosen["regParam"] == min((0.1, 0.5), key=lambda reg: als.validation[f"rank=10,regParam={reg:g}"]["rmse"])
    error = rmse(r[test], als.predict(u[test], i[test]))
    mean_error = rmse(r[test], np.full(test.sum() if test.dtype == bool else len(test), r[train].mean()))
    assert error < 0.98 and error < mean_error - 0.1, (error, mean_error)
    assert als.predict([n_users + 5], [0])[0] == pytest.approx(r[train].mean())
    implicit = SparkImplicitALS(ranks=(16,), reg_params=(0.1,), alphas=(1.0, 10.0), max_iter=10).fit(
        u[train], i[train], r[train], n_users, n_items)
    assert set(implicit.validation) == {"alpha=1,rank=16,regParam=0.1", "alpha=10,rank=16,regParam=0.1"}
    task = ranking_task(u[train], i[train], u[test], i[test], r[test], np.arange(n_items))
    ndcg = evaluate_ranking(implicit.score, task, (10,))["ndcg@10"]
    popular = evaluate_ranking(Popularity().fit(u[train], i[train], r[train], n_users, n_items).score, task,
                               (10,))["ndcg@10"]
    assert ndcg > popular + 0.03, (ndcg, popular)
    assert np.isfinite(implicit.score([0, n_users + 1], [0, 1, n_items + 3])).all()


def test_spark_engine_adds_als_to_the_evaluated_baselines(tmp_path):
    from pipelines.recommender import PipelineConfig, build

    for engine, expected in (("spark", True), ("local", None)):
        evaluate = next(s for s in build(PipelineConfig(out=str(tmp_path), engine=engine)) if s.name == "evaluate")
        assert evaluate.params.get("spark_als") is expected


def test_a_failed_spark_job_is_a_stage_error_not_a_jvm_trace(tmp_path, spark_engine):
    """A task that fails (here: an items table whose ids are numbers) ends the stage with a
    StageError that names the stage and the cause."""
    import pyarrow as pa

    from hybrid.core.errors import StageError

    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": [1, 2], "title": ["a lamp", "a desk"]}), items)
    with pytest.raises(StageError, match="Spark job of clean_text_spark failed"):
        spark_engine.clean_text_spark(items, tmp_path / "item_text.parquet")


def test_a_file_in_the_wrong_format_stops_before_any_spark_job(tmp_path, spark_engine):
    """As on one machine: the first 20 lines all rejected -> an InputFormatError naming the
    file and the format expected (checked on the driver, before the job)."""
    from hybrid.core.errors import InputFormatError

    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": f"A{i}", "title": "t"}) for i in range(30)])
    wrong = write_lines(tmp_path / "ratings.csv", [f"<html>page {i}</html>" for i in range(40)])
    (tmp_path / "out").mkdir()
    with pytest.raises(InputFormatError, match=r"ratings\.csv.*first 20 lines"):
        spark_engine.ingest_spark([str(meta)], [str(wrong)], tmp_path / "out" / "items.parquet",
                                  tmp_path / "out" / "ratings.parquet", tmp_path / "out" / "q.jsonl",
                                  ratings_formats=["amazon2018-ratings"])
