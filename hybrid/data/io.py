"""File plumbing shared by every stage: streaming line readers that survive bad bytes and
truncated gzip streams, the quarantine of rejected lines, and batched Parquet writing."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid.core.progress import Progress


def shown_path(path: str | os.PathLike) -> str:
    """A path as text any writer takes: bytes of a file name that are not UTF-8 (which Python
    keeps as lone surrogates) shown as ``\\xNN`` escapes.

    Example:
        >>> shown_path(os.fsdecode(b"meta_\\xff.json"))
        'meta_\\\\xff.json'
    """
    return os.fsencode(os.fspath(path)).decode("utf-8", errors="backslashreplace")


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name says)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path: str | os.PathLike):
    """Open a plain or gzip file for binary reading; returns (stream, raw file for tell())."""
    raw = open(path, "rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), 1 << 20), raw
    raw.seek(0)
    return raw, raw


class TruncatedStream(Exception):
    """The compressed stream ended early or is corrupt; ``tail`` is the cut-off partial data."""


UTF8_BOM = b"\xef\xbb\xbf"
#: Compressed bytes handed to zlib at a time: on corruption, what was decompressed before the
#: damaged slice is delivered, and the damaged slice is retried in halves down to single bytes.
_SLICE = 1 << 14


def _decompress_until_error(decompressor, block: bytes):
    """Decompress ``block`` up to the end of the current gzip member or the first damage.

    Returns ``(data, decompressor, rest, error)``: ``rest`` is the input after the member's
    end (another member may follow), ``error`` the zlib message when damage was found; the data
    decodable before the damaged byte is kept. zlib leaves a decompressor in an undefined state
    after an error, so each slice is tried on a copy and a failing slice again in halves.
    """
    out: list[bytes] = []
    size = _SLICE
    position = 0
    while position < len(block):
        piece = block[position: position + size]
        trial = decompressor.copy()
        try:
            data = trial.decompress(piece)
        except zlib.error as exc:
            if size > 1:
                size = max(1, size // 2)
                continue
            return b"".join(out), decompressor, b"", str(exc)
        out.append(data)
        decompressor = trial
        position += len(piece)
        if decompressor.eof:
            return b"".join(out), decompressor, decompressor.unused_data + block[position:], None
        size = _SLICE
    return b"".join(out), decompressor, b"", None


def iter_chunks(path: str | os.PathLike, size: int = 1 << 20, progress=None) -> Iterator[bytes]:
    """Decompressed chunks of a plain or gzip file (multi-member gzip included); a UTF-8
    byte-order mark at the start of the content is dropped.

    Decompression is done here with zlib rather than ``gzip.GzipFile`` so that everything
    before a truncation or corruption (a damaged block, a failed checksum) is delivered before
    ``TruncatedStream`` is raised.
    """
    head = b""  # the first bytes, held until it is known whether they are a BOM
    for data in _raw_chunks(path, size, progress):
        if head is not None:
            head += data
            if len(head) < len(UTF8_BOM):
                continue
            data = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
            head = None
        if data:
            yield data
    if head and head != UTF8_BOM[: len(head)]:  # a file shorter than a BOM
        yield head


def _raw_chunks(path, size: int, progress) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        decompressor = zlib.decompressobj(wbits=31) if compressed else None
        in_member = False  # input fed to a gzip member that has not reached its end marker
        while True:
            block = raw.read(size)
            if progress is not None:
                progress.update(len(block))
            if not block:
                break
            if decompressor is None:
                yield block
                continue
            while block:
                in_member = True
                data, decompressor, block, error = _decompress_until_error(decompressor, block)
                if data:
                    yield data
                if error is not None:
                    raise TruncatedStream(f"corrupt compressed data ({error})")
                if decompressor.eof:  # end of one gzip member; another may follow
                    decompressor, in_member = zlib.decompressobj(wbits=31), False
                    block = block.lstrip(b"\x00")  # zero padding between or after members
        if in_member:
            raise TruncatedStream("compressed stream ended before its end marker")


def compressed_damage(path: str | os.PathLike) -> str | None:
    """What is wrong with a gzip file's compressed stream (None when intact or not gzip)."""
    try:
        for _ in _raw_chunks(path, 1 << 20, None):
            pass
    except TruncatedStream as exc:
        return str(exc)
    return None


def head_lines(path: str | os.PathLike, n: int = 5, encoding: str = "utf-8") -> list[str]:
    """The first ``n`` non-empty lines, decoded leniently (for format sniffing)."""
    lines: list[str] = []
    pending = b""
    try:
        for chunk in iter_chunks(path, 1 << 16):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            lines.extend(l.decode(encoding, "replace").strip() for l in complete if l.strip())
            if len(lines) >= n:
                break
    except TruncatedStream:
        pass
    if len(lines) < n and pending.strip():
        lines.append(pending.decode(encoding, "replace").strip())
    return lines[:n]


def raw_text(raw: bytes | str) -> str:
    """A rejected line as text for the quarantine: bytes that are not UTF-8 as ``\\xNN``."""
    return bytes(raw).decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw


@dataclass
class Quarantine:
    """Collects rejected lines: counts per reason and one JSON line per rejection.

    Example:
        >>> q = Quarantine(None)
        >>> q.reject("ratings.csv", 7, "rating out of range", b"u,i,9,0")
        >>> q.counts["rating out of range"]
        1
    """

    path: str | os.PathLike | None
    raw_limit: int = 2000
    counts: Counter = field(default_factory=Counter)
    _handle: object = None

    def reject(self, file: str, line: int | None, reason: str, raw: bytes | str = b"") -> None:
        self.counts[reason] += 1
        if self.path is None:
            return
        if self._handle is None:
            self._handle = open(self.path, "ab")
        entry = {"file": shown_path(file), "line": line, "reason": reason, "raw": raw_text(raw)[: self.raw_limit]}
        self._handle.write(orjson.dumps(entry) + b"\n")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif self.path is not None and not Path(self.path).exists():
            Path(self.path).touch()  # an empty quarantine is still a declared output


MAX_LINE_MB = 64.0  # a longer line is quarantined unread: no product or rating is that long
MAX_LINE_BYTES = int(MAX_LINE_MB * 2**20)
HEAD_BYTES = 2000  # what the quarantine keeps of a line


class OverlongLine(bytes):
    """What the line readers hand on for a line over their bound: its first ``HEAD_BYTES``, whose
    ``decode`` raises ``ValueError`` naming the line's size, so the parser quarantines it in
    its place (the line numbers of the lines after it do not move)."""

    def __new__(cls, head: bytes, size: int, limit: int):
        line = super().__new__(cls, head[:HEAD_BYTES])
        line.size, line.limit = size, limit
        return line

    def __reduce__(self):  # sent to worker processes whole
        return OverlongLine, (bytes(self), self.size, self.limit)

    def decode(self, *_, **__):
        raise ValueError(f"line of {self.size} bytes, over the bound of {self.limit} (max_line_mb)")


def iter_line_chunks(
    path: str | os.PathLike,
    quarantine: Quarantine,
    chunk_lines: int = 20_000,
    progress: str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(first_line_number, raw_lines)`` blocks of a plain or gzip file, undecoded.

    A truncated or corrupt gzip stream ends the file with one quarantine entry (holding the
    cut-off partial line); every complete line before the cut is still delivered. A last line
    without a newline is a complete line. A line over ``max_line_bytes`` is never held whole:
    it comes as an ``OverlongLine`` (its head), which the parser quarantines.
    """
    bar = Progress(os.path.getsize(path), f"reading {progress or Path(path).name}", unit="B")
    number = 1  # number of the next line
    pending = b""
    overlong = None  # [head, size] of the line being skipped
    block: list[bytes] = []
    try:
        try:
            for chunk in iter_chunks(path, progress=bar):
                if overlong is not None:
                    end = chunk.find(b"\n")
                    overlong[1] += len(chunk) if end < 0 else end
                    if end < 0:
                        continue
                    block.append(OverlongLine(overlong[0], overlong[1], max_line_bytes))
                    overlong, chunk = None, chunk[end + 1:]
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                if len(pending) > max_line_bytes:
                    overlong, pending = [pending[:HEAD_BYTES], len(pending)], b""
                if max(map(len, lines), default=0) > max_line_bytes:
                    lines = [OverlongLine(line, len(line), max_line_bytes) if len(line) > max_line_bytes else line
                             for line in lines]
                block.extend(lines)
                if len(block) >= chunk_lines:
                    yield number, block
                    number += len(block)
                    block = []
        except TruncatedStream as exc:
            if block:
                yield number, block
                number += len(block)
            quarantine.reject(path, number, f"truncated or corrupt compressed stream: {exc}", pending)
            return
        if overlong is not None:
            block.append(OverlongLine(overlong[0], overlong[1], max_line_bytes))
        elif pending.strip():
            block.append(pending)
        if block:
            yield number, block
    finally:
        bar.close()


def iter_range_blocks(path: str | os.PathLike, start: int, end: int, chunk_lines: int = 20_000,
                      max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, list[bytes]]]:
    """Blocks of the lines of a plain (uncompressed) file that *begin* in bytes
    ``[start, end)``, as ``(line number within the range, counted from 1, raw lines)``.

    Consecutive ranges split a file the way Hadoop splits text: a line belongs to the range its
    first byte is in, so every line is read exactly once. The lines are those
    ``iter_line_chunks`` gives (byte-order mark dropped, a last line without a newline kept,
    an ``OverlongLine`` for a line over ``max_line_bytes``).
    """
    with open(path, "rb") as handle:
        if start > 0:
            handle.seek(start - 1)
            handle.readline()  # the line running into the range belongs to the one before
        elif handle.read(len(UTF8_BOM)) != UTF8_BOM:
            handle.seek(0)
        position = handle.tell()
        number, block = 1, []
        while position < end:
            line = handle.readline(max_line_bytes + 1)
            if not line:
                break
            position += len(line)
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                size, rest = len(line), line
                while rest and not rest.endswith(b"\n"):
                    rest = handle.readline(1 << 20)
                    position += len(rest)
                    size += len(rest)
                line = OverlongLine(line, size - rest.endswith(b"\n"), max_line_bytes)
            elif line.endswith(b"\n"):
                line = line[:-1]
            elif not line.strip():
                break
            block.append(line)
            if len(block) >= chunk_lines:
                yield number, block
                number += len(block)
                block = []
        if block:
            yield number, block


def merge_parquet_parts(parts: list[str | os.PathLike], path: str | os.PathLike,
                        schema: pa.Schema) -> int:
    """Concatenate Parquet part files (a Spark job's output), in the order given, into one file
    of ``schema``, row group by row group; returns the number of rows."""
    with ParquetBatchWriter(path, schema) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=65_536, columns=schema.names):
                writer.write_table(pa.Table.from_batches([batch]))
    return writer.rows


class ParquetBatchWriter:
    """Append records to a Parquet file in row groups of ``batch_rows``; memory stays bounded.

    Example:
        >>> with ParquetBatchWriter("out.parquet", RATINGS_SCHEMA) as w:  # doctest: +SKIP
        ...     w.append({"user_id": "u", "item_id": "i", "rating": 5.0, "timestamp": None})
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, batch_rows: int = 100_000,
                 compression: str = "zstd"):
        self.path = path
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows = 0
        self._columns: dict[str, list] = {name: [] for name in schema.names}
        self._tables: list[pa.Table] = []
        self._table_rows = 0
        self._writer = pq.ParquetWriter(path, schema, compression=compression)

    def append(self, record: dict) -> None:
        for name, values in self._columns.items():
            values.append(record[name])
        if len(self._columns[self.schema.names[0]]) >= self.batch_rows:
            self.flush()

    def write_table(self, table: pa.Table) -> None:
        """Write a whole table now (after anything appended before it)."""
        self.flush()
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema))
            self.rows += table.num_rows

    def append_table(self, table: pa.Table) -> None:
        """Buffer a table; row groups are written once ``batch_rows`` rows have gathered."""
        if table.num_rows:
            self._tables.append(table)
            self._table_rows += table.num_rows
            if self._table_rows >= self.batch_rows:
                self.flush()

    def flush(self) -> None:
        if self._tables:
            tables, self._tables, self._table_rows = self._tables, [], 0
            self._writer.write_table(pa.concat_tables(tables).combine_chunks())
            self.rows += sum(t.num_rows for t in tables)
        first = self._columns[self.schema.names[0]]
        if not first:
            return
        table = pa.table(self._columns, schema=self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows
        for values in self._columns.values():
            values.clear()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self) -> "ParquetBatchWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_parquet_batches(path: str | os.PathLike, columns: list[str] | None = None,
                         batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream a Parquet file batch by batch (never the whole table in memory)."""
    parquet = pq.ParquetFile(path)
    yield from parquet.iter_batches(batch_size=batch_rows, columns=columns)


def release_arrow_pages() -> None:
    """Give back to the system the pages Arrow's allocator keeps for reuse. After reading large
    Parquet tables into numpy arrays, Python strings or a smaller Arrow array, the tables' freed
    pages stay with the process otherwise: 160 MB after loading the encoded dataset of the
    Electronics-size run (310 MB at 2x), for the whole of a stage that then builds models."""
    pa.default_memory_pool().release_unused()
