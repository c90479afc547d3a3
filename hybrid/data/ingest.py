"""The ingest stage: raw files of any supported format -> canonical items and ratings tables.

Memory stays bounded whatever the input size: records stream from the files into hash
partitions spilled to Parquet, and duplicates are resolved one partition at a time.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import time
import zlib
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid.core.errors import ArgumentError, InputFormatError
from hybrid.data.formats import (
    PLAUSIBLE_TIMESTAMPS,
    BadRecord,
    Format,
    check_input_file,
    check_rating_range,
    detect_format,
    get_format,
    parse_column_names,
)
from hybrid.data.io import (
    MAX_LINE_MB,
    ParquetBatchWriter,
    Quarantine,
    compressed_damage,
    is_gzip,
    iter_line_chunks,
)
from hybrid.data.schema import ITEMS_SCHEMA, RATINGS_SCHEMA

#: How many leading lines of a file may all be rejected before the file is declared to be
#: in the wrong format (fail fast instead of quarantining a whole foreign file).
FAIL_FAST_LINES = 20
#: Files smaller than this are parsed in this process; larger ones by worker processes.
PARALLEL_MIN_BYTES = 8 * 2**20


@dataclass
class ParsedChunk:
    """The outcome of parsing one block of lines: good records and rejected lines."""

    records: list[dict]
    rejects: list[tuple[int, str, bytes]]  # (line number, reason, raw line)
    lines: int  # non-empty lines seen
    first_good: int | None = None  # line number of the first good record
    implausible_timestamps: int = 0


def parse_lines(fmt: Format, ctx: dict, first: int, lines: list[bytes]) -> ParsedChunk:
    """Decode and parse one block of raw lines (line ``first`` is ``lines[0]``).

    Pure: no files, no shared state, so blocks can be parsed in worker processes. Only the line
    end (``\r``) is stripped before parsing: an empty last field of a tab-separated line is data.
    """
    records: list[dict] = []
    rejects: list[tuple[int, str, bytes]] = []
    seen = 0
    first_good = None
    parse = fmt.parse
    encoding = fmt.encoding
    for number, raw in enumerate(lines, first):
        try:
            line = raw.decode(encoding).rstrip("\r")
        except UnicodeDecodeError as exc:
            rejects.append((number, f"undecodable bytes ({exc.reason})", raw))
            seen += 1
            continue
        except ValueError as exc:  # an OverlongLine
            rejects.append((number, str(exc), raw))
            seen += 1
            continue
        if not line or line.isspace():
            continue
        seen += 1
        try:
            records.append(parse(line, ctx))
        except BadRecord as exc:
            rejects.append((number, str(exc), raw))
            continue
        except RecursionError:
            rejects.append((number, "nested too deeply", raw))
            continue
        except (IndexError, KeyError, TypeError, AttributeError, ValueError) as exc:
            rejects.append((number, f"unparseable line ({type(exc).__name__})", raw))
            continue
        if first_good is None:
            first_good = number
    implausible = 0
    if fmt.kind == "ratings":
        low, high = PLAUSIBLE_TIMESTAMPS
        implausible = sum(1 for r in records
                          if r["timestamp"] is not None and not low <= r["timestamp"] <= high)
    return ParsedChunk(records, rejects, seen, first_good, implausible)


def _parse_to_table(fmt_name: str, ctx: dict, first: int, lines: list[bytes], schema: pa.Schema,
                    key: str, partitions: int):
    """Worker-side: parse a block and hand back Arrow columns (cheap to send between
    processes) with each record's hash partition."""
    chunk = parse_lines(get_format(fmt_name), ctx, first, lines)
    table = pa.Table.from_pylist(chunk.records, schema=schema)
    records, chunk.records = chunk.records, []  # the table carries them back
    if partitions > 1:
        parts = np.fromiter((zlib.crc32(r[key].encode("utf-8")) % partitions for r in records),
                            dtype=np.int32, count=len(records))
    else:
        parts = np.zeros(len(records), dtype=np.int32)
    return table, parts, chunk


def _header_context(path, fmt: Format, blocks: Iterator[tuple[int, list[bytes]]], ctx: dict):
    """Read a header line off the first block(s) for formats that have one."""
    for first, lines in blocks:
        for offset, raw in enumerate(lines):
            line = raw.decode(fmt.encoding, errors="replace").strip()
            if not line:
                continue
            try:
                ctx.update(fmt.header(line, ctx))
            except BadRecord as exc:
                raise InputFormatError(f"{path}: {exc}; expected {fmt.expected}") from None
            missing = [c for c in fmt.required_columns if c not in ctx["columns"]]
            if missing:
                raise InputFormatError(
                    f"{path}: header line lacks column(s) {missing}; expected {fmt.expected}")
            rest = lines[offset + 1:]
            yield first + offset + 1, rest
            yield from blocks
            return


class _FailFast:
    """Stop at once when a file is not in its format: its first ``FAIL_FAST_LINES`` non-empty
    lines, in file order, were all rejected. Bad lines after a good record never stop a run."""

    def __init__(self, path, fmt: Format):
        self.path, self.fmt = path, fmt
        self.good = 0
        self.rejected_at_start = 0

    def check(self, chunk: ParsedChunk, good: int) -> None:
        if self.good == 0:
            before_good = [r for r in chunk.rejects
                           if chunk.first_good is None or r[0] < chunk.first_good]
            self.rejected_at_start += len(before_good)
            if self.rejected_at_start >= FAIL_FAST_LINES:
                reason = before_good[-1][1]
                damage = compressed_damage(self.path)
                if damage:
                    raise InputFormatError(
                        f"{self.path}: the compressed file is corrupt ({damage}) and its first "
                        f"{FAIL_FAST_LINES} lines are unreadable (last reason: {reason})")
                raise InputFormatError(
                    f"{self.path}: the first {FAIL_FAST_LINES} lines were all rejected (last "
                    f"reason: {reason}); expected {self.fmt.name}: {self.fmt.expected}")
        self.good += good


def _count(stats: Counter, chunk: ParsedChunk, records: int) -> None:
    stats.update(lines=chunk.lines, records=records, rejected=len(chunk.rejects))
    if chunk.implausible_timestamps:
        stats.update(implausible_timestamps=chunk.implausible_timestamps)


def reading_context(fmt: Format, rating_range=None, column_names: dict | None = None,
                    max_line_mb: float = MAX_LINE_MB) -> dict:
    """What parsing one file needs besides its lines (both engines; sent to workers as JSON)."""
    if not max_line_mb > 0:
        raise ArgumentError(f"max_line_mb must be positive, got {max_line_mb}")
    return {"rating_range": tuple(rating_range or fmt.rating_range), "column_names": column_names or {},
            "max_line_bytes": int(max_line_mb * 2**20)}


def _blocks(path, fmt: Format, quarantine: Quarantine, ctx: dict, chunk_lines: int):
    blocks = iter_line_chunks(path, quarantine, chunk_lines, max_line_bytes=ctx["max_line_bytes"])
    return _header_context(path, fmt, blocks, ctx) if fmt.header is not None else blocks


def read_records(
    path: str | os.PathLike,
    fmt: Format,
    quarantine: Quarantine,
    rating_range: tuple[float, float] | None = None,
    stats: Counter | None = None,
) -> Iterator[dict]:
    """Stream canonical records from one file in this process; bad lines go to ``quarantine``.

    Example:
        >>> q = Quarantine(None)
        >>> fmt = get_format("amazon2018-ratings")
        >>> records = list(read_records("ratings.csv", fmt, q))  # doctest: +SKIP
    """
    ctx = reading_context(fmt, rating_range)
    stats = stats if stats is not None else Counter()
    fail_fast = _FailFast(path, fmt)
    for first, lines in _blocks(path, fmt, quarantine, ctx, 20_000):
        chunk = parse_lines(fmt, ctx, first, lines)
        for number, reason, raw in chunk.rejects:
            quarantine.reject(path, number, reason, raw)
        fail_fast.check(chunk, len(chunk.records))
        _count(stats, chunk, len(chunk.records))
        yield from chunk.records


class PartitionSpill:
    """Spill records to ``n`` Parquet partition files by a hash of ``key``.

    Records of one key always land in one partition, in arrival order, so each partition can
    be de-duplicated on its own.
    """

    def __init__(self, directory: Path, schema: pa.Schema, key: str, n: int,
                 buffer_rows: int = 100_000):
        self.directory = Path(directory)
        self.schema = schema
        self.key = key
        self.n = n
        rows = max(5_000, buffer_rows // n)
        self.paths = [self.directory / f"part-{i:04d}.parquet" for i in range(n)]
        # temporary files: a fast codec beats a small one
        self.writers = [ParquetBatchWriter(p, schema, rows, compression="lz4") for p in self.paths]

    def add_table(self, table: pa.Table, parts: np.ndarray) -> None:
        if self.n == 1:
            self.writers[0].append_table(table)
            return
        order = np.argsort(parts, kind="stable")  # keeps arrival order within a partition
        bounds = np.searchsorted(parts[order], np.arange(self.n + 1))
        for index in range(self.n):
            lo, hi = bounds[index], bounds[index + 1]
            if hi > lo:
                self.writers[index].append_table(table.take(pa.array(order[lo:hi])))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def partitions(self) -> Iterator[pa.Table]:
        for path in self.paths:
            yield pq.read_table(path)
            path.unlink()


def _spill_file(path, fmt: Format, ctx: dict, spill: PartitionSpill, quarantine: Quarantine,
                workers: int, chunk_lines: int = 5_000) -> Counter:
    """Parse one file into the spill: in worker processes (order kept) or in this one."""
    stats: Counter = Counter()
    fail_fast = _FailFast(path, fmt)
    blocks = _blocks(path, fmt, quarantine, ctx, chunk_lines)
    args = (spill.schema, spill.key, spill.n)

    def consume(result):
        table, parts, chunk = result
        for number, reason, raw in chunk.rejects:
            quarantine.reject(path, number, reason, raw)
        fail_fast.check(chunk, table.num_rows)
        _count(stats, chunk, table.num_rows)
        spill.add_table(table, parts)

    if workers <= 1:
        for first, lines in blocks:
            consume(_parse_to_table(fmt.name, ctx, first, lines, *args))
        return stats
    # A bounded window of blocks in flight keeps memory flat; results are taken in file order.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending: deque = deque()
        try:
            for first, lines in blocks:
                pending.append(pool.submit(_parse_to_table, fmt.name, ctx, first, lines, *args))
                if len(pending) >= 2 * workers:
                    consume(pending.popleft().result())
            while pending:
                consume(pending.popleft().result())
        finally:
            for future in pending:
                future.cancel()
    return stats


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
    """One row per item id, in the order of each item's first line; returns the table and how
    many duplicate lines were merged."""
    ids = table.column("item_id").to_pandas()
    duplicated = ids.duplicated(keep=False).to_numpy()
    if not duplicated.any():
        return table, 0
    positions = np.arange(len(ids))
    unique = table.filter(pa.array(~duplicated))
    groups: dict[str, list[dict]] = {}
    first: dict[str, int] = {}
    for position, record in zip(positions[duplicated], table.filter(pa.array(duplicated)).to_pylist()):
        groups.setdefault(record["item_id"], []).append(record)
        first.setdefault(record["item_id"], int(position))
    merged = pa.Table.from_pylist([merge_item_records(g) for g in groups.values()],
                                  schema=ITEMS_SCHEMA)
    order = np.argsort(np.concatenate([positions[~duplicated], np.fromiter(first.values(), np.int64)]),
                       kind="stable")
    return pa.concat_tables([unique, merged]).take(pa.array(order)), int(duplicated.sum()) - len(groups)


def deduplicate_ratings(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per (user, item): the latest timestamp wins, ties go to the later line; the rows
    kept stay in line order."""
    frame = table.to_pandas()
    order = frame["timestamp"].fillna(-1).to_numpy()
    frame = frame.iloc[pd.Series(order).argsort(kind="stable").to_numpy()]
    kept = frame.drop_duplicates(["user_id", "item_id"], keep="last")
    dropped = len(frame) - len(kept)
    if dropped == 0:
        return table, 0
    return pa.Table.from_pandas(kept.sort_index(), schema=RATINGS_SCHEMA, preserve_index=False), dropped


def partition_count(paths: Iterable[str | os.PathLike], partition_mb: float) -> int:
    """How many hash partitions keep each one near ``partition_mb`` of uncompressed input."""
    total = 0.0
    for path in paths:
        size = os.path.getsize(path)
        total += size * (6 if is_gzip(path) else 1)  # typical gzip ratio of these files
    return max(1, math.ceil(total / (partition_mb * 1e6)))


def _resolve(paths: list[str], formats: list[str] | None, kind: str,
             default: str | None = None) -> list[tuple[str, Format]]:
    resolved = []
    for i, path in enumerate(paths):
        check_input_file(path)
        name = formats[i] if formats and i < len(formats) and formats[i] else default
        fmt = get_format(name) if name else detect_format(path, kind)
        if fmt.kind != kind:
            raise InputFormatError(f"{path}: format {fmt.name} holds {fmt.kind}, not {kind}")
        resolved.append((str(path), fmt))
    return resolved


def _ingest_kind(sources, schema, key, dedupe, out_path, quarantine, partition_mb,
                 rating_range, report, what, workers, column_names=None, max_line_mb=MAX_LINE_MB):
    """Parse ``sources`` into hash partitions of ``key``, de-duplicate each, and write them in
    order: partition ``crc32(key) % n``, then the line of each kept record (the first line of a
    merged item) in file order. The Spark engine writes the same rows in the same order."""
    started = time.perf_counter()
    n = partition_count([p for p, _ in sources], partition_mb)
    per_file = {}
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".spill-") as spill_dir:
        spill = PartitionSpill(Path(spill_dir), schema, key, n)
        try:
            for path, fmt in sources:
                ctx = reading_context(fmt, rating_range, column_names, max_line_mb)
                parallel = workers > 1 and os.path.getsize(path) >= PARALLEL_MIN_BYTES
                stats = _spill_file(path, fmt, ctx, spill, quarantine, workers if parallel else 1)
                per_file[path] = {"format": fmt.name, **stats}
        finally:
            spill.close()
        duplicates = 0
        with ParquetBatchWriter(out_path, schema) as writer:
            for table in spill.partitions():
                table, dropped = dedupe(table)
                duplicates += dropped
                writer.write_table(table)
    report[what] = kind_report(per_file, n, writer.rows, duplicates, time.perf_counter() - started)


def kind_report(per_file: dict, partitions: int, rows: int, duplicates: int, seconds: float) -> dict:
    """The ingest report of one kind (items or ratings), whichever engine read the files."""
    records = sum(f.get("records", 0) for f in per_file.values())
    warnings = []
    for path, stats in per_file.items():
        odd = stats.get("implausible_timestamps", 0)
        if odd:
            low, high = (time.strftime("%Y-%m-%d", time.gmtime(t)) for t in PLAUSIBLE_TIMESTAMPS)
            warnings.append(
                f"{path}: {odd} of {stats['records']} timestamps fall outside {low}..{high} as "
                f"unix seconds; {stats['format']} expects "
                f"{'milliseconds' if stats['format'] == 'amazon2023-reviews' else 'seconds'}"
                " - check the file's format (--ratings-format) before a chronological split")
    report = {"files": per_file, "partitions": partitions, "rows": rows,
              "duplicates_resolved": duplicates, "seconds": round(seconds, 3),
              "records_per_second": round(records / seconds) if seconds else None}
    if warnings:
        report["warnings"] = warnings
    return report


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
    workers: int | None = None,
    ratings_columns: dict | str | None = None,
    max_line_mb: float = MAX_LINE_MB,
) -> dict:
    """Read metadata and rating files into the canonical items and ratings Parquet tables.

    Every rejected line is written with file, line number and reason to ``quarantine_out``
    (JSON lines). Large files are parsed by ``workers`` processes (default: one per CPU),
    in file order. ``ratings_columns`` names the user/item/rating/timestamp columns of
    delimited ratings files with a header (``user=reviewerID,item=asin,...``); ratings files
    without an explicit format are then read as ``delimited-ratings``. Returns the
    stage report; ``report["warnings"]`` lists implausible timestamps. A line over
    ``max_line_mb`` is quarantined without being held in memory whole.

    Example:
        >>> report = ingest(["meta.json.gz"], ["ratings.csv"], "items.parquet",
        ...                 "ratings.parquet", "quarantine.jsonl")  # doctest: +SKIP
        >>> report["items"]["rows"]  # doctest: +SKIP
    """
    column_names = parse_column_names(ratings_columns)
    check_rating_range(rating_range)
    meta_sources = _resolve(list(meta_paths), meta_formats, "items")
    # named columns mean a delimited file with a header, whatever detection would guess
    rating_sources = _resolve(list(ratings_paths), ratings_formats, "ratings",
                              "delimited-ratings" if column_names else None)
    quarantine = Quarantine(quarantine_out)
    workers = workers or os.cpu_count() or 1
    report: dict = {}
    try:
        _ingest_kind(meta_sources, ITEMS_SCHEMA, "item_id", deduplicate_items, items_out,
                     quarantine, partition_mb, rating_range, report, "items", workers, None, max_line_mb)
        _ingest_kind(rating_sources, RATINGS_SCHEMA, "user_id", deduplicate_ratings,
                     ratings_out, quarantine, partition_mb, rating_range, report, "ratings", workers,
                     column_names, max_line_mb)
    finally:
        quarantine.close()
    report["quarantine"] = {"total": quarantine.total, "by_reason": dict(quarantine.counts)}
    return report
