"""The ingest stage on real Amazon samples and on injected bad input."""

import gzip
import json
import zlib

import pyarrow.parquet as pq
import pytest
from conftest import write_lines

from hybrid.core.errors import InputFormatError
from hybrid.data.ingest import ingest, merge_item_records


def run_ingest(tmp_path, meta, ratings, **kwargs):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    report = ingest([str(p) for p in meta], [str(p) for p in ratings], out / "items.parquet",
                    out / "ratings.parquet", out / "quarantine.jsonl", **kwargs)
    items = pq.read_table(out / "items.parquet").to_pandas()
    ratings_table = pq.read_table(out / "ratings.parquet").to_pandas()
    quarantine = [json.loads(l) for l in (out / "quarantine.jsonl").read_text().splitlines()]
    return report, items, ratings_table, quarantine


def test_gift_cards_sample_is_read_completely(tmp_path, amazon_dir):
    report, items, ratings, quarantine = run_ingest(
        tmp_path, [amazon_dir / "meta_Gift_Cards.json.gz"], [amazon_dir / "Gift_Cards_5.json.gz"])
    assert len(items) == 1547 and items["item_id"].is_unique
    assert set(ratings["item_id"]) <= set(items["item_id"])  # all 148 reviewed products present
    assert ratings["item_id"].nunique() == 148
    assert report["ratings"]["files"][str(amazon_dir / "Gift_Cards_5.json.gz")]["records"] == 2972
    assert len(ratings) + report["ratings"]["duplicates_resolved"] == 2972
    assert not ratings.duplicated(["user_id", "item_id"]).any()
    assert quarantine == [] and report["quarantine"]["total"] == 0


def test_magazine_duplicates_are_merged_and_html_titles_cleaned(tmp_path, amazon_dir):
    report, items, ratings, _ = run_ingest(
        tmp_path, [amazon_dir / "meta_Magazine_Subscriptions.json.gz"],
        [amazon_dir / "Magazine_Subscriptions_5.json.gz"])
    assert len(items) == 2320  # distinct asins among 3,385 lines
    assert report["items"]["duplicates_resolved"] == 3385 - 2320
    assert not items["title"].dropna().str.contains("<").any()
    assert ratings["user_id"].nunique() == 348
    assert len(set(ratings["item_id"]) - set(items["item_id"])) == 6  # no metadata line


def test_bad_lines_are_quarantined_with_file_line_and_reason(tmp_path):
    good = [json.dumps({"reviewerID": f"U{i}", "asin": f"A{i % 7}", "overall": 1 + i % 5,
                        "unixReviewTime": 1000 + i}) for i in range(200)]
    lines = list(good)
    lines.insert(10, '{"reviewerID": "U", "asin": "A", "overall": 5')  # malformed JSON
    lines.insert(20, json.dumps({"asin": "A1", "overall": 5.0}))  # no user id
    lines.insert(30, json.dumps({"reviewerID": "U9", "asin": "A1", "overall": 9.0}))  # out of range
    lines.insert(40, b'{"reviewerID": "U\xff\xfe", "asin": "A1", "overall": 5.0}')  # bad bytes
    lines.insert(50, "[1, 2, 3]")  # not an object
    path = write_lines(tmp_path / "reviews_5.json.gz", lines, compress=True)
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": f"A{i}"}) for i in range(7)])
    report, _, ratings, quarantine = run_ingest(tmp_path, [meta], [path])
    assert len(ratings) == 200  # not one good record lost
    assert report["quarantine"]["by_reason"] == {
        "malformed JSON": 1, "record without reviewerID": 1, "rating out of range": 1,
        "undecodable bytes (invalid start byte)": 1, "JSON line is not an object": 1}
    assert [q["line"] for q in quarantine] == [11, 21, 31, 41, 51]
    assert all(q["file"] == str(path) for q in quarantine)
    assert "overall" in quarantine[2]["raw"]


def test_truncated_gzip_keeps_every_line_before_the_cut(tmp_path):
    lines = [f"item{i},user{i},{1 + i % 5}.0,{i}" for i in range(20000)]
    full = tmp_path / "full.csv.gz"
    write_lines(full, lines, compress=True)
    data = full.read_bytes()
    cut = tmp_path / "ratings.csv.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    # what a perfect reader could recover: the complete lines of the decompressible prefix
    recoverable = zlib.decompressobj(31).decompress(data[: len(data) * 2 // 3])
    complete = recoverable.count(b"\n")
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "item1"})])
    report, _, ratings, quarantine = run_ingest(tmp_path, [meta], [cut])
    assert len(ratings) == complete  # the cut-off partial line goes to the quarantine
    assert len(ratings) > 10000
    assert len(quarantine) == 1 and "truncated" in quarantine[0]["reason"]


def test_duplicate_metadata_merge_is_first_non_empty_in_file_order():
    merged = merge_item_records([
        {"item_id": "a", "title": None, "brand": "B1", "feature": []},
        {"item_id": "a", "title": "First", "brand": "B2", "feature": ["f1"]},
        {"item_id": "a", "title": "Second", "brand": None, "feature": ["f2"]},
    ])
    assert merged == {"item_id": "a", "title": "First", "brand": "B1", "feature": ["f1"]}


def test_duplicate_ratings_keep_the_latest(tmp_path):
    ratings = write_lines(tmp_path / "r.csv", ["i1,u1,1.0,300", "i1,u1,5.0,100", "i1,u1,3.0,200",
                                               "i2,u1,2.0,50", "i2,u1,4.0,50"])
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "i1"})])
    report, _, table, _ = run_ingest(tmp_path, [meta], [ratings])
    kept = dict(zip(table["item_id"], table["rating"]))
    assert kept == {"i1": 1.0, "i2": 4.0}  # latest time; same time -> later line
    assert report["ratings"]["duplicates_resolved"] == 3


def test_many_partitions_give_the_same_tables_as_one(tmp_path, amazon_dir):
    args = ([amazon_dir / "meta_Magazine_Subscriptions.json.gz"],
            [amazon_dir / "Magazine_Subscriptions_5.json.gz"])
    one = run_ingest(tmp_path / "a", *args) if (tmp_path / "a").mkdir() is None else None
    many = run_ingest(tmp_path / "b", *args, partition_mb=0.5) if (tmp_path / "b").mkdir() is None else None
    assert many[0]["items"]["partitions"] > 4 and one[0]["items"]["partitions"] == 1
    for a, b in ((one[1], many[1]), (one[2], many[2])):
        key = a.columns[0] if "user_id" not in a else ["user_id", "item_id"]
        a = a.sort_values(key).reset_index(drop=True)
        b = b.sort_values(key).reset_index(drop=True)
        assert a.astype(str).equals(b.astype(str))


def test_a_foreign_file_stops_the_stage(tmp_path):
    meta = write_lines(tmp_path / "meta.json", ["just some words"] * 30)
    ratings = write_lines(tmp_path / "r.csv", ["i1,u1,1.0,300"])
    with pytest.raises(InputFormatError, match="meta.json"):
        run_ingest(tmp_path, [meta], [ratings], meta_formats=["amazon2018-meta"])


def test_worker_processes_give_the_same_tables_and_quarantine(tmp_path, amazon_dir, monkeypatch):
    import hybrid.data.ingest as ingest_module

    lines = gzip.decompress((amazon_dir / "meta_Magazine_Subscriptions.json.gz").read_bytes()).splitlines()
    lines.insert(500, b'{"asin": "broken')
    lines.insert(2500, b'{"title": "no id"}')
    meta = write_lines(tmp_path / "meta.json", lines)
    ratings = [amazon_dir / "Magazine_Subscriptions_5.json.gz"]
    serial = run_ingest(tmp_path / "a", [meta], ratings, workers=1) if (tmp_path / "a").mkdir() is None else None
    monkeypatch.setattr(ingest_module, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ingest_module, "FAIL_FAST_LINES", 20)
    (tmp_path / "b").mkdir()
    parallel = run_ingest(tmp_path / "b", [meta], ratings, workers=2)
    assert serial[1].astype(str).equals(parallel[1].astype(str))  # same rows, same order
    assert serial[2].astype(str).equals(parallel[2].astype(str))
    assert serial[3] == parallel[3] and [q["line"] for q in serial[3]] == [501, 2501]


def test_reading_reports_progress_in_lines_when_not_on_a_terminal(tmp_path, amazon_dir, monkeypatch, capsys):
    import hybrid.core.progress

    monkeypatch.setattr(hybrid.core.progress, "LINE_EVERY", 0.0)  # a line per block read
    run_ingest(tmp_path, [amazon_dir / "meta_Gift_Cards.json.gz"], [amazon_dir / "Gift_Cards_5.json.gz"],
               workers=1)
    lines = capsys.readouterr().err.splitlines()
    reading = [line for line in lines if line.startswith("reading meta_Gift_Cards.json.gz: ")]
    assert reading and "\r" not in "".join(lines)
    size = (amazon_dir / "meta_Gift_Cards.json.gz").stat().st_size
    assert reading[-1].startswith(f"reading meta_Gift_Cards.json.gz: {size:,} B of {size:,} B (100%), ")
    assert any(line.startswith("reading Gift_Cards_5.json.gz: ") for line in lines)
