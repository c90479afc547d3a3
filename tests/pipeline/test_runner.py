"""Staleness, skipping and atomic outputs of the stage runner."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hybrid.core.errors import StageError
from hybrid.pipeline.runner import Runner, Stage

CALLS: list[str] = []


def upper(source, target, suffix="!"):
    CALLS.append("upper")
    Path(target).write_text(Path(source).read_text().upper() + suffix)
    return {"chars": len(Path(source).read_text())}


def count(source, target):
    CALLS.append("count")
    Path(target).write_text(str(len(Path(source).read_text())))
    return {}


def half_then_fail(source, target):
    with open(target, "w") as handle:
        handle.write("half")
    raise RuntimeError("disk on fire")


def pipeline(tmp_path, suffix="!", first=upper):
    raw = tmp_path / "raw.txt"
    return Runner([
        Stage("upper", first, {"source": str(raw)}, {"target": str(tmp_path / "a" / "up.txt")},
              {"suffix": suffix} if first is upper else {}),
        Stage("count", count, {"source": str(tmp_path / "a" / "up.txt")},
              {"target": str(tmp_path / "b" / "n.txt")}),
    ], tmp_path, log=lambda m: None)


@pytest.fixture
def raw(tmp_path):
    CALLS.clear()
    path = tmp_path / "raw.txt"
    path.write_text("hello")
    return path


def save_folder(source, folder, copies=2):
    """A stage whose output is a folder (as a saved model is)."""
    CALLS.append("folder")
    Path(folder).mkdir()
    for k in range(copies):
        (Path(folder) / f"part{k}.txt").write_text(Path(source).read_text() * (k + 1))
    return {}


def test_a_folder_output_is_hashed_replaced_whole_and_checked(tmp_path, raw):
    def runner(copies):
        return Runner([Stage("save", save_folder, {"source": str(raw)}, {"folder": str(tmp_path / "model")},
                             {"copies": copies})], tmp_path, log=lambda m: None)

    assert list(runner(3).run()) == ["save"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["part0.txt", "part1.txt", "part2.txt"]
    assert runner(3).run() == {} and runner(3).status() == {"save": "fresh"}
    (tmp_path / "model" / "part1.txt").write_text("edited")
    assert runner(3).status()["save"] == "stale: output " + str(tmp_path / "model") + " was modified"
    assert list(runner(2).run()) == ["save"]  # the old folder is replaced whole: no part2 left behind
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["part0.txt", "part1.txt"]
    assert (tmp_path / "model" / "part1.txt").read_text() == "hellohello"
    assert not list((tmp_path / ".hybrid").rglob("old-model"))  # the replaced folder is gone


def test_first_run_runs_everything_and_writes_reports(tmp_path, raw):
    ran = pipeline(tmp_path).run()
    assert list(ran) == ["upper", "count"] and CALLS == ["upper", "count"]
    assert (tmp_path / "b" / "n.txt").read_text() == "6"
    report = (tmp_path / "reports" / "upper.json").read_text()
    assert '"chars": 5' in report and '"peak_rss_mb"' in report and '"seconds"' in report


def test_second_run_does_no_work(tmp_path, raw):
    pipeline(tmp_path).run()
    CALLS.clear()
    assert pipeline(tmp_path).run() == {} and CALLS == []
    assert pipeline(tmp_path).status() == {"upper": "fresh", "count": "fresh"}


def test_touching_an_input_without_changing_it_is_not_a_change(tmp_path, raw):
    pipeline(tmp_path).run()
    CALLS.clear()
    later = time.time() + 100
    os.utime(raw, (later, later))
    assert pipeline(tmp_path).run() == {} and CALLS == []


def test_changed_content_reruns_the_stage_and_what_depends_on_it(tmp_path, raw):
    pipeline(tmp_path).run()
    CALLS.clear()
    raw.write_text("hello world")
    assert pipeline(tmp_path).status()["upper"] == "stale: input source changed"
    pipeline(tmp_path).run()
    assert CALLS == ["upper", "count"]


def test_changed_parameter_reruns_only_as_far_as_outputs_change(tmp_path, raw):
    pipeline(tmp_path).run()
    CALLS.clear()
    runner = pipeline(tmp_path, suffix="?")
    assert runner.status() == {"upper": "stale: parameters changed",
                               "count": "stale: upstream upper will run"}
    runner.run()
    # 'HELLO?' has the same length as 'HELLO!', but it is a different file: count re-runs
    assert CALLS == ["upper", "count"]


def test_deleted_or_edited_output_makes_the_stage_stale(tmp_path, raw):
    pipeline(tmp_path).run()
    (tmp_path / "b" / "n.txt").unlink()
    assert pipeline(tmp_path).status()["count"].startswith("stale: output")
    pipeline(tmp_path).run()
    (tmp_path / "a" / "up.txt").write_text("tampered")
    assert pipeline(tmp_path).status()["upper"] == f"stale: output {tmp_path / 'a' / 'up.txt'} was modified"


def test_force_until_and_single_stage(tmp_path, raw):
    pipeline(tmp_path).run(until="upper")
    assert CALLS == ["upper"] and not (tmp_path / "b" / "n.txt").exists()
    pipeline(tmp_path).run(only="count")
    pipeline(tmp_path).run(force=True, only="upper")
    assert CALLS == ["upper", "count", "upper"]
    with pytest.raises(StageError, match="no stage named 'nope'"):
        pipeline(tmp_path).run(only="nope")


def test_missing_input_names_the_stage_that_makes_it(tmp_path, raw):
    with pytest.raises(StageError, match="run stage 'upper' first"):
        pipeline(tmp_path).run(only="count")


def test_a_failing_stage_leaves_no_output_and_is_redone(tmp_path, raw):
    with pytest.raises(RuntimeError, match="disk on fire"):
        pipeline(tmp_path, first=half_then_fail).run()
    assert not (tmp_path / "a" / "up.txt").exists()
    assert not list((tmp_path / ".hybrid" / "tmp").glob("*"))
    assert pipeline(tmp_path).run().keys() == {"upper", "count"}


def disk_full(source, target):
    with open(target, "w") as handle:
        handle.write("half")
    raise OSError(28, "No space left on device")  # as Arrow raises it: no file named


def test_a_full_disk_names_the_stage_and_where_it_writes(tmp_path, raw):
    with pytest.raises(StageError, match=r"stage 'upper': No space left on device \(it writes its outputs under "
                                         + str(tmp_path / ".hybrid" / "tmp")):
        pipeline(tmp_path, first=disk_full).run()
    assert not (tmp_path / "a" / "up.txt").exists()


KILLED_STAGE = """
import sys, time
from pathlib import Path
from hybrid.pipeline.runner import Runner, Stage

def slow(source, target, version):
    with open(target, "w") as handle:
        handle.write("partial")
        handle.flush()
        if version == 2:
            Path(sys.argv[2]).write_text("started")
            time.sleep(60)
        handle.write(" done")

root = Path(sys.argv[1])
Runner([Stage("slow", slow, {"source": str(root / "raw.txt")},
              {"target": str(root / "out.txt")}, {"version": int(sys.argv[3])})], root).run()
"""


def test_a_stage_killed_half_way_is_stale_not_fresh(tmp_path, raw):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(KILLED_STAGE))
    flag = tmp_path / "started.flag"
    subprocess.run([sys.executable, str(script), str(tmp_path), str(flag), "1"], check=True,
                   capture_output=True)
    assert (tmp_path / "out.txt").read_text() == "partial done"
    job = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(flag), "2"],
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    # the old output is untouched, and the runner knows it is not the output of version 2
    assert (tmp_path / "out.txt").read_text() == "partial done"
    status = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_STAGE).replace(".run()", ".status()")
         .replace("Runner(", "print(Runner(") + ")", str(tmp_path), str(flag), "2"],
        capture_output=True, text=True, check=True).stdout
    assert "stale" in status and "fresh" not in status


OWN_PROCESS_STAGE = """
import os, sys, time
from pathlib import Path
from hybrid.pipeline.runner import Runner, Stage

def slow(target, flag):
    Path(flag).write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    root = Path(sys.argv[1])
    Runner([Stage("slow", slow, outputs={"target": str(root / "out.txt")}, params={"flag": sys.argv[2]},
                  own_process=True)], root).run()
"""


def test_a_killed_run_takes_its_stage_process_with_it(tmp_path):
    import psutil

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(OWN_PROCESS_STAGE))
    flag = tmp_path / "stage.pid"
    job = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(flag)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    stage = psutil.Process(int(flag.read_text()))
    job.send_signal(signal.SIGKILL)
    job.wait()
    try:
        stage.wait(timeout=20)  # gone with the run, not left holding its memory
    except psutil.TimeoutExpired:
        stage.kill()
        raise AssertionError("the stage's process outlived the run") from None


def test_a_second_run_on_the_same_folder_stops_naming_the_first(tmp_path, raw, capsys):
    first = pipeline(tmp_path)
    with first.lock():
        with pytest.raises(StageError, match=rf"another run is using this folder \(pid {os.getpid()}\)"):
            pipeline(tmp_path).run()
        from hybrid.cli import main

        assert main(["run", "--out", str(tmp_path), "--until", "fetch"]) == 2
        assert "another run is using this folder" in capsys.readouterr().err
    assert pipeline(tmp_path).run().keys() == {"upper", "count"}  # free again once it ends


def test_an_output_folder_the_system_refuses_is_one_line(tmp_path, capsys):
    from hybrid.cli import main, os_error

    (tmp_path / "a-file").write_text("")
    assert main(["run", "--out", str(tmp_path / "a-file" / "out"), "--until", "fetch"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"hybrid: error: {tmp_path / 'a-file' / 'out' / '.hybrid'}: Not a directory", err
    assert os_error(OSError(28, "No space left on device", "/srv/out/x.parquet")) == \
        "/srv/out/x.parquet: No space left on device"


# ---------------------------------------------------------------- code freshness, for real
def _copy_of_the_package(tmp_path) -> Path:
    import shutil

    root = Path(__file__).resolve().parents[2]
    copy = tmp_path / "pkg"
    for name in ("hybrid", "pipelines"):
        shutil.copytree(root / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _hybrid(copy: Path, *args) -> str:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = subprocess.run([sys.executable, "-m", "hybrid", *args], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _edit(path: Path, old: str, new: str) -> str:
    source = path.read_text()
    assert old in source, f"{old!r} not in {path}"
    path.write_text(source.replace(old, new, 1))
    return source


@pytest.mark.slow  # runs the pipeline to the train stage in a copy of the package, five times
def test_editing_code_makes_exactly_the_stages_that_run_it_stale(tmp_path):
    """Regression: the code hash used to see module-level names only, so an edit of a module
    imported inside a stage function (models, training, metrics) left train "fresh", while an
    edit of the evaluate stage re-ran text, vectors and dataset."""
    import json as _json

    copy = _copy_of_the_package(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    where = subprocess.run([sys.executable, "-c", "import hybrid; print(hybrid.__file__)"],
                           cwd=copy, env=env, capture_output=True, text=True).stdout
    assert where.startswith(str(copy))  # the copy is what runs
    meta = tmp_path / "meta.json"
    meta.write_text("".join(_json.dumps({"asin": f"B{i}", "title": f"cable mouse {i % 5}",
                                         "feature": [f"usb cable {i % 3}", "wireless mouse"]}) + "\n"
                            for i in range(30)))
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("".join(f"B{(u * 7 + k) % 30},U{u},{1 + (u + k) % 5}.0,{1400000000 + k}\n"
                               for u in range(40) for k in range(6)))
    args = ["--out", str(tmp_path / "art"), "--meta", str(meta), "--ratings", str(ratings),
            "--pretrained", "none", "--dim", "8", "--epochs", "1",
            "--train-param", "epochs=1", "--model-param", "factors=4"]
    _hybrid(copy, "run", *args, "--until", "train")

    def stale() -> set[str]:
        lines = _hybrid(copy, "status", *args).splitlines()
        return {line.split()[0] for line in lines if "stale" in line} - {"recommender", "evaluate"}  # not run

    assert stale() == set()
    steps = copy / "hybrid" / "pipeline" / "stages.py"
    original = _edit(steps, "    data = load_dataset(_dataset_dir(dataset_ratings))\n    rec = ",
                     "    data = load_dataset(_dataset_dir(dataset_ratings))  # edited\n    rec = ")
    assert stale() == set()  # a comment is not a code change
    _edit(steps, "    rec = HybridRecommender(model,", "    data = data\n    rec = HybridRecommender(model,")
    assert stale() == {"train"}  # the train stage function itself
    steps.write_text(original)
    assert stale() == set()
    training = copy / "hybrid" / "models" / "keras" / "training.py"
    original = _edit(training, "def validation_split(", "EDITED = 1\n\n\ndef validation_split(")
    assert stale() == set()  # a new, unused definition runs nowhere
    _edit(training, "    return held_out(n, share if n > 10 else 0.0, seed)",
          "    return held_out(n, share if n > 10 else 0.0, seed + 0)")
    assert stale() == {"train"}  # imported inside train_step only
    training.write_text(original)
    _edit(copy / "hybrid" / "data" / "text.py", "    return [t for t in _WORDS.findall(text) if t not in stop]",
          "    return [t for t in _WORDS.findall(text) if t not in stop and t]")
    # tokenize cleans product text (and what follows it goes stale with it); ingest never calls it
    assert stale() == {"text", "vectors", "dataset", "train"}


def _stage_with_a_child(out):
    """A stage whose work happens in a child process holding ~300 MB (as Spark's JVM or
    ingest's workers do)."""
    code = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.0)"
    subprocess.run([sys.executable, "-c", code], check=True)
    Path(out).write_text("done")
    return {}


def test_stage_reports_count_the_memory_of_child_processes(tmp_path):
    runner = Runner([Stage("child", _stage_with_a_child, outputs={"out": str(tmp_path / "out.txt")})], tmp_path,
                    log=lambda m: None)
    report = runner.run()["child"]
    assert report["peak_tree_rss_mb"] >= report["peak_rss_mb"] + 250, report


def hold_memory_and_write_pid(target, mb=300, bad=False):
    """A stage that fills ``mb`` MB, writes its process id, and raises a user's error when ``bad``."""
    from hybrid.core.errors import ArgumentError

    held = bytearray(mb * 2**20)
    held[:: 4096] = b"x" * len(held[:: 4096])  # touch every page: resident, not just reserved
    if bad:
        raise ArgumentError("--n must be at least 1, got 0")
    Path(target).write_text(str(os.getpid()))
    return {"held_mb": len(held) // 2**20}


def test_a_short_peak_inside_one_c_call_is_not_missed():
    """A stage's peak filled and freed within one call that holds the GIL (the sampling thread
    cannot run meanwhile) still shows in ``peak_mb``, where the kernel keeps the high-water mark."""
    from hybrid.pipeline.runner import PeakMemory, _reset_peak_rss

    if not _reset_peak_rss():
        pytest.skip("no resettable peak RSS here (not Linux)")
    with PeakMemory(interval=10.0) as memory:  # the thread samples once, at the start
        held = bytearray(200 * 2**20)
        held[:: 4096] = b"x" * len(held[:: 4096])
        del held
    assert memory.peak_mb >= 200 and memory.tree_peak_mb >= memory.peak_mb
    with PeakMemory(interval=10.0) as quiet:  # the mark was reset: the last peak is not this one's
        pass
    assert quiet.peak_mb < memory.peak_mb - 150


def die(target):
    os._exit(9)  # as the kernel's out-of-memory killer would end it: no exception, no answer


def test_a_stage_can_run_in_a_process_of_its_own(tmp_path):
    """``own_process``: the stage runs in a fresh process (what it held is gone when it ends, and
    this process never holds it), its peak memory is that process's, and a user's error it
    raises reaches the caller as the same error, message and all."""
    import psutil

    target = tmp_path / "pid.txt"
    stage = Stage("hold", hold_memory_and_write_pid, outputs={"target": str(target)}, own_process=True)
    before = psutil.Process().memory_info().rss
    report = Runner([stage], tmp_path / "art").run()["hold"]
    assert int(target.read_text()) != os.getpid()
    assert report["own_process"] and report["held_mb"] == 300
    assert report["peak_rss_mb"] >= 300  # the stage's process, holding the 300 MB
    assert psutil.Process().memory_info().rss - before < 100 * 2**20  # never held here

    bad = Stage("hold", hold_memory_and_write_pid, outputs={"target": str(tmp_path / "bad.txt")},
                params={"bad": True}, own_process=True)
    from hybrid.core.errors import ArgumentError

    with pytest.raises(ArgumentError, match="--n must be at least 1, got 0"):
        Runner([bad], tmp_path / "art2").run()
    assert not (tmp_path / "bad.txt").exists()

    # processes=False (a debugger's run): the same stage in this process
    in_here = Stage("hold", hold_memory_and_write_pid, outputs={"target": str(tmp_path / "here.txt")},
                    params={"mb": 10}, own_process=True)
    report = Runner([in_here], tmp_path / "art3", processes=False).run()["hold"]
    assert int((tmp_path / "here.txt").read_text()) == os.getpid() and not report["own_process"]

    killed = Stage("hold", die, outputs={"target": str(tmp_path / "dead.txt")}, own_process=True)
    with pytest.raises(StageError, match="its process ended without finishing"):
        Runner([killed], tmp_path / "art4").run()
