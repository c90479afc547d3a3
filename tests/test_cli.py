"""The command line's own manners: a version, help when nothing is asked, read-only commands
that write nothing."""

import pytest

import hybrid
from hybrid.cli import main


def test_version_names_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"hybrid {hybrid.__version__}"


def test_bare_hybrid_prints_help_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: hybrid") and "hybrid run" in shown and "serve" in shown
    assert list(tmp_path.iterdir()) == []


def test_status_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--out", str(tmp_path / "out")]) == 0
    assert "ingest     stale: output" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_tensorflow_starts_without_its_log_lines():
    import subprocess
    import sys

    code = ("import hybrid.models.keras, tensorflow as tf, warnings; print(float(tf.constant(2.0) * 2)); "
            "warnings.warn('a warning a user can act on')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "4.0", done.stderr
    assert "a warning a user can act on" in done.stderr
    assert not [line for line in done.stderr.splitlines()
                if "absl" in line or "oneDNN" in line or "cpu_feature_guard" in line], done.stderr


def test_run_and_status_print_json_a_program_can_read(tmp_path, amazon_dir):
    """With --json the standard output is one JSON document: what the stages print goes to
    standard error."""
    import json
    import subprocess
    import sys

    out = tmp_path / "art"
    data = ["--out", str(out), "--meta", str(amazon_dir / "meta_Gift_Cards.json.gz"),
            "--ratings", str(amazon_dir / "Gift_Cards_5.json.gz")]

    def hybrid(*argv):
        done = subprocess.run([sys.executable, "-m", "hybrid", *argv], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), done.stderr

    summary, log = hybrid("run", *data, "--until", "text", "--json")
    assert summary["ran"] == ["ingest", "text"] and summary["next"] == {"settings": str(out / "settings.toml")}
    assert "[done] text" in log
    status, _ = hybrid("status", *data, "--json")
    assert status["text"] == "fresh" and status["vectors"].startswith("stale: output")
    assert list(status) == ["ingest", "text", "vectors", "dataset", "train", "recommender", "evaluate"]
