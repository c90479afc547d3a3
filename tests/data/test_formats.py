"""Every reader on a hand-written fixture of its format, plus detection."""

import json

import pytest
from conftest import records, write_lines

from hybrid.core.errors import InputFormatError
from hybrid.data.formats import detect_format


def test_amazon2018_meta_keeps_text_fields_separate(tmp_path):
    line = json.dumps({"asin": "B1", "title": "Cam &amp; Lens", "brand": "Acme",
                       "feature": ["Zoom", ""], "description": ["<p>Nice</p>"],
                       "category": ["Electronics", "Camera"], "main_cat": "Camera & Photo"})
    path = write_lines(tmp_path / "meta.json.gz", [line], compress=True)
    (item,), q = records(path)
    assert detect_format(path).name == "amazon2018-meta"
    assert item == {"item_id": "B1", "title": "Cam & Lens", "brand": "Acme",
                    "main_category": "Camera & Photo", "feature": ["Zoom"],
                    "description": ["<p>Nice</p>"], "category": ["Electronics", "Camera"], "details": []}


def test_amazon_meta_details_keep_what_describes_the_product(tmp_path):
    """Attributes become "name: value" texts; identifiers, shipping facts and nested objects do not."""
    details = {"\n    Publisher: \n    ": "Conde Nast", "Format:": "Print Magazine", "ASIN:": "B00005N7P0",
               "Shipping Weight:": "3 ounces", "Item model number:": "GC-100", "Language": ["English", "French"],
               "Best Sellers Rank": {"Magazines": 3}, "UPC:": "0123", "Empty": ""}
    lines = [json.dumps({"asin": "M1", "title": "Vogue", "details": details}),
             json.dumps({"asin": "M2", "title": "Wired", "details": "not an object"})]
    items, q = records(write_lines(tmp_path / "meta.json", lines), "amazon2018-meta")
    assert items[0]["details"] == ["Publisher: Conde Nast", "Format: Print Magazine", "Language: English French"]
    assert items[1]["details"] == ["not an object"]
    assert q.counts == {}
    line = json.dumps({"parent_asin": "P1", "title": "Socks",
                       "details": {"Material": "Merino wool", "Package Dimensions": "4 x 2 inches"}})
    (item,), _ = records(write_lines(tmp_path / "meta_2023.jsonl", [line]), "amazon2023-meta")
    assert item["details"] == ["Material: Merino wool"]


def test_amazon2014_meta_is_parsed_as_literal_never_evaluated(tmp_path):
    good = "{'asin': 'X1', 'title': \"Kid's Toy\", 'categories': [['Toys', 'Blocks']], 'description': 'Wood'}"
    evil = "{'asin': __import__('os').system('echo pwned')}"
    path = write_lines(tmp_path / "meta.json", [good, evil])
    (item,), q = records(path, "amazon2014-meta")
    assert item["title"] == "Kid's Toy"
    assert item["category"] == ["Toys", "Blocks"]
    assert item["description"] == ["Wood"]
    assert q.counts == {"malformed dict literal": 1}
    assert detect_format(path).name == "amazon2014-meta"


def test_amazon2023_meta(tmp_path):
    line = json.dumps({"parent_asin": "P1", "title": "Socks", "features": ["wool"],
                       "description": [], "categories": ["Clothing"], "store": "Shop",
                       "main_category": "Fashion", "details": {"a": 1}})
    path = write_lines(tmp_path / "meta_2023.jsonl", [line])
    (item,), _ = records(path)
    assert detect_format(path).name == "amazon2023-meta"
    assert (item["item_id"], item["brand"], item["feature"], item["category"], item["details"]) == \
        ("P1", "Shop", ["wool"], ["Clothing"], ["a: 1"])


def test_amazon2018_ratings_csv(tmp_path):
    path = write_lines(tmp_path / "Electronics.csv", ["0132793040,AKM1MP6P0OYPR,5.0,1365811200"])
    (r,), _ = records(path)
    assert detect_format(path).name == "amazon2018-ratings"
    assert r == {"user_id": "AKM1MP6P0OYPR", "item_id": "0132793040", "rating": 5.0,
                 "timestamp": 1365811200}


def test_amazon_5core_reviews(tmp_path):
    line = json.dumps({"reviewerID": "U1", "asin": "A1", "overall": 4.0, "unixReviewTime": 100,
                       "reviewText": "ok"})
    path = write_lines(tmp_path / "reviews_5.json", [line])
    (r,), _ = records(path)
    assert detect_format(path).name == "amazon-reviews"
    assert (r["user_id"], r["item_id"], r["rating"], r["timestamp"]) == ("U1", "A1", 4.0, 100)


def test_amazon2023_reviews_convert_milliseconds(tmp_path):
    line = json.dumps({"user_id": "U", "parent_asin": "P", "asin": "C", "rating": 3.0,
                       "timestamp": 1588687728923})
    path = write_lines(tmp_path / "reviews.jsonl", [line])
    (r,), _ = records(path)
    assert detect_format(path).name == "amazon2023-reviews"
    assert (r["item_id"], r["timestamp"]) == ("P", 1588687728)


def test_amazon_customer_reviews_tsv(tmp_path):
    header = "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\tproduct_title\tstar_rating\treview_date"
    row = "US\t123\tR1\tB00X\t9\tA cable\t4\t2015-08-31"
    path = write_lines(tmp_path / "amazon_reviews_us_Electronics_v1_00.tsv.gz", [header, row],
                       compress=True)
    (r,), _ = records(path)
    assert detect_format(path).name == "amazon-tsv"
    assert r == {"user_id": "123", "item_id": "B00X", "rating": 4.0, "timestamp": 1440979200}


def test_movielens_100k_files(tmp_path):
    data = write_lines(tmp_path / "u.data", ["196\t242\t3\t881250949"])
    flags = ["0"] * 19
    flags[3] = flags[5] = "1"  # Animation, Comedy
    item = b"1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(flags).encode()
    items = write_lines(tmp_path / "u.item", [item.replace(b"Toy", b"T\xf6y")])  # latin-1
    (r,), _ = records(data)
    (movie,), q = records(items)
    assert r["rating"] == 3.0 and r["user_id"] == "196"
    assert movie["title"] == "Töy Story (1995)"
    assert movie["category"] == ["Animation", "Comedy"]
    assert q.total == 0


def test_movielens_latest_csv_with_quoted_titles(tmp_path):
    movies = write_lines(tmp_path / "movies.csv", [
        "movieId,title,genres", '11,"American President, The (1995)",Comedy|Drama|Romance',
        "999,Unknown (2000),(no genres listed)"])
    ratings = write_lines(tmp_path / "ratings.csv", ["userId,movieId,rating,timestamp",
                                                     "1,11,4.5,964982703"])
    items, _ = records(movies)
    (r,), _ = records(ratings)
    assert items[0]["title"] == "American President, The (1995)"
    assert items[0]["category"] == ["Comedy", "Drama", "Romance"]
    assert items[1]["category"] == []
    assert r["rating"] == 4.5


def test_recbole_atomic_files(tmp_path):
    inter = write_lines(tmp_path / "ml-100k.inter", [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float", "196\t242\t3\t881250949"])
    item = write_lines(tmp_path / "ml-100k.item", [
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
        "1\tToy Story\t1995\tAnimation Children's Comedy"])
    (r,), _ = records(inter)
    (m,), _ = records(item)
    assert (r["user_id"], r["item_id"], r["timestamp"]) == ("196", "242", 881250949)
    assert m["title"] == "Toy Story" and m["category"] == ["Animation", "Children's", "Comedy"]


def test_unrecognised_file_fails_fast_naming_the_file(tmp_path):
    path = write_lines(tmp_path / "notes.txt", ["hello world", "nothing to see"])
    with pytest.raises(InputFormatError, match="notes.txt.*not a recognised"):
        detect_format(path)


def test_items_file_given_as_ratings_is_refused(tmp_path):
    path = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "B1", "title": "t"})])
    with pytest.raises(InputFormatError, match="given as ratings"):
        detect_format(path, "ratings")


def test_declared_format_that_does_not_match_fails_fast(tmp_path):
    path = write_lines(tmp_path / "ratings.csv", [f"i{n},u{n},5,0" for n in range(50)])
    with pytest.raises(InputFormatError, match="ratings.csv.*first 20 lines"):
        records(path, "amazon2018-meta")
