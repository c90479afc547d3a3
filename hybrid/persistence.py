"""Saving and loading fitted recommenders: a manifest with a kind and a format version, and
the arrays beside it. Saving writes only what is needed to answer; it draws nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import InputFormatError

MANIFEST = "manifest.json"


def write_manifest(directory: str | os.PathLike, kind: str, version: int, meta: dict) -> Path:
    """Create ``directory`` and write its manifest; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    saved_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (directory / MANIFEST).write_text(json.dumps({"kind": kind, "format_version": version, "saved_at": saved_at, **meta},
                                                 indent=2, default=float))
    return directory


def read_manifest(directory: str | os.PathLike, kind: str, version: int) -> dict:
    """The manifest of a saved ``kind`` of the given format version, or ``InputFormatError``."""
    path = Path(directory) / MANIFEST
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputFormatError(f"{directory}: not a saved {kind} ({exc})") from None
    if meta.get("kind") != kind:
        raise InputFormatError(f"{directory}: holds a {meta.get('kind')!r}, not a {kind!r}")
    if meta.get("format_version") != version:
        raise InputFormatError(f"{directory}: saved with format {meta.get('format_version')}, "
                               f"this version reads {version}")
    return meta


def save_sparse(path: str | os.PathLike, matrix: sp.spmatrix) -> None:
    sp.save_npz(path, sp.csr_matrix(matrix), compressed=False)


def load_sparse(path: str | os.PathLike) -> sp.csr_matrix:
    return sp.csr_matrix(sp.load_npz(path))


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    np.savez(path, **arrays)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}
