"""The Dockerfile: the image builds, and serves a model folder mounted read-only. Needs a Docker
daemon (skipped, saying why, without one)."""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _docker_missing() -> str | None:
    """Why Docker cannot be used here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker daemon did not answer in 20 s"
    if done.returncode != 0:
        return f"no Docker daemon to talk to ({(done.stderr.strip().splitlines() or ['docker info failed'])[-1]})"
    return None


WHY = _docker_missing()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY is not None, reason=WHY or "")]


def test_the_image_serves_a_read_only_model_folder(served_model):
    import httpx

    from tests.conftest import free_port

    tag = f"hybrid-test:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "--quiet", "-t", tag, str(ROOT)], check=True, timeout=1800,
                   capture_output=True)
    port, name = free_port(), f"hybrid-test-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(["docker", "run", "--detach", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8000",
                        "-v", f"{served_model}:/model:ro", tag], check=True, timeout=120, capture_output=True)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if client.get("/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        answer = client.get("/api/users/196/recommendations", params={"n": 5})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 5
        assert client.post("/api/admin/reload").status_code == 403  # no admin token given: off
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, timeout=60)
