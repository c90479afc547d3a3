"""A run's settings in a TOML file (``--config``): the same run as its flags, flags winning over
it, every value checked before anything runs, and the settings each run saves."""

import json
import shutil
from pathlib import Path

import pytest

from hybrid.cli import STAGES, _config, main
from hybrid.cli.settings import read

FLAGS = ["--min-user-ratings", "3", "--min-item-ratings", "2", "--kcore", "--no-title", "--brand",
         "--vector-method", "tfidf", "--dim", "16", "--rating-range", "1", "5", "--text-fields", "description,category",
         "--model-param", "factors=16", "--model-param", "hidden=[32,16]", "--train-param", "epochs=2",
         "--recommender-param", "retrieval.epochs=3", "--recommender-param", "candidates=50",
         "--max-train-minutes", "5", "--split", "chronological", "--k", "5", "--baselines", "ease,popularity"]

TOML = """
min-user-ratings = 3
min_item_ratings = 2          # either spelling of a key
kcore = true
title = false
brand = true
vector-method = "tfidf"
dim = 16
rating-range = [1, 5]
text-fields = "description,category"
max-train-minutes = 5
split = "chronological"
k = 5
baselines = "ease,popularity"

[model-param]
factors = 16
hidden = [32, 16]

[train-param]
epochs = 2

[recommender-param]
retrieval.epochs = 3
candidates = 50
"""


def effective(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["config", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_config_file_gives_the_same_settings_and_stages_as_its_flags(tmp_path, capsys, monkeypatch):
    from pipelines.recommender import build

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(TOML)
    by_flags, by_file = effective(capsys, *FLAGS), effective(capsys, "--config", "run.toml")
    assert by_flags == by_file
    assert by_file["recommender-param"] == {"retrieval.epochs": 3, "candidates": 50}
    assert by_file["model-param"] == {"factors": 16, "hidden": [32, 16]}

    def stages(argv):  # what the runner fingerprints: every stage's inputs, outputs and parameters
        import argparse

        from hybrid.cli import _pipeline_args, setting_names
        from hybrid.cli import settings as cli_settings

        parser = argparse.ArgumentParser()
        _pipeline_args(parser)
        parser.add_argument("--config")
        args = parser.parse_args(argv)
        if args.config:
            cli_settings.apply(args, parser, argv, setting_names(), args.config)
        return [(s.name, s.inputs, s.outputs, s.params) for s in build(_config(args))]

    assert stages(FLAGS) == stages(["--config", "run.toml"])
    assert not (tmp_path / "artifacts").exists()  # config writes nothing


def test_flags_win_over_the_file_a_list_whole_a_key_value_per_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(TOML)
    values = effective(capsys, "--config", "run.toml", "--k", "20", "--seed", "7",
                       "--recommender-param", "candidates=80", "--baselines", "random")
    assert (values["k"], values["seed"], values["baselines"]) == (20, 7, "random")
    assert values["recommender-param"] == {"retrieval.epochs": 3, "candidates": 80}
    assert values["min-user-ratings"] == 3  # what the flags leave alone comes from the file
    assert effective(capsys)["k"] == 10  # and without a file, from the defaults


@pytest.mark.parametrize("text, says", [
    ("modle = 'mf'", "unknown key 'modle'; the keys are baselines"),
    ("force = true", "'force' (it is not a setting of the run: give it as a flag)"),
    ("k = '10'", "k must be a whole number, got '10'"),
    ("k = 2.5", "k must be a whole number, got 2.5"),
    ("kcore = 1", "kcore must be true or false, got 1"),
    ("model = 'svd'", "unknown model 'svd'; choose one of mf, mf-bias"),
    ("split = 'time'", "split: 'time' is not one of random, stratified"),
    ("rating-range = [1]", "rating-range must be a list of 2 values"),
    ("k = ", "not TOML (Invalid value (at line 1"),
    ("[model-param]\nfactorz = 3", "--model-param: unknown key 'factorz'"),
    ("min-user-ratings = 0", "--min-user-ratings must be at least 1"),
])
def test_a_bad_setting_is_one_error_naming_it_before_anything_runs(tmp_path, capsys, text, says):
    config = tmp_path / "run.toml"
    config.write_text(text + "\n")
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


def test_a_missing_or_unreadable_config_file_is_named(tmp_path, capsys):
    assert main(["config", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: cannot read it (No such file or directory)" in capsys.readouterr().err
    (tmp_path / "bytes.toml").write_bytes(b"k = '\xff'\n")
    assert main(["config", "--config", str(tmp_path / "bytes.toml")]) == 2
    assert "bytes.toml: not TOML" in capsys.readouterr().err


def test_the_help_names_the_stages_and_baselines_there_are():
    from hybrid.cli import BASELINES
    from hybrid.models.registry import BASELINES as registered
    from pipelines.recommender import PipelineConfig, build

    assert list(STAGES) == [s.name for s in build(PipelineConfig())]
    assert sorted(BASELINES) == sorted(registered)


def test_help_shows_defaults_and_valid_keys(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out OUT output directory (default: artifacts)" in text
    assert "(default: 0.2)" in text and "one of fetch, ingest, text, vectors" in text
    assert "keys: factors, hidden, dropout" in text  # --model-param's valid keys


@pytest.mark.slow
def test_a_config_file_reproduces_a_flag_run_byte_for_byte(tmp_path, amazon_dir, capsys, monkeypatch):
    """The data stages' files are identical; every stage, the model ones too, is fresh for the
    other (same inputs and parameters); the saved settings rerun it."""
    monkeypatch.chdir(tmp_path)
    data = ["--meta", str(amazon_dir / "meta_Gift_Cards.json.gz"), "--ratings", str(amazon_dir / "Gift_Cards_5.json.gz")]
    flags = [*data, "--min-user-ratings", "2", "--vector-method", "word2vec-tfidf", "--epochs", "2",
             "--recommender-param", "retrieval.epochs=2"]
    assert main(["run", *flags, "--until", "dataset"]) == 0
    saved = read("artifacts/settings.toml")
    assert saved["min-user-ratings"] == 2 and saved["recommender-param"] == {"retrieval.epochs": 2}
    shutil.move("artifacts", "by-flags")
    (tmp_path / "run.toml").write_text(
        f"meta = [{json.dumps(data[1])}]\nratings = [{json.dumps(data[3])}]\nmin-user-ratings = 2\n"
        "vector-method = 'word2vec-tfidf'\nepochs = 2\n[recommender-param]\nretrieval.epochs = 2\n")
    assert main(["run", "--config", "run.toml", "--until", "dataset"]) == 0

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(Path(root).rglob("*"))
                if p.is_file() and p.relative_to(root).parts[0] not in ("reports", ".hybrid")}

    by_flags, by_file = files("by-flags"), files("artifacts")
    assert by_flags.keys() == by_file.keys() and len(by_file) >= 10
    assert [name for name in by_file if by_file[name] != by_flags[name]] == []
    capsys.readouterr()
    # the saved settings are the whole run: the flag run's folder is fresh for them, every stage
    shutil.rmtree("artifacts")
    shutil.move("by-flags", "artifacts")
    assert main(["status", "--config", "artifacts/settings.toml", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert all(status[s] == "fresh" for s in STAGES[1:5]), status
    assert main(["status", "--config", "run.toml", "--json", "--epochs", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["vectors"] == "stale: parameters changed"
