"""Property: for any mix of good records and bad lines, in any reader, every good record comes
out exactly once and in order, and every bad line is quarantined with its file and line number.

Files are plain or gzip, with or without a UTF-8 byte-order mark; good records use ids with
quotes, commas and non-ASCII letters where the format allows them."""

import csv
import gzip
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid.data.formats import FORMATS, ML100K_GENRES
from hybrid.data.ingest import read_records
from hybrid.data.io import Quarantine

SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
NESTED = "[" * 1000 + "]" * 1000


def _csv_line(values, sep=","):
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=sep, lineterminator="").writerow(values)
    return buffer.getvalue()


def _json(obj):
    return json.dumps(obj, ensure_ascii=False)


# Each reader: a header (or None), how a good record is written, what it must come out as,
# and lines that must be rejected. ``ids`` are the characters ids may use in that format.
def _ratings(write, header=None, ids=SAFE, bad=()):
    return {"header": header, "write": write, "key": lambda r: (r["user_id"], r["item_id"], r["rating"]),
            "expect": lambda g: (g["user"], g["item"], g["rating"]), "ids": ids, "bad": list(bad)}


def _items(write, header=None, ids=SAFE, bad=(), encoding="utf-8"):
    return {"header": header, "write": write, "key": lambda r: r["item_id"],
            "expect": lambda g: g["item"], "ids": ids, "bad": list(bad), "encoding": encoding}


JSON_BAD = ["{broken", "[1, 2, 3]", "null", b'{"x": "\xff\xfe"}']
CSV_BAD = ["only,two", b"B\xff,U\xfe,5,1", '"unterminated,quote,5,1']
READERS = {
    "amazon2018-meta": _items(lambda g: _json({"asin": g["item"], "title": "T", "feature": ["a"]}),
                              ids=SAFE + "\"',é ", bad=JSON_BAD + [
                                  '{"asin": {"x": 1}}', '{"asin": true}', '{"title": "no id"}',
                                  '{"asin": "B", "feature": ' + NESTED + "}"]),
    "amazon2014-meta": _items(lambda g: repr({"asin": g["item"], "categories": [["Music", "Strings"]]}),
                              ids=SAFE + "\"' é", bad=[
                                  "{'asin': __import__('os')}", "{'asin'", "[1, 2]",
                                  "{'asin': 'B', 'categories': " + NESTED + "}", b"{'asin': '\xff'}"]),
    "amazon2023-meta": _items(lambda g: _json({"parent_asin": g["item"], "features": ["x"]}),
                              ids=SAFE + "\"',é", bad=JSON_BAD + ['{"parent_asin": ["B1"]}']),
    "amazon-reviews": _ratings(lambda g: _json({"reviewerID": g["user"], "asin": g["item"],
                                                "overall": g["rating"], "unixReviewTime": 1400000000}),
                               ids=SAFE + "\"',é", bad=JSON_BAD + [
                                   '{"reviewerID": "U", "asin": "A", "overall": 9}',
                                   '{"reviewerID": "U", "asin": "A", "overall": true}',
                                   '{"reviewerID": 1.5, "asin": "A", "overall": 3}',
                                   '{"reviewerID": "U", "asin": "A", "overall": ' + NESTED + "}"]),
    "amazon2023-reviews": _ratings(lambda g: _json({"user_id": g["user"], "parent_asin": g["item"],
                                                    "rating": g["rating"], "timestamp": 1.4e12}),
                                   ids=SAFE + "\"',é", bad=JSON_BAD + ['{"user_id": "U", "rating": 3}']),
    "amazon2018-ratings": _ratings(lambda g: _csv_line([g["item"], g["user"], g["rating"], 1400000000]),
                                   ids=SAFE + '",é ', bad=CSV_BAD + ["B1,U1,nine,1", "B1,U1,9.0,1"]),
    "delimited-ratings": _ratings(lambda g: _csv_line([g["item"], g["user"], g["rating"], 1400000000]),
                                  header="asin, reviewerID, overall, unixReviewTime",
                                  ids=SAFE + '",é ', bad=CSV_BAD + ["B1,U1,0.0,1"]),
    "amazon-tsv": _ratings(lambda g: "\t".join(["US", g["user"], "R", g["item"], str(int(g["rating"])),
                                                "2015-08-31", ""]),
                           header="marketplace\tcustomer_id\treview_id\tproduct_id\tstar_rating\treview_date\treview_body",
                           ids=SAFE + "\"',é ", bad=["US\tU\tR", "US\tU\tR\tP\t7\t2015-08-31\t", b"US\t\xff"]),
    "movielens-100k-ratings": _ratings(lambda g: f"{g['user']}\t{g['item']}\t{g['rating']}\t881250949",
                                       bad=["1\t2\t3", "1\t2\tx\t4", b"\xff\t2\t3\t4"]),
    "movielens-ratings": _ratings(lambda g: _csv_line([g["user"], g["item"], g["rating"], 964982703]),
                                  header="userId,movieId,rating,timestamp", ids=SAFE + '",',
                                  bad=["1,2", "1,2,7.5,3"]),
    "recbole-ratings": _ratings(lambda g: f"{g['user']}\t{g['item']}\t{g['rating']}\t881250949",
                                header="user_id:token\titem_id:token\trating:float\ttimestamp:float",
                                bad=["1\t2", "1\t2\tbad\t3"]),
    "movielens-100k-items": _items(lambda g: "|".join([g["item"], "Film (1995)", "01-Jan-1995", "", "url"]
                                                      + ["0"] * len(ML100K_GENRES)),
                                   ids=SAFE + " é", bad=["1|only|three", "2|too|few|fields"],
                                   encoding="latin-1"),
    "movielens-items": _items(lambda g: _csv_line([g["item"], "Film, The (1995)", "Comedy|Drama"]),
                              header="movieId,title,genres", ids=SAFE + '",é', bad=["1,two", "1,a,b,c"]),
    "recbole-items": _items(lambda g: f"{g['item']}\tFilm\t1995\tComedy Drama",
                            header="item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
                            bad=["\tno id\t1995\tx"]),
}


def test_every_reader_is_covered():
    assert set(READERS) == set(FORMATS)


@st.composite
def a_file(draw, name):
    spec = READERS[name]
    ident = st.text(alphabet=spec["ids"], min_size=1, max_size=12).map(str.strip).filter(bool)
    good = st.fixed_dictionaries({"user": ident, "item": ident,
                                  "rating": st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0])})
    # the first line is good: a file whose first 20 lines are all bad is (rightly) refused
    entries = [("good", draw(good))] + draw(st.lists(
        st.one_of(good.map(lambda g: ("good", g)), st.sampled_from(spec["bad"]).map(lambda b: ("bad", b))),
        max_size=40))
    return entries, draw(st.booleans()), draw(st.booleans())


def _write(path: Path, spec, entries, bom: bool, compress: bool) -> list[int]:
    encoding = spec.get("encoding", "utf-8")
    lines, bad_numbers = [], []
    if spec["header"] is not None:
        lines.append(spec["header"].encode())
    for kind, value in entries:
        raw = value if isinstance(value, bytes) else (spec["write"](value) if kind == "good" else value)
        lines.append(raw if isinstance(raw, bytes) else raw.encode(encoding))
        if kind == "bad":
            bad_numbers.append(len(lines))
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\r\n".join(lines) + b"\r\n"
    path.write_bytes(gzip.compress(data) if compress else data)
    return bad_numbers


def _check(name, tmp_path_factory, drawn):
    spec = READERS[name]
    entries, bom, compress = drawn
    if spec.get("encoding") == "latin-1":
        bom = False  # a UTF-8 mark means nothing in a latin-1 file
    path = tmp_path_factory.mktemp(name) / ("data.gz" if compress else "data")
    bad_numbers = _write(path, spec, entries, bom, compress)
    quarantine = Quarantine(path.with_suffix(".quarantine"))
    records = list(read_records(path, FORMATS[name], quarantine))
    quarantine.close()
    expected = [spec["expect"](value) for kind, value in entries if kind == "good"]
    assert [spec["key"](r) for r in records] == expected
    logged = [json.loads(l) for l in path.with_suffix(".quarantine").read_text().splitlines()]
    assert [q["line"] for q in logged] == bad_numbers
    assert all(q["file"] == str(path) for q in logged)


def _property(name):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
    @given(drawn=a_file(name))
    def test(tmp_path_factory, drawn):
        _check(name, tmp_path_factory, drawn)

    test.__name__ = f"test_{name.replace('-', '_')}_keeps_every_good_record_and_quarantines_every_bad_line"
    return test


for _name in READERS:
    _test = _property(_name)
    globals()[_test.__name__] = _test
