"""Saving and loading fitted recommenders: a manifest with a kind and a format version, and
the arrays beside it. Saving writes only what is needed to answer; it draws nothing."""

from __future__ import annotations

import json
import os
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from hybrid.core.errors import HybridError, InputFormatError

MANIFEST = "manifest.json"


def write_manifest(directory: str | os.PathLike, kind: str, version: int, meta: dict) -> Path:
    """Create ``directory`` and write its manifest; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    saved_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (directory / MANIFEST).write_text(json.dumps({"kind": kind, "format_version": version, "saved_at": saved_at, **meta},
                                                 indent=2, default=float))
    return directory


@contextmanager
def reading_folder(directory: str | os.PathLike, what: str = "saved recommender"):
    """Any failure to read the files of ``directory`` inside this block (a file missing,
    truncated or not of its format) becomes one ``InputFormatError`` that names the folder."""
    try:
        yield
    except HybridError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise InputFormatError(f"{directory}: a damaged or incomplete {what} "
                               f"({type(error).__name__}: {error}); save it again") from error


def load_manifest(directory: str | os.PathLike, what: str = "recommender") -> dict:
    """The manifest in ``directory``, whatever its kind; ``InputFormatError`` naming ``what`` was
    expected when there is none or it is not a JSON object."""
    path = Path(directory) / MANIFEST
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFormatError(f"{directory}: not a saved {what} (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"{directory}: not a saved {what} ({exc})") from None
    if not isinstance(meta, dict):
        raise InputFormatError(f"{directory}: not a saved {what} ({MANIFEST} is not a JSON object)")
    return meta


def read_manifest(directory: str | os.PathLike, kind: str, version: int) -> dict:
    """The manifest of a saved ``kind`` of the given format version, or ``InputFormatError``."""
    meta = load_manifest(directory, kind)
    if meta.get("kind") != kind:
        raise InputFormatError(f"{directory}: holds a {meta.get('kind')!r}, not a {kind!r}")
    if meta.get("format_version") != version:
        raise InputFormatError(f"{directory}: saved with format {meta.get('format_version')}, "
                               f"this version reads {version}: fit and save it again with this version "
                               "(`hybrid run --out DIR` refits the pipeline's models where they are stale)")
    return meta


def _replace(path: str | os.PathLike, write) -> None:
    """Write ``path`` through a temporary file beside it, then rename it into place: a process
    that has the old file memory-mapped (``load_array``) keeps reading the old contents."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """One array as ``.npy`` (replaced atomically), for ``load_array``."""
    _replace(path, lambda handle: np.save(handle, np.asarray(array), allow_pickle=False))


def load_array(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """An array written by ``save_array``, memory-mapped read-only by default: its pages are read
    when touched, so a large table of which a request reads a few rows costs little memory. The
    mapped array comes as a plain ``ndarray`` view of the map (``np.memmap`` wraps every result
    computed from it, a few microseconds each on a request's many small operations)."""
    return np.asarray(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))


def save_table(path: str | os.PathLike, table) -> None:
    """An Arrow table as an uncompressed Arrow IPC file (replaced atomically), for ``load_table``."""
    import pyarrow as pa

    def write(handle):
        with pa.ipc.new_file(handle, table.schema) as writer:
            writer.write_table(table)
    _replace(path, write)


def load_table(path: str | os.PathLike):
    """A table written by ``save_table``, memory-mapped: its strings stay in the file's pages
    (Parquet would decode them all into memory)."""
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


_CSR_PARTS = ("data", "indices", "indptr")


def save_csr(directory: str | os.PathLike, name: str, matrix: sp.spmatrix) -> None:
    """A sparse matrix as ``name.{data,indices,indptr,shape}.npy`` in ``directory``, for ``load_csr``."""
    matrix, directory = sp.csr_matrix(matrix), Path(directory)
    for part in _CSR_PARTS:
        save_array(directory / f"{name}.{part}.npy", getattr(matrix, part))
    save_array(directory / f"{name}.shape.npy", np.asarray(matrix.shape, np.int64))


def load_csr(directory: str | os.PathLike, name: str, mmap: bool = True) -> sp.csr_matrix:
    """A matrix written by ``save_csr``, its arrays memory-mapped read-only (``load_array``)."""
    directory = Path(directory)
    shape = tuple(int(n) for n in load_array(directory / f"{name}.shape.npy", mmap=False))
    return sp.csr_matrix(tuple(load_array(directory / f"{name}.{part}.npy", mmap) for part in _CSR_PARTS),
                         shape=shape, copy=False)


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Numeric arrays in one ``.npz`` (replaced atomically), for ``load_arrays``."""
    _replace(path, lambda handle: np.savez(handle, **{name: np.asarray(a) for name, a in arrays.items()}))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays ``save_arrays`` wrote; never unpickles (an object array is refused), and a
    missing or damaged file is an ``InputFormatError`` naming it."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise InputFormatError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputFormatError(f"{path}: not readable as saved arrays ({exc})") from None


def save_bundle(path: str | os.PathLike, meta: dict, strings: dict[str, list] | None = None,
                **arrays: np.ndarray) -> None:
    """A JSON-able ``meta``, lists of strings (None allowed) and numeric arrays in one ``.npz``,
    for ``load_bundle``: no pickle, so loading a bundle runs no code whatever the file holds.

    Example:
        >>> import tempfile; path = Path(tempfile.mkdtemp()) / "b.npz"
        >>> save_bundle(path, {"dim": 2}, {"words": ["a", "b\u00e9"]}, idf=np.ones(2))
        >>> meta, strings, arrays = load_bundle(path)
        >>> meta, strings["words"], arrays["idf"].tolist()
        ({'dim': 2}, ['a', 'bé'], [1.0, 1.0])
    """
    packed = {"meta.json": np.frombuffer(json.dumps(meta, default=float).encode(), np.uint8)}
    for name, values in (strings or {}).items():
        encoded = [b"" if v is None else str(v).encode() for v in values]
        packed[f"strings.{name}.bytes"] = np.frombuffer(b"".join(encoded), np.uint8)
        packed[f"strings.{name}.ends"] = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        packed[f"strings.{name}.none"] = np.array([v is None for v in values], bool)
    save_arrays(path, **packed, **{f"array.{name}": value for name, value in arrays.items()})


def load_bundle(path: str | os.PathLike) -> tuple[dict, dict[str, list], dict[str, np.ndarray]]:
    """``(meta, strings, arrays)`` as ``save_bundle`` wrote them; a file that is not one is an
    ``InputFormatError`` naming it."""
    stored = load_arrays(path)
    try:
        meta = json.loads(stored["meta.json"].tobytes().decode())
        strings = {}
        for key in stored:
            if key.startswith("strings.") and key.endswith(".bytes"):
                name = key[len("strings."):-len(".bytes")]
                blob, ends = stored[key].tobytes(), stored[f"strings.{name}.ends"]
                starts = np.concatenate([[0], ends[:-1]])
                strings[name] = [None if none else blob[a:b].decode()
                                 for a, b, none in zip(starts, ends, stored[f"strings.{name}.none"])]
    except (KeyError, ValueError) as exc:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise InputFormatError(f"{path}: not a saved bundle ({exc})") from None
    if not isinstance(meta, dict):
        raise InputFormatError(f"{path}: not a saved bundle (its meta is not a JSON object)")
    arrays = {key[len("array."):]: value for key, value in stored.items() if key.startswith("array.")}
    return meta, strings, arrays
