"""The README says what is true: its Python quickstart runs as written, and it stays short."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_starts_with_the_two_commands_and_stays_short():
    lines = README.read_text().splitlines()
    assert lines[2:6] == ["```bash", "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/hybrid run",
                          "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
                          ".venv/bin/python -m pytest -n auto --dist loadscope", "```"]
    assert len(lines) <= 200


def test_the_python_quickstart_runs_as_written(tmp_path, monkeypatch):
    section = README.read_text().split("## Python quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    rec = namespace["rec"]
    ids, scores = rec.recommend("u1", N=10)
    assert "i1" not in set(ids) and "i3" in set(ids)  # rated left out; the cold product answered
    assert (tmp_path / "models" / "rec" / "manifest.json").is_file()
