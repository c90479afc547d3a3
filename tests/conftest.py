import gzip
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: A test is slow (left out of ``pytest -m "not slow"``) when it runs the pipeline on a real
#: dataset or trains on one (these fixtures), or starts Spark, a server, a browser or a notebook.
SLOW_FIXTURES = {"ml100k", "served_model", "instruments", "spark_engine", "server"}
SLOW_MODULES = {"test_pipeline.py", "test_spark.py", "test_service.py", "test_page.py", "test_notebook.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or a skip naming where it was looked for."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"real Amazon data not found at {folder} (../shared/data/{name})")
    return folder


@pytest.fixture(scope="session")
def amazon_dir() -> Path:
    """The 2018 samples (Gift Cards, Magazine Subscriptions)."""
    return shared_data("amazon")


@pytest.fixture(scope="session")
def amazon2014_dir() -> Path:
    """Musical Instruments 5-core, 2014 (ratings CSV with a header, JSON metadata)."""
    return shared_data("amazon2014")


def records(path, name=None):
    """Every record one reader yields from ``path`` (format named or detected), and the
    in-memory quarantine of what it rejected."""
    from hybrid.data.formats import detect_format, get_format
    from hybrid.data.ingest import read_records
    from hybrid.data.io import Quarantine

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
    from pipelines.recommender import prepare

    prepared = prepare(tmp_path_factory.mktemp("ml100k"))
    return prepared.data, prepared.encoder, prepared.out


@pytest.fixture(scope="session")
def served_model(ml100k, tmp_path_factory):
    """The ``recommender`` stage run through the CLI on MovieLens-100k (few epochs), copied."""
    from hybrid.cli import main

    _, _, out = ml100k
    fast = ["--recommender-param", "retrieval.epochs=4", "--recommender-param", "train.epochs=1",
            "--recommender-param", "validation_share=0"]
    assert main(["run", "--out", str(out), "--stage", "recommender", *fast]) == 0
    copy = tmp_path_factory.mktemp("served") / "recommender"
    shutil.copytree(out / "recommender", copy)
    return copy


def chromium_path() -> str | None:
    """The Chromium the browser tests drive (``HYBRID_CHROMIUM``, else the one on PATH), or None."""
    import os

    for name in (os.environ.get("HYBRID_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``hybrid serve`` in its own process on a free loopback port, with an httpx client; its
    admin token is in ``HYBRID_ADMIN_TOKEN`` and ``admin`` holds the header that sends it."""

    def __init__(self, model_dir, *extra):
        import os
        import secrets

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token = secrets.token_urlsafe()
        self.admin = {"Authorization": f"Bearer {token}"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hybrid", "serve", "--model", str(model_dir), "--port", str(self.port),
             "--log-level", "warning", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "HYBRID_ADMIN_TOKEN": token})
        import httpx

        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stdout.read()}")
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError("server did not start in 120 s")

    def stop(self) -> str:
        self.client.close()
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output
