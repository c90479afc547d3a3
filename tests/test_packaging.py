"""The distribution: the sdist and the wheel build (``python -m build``), and the wheel, installed
into a fresh environment, answers from its own files."""

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(*command, cwd):
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """``python -m build`` on a copy of the source: an sdist, and a wheel built from that sdist."""
    pytest.importorskip("build", reason="the test extra's `build` is not installed")
    source = tmp_path_factory.mktemp("source") / "hybrid"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "artifacts", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the backend (setuptools, from the test extra) is this environment's, so the
    # build fetches nothing
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source, cwd=source)
    return out


def test_the_wheel_holds_the_package_its_data_and_licence(dist):
    wheel, = dist.glob("hybrid_recsys-*-py3-none-any.whl")
    assert len(list(dist.glob("hybrid_recsys-*.tar.gz"))) == 1
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("hybrid/__init__.py", "hybrid/py.typed", "hybrid/serving/web/index.html",
                 "hybrid/cli/settings.py", "pipelines/recommender.py"):
        assert name in names
    assert not any(n.startswith(("tests/", "benchmarks/", "notebooks/")) for n in names)
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "Name: hybrid-recsys" in metadata and "License-Expression: MIT" in metadata
    assert "Provides-Extra: spark" in metadata and "Provides-Extra: test" in metadata
    entry = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "hybrid = hybrid.cli:main" in entry


def test_the_installed_wheel_answers_from_a_fresh_environment(dist, tmp_path):
    wheel, = dist.glob("hybrid_recsys-*-py3-none-any.whl")
    env = tmp_path / "env"
    run(sys.executable, "-m", "venv", "--without-pip", env, cwd=tmp_path)
    python = env / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel,
        cwd=tmp_path)
    # the dependencies are this environment's (a .pth line adds its site-packages after the new
    # environment's own), so the test installs nothing from the network; hybrid itself is the wheel's
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = run(python, "-c", "import hybrid, pipelines; print(hybrid.__file__); print(pipelines.__file__)", cwd=tmp_path)
    assert all(Path(line).is_relative_to(env) for line in where.split()), where

    assert run(env / "bin" / "hybrid", "--version", cwd=tmp_path).strip() == "hybrid 0.1.0"
    run(python, "-c", textwrap.dedent("""
        import pandas as pd
        import hybrid
        ratings = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["i1", "i2", "i2", "i3", "i1"],
                                "rating": [5, 3, 4, 5, 4]})
        items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "title": ["Cable", "Mouse", "Keyboard", "Hub"],
                              "text": ["usb c charging cable", "quiet wireless mouse", "mechanical keyboard", "usb hub"]})
        hybrid.TwoStageRecommender().fit(ratings, items).save("model")
    """), cwd=tmp_path)
    answer = json.loads(run(env / "bin" / "hybrid", "recommend", "--model-dir", "model", "--user", "u1", "--json",
                            cwd=tmp_path))
    assert {a["item_id"] for a in answer} == {"i3", "i4"}  # what u1 has not rated, the cold hub included
