"""The ingest stage: raw files of any supported format -> canonical items and ratings tables.

Memory stays bounded whatever the input size: records stream from the files into hash
partitions spilled to Parquet, and duplicates are resolved one partition at a time.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputFormatError
from .formats import BadRecord, Format, detect_format, get_format
from .io import ParquetBatchWriter, Quarantine, is_gzip, iter_lines
from .schema import ITEM_LIST_FIELDS, ITEM_TEXT_FIELDS, ITEMS_SCHEMA, RATINGS_SCHEMA

#: How many leading lines of a file may all be rejected before the file is declared to be
#: in the wrong format (fail fast instead of quarantining a whole foreign file).
FAIL_FAST_LINES = 20


def read_records(
    path: str | os.PathLike,
    fmt: Format,
    quarantine: Quarantine,
    rating_range: tuple[float, float] | None = None,
    stats: Counter | None = None,
) -> Iterator[dict]:
    """Stream canonical records from one file; bad lines go to ``quarantine``.

    Example:
        >>> q = Quarantine(None)
        >>> fmt = get_format("amazon2018-ratings")
        >>> records = list(read_records("ratings.csv", fmt, q))  # doctest: +SKIP
    """
    ctx: dict = {"rating_range": tuple(rating_range or fmt.rating_range)}
    stats = stats if stats is not None else Counter()
    good = 0
    rejected_at_start = 0
    for number, line in iter_lines(path, quarantine, fmt.encoding):
        stats["lines"] += 1
        if fmt.header is not None and "columns" not in ctx:
            ctx.update(fmt.header(line))
            missing = [c for c in fmt.required_columns if c not in ctx["columns"]]
            if missing:
                raise InputFormatError(
                    f"{path}: header line lacks column(s) {missing}; expected {fmt.expected}")
            continue
        try:
            record = fmt.parse(line, ctx)
        except BadRecord as exc:
            reason = str(exc)
        except (IndexError, KeyError, TypeError, AttributeError) as exc:
            reason = f"unparseable line ({type(exc).__name__})"
        else:
            good += 1
            stats["records"] += 1
            yield record
            continue
        quarantine.reject(path, number, reason, line)
        stats["rejected"] += 1
        if good == 0:
            rejected_at_start += 1
            if rejected_at_start >= FAIL_FAST_LINES:
                raise InputFormatError(
                    f"{path}: the first {FAIL_FAST_LINES} lines were all rejected (last reason: "
                    f"{reason}); expected {fmt.name}: {fmt.expected}")


class PartitionSpill:
    """Spill records to ``n`` Parquet partition files by a hash of ``key``.

    Records of one key always land in one partition, in arrival order, so each partition can
    be de-duplicated on its own.
    """

    def __init__(self, directory: Path, schema: pa.Schema, key: str, n: int,
                 buffer_rows: int = 200_000):
        self.directory = Path(directory)
        self.schema = schema
        self.key = key
        self.n = n
        rows = max(5_000, buffer_rows // n)
        self.paths = [self.directory / f"part-{i:04d}.parquet" for i in range(n)]
        self.writers = [ParquetBatchWriter(p, schema, rows) for p in self.paths]

    def add(self, record: dict) -> None:
        if self.n == 1:
            self.writers[0].append(record)
        else:
            index = zlib.crc32(record[self.key].encode("utf-8")) % self.n
            self.writers[index].append(record)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def partitions(self) -> Iterator[pa.Table]:
        for path in self.paths:
            yield pq.read_table(path)
            path.unlink()


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, list) and len(value) == 0)


def merge_item_records(records: Iterable[dict]) -> dict:
    """Merge duplicate metadata records of one item: for every field the first non-empty
    value in file order wins, so the result does not depend on anything but the input.

    Example:
        >>> merge_item_records([{"item_id": "a", "title": None, "feature": []},
        ...                     {"item_id": "a", "title": "T", "feature": ["x"]}])
        {'item_id': 'a', 'title': 'T', 'feature': ['x']}
    """
    merged: dict | None = None
    for record in records:
        if merged is None:
            merged = dict(record)
            continue
        for name, value in record.items():
            if _is_empty(merged.get(name)) and not _is_empty(value):
                merged[name] = value
    if merged is None:
        raise ValueError("no records to merge")
    return merged


def deduplicate_items(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per item id; returns the table and how many duplicate lines were merged."""
    ids = table.column("item_id").to_pandas()
    duplicated = ids.duplicated(keep=False).to_numpy()
    if not duplicated.any():
        return table, 0
    unique = table.filter(pa.array(~duplicated))
    groups: dict[str, list[dict]] = {}
    for record in table.filter(pa.array(duplicated)).to_pylist():
        groups.setdefault(record["item_id"], []).append(record)
    merged = pa.Table.from_pylist([merge_item_records(g) for g in groups.values()],
                                  schema=ITEMS_SCHEMA)
    return pa.concat_tables([unique, merged]), int(duplicated.sum()) - len(groups)


def deduplicate_ratings(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per (user, item): the latest timestamp wins, ties go to the later line."""
    frame = table.to_pandas()
    order = frame["timestamp"].fillna(-1).to_numpy()
    frame = frame.iloc[pd.Series(order).argsort(kind="stable").to_numpy()]
    kept = frame.drop_duplicates(["user_id", "item_id"], keep="last")
    dropped = len(frame) - len(kept)
    if dropped == 0:
        return table, 0
    return pa.Table.from_pandas(kept, schema=RATINGS_SCHEMA, preserve_index=False), dropped


def partition_count(paths: Iterable[str | os.PathLike], partition_mb: float) -> int:
    """How many hash partitions keep each one near ``partition_mb`` of uncompressed input."""
    total = 0.0
    for path in paths:
        size = os.path.getsize(path)
        total += size * (6 if is_gzip(path) else 1)  # typical gzip ratio of these files
    return max(1, math.ceil(total / (partition_mb * 1e6)))


def _resolve(paths: list[str], formats: list[str] | None, kind: str) -> list[tuple[str, Format]]:
    resolved = []
    for i, path in enumerate(paths):
        name = formats[i] if formats and i < len(formats) and formats[i] else None
        fmt = get_format(name) if name else detect_format(path, kind)
        if fmt.kind != kind:
            raise InputFormatError(f"{path}: format {fmt.name} holds {fmt.kind}, not {kind}")
        resolved.append((str(path), fmt))
    return resolved


def _ingest_kind(sources, schema, key, dedupe, out_path, quarantine, partition_mb,
                 rating_range, report, what):
    n = partition_count([p for p, _ in sources], partition_mb)
    per_file = {}
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".spill-") as spill_dir:
        spill = PartitionSpill(Path(spill_dir), schema, key, n)
        try:
            for path, fmt in sources:
                stats: Counter = Counter()
                for record in read_records(path, fmt, quarantine, rating_range, stats):
                    spill.add(record)
                per_file[path] = {"format": fmt.name, **stats}
        finally:
            spill.close()
        duplicates = 0
        with ParquetBatchWriter(out_path, schema) as writer:
            for table in spill.partitions():
                table, dropped = dedupe(table)
                duplicates += dropped
                writer.write_table(table)
            rows = writer.rows
    report[what] = {"files": per_file, "partitions": n, "rows": rows,
                    "duplicates_resolved": duplicates}


def ingest(
    meta_paths: list[str],
    ratings_paths: list[str],
    items_out: str | os.PathLike,
    ratings_out: str | os.PathLike,
    quarantine_out: str | os.PathLike,
    meta_formats: list[str] | None = None,
    ratings_formats: list[str] | None = None,
    rating_range: tuple[float, float] | None = None,
    partition_mb: float = 128.0,
) -> dict:
    """Read metadata and rating files into the canonical items and ratings Parquet tables.

    Every rejected line is written with file, line number and reason to ``quarantine_out``
    (JSON lines). Returns the stage report.

    Example:
        >>> report = ingest(["meta.json.gz"], ["ratings.csv"], "items.parquet",
        ...                 "ratings.parquet", "quarantine.jsonl")  # doctest: +SKIP
        >>> report["items"]["rows"]  # doctest: +SKIP
    """
    meta_sources = _resolve(list(meta_paths), meta_formats, "items")
    rating_sources = _resolve(list(ratings_paths), ratings_formats, "ratings")
    quarantine = Quarantine(quarantine_out)
    report: dict = {}
    try:
        _ingest_kind(meta_sources, ITEMS_SCHEMA, "item_id", deduplicate_items, items_out,
                     quarantine, partition_mb, rating_range, report, "items")
        _ingest_kind(rating_sources, RATINGS_SCHEMA, "user_id", deduplicate_ratings,
                     ratings_out, quarantine, partition_mb, rating_range, report, "ratings")
    finally:
        quarantine.close()
    report["quarantine"] = {"total": quarantine.total, "by_reason": dict(quarantine.counts)}
    return report
