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
