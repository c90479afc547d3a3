"""Bad input found by a hostile run: every good record kept, every bad line counted, no traceback.

Each test here failed before the fix it guards (see the reliability issue's table)."""

import gzip
import json
import random
import re
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import records, write_lines

from hybrid.cli import main
from hybrid.core.errors import InputFormatError
from hybrid.data.formats import detect_format
from hybrid.data.ingest import ingest


def run_ingest(tmp_path, meta, ratings, **kwargs):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    report = ingest([str(p) for p in meta], [str(p) for p in ratings], out / "items.parquet",
                    out / "ratings.parquet", out / "quarantine.jsonl", **kwargs)
    quarantine = [json.loads(l) for l in (out / "quarantine.jsonl").read_text().splitlines()]
    return (report, pq.read_table(out / "items.parquet").to_pandas(),
            pq.read_table(out / "ratings.parquet").to_pandas(), quarantine)


def review(user, item, rating=5.0, ts=1_400_000_000):
    return json.dumps({"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": ts})


# ------------------------------------------------------------- records lost or runs aborted
def test_twenty_bad_lines_after_good_ones_are_quarantined_not_fatal(tmp_path, amazon_dir):
    good = gzip.decompress((amazon_dir / "Gift_Cards_5.json.gz").read_bytes()).decode().splitlines()
    bad = [review(f"X{i}", "B00", rating=9.0) for i in range(20)]
    path = write_lines(tmp_path / "reviews.json", good + bad)
    report, _, ratings, quarantine = run_ingest(
        tmp_path, [amazon_dir / "meta_Gift_Cards.json.gz"], [path])
    assert report["ratings"]["files"][str(path)]["records"] == len(good)
    assert report["quarantine"]["by_reason"] == {"rating out of range": 20}
    assert [q["line"] for q in quarantine] == list(range(len(good) + 1, len(good) + 21))


def test_a_file_in_another_format_still_fails_fast(tmp_path):
    path = write_lines(tmp_path / "reviews.json", [review(f"u{i}", "B1", 7.0) for i in range(30)])
    with pytest.raises(InputFormatError, match="first 20 lines were all rejected"):
        records(path)


def _damaged_copy(source: Path, target: Path, offset_share: float, length: int = 200) -> Path:
    data = bytearray(source.read_bytes())
    start = int(len(data) * offset_share)
    noise = random.Random(7).randbytes(length)
    data[start:start + length] = noise
    target.write_bytes(bytes(data))
    return target


def _decodable_lines(path: Path) -> list[bytes]:
    """The complete lines zlib delivers before it reports the damage (fed byte by byte)."""
    decompressor, out = zlib.decompressobj(31), b""
    for byte in path.read_bytes():
        try:
            out += decompressor.decompress(bytes([byte]))
        except zlib.error:
            break
    return out.split(b"\n")[:-1]


def test_a_damaged_block_in_the_middle_keeps_every_line_before_it(tmp_path, amazon_dir):
    source = amazon_dir / "meta_Gift_Cards.json.gz"
    damaged = _damaged_copy(source, tmp_path / "meta.json.gz", 0.5)
    report, items, _, quarantine = run_ingest(tmp_path, [damaged], [amazon_dir / "Gift_Cards_5.json.gz"])
    original = gzip.decompress(source.read_bytes()).split(b"\n")
    decoded = _decodable_lines(damaged)
    intact = next(n for n, (a, b) in enumerate(zip(decoded, original)) if a != b)
    assert intact > 500
    assert len(items) >= intact  # every line before the damage is kept
    corrupt = [q for q in quarantine if "corrupt" in q["reason"]]
    assert len(corrupt) == 1  # the damage is reported once...
    assert corrupt[0]["line"] == len(decoded) + 1  # ...where reading stopped, not "line 1"
    # every decoded line is either an item or a quarantined line; nothing vanishes
    assert len(items) + len(quarantine) - 1 + report["items"]["duplicates_resolved"] == len(decoded)


def test_corruption_found_by_the_checksum_keeps_the_items(tmp_path, amazon_dir):
    data = bytearray((amazon_dir / "meta_Gift_Cards.json.gz").read_bytes())
    data[-6] ^= 0xFF  # the CRC32 in the gzip trailer
    path = tmp_path / "meta.json.gz"
    path.write_bytes(bytes(data))
    report, items, _, quarantine = run_ingest(tmp_path, [path], [amazon_dir / "Gift_Cards_5.json.gz"])
    assert len(items) == 1547
    assert [q["reason"] for q in quarantine] == [
        "truncated or corrupt compressed stream: corrupt compressed data "
        "(Error -3 while decompressing data: incorrect data check)"]


def test_garbage_from_a_damaged_start_is_called_corrupt_not_a_wrong_format(tmp_path):
    lines = [json.dumps({"asin": f"B{i:05d}", "title": f"Product {i}"}) for i in range(3000)]
    data = bytearray(gzip.compress("\n".join(lines).encode(), compresslevel=0, mtime=0))
    data[15:3001] = b"#\n" * 1493  # stored blocks: zlib decodes the junk; only the checksum fails
    path = tmp_path / "meta.json.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFormatError, match="the compressed file is corrupt .*incorrect data check"):
        records(path, "amazon2018-meta")


def test_2014_metadata_written_as_json_keeps_its_categories(tmp_path, amazon2014_dir):
    out = tmp_path / "art"
    assert main(["run", "--out", str(out), "--meta", str(amazon2014_dir / "Musical_Instruments_meta_5.json.gz"),
                 "--ratings", str(amazon2014_dir / "Musical_Instruments_5.csv.gz"),
                 "--until", "dataset"]) == 0
    ingest_report = json.loads((out / "reports" / "ingest.json").read_text())
    meta_file = str(amazon2014_dir / "Musical_Instruments_meta_5.json.gz")
    assert ingest_report["items"]["files"][meta_file]["format"] == "amazon2014-meta"
    items = pq.read_table(out / "ingest" / "items.parquet").to_pandas()
    assert items["category"].map(len).gt(0).all()  # all 900 have category paths
    assert (items["main_category"] == "Musical Instruments").mean() > 0.9  # from salesRank
    text = json.loads((out / "reports" / "text.json").read_text())
    assert text["items"] == 900 and text["empty_text"] == 0
    dataset = json.loads((out / "reports" / "dataset.json").read_text())
    assert dataset["ratings_in"] == dataset["ratings_out"] == 10_261  # none lost for lack of text


def test_the_title_is_the_last_text_fallback_and_is_reported(tmp_path):
    meta = write_lines(tmp_path / "meta.json", [
        json.dumps({"asin": "A", "title": "Fender Guitar Strings", "feature": ["??"]}),
        json.dumps({"asin": "B", "title": "", "feature": []})])
    ratings = write_lines(tmp_path / "r.json", [review("u1", "A"), review("u2", "A")])
    out = tmp_path / "art"
    assert main(["run", "--out", str(out), "--meta", str(meta), "--ratings", str(ratings),
                 "--until", "text"]) == 0
    report = json.loads((out / "reports" / "text.json").read_text())
    assert report["title_only"] == 1 and report["empty_text"] == 1


def test_a_ratings_csv_with_a_header_spaces_and_crlf_is_read(tmp_path, amazon2014_dir):
    ratings, quarantine = records(amazon2014_dir / "Musical_Instruments_5.csv.gz")
    assert detect_format(amazon2014_dir / "Musical_Instruments_5.csv.gz").name == "delimited-ratings"
    assert len(ratings) == 10_261 and quarantine.total == 0
    assert ratings[0]["item_id"].startswith(("0", "1", "B")) and " " not in ratings[0]["user_id"]
    assert all(1 <= r["rating"] <= 5 and r["timestamp"] > 10**9 for r in ratings)


def test_a_csv_in_another_column_order_without_timestamp_is_read(tmp_path):
    path = write_lines(tmp_path / "ratings.csv", ["reviewerID,asin,overall", "U1,B1,5", "U2,B1,3.0"])
    ratings, _ = records(path)
    assert ratings == [{"user_id": "U1", "item_id": "B1", "rating": 5.0, "timestamp": None},
                       {"user_id": "U2", "item_id": "B1", "rating": 3.0, "timestamp": None}]


def test_unusual_column_names_are_given_with_ratings_columns(tmp_path):
    path = write_lines(tmp_path / "ratings.tsv", ["who\twhat\tstars\twhen", "U1\tB1\t4\t2014-03-01"])
    with pytest.raises(InputFormatError):
        records(path)
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "B1", "title": "Drum"})])
    report, _, ratings, _ = run_ingest(tmp_path, [meta], [path],
                                       ratings_columns="user=who,item=what,rating=stars,timestamp=when")
    assert ratings.to_dict("records") == [{"user_id": "U1", "item_id": "B1", "rating": 4.0,
                                           "timestamp": 1393632000}]


# ------------------------------------------------------------- tracebacks and wrong data
def test_deeply_nested_json_is_quarantined(tmp_path):
    nested = '{"asin": "B2", "feature": ' + "[" * 1000 + "]" * 1000 + "}"
    path = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "B1"}), nested,
                                                json.dumps({"asin": "B3"})])
    items, quarantine = records(path, "amazon2018-meta")
    assert [i["item_id"] for i in items] == ["B1", "B3"]
    assert quarantine.total == 1


@pytest.mark.parametrize("name", [None, "amazon-reviews"])
def test_a_byte_order_mark_is_ignored(tmp_path, name):
    path = tmp_path / "reviews.json"
    path.write_bytes(b"\xef\xbb\xbf" + (review("U1", "B1") + "\n" + review("U2", "B1") + "\n").encode())
    ratings, quarantine = records(path, name)
    assert [r["user_id"] for r in ratings] == ["U1", "U2"] and quarantine.total == 0


def test_a_byte_order_mark_does_not_stick_to_the_first_csv_id(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"\xef\xbb\xbfB1,U1,5.0,1400000000\nB2,U1,4.0,1400000001\n")
    ratings, _ = records(path)
    assert ratings[0]["item_id"] == "B1"


def test_ids_that_are_not_strings_are_quarantined_and_numbers_kept_as_text(tmp_path):
    lines = [json.dumps({"asin": {"x": 1}}), json.dumps({"asin": ["B1"]}), json.dumps({"asin": True}),
             json.dumps({"asin": 1234, "title": "numeric id"}), json.dumps({"asin": "B9"})]
    items, quarantine = records(write_lines(tmp_path / "meta.json", lines), "amazon2018-meta")
    assert [i["item_id"] for i in items] == ["1234", "B9"]
    assert quarantine.counts == {"asin is not a string (got dict)": 1,
                                 "asin is not a string (got list)": 1,
                                 "asin is not a string (got bool)": 1}


def test_quoted_csv_fields_lose_their_quotes(tmp_path):
    path = write_lines(tmp_path / "ratings.csv", ['"B001BKEWF2","A1,X",5.0,1400000000'])
    (rating,), _ = records(path, "amazon2018-ratings")
    assert (rating["item_id"], rating["user_id"]) == ("B001BKEWF2", "A1,X")


def test_a_tsv_row_with_an_empty_last_column_is_kept(tmp_path):
    header = "marketplace\tcustomer_id\treview_id\tproduct_id\tstar_rating\treview_date\treview_body"
    path = write_lines(tmp_path / "reviews.tsv", [header, "US\t11\tR1\tP1\t5\t2015-08-31\t"])
    (rating,), quarantine = records(path)
    assert rating["user_id"] == "11" and quarantine.total == 0


def test_millisecond_timestamps_in_a_seconds_format_are_reported(tmp_path):
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "B1", "title": "x"})])
    ratings = write_lines(tmp_path / "ratings.csv", ["B1,U1,5.0,1400000000000", "B1,U2,4.0,1400000000"])
    report, _, kept, _ = run_ingest(tmp_path, [meta], [ratings])
    assert len(kept) == 2  # reported, not dropped
    assert report["ratings"]["files"][str(ratings)]["implausible_timestamps"] == 1
    assert "1 of 2 timestamps" in report["ratings"]["warnings"][0]


@pytest.mark.parametrize("huge", ["1e19", "9223372036854775807", "-1e300", "inf"])
def test_a_timestamp_beyond_64_bits_loses_its_record_only(tmp_path, huge):
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "B1", "title": "x"})])
    csv = write_lines(tmp_path / "ratings.csv", ["B1,U1,5.0,1400000000", f"B1,U2,4.0,{huge}", "B1,U3,3.0,"])
    reviews = write_lines(tmp_path / "reviews.json", [review("U4", "B1"), review("U5", "B1", ts=huge)])
    _, _, kept, quarantine = run_ingest(tmp_path, [meta], [csv, reviews])
    assert sorted(kept["user_id"]) == ["U1", "U3", "U4"]
    reasons = [q["reason"] for q in quarantine]
    assert len(reasons) == 2 and all(r.startswith("timestamp ") for r in reasons), reasons


def test_a_file_name_that_is_not_utf8_with_a_bad_line_keeps_every_good_record(tmp_path):
    import os

    meta = Path(os.fsdecode(bytes(tmp_path) + b"/meta_\xff.json"))
    write_lines(meta, [json.dumps({"asin": "B1", "title": "x"}), "{bad", json.dumps({"asin": "B2", "title": "y"})])
    ratings = write_lines(tmp_path / "ratings.csv", ["B1,U1,5.0,1400000000", "B2,U2,4.0,1400000000"])
    _, items, kept, quarantine = run_ingest(tmp_path, [meta], [ratings])
    assert sorted(items["item_id"]) == ["B1", "B2"] and len(kept) == 2
    assert quarantine[0]["file"].endswith("meta_\\xff.json") and quarantine[0]["line"] == 2


def _long_lines_meta(path: Path, compress: bool = False) -> Path:
    item = lambda asin, size=10: json.dumps({"asin": asin, "title": asin, "description": "word " * size})  # noqa: E731
    return write_lines(path, [item("B1"), item("B2", 600_000), item("B3"), item("B4", 100_000), "{bad",
                              item("B6"), item("B7", 700_000)], compress)


@pytest.mark.parametrize("compress", [False, True])
def test_a_line_over_the_bound_is_quarantined_and_the_rest_kept(tmp_path, compress):
    meta = _long_lines_meta(tmp_path / ("meta.json.gz" if compress else "meta.json"), compress)
    ratings = write_lines(tmp_path / "ratings.csv", [f"B{i},U1,5.0,1400000000" for i in (1, 3, 6)])
    report, items, _, quarantine = run_ingest(tmp_path, [meta], [ratings], max_line_mb=0.25)
    assert sorted(items["item_id"]) == ["B1", "B3", "B6"]
    assert [q["line"] for q in quarantine] == [2, 4, 5, 7]
    assert [q["reason"].split(" bytes")[0] for q in quarantine if q["line"] != 5] == \
        ["line of 3000048", "line of 500048", "line of 3500048"]
    assert all(len(q["raw"]) <= 2000 for q in quarantine) and quarantine[0]["raw"].startswith('{"asin": "B2"')
    assert report["quarantine"]["total"] == 4
    _, everything, _, _ = run_ingest(tmp_path, [meta], [ratings], max_line_mb=4)
    assert len(everything) == 6


def test_the_byte_range_reader_bounds_lines_as_the_stream_reader_does(tmp_path):
    from hybrid.data.io import Quarantine, iter_line_chunks, iter_range_blocks

    meta = _long_lines_meta(tmp_path / "meta.json")
    bound = 1 << 18
    whole = [line for _, block in iter_line_chunks(meta, Quarantine(None), 3, max_line_bytes=bound) for line in block]
    cuts = [0, 100, 1 << 20, 3_000_200, 3_000_300, 5 << 20, meta.stat().st_size]
    ranged = [line for start, end in zip(cuts, cuts[1:])
              for _, block in iter_range_blocks(meta, start, end, 2, bound) for line in block]
    assert [(type(l).__name__, bytes(l), getattr(l, "size", len(l))) for l in ranged] == \
        [(type(l).__name__, bytes(l), getattr(l, "size", len(l))) for l in whole]
    assert [type(l).__name__ for l in whole].count("OverlongLine") == 3


def test_second_timestamps_in_the_2023_millisecond_format_are_reported(tmp_path):
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"parent_asin": "B1", "title": "x"})])
    lines = [json.dumps({"user_id": "U1", "parent_asin": "B1", "rating": 5.0, "timestamp": 1400000000})]
    ratings = write_lines(tmp_path / "reviews.jsonl", lines)
    report, _, _, _ = run_ingest(tmp_path, [meta], [ratings])
    assert "milliseconds" in report["ratings"]["warnings"][0]


# ------------------------------------------------------------- the command line
def _amazon_args(tmp_path, amazon_dir):
    return ["--out", str(tmp_path / "art"), "--meta", str(amazon_dir / "meta_Gift_Cards.json.gz"),
            "--ratings", str(amazon_dir / "Gift_Cards_5.json.gz")]


@pytest.mark.parametrize("extra, message", [
    (["--text-fields", "tech1,nosuchfield"], "unknown text field"),
    (["--rating-range", "5", "1"], "LOW must be below HIGH"),
    (["--model", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["--model-param", "factor=8"], "--model-param: unknown key 'factor'; valid keys: blend, dropout, factors"),
    (["--train-param", "epoch=2"], "--train-param: unknown key 'epoch'; valid keys: batch_size, epoch_rows, epochs"),
    (["--baselines", "biases,nosuch"], "unknown baseline 'nosuch'"),
    (["--models", "hybrid,nosuch"], "unknown model 'nosuch'"),
    (["--ratings-columns", "usr=reviewerID"], "unknown field 'usr'"),
    (["--until", "text", "--stage", "ingest"], "not both"),
    (["--model-param", "hidden=[8"], "--model-param hidden: expected a list of positive whole numbers"),
    (["--train-param", "learning_rate=fast"], "--train-param learning_rate: expected a number"),
    (["--min-item-ratings", "0"], "--min-item-ratings must be at least 1"),
    (["--max-train-minutes", "0"], "--max-train-minutes must be positive"),
    (["--eval-users", "0"], "--eval-users must be at least 1"),
    (["--vectors-sample", "0"], "--vectors-sample must be at least 1"),
])
def test_bad_settings_are_refused_before_any_stage_runs(tmp_path, amazon_dir, capsys, extra, message):
    assert main(["run", *_amazon_args(tmp_path, amazon_dir), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "art" / "reports").exists()  # nothing ran


def test_a_directory_given_as_a_file_is_named_as_such(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    assert main(["run", "--out", str(tmp_path / "o"), "--meta", str(folder), "--ratings", str(folder)]) == 2
    assert f"{folder}: is a directory" in capsys.readouterr().err


def test_a_symbolic_link_loop_is_named_as_such(tmp_path, capsys):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for link, message in (("loop", "a symbolic link loop"), ("gone", "which does not exist")):
        assert main(["run", "--out", str(tmp_path / "art"), "--meta", str(tmp_path / link),
                     "--ratings", str(tmp_path / link)]) == 2
        assert f"{link}: " in (err := capsys.readouterr().err) and message in err, err


def test_metadata_and_ratings_without_a_common_item_stop_at_the_dataset_stage(tmp_path, amazon_dir, capsys):
    args = ["--out", str(tmp_path / "art"), "--meta", str(amazon_dir / "meta_Gift_Cards.json.gz"),
            "--ratings", str(amazon_dir / "Magazine_Subscriptions_5.json.gz")]
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert re.search(r"none of the \d+ ratings is of an item in the metadata", err)
    assert not (tmp_path / "art" / "model").exists()


def test_the_quarantine_summary_names_its_file(tmp_path, capsys):
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "B1", "title": "Cable"})])
    ratings = write_lines(tmp_path / "r.json", [review("U1", "B1"), "{broken"])
    out = tmp_path / "art"
    assert main(["run", "--out", str(out), "--meta", str(meta), "--ratings", str(ratings),
                 "--until", "ingest"]) == 0
    assert f"in {out / 'ingest' / 'quarantine.jsonl'}" in capsys.readouterr().out


def test_stale_temporary_folders_of_killed_runs_are_removed(tmp_path):
    from hybrid.pipeline.runner import Runner
    from pipelines.recommender import PipelineConfig, build

    leftover = tmp_path / ".hybrid" / "tmp" / "ingest-999999999"
    leftover.mkdir(parents=True)
    (leftover / "0-items.parquet").write_bytes(b"half")
    runner = Runner(build(PipelineConfig(out=str(tmp_path))), tmp_path, log=lambda m: None)
    assert not leftover.exists() and runner.cleaned_tmp == ["ingest-999999999"]
