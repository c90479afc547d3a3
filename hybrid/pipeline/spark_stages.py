"""The Spark engine: the data stages (ingest, text, dataset) as Spark jobs.

``hybrid run --engine spark`` runs these in place of the single-machine functions of
``hybrid.data.ingest`` and ``hybrid.pipeline.stages``. They write the same canonical Parquet tables, row for row
in the same order, and the same encoded dataset, so every later stage is shared. The logic is
the project's own: records are parsed by ``hybrid.data.ingest.parse_lines`` and the formats of
``hybrid.data.formats``, duplicate items merged by ``merge_item_records``, text cleaned by
``hybrid.data.text.clean_corpus`` - Spark distributes the work, it does not redo it in SQL.

What runs where:
  - the driver (this process) plans the work: it reads the first lines of every input file
    (format checks, the header of delimited files, fail-fast on a foreign file), and writes the
    final single-file outputs from the job's part files, streaming, row group by row group;
  - the executors parse byte ranges of plain files (64 MB by default; a gzip file is one task,
    as gzip cannot be split), de-duplicate, clean text, filter, count and encode.

Input files, the output folder and the temporary folder inside it must be reachable by the
driver and every executor at the same path (one machine, or a shared file system on a cluster).

Example:
    >>> configure(master="local[2]", conf={"spark.driver.memory": "4g"})  # doctest: +SKIP
    >>> report = ingest_spark(["meta.json.gz"], ["ratings.csv"], "items.parquet",
    ...                       "ratings.parquet", "quarantine.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid.core.errors import StageError
from hybrid.core.spark import session
from hybrid.data.dataset import ENCODED_RATINGS_SCHEMA, _nothing_left, catalogue_columns, save_catalogue
from hybrid.data.formats import Format, check_rating_range, get_format, parse_column_names
from hybrid.data.ids import IdMap
from hybrid.data.ingest import (
    FAIL_FAST_LINES,
    _blocks,
    _FailFast,
    _resolve,
    kind_report,
    merge_item_records,
    parse_lines,
    partition_count,
    reading_context,
)
from hybrid.data.io import (
    MAX_LINE_MB,
    UTF8_BOM,
    Quarantine,
    is_gzip,
    iter_parquet_batches,
    iter_range_blocks,
    merge_parquet_parts,
    raw_text,
)
from hybrid.data.schema import ITEM_TEXT_SCHEMA, ITEMS_SCHEMA, RATINGS_SCHEMA
from hybrid.data.text import TextConfig, clean_corpus, stop_words

#: Bytes of a plain input file per parsing task.
SPLIT_MB = 64.0


def _spark_errors(stage):
    """A failed Spark job ends the stage with a StageError naming the cause (its first lines),
    not a JVM stack trace; errors of the project's own (a file in the wrong format) pass as
    they are."""
    import functools

    @functools.wraps(stage)
    def run(*args, **kwargs):
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        try:
            return stage(*args, **kwargs)
        except (PySparkException, Py4JError) as exc:
            message = str(exc).split("JVM stacktrace:")[0]
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            # a Python worker's failure: its traceback ends with the exception itself
            cause = lines[-1] if any(line.startswith("Traceback") for line in lines) else " ".join(lines[:2])
            raise StageError(f"the Spark job of {stage.__name__} failed: {cause[:800]} "
                             "(the Spark log above has the details)") from None

    return run


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pa.schema([f.with_nullable(True) for f in schema]))


def _part_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("part-*.parquet"))


def _write_single(frame, tmp: Path, name: str, out_path, schema: pa.Schema) -> int:
    """Write a Spark DataFrame (already in output order) as the single Parquet file ``out_path``."""
    parts = tmp / name
    frame.write.mode("overwrite").parquet(str(parts))
    return merge_parquet_parts(_part_files(parts), out_path, schema)


# ---------------------------------------------------------------- ingest
_UNIT_FIELDS = [("file", pa.int32()), ("unit", pa.int32()), ("path", pa.string()),
                ("start", pa.int64()), ("end", pa.int64()), ("format", pa.string()),
                ("ctx", pa.string())]
_META_FIELDS = [("_file", pa.int32()), ("_unit", pa.int32()), ("_pos", pa.int64()),
                ("_kind", pa.int8()), ("_line", pa.int64()), ("_reason", pa.string()),
                ("_raw", pa.string()), ("_lines", pa.int64()), ("_seen", pa.int64()),
                ("_implausible", pa.int64()), ("_rejected", pa.int64())]
RECORD, REJECT, STATS = 0, 1, 2


def _start_of_file(path: str, fmt: Format, ctx: dict) -> int:
    """On the driver: fail fast on a file that is not in its format (as the single-machine
    engine does), read the header of delimited files into ``ctx``; returns the byte offset after
    the header line (0 without one) and sets ``ctx['header_line']``."""
    fail_fast = _FailFast(path, fmt)
    for first, lines in _blocks(path, fmt, Quarantine(None), ctx, 100):
        chunk = parse_lines(fmt, ctx, first, lines)
        fail_fast.check(chunk, len(chunk.records))
        if fail_fast.good or fail_fast.rejected_at_start >= FAIL_FAST_LINES:
            break
    ctx["header_line"] = 0
    if fmt.header is None or is_gzip(path):
        return 0
    with open(path, "rb") as handle:  # the header is the first non-blank line
        offset = len(UTF8_BOM) if handle.read(len(UTF8_BOM)) == UTF8_BOM else 0
        handle.seek(offset)
        for number, line in enumerate(handle, 1):
            offset += len(line)
            if line.strip():
                ctx["header_line"] = number
                return offset
    return offset


def _plan_units(file: int, path: str, fmt: Format, ctx: dict, split_bytes: int) -> list[dict]:
    start = _start_of_file(path, fmt, ctx)
    common = {"file": file, "path": path, "format": fmt.name, "ctx": json.dumps(ctx)}
    if is_gzip(path):  # not splittable: one task reads it all, as Spark's own readers do
        return [{**common, "unit": 0, "start": 0, "end": -1}]
    size = os.path.getsize(path)
    bounds = list(range(start, size, split_bytes)) + [size]
    return [{**common, "unit": i, "start": lo, "end": hi}
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))] or [
        {**common, "unit": 0, "start": start, "end": start}]


class _Rejects(Quarantine):
    """A task's quarantine for what the line reader itself rejects (a damaged gzip stream),
    kept to be sent back with the records."""

    def __init__(self):
        super().__init__(None)
        self.entries: list[tuple[int, str, bytes]] = []

    def reject(self, file, line, reason, raw=b"") -> None:
        super().reject(file, line, reason, raw)
        self.entries.append((line, reason, raw))


def _parse_units(schema: pa.Schema, batches):
    """Executor side (``mapInArrow``): parse each planned unit of a file into records, rejects
    (line numbers within the unit) and one row of counts."""
    out_schema = pa.schema(list(schema) + [pa.field(n, t) for n, t in _META_FIELDS])

    def table(columns: dict, rows: int) -> pa.RecordBatch:
        arrays = [columns.get(f.name, pa.nulls(rows, f.type)) for f in out_schema]
        return pa.RecordBatch.from_arrays([pa.array(a, f.type) if not isinstance(a, pa.Array) else a
                                           for a, f in zip(arrays, out_schema)], schema=out_schema)

    for units in batches:
        for unit in units.to_pylist():
            fmt = get_format(unit["format"])
            ctx = json.loads(unit["ctx"])
            ctx["rating_range"] = tuple(ctx["rating_range"])
            rejects = _Rejects()
            if unit["end"] < 0:
                blocks = _blocks(unit["path"], fmt, rejects, ctx, 5_000)
            else:
                blocks = iter_range_blocks(unit["path"], unit["start"], unit["end"], 5_000, ctx["max_line_bytes"])
            def rejected(entries: list) -> pa.RecordBatch:
                n = len(entries)
                return table({"_file": [unit["file"]] * n, "_unit": [unit["unit"]] * n,
                              "_kind": [REJECT] * n, "_line": [e[0] for e in entries],
                              "_reason": [e[1] for e in entries],
                              "_raw": [raw_text(e[2]) for e in entries]}, n)

            position = lines = seen = implausible = bad = 0
            for first, block in blocks:
                chunk = parse_lines(fmt, ctx, first, block)
                lines = first + len(block) - 1
                seen += chunk.lines
                implausible += chunk.implausible_timestamps
                bad += len(chunk.rejects)
                if chunk.rejects:  # sent block by block: a file of bad lines never piles up here
                    yield rejected(chunk.rejects)
                n = len(chunk.records)
                if n:
                    records = pa.Table.from_pylist(chunk.records, schema=schema)
                    columns = {name: records.column(name).combine_chunks() for name in schema.names}
                    columns.update(_file=[unit["file"]] * n, _unit=[unit["unit"]] * n,
                                   _pos=np.arange(position, position + n), _kind=[RECORD] * n)
                    position += n
                    yield table(columns, n)
            if rejects.entries:  # the reader's own: a truncated or damaged gzip stream
                yield rejected(rejects.entries)
            yield table({"_file": [unit["file"]], "_unit": [unit["unit"]], "_kind": [STATS],
                         "_pos": [position], "_lines": [lines], "_seen": [seen],
                         "_implausible": [implausible], "_rejected": [bad]}, 1)


_LINE_ORDER = ["_file", "_unit", "_pos"]


def _merge_duplicates(table: pa.Table) -> pa.Table:
    """Executor side (``applyInArrow``): one item's duplicate records merged in file order,
    placed where its first record was."""
    order = table.sort_by([(name, "ascending") for name in _LINE_ORDER])
    merged = merge_item_records(order.select(ITEMS_SCHEMA.names).to_pylist())
    first = order.slice(0, 1).select(_LINE_ORDER).to_pylist()[0]
    return pa.Table.from_pylist([{**merged, **first}], schema=_with_line_order(ITEMS_SCHEMA))


def _with_line_order(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema] + [
        pa.field(n, t) for n, t in _META_FIELDS if n in _LINE_ORDER])


def _file_counts_and_rejects(parsed, sources, units: list[dict], header_lines: dict, quarantine: Quarantine) -> dict:
    """Each file's counts from its units' statistics rows, and the rejected lines written to the
    quarantine with their line numbers in the file (each unit's first line + its own count)."""
    from pyspark.sql import functions as F

    stats = {(r["_file"], r["_unit"]): r for r in parsed.filter(F.col("_kind") == STATS).select(
        "_file", "_unit", "_pos", "_lines", "_seen", "_implausible", "_rejected").collect()}
    base: dict[tuple[int, int], int] = {}
    per_file: dict[str, dict] = {}
    for file, (path, fmt) in enumerate(sources):
        line = header_lines[file]
        counts: Counter = Counter()
        for unit in sorted(u["unit"] for u in units if u["file"] == file):
            row = stats[(file, unit)]
            base[(file, unit)] = line
            line += row["_lines"]
            counts.update(lines=row["_seen"], records=row["_pos"], rejected=row["_rejected"])
            if row["_implausible"]:
                counts.update(implausible_timestamps=row["_implausible"])
        per_file[path] = {"format": fmt.name, **counts}
    rejected = parsed.filter(F.col("_kind") == REJECT).select("_file", "_unit", "_line", "_reason", "_raw")
    for row in rejected.orderBy("_file", "_unit", "_line").toLocalIterator():
        path = sources[row["_file"]][0]
        quarantine.reject(path, base[(row["_file"], row["_unit"])] + row["_line"], row["_reason"],
                          row["_raw"] or "")
    return per_file


def _deduplicated(parsed, schema: pa.Schema, key: str):
    """The parsed records, one per key: items merged (the first non-empty value of each field,
    in file order), ratings the latest (ties to the later line)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    records = parsed.filter(F.col("_kind") == RECORD)
    names = schema.names
    if key == "item_id":
        counted = records.withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy("item_id")))
        merged = (counted.filter(F.col("_n") > 1).select(*names, *_LINE_ORDER)
                  .groupBy("item_id").applyInArrow(_merge_duplicates, _spark_schema(_with_line_order(schema))))
        return counted.filter(F.col("_n") == 1).select(*names, *_LINE_ORDER).unionByName(merged)
    latest = Window.partitionBy("user_id", "item_id").orderBy(
        F.coalesce("timestamp", F.lit(-1)).desc(), F.col("_file").desc(), F.col("_unit").desc(),
        F.col("_pos").desc())
    return records.withColumn("_r", F.row_number().over(latest)).filter(F.col("_r") == 1)


def _ingest_kind_spark(spark, sources, schema: pa.Schema, key: str, out_path, quarantine: Quarantine,
                       partition_mb: float, rating_range, column_names, tmp: Path,
                       split_bytes: int, max_line_mb: float) -> dict:
    from pyspark.sql import functions as F

    started = time.perf_counter()
    units: list[dict] = []
    header_lines: dict[int, int] = {}
    for file, (path, fmt) in enumerate(sources):
        ctx = reading_context(fmt, rating_range, column_names, max_line_mb)
        units += _plan_units(file, path, fmt, ctx, split_bytes)
        header_lines[file] = ctx["header_line"]
    unit_schema = pa.schema(_UNIT_FIELDS)
    unit_frame = spark.createDataFrame(
        spark.sparkContext.parallelize([tuple(u[n] for n, _ in _UNIT_FIELDS) for u in units],
                                       max(1, len(units))), _spark_schema(unit_schema))
    parsed_schema = pa.schema(list(schema) + [pa.field(n, t) for n, t in _META_FIELDS])
    parsed_dir = tmp / f"{key}-parsed"
    unit_frame.mapInArrow(lambda batches: _parse_units(schema, batches),
                          _spark_schema(parsed_schema)).write.mode("overwrite").parquet(str(parsed_dir))
    parsed = spark.read.parquet(str(parsed_dir))

    per_file = _file_counts_and_rejects(parsed, sources, units, header_lines, quarantine)
    kept = _deduplicated(parsed, schema, key)
    names = schema.names
    n = partition_count([p for p, _ in sources], partition_mb)
    ordered = (kept.withColumn("_part", F.crc32(F.col(key).cast("binary")) % n)
               .orderBy("_part", *_LINE_ORDER).select(*names))
    rows = _write_single(ordered, tmp, key, out_path, schema)
    shutil.rmtree(parsed_dir, ignore_errors=True)
    records_in = sum(f.get("records", 0) for f in per_file.values())
    report = kind_report(per_file, n, rows, records_in - rows, time.perf_counter() - started)
    report["engine"] = "spark"
    report["tasks"] = len(units)
    return report


@_spark_errors
def ingest_spark(meta_paths: list[str], ratings_paths: list[str], items_out, ratings_out,
                 quarantine_out, meta_formats: list[str] | None = None,
                 ratings_formats: list[str] | None = None,
                 rating_range: tuple[float, float] | None = None, partition_mb: float = 128.0,
                 ratings_columns: dict | str | None = None, split_mb: float = SPLIT_MB,
                 max_line_mb: float = MAX_LINE_MB) -> dict:
    """``hybrid.data.ingest.ingest`` as a Spark job: the same tables (same rows, same order), the
    same quarantine entries (file, line, reason, raw line) and the same report figures."""
    column_names = parse_column_names(ratings_columns)
    check_rating_range(rating_range)
    meta_sources = _resolve(list(meta_paths), meta_formats, "items")
    rating_sources = _resolve(list(ratings_paths), ratings_formats, "ratings",
                              "delimited-ratings" if column_names else None)
    spark = session()
    quarantine = Quarantine(quarantine_out)
    split_bytes = max(1 << 16, int(split_mb * 2**20))
    report: dict = {}
    try:
        with tempfile.TemporaryDirectory(dir=Path(items_out).parent, prefix=".spark-") as tmp:
            report["items"] = _ingest_kind_spark(spark, meta_sources, ITEMS_SCHEMA, "item_id", items_out,
                                                 quarantine, partition_mb, rating_range, None,
                                                 Path(tmp), split_bytes, max_line_mb)
            report["ratings"] = _ingest_kind_spark(spark, rating_sources, RATINGS_SCHEMA, "user_id",
                                                   ratings_out, quarantine, partition_mb, rating_range,
                                                   column_names, Path(tmp), split_bytes, max_line_mb)
    finally:
        quarantine.close()
    report["quarantine"] = {"total": quarantine.total, "by_reason": dict(quarantine.counts)}
    return report


# ---------------------------------------------------------------- text
def _row_group_units(spark, path, groups_per_task: int = 1):
    """A DataFrame of (unit, path, first row group, row groups): one task reads a few row groups
    of a Parquet file with pyarrow, so its rows keep their order (``unit``, position)."""
    groups = pq.ParquetFile(path).metadata.num_row_groups
    units = [(i, str(path), lo, min(groups_per_task, groups - lo))
             for i, lo in enumerate(range(0, groups, groups_per_task))]
    schema = pa.schema([("unit", pa.int32()), ("path", pa.string()), ("first", pa.int32()),
                        ("count", pa.int32())])
    return spark.createDataFrame(spark.sparkContext.parallelize(units, max(1, len(units))),
                                 _spark_schema(schema))


def _read_unit_groups(unit: dict, columns: list[str] | None = None):
    parquet = pq.ParquetFile(unit["path"])
    position = 0
    for group in range(unit["first"], unit["first"] + unit["count"]):
        table = parquet.read_row_group(group, columns=columns)
        yield position, table
        position += table.num_rows


_ORDER_FIELDS = [pa.field("_unit", pa.int32()), pa.field("_pos", pa.int64())]


def _map_row_groups(spark, path, transform, schema: pa.Schema, columns: list[str] | None = None):
    """A DataFrame of ``transform(table)`` (rows of ``schema``) over each row group of a Parquet
    file, read with pyarrow on the executors; every row carries its place in the file
    (``_unit``, ``_pos``), so that a job can write its results in the file's order."""
    rows = pa.schema([f.with_nullable(True) for f in schema])
    out = pa.schema(list(rows) + _ORDER_FIELDS)

    def run(batches):
        for units in batches:
            for unit in units.to_pylist():
                for position, table in _read_unit_groups(unit, columns):
                    result = transform(table).select(rows.names).cast(rows)
                    n = result.num_rows
                    yield from pa.Table.from_arrays(
                        result.columns + [pa.array(np.full(n, unit["unit"], np.int32)),
                                          pa.array(np.arange(position, position + n), pa.int64())],
                        schema=out).to_batches()

    return _row_group_units(spark, path).mapInArrow(run, _spark_schema(out))


def _cleaned(config: TextConfig, items: pa.Table) -> pa.Table:
    """Executor side: the text stage's rows for a table of items."""
    cleaned = list(clean_corpus(items.to_pylist(), config))
    return pa.Table.from_pylist([dict(zip(ITEM_TEXT_SCHEMA.names, row)) for row in cleaned],
                                schema=ITEM_TEXT_SCHEMA)


@_spark_errors
def clean_text_spark(items_path, item_text_path, fields=("feature", "description", "category"),
                     title: bool = False, brand: bool = False) -> dict:
    """``hybrid.pipeline.stages.clean_text_step`` as a Spark job (same rows, same order, same report)."""
    import pyarrow.compute as pc

    config = TextConfig(tuple(fields), title, brand)
    spark = session()
    frame = _map_row_groups(spark, items_path, lambda items: _cleaned(config, items), ITEM_TEXT_SCHEMA)
    with tempfile.TemporaryDirectory(dir=Path(item_text_path).parent, prefix=".spark-") as tmp:
        rows = _write_single(frame.orderBy("_unit", "_pos"), Path(tmp), "text", item_text_path,
                             ITEM_TEXT_SCHEMA)
    sources: Counter = Counter()
    for batch in pq.ParquetFile(item_text_path).iter_batches(columns=["source"]):
        for entry in pc.value_counts(batch.column(0)).to_pylist():
            sources[entry["values"]] += entry["counts"]
    return {"items": rows, "empty_text": sources.get("none", 0),
            "title_only": sources.get("title", 0), "text_source": dict(sources),
            "stop_words": stop_words()[1], "fields": list(fields), "title": title, "brand": brand,
            "engine": "spark"}


# ---------------------------------------------------------------- dataset
def _codes(spark, ids: list[str], name: str, code: str):
    """A DataFrame mapping ``ids`` (in index order) to their int32 index."""
    table = pa.table({name: pa.array(ids, pa.string()),
                      code: pa.array(np.arange(len(ids), dtype=np.int32))})
    return spark.createDataFrame(table)


def _rating_counts(path, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Ratings per user and per item of an encoded ratings file, in one streaming pass."""
    users, items = np.zeros(n_users, np.int64), np.zeros(n_items, np.int64)
    for batch in iter_parquet_batches(path, columns=["user_index", "item_index"]):
        users += np.bincount(batch.column(0).to_numpy(), minlength=n_users)
        items += np.bincount(batch.column(1).to_numpy(), minlength=n_items)
    return users, items


def _min_counts(kept, before: int, min_user_ratings: int, min_item_ratings: int, iterate: bool):
    """The ratings of users and items with at least the minimum counts (once, or until nothing
    changes: a k-core), and how many are left."""
    from pyspark.sql import functions as F

    if before and (min_user_ratings > 1 or min_item_ratings > 1):
        while True:
            users_ok = kept.groupBy("user_id").count().filter(F.col("count") >= min_user_ratings)
            items_ok = kept.groupBy("item_id").count().filter(F.col("count") >= min_item_ratings)
            new = (kept.join(users_ok.select("user_id"), "user_id", "left_semi")
                   .join(items_ok.select("item_id"), "item_id", "left_semi")).localCheckpoint()
            after = new.count()
            changed, kept, before = after != before, new, after
            if not iterate or not changed:
                break
    return kept, before


@_spark_errors
def dataset_spark(ratings_path, item_text_path, item_vectors_path, items_path,
                  out_ratings, out_users, out_items, out_vectors,
                  min_user_ratings: int = 1, min_item_ratings: int = 1, iterate: bool = False) -> dict:
    """``hybrid.pipeline.stages.dataset_step`` as a Spark job: the join with the item text, the minimum
    counts (once, or to a k-core) and the encoding run on the executors; the driver holds only
    the id lists and writes the files. Same files, same rows, same order (that of the ratings
    table)."""
    from pyspark.sql import functions as F

    spark = session()
    text = spark.read.parquet(str(item_text_path)).select(
        "item_id", (F.col("text") != "").alias("has_text"))
    ratings = _map_row_groups(spark, ratings_path, lambda table: table, RATINGS_SCHEMA, RATINGS_SCHEMA.names)
    catalogue = [r[0] for r in text.filter("has_text").select("item_id").orderBy("item_id").toLocalIterator()]
    n_text_rows = text.count()
    joined = ratings.join(text, "item_id", "left").cache()
    dropped = {row[0]: row[1] for row in joined.groupBy("has_text").count().collect()}
    ratings_in = sum(dropped.values())
    report: dict = {"ratings_in": ratings_in, "items_with_text": len(catalogue),
                    "items_without_text": n_text_rows - len(catalogue),
                    "ratings_dropped_no_metadata": dropped.get(None, 0),
                    "ratings_dropped_no_text": dropped.get(False, 0)}
    kept = joined.filter("has_text").select("user_id", "item_id", "rating", "timestamp", "_unit", "_pos")
    kept, before = _min_counts(kept, dropped.get(True, 0), min_user_ratings, min_item_ratings, iterate)
    report["ratings_dropped_min_counts"] = dropped.get(True, 0) - before
    if before == 0:
        joined.unpersist()
        raise StageError(_nothing_left(report, ratings_in, n_text_rows, min_user_ratings,
                                       min_item_ratings))
    user_ids = [r[0] for r in kept.select("user_id").distinct().orderBy("user_id").toLocalIterator()]
    users, items = IdMap(user_ids, "user"), IdMap(catalogue, "item")
    encoded = (kept.join(F.broadcast(_codes(spark, user_ids, "user_id", "user_index")), "user_id")
               .join(_codes(spark, catalogue, "item_id", "item_index"), "item_id")
               .orderBy("_unit", "_pos")  # the ratings table's order, as the local engine keeps it
               .select("user_index", "item_index", F.col("rating").cast("float"),
                       F.coalesce("timestamp", F.lit(-1)).cast("long").alias("timestamp")))
    with tempfile.TemporaryDirectory(dir=Path(out_ratings).parent, prefix=".spark-") as tmp:
        _write_single(encoded, Path(tmp), "ratings", out_ratings, ENCODED_RATINGS_SCHEMA)
    joined.unpersist()
    user_ratings, item_ratings = _rating_counts(out_ratings, len(users), len(items))
    vectors, known, titles = catalogue_columns(
        pa.array(catalogue, pa.string()), pq.read_table(item_vectors_path),
        pq.read_table(items_path, columns=["item_id", "title"]))
    save_catalogue(users, user_ratings, items, item_ratings, titles,
                   known, vectors, out_users, out_items, out_vectors)
    report.update(ratings_out=before, users=len(users), items=len(items),
                  rated_items=int((item_ratings > 0).sum()), cold_items=int((item_ratings == 0).sum()),
                  items_without_known_words=int((~known).sum()),
                  min_user_ratings=min_user_ratings, min_item_ratings=min_item_ratings,
                  iterate=iterate, engine="spark")
    return report


# ---------------------------------------------------------------- vectors
@_spark_errors
def vectors_spark(item_text_path, item_vectors_path, encoder_path, method: str = "word2vec",
                  pretrained: str | None = "glove-6b-50d", dim: int | None = None, epochs: int = 5,
                  min_count: int = 2, window: int = 5, seed: int = 42, workers: int | None = None,
                  deterministic: bool | None = None, fit_documents: int | None = None) -> dict:
    """``hybrid.pipeline.stages.vectors_step`` with the encoding on the executors: the encoder is fitted
    on the driver, streaming the corpus (or the seeded sample of ``fit_documents`` products,
    ``hybrid.content.encoding.corpus_sample``) as the single-machine stage does (memory grows with the
    vocabulary, not the corpus), then shipped to the executors (Spark broadcasts it)."""
    from pyspark.sql import functions as F

    from hybrid.content.encoding import encode_vectors, fit_text_encoder, vectors_report
    from hybrid.data.schema import item_vectors_schema

    encoder, in_pretrained = fit_text_encoder(item_text_path, method, pretrained, dim, epochs,
                                              min_count, window, seed, workers, deterministic,
                                              fit_documents)
    spark = session()
    schema = item_vectors_schema(encoder.dim)
    # Spark has no fixed-size lists: a list on the executors, fixed again when merged
    rows = pa.schema([schema.field("item_id"), pa.field("vector", pa.list_(pa.float32())),
                      schema.field("known"), pa.field("pretrained", pa.bool_())])
    frame = _map_row_groups(spark, item_text_path, lambda texts: encode_vectors(encoder, in_pretrained, texts),
                            rows, ["item_id", "text"])
    with tempfile.TemporaryDirectory(dir=Path(item_vectors_path).parent, prefix=".spark-") as tmp:
        parts = Path(tmp) / "vectors"
        frame.orderBy("_unit", "_pos").write.parquet(str(parts))
        totals = spark.read.parquet(str(parts)).agg(
            F.count(F.lit(1)), F.sum(F.col("known").cast("long")),
            F.sum(F.col("pretrained").cast("long"))).first()
        merge_parquet_parts(_part_files(parts), item_vectors_path, schema)
    encoder.save(encoder_path)
    counts = Counter(products=totals[0], with_known=totals[1] or 0, with_pretrained=totals[2] or 0)
    return {**vectors_report(encoder, in_pretrained, counts), "engine": "spark"}
