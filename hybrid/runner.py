"""A make-style stage runner: stages declare inputs, outputs and parameters; the runner runs
what is stale, skips what is fresh, writes outputs atomically and reports each stage.

Freshness is decided by content, not by modification times: a stage is fresh when the hash of
its parameters, its code and the *contents* of its inputs matches the last successful run and
its outputs still hold what that run wrote. File hashes are cached by (size, mtime), so an
untouched multi-GB input is not re-read, and a touched but unchanged one is re-hashed and
found unchanged.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from .errors import StageError

STATE_DIR = ".hybrid"


@dataclass
class Stage:
    """One pipeline step: ``func(**inputs, **outputs, **params) -> report dict``.

    ``inputs`` and ``outputs`` map the function's keyword names to file paths.

    Example:
        >>> Stage("text", clean_text_step,  # doctest: +SKIP
        ...       inputs={"items_path": "artifacts/ingest/items.parquet"},
        ...       outputs={"item_text_path": "artifacts/text/item_text.parquet"},
        ...       params={"title": True})
    """

    name: str
    func: Callable[..., dict]
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if not self.outputs:
            raise StageError(f"stage {self.name!r} declares no outputs")


def file_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _code_hash(func: Callable) -> str:
    """Hash of the source of the function's module and of every module of the same package
    it uses, directly or not: changing a cleaning rule makes the text stage stale."""
    root = inspect.getmodule(func)
    if root is None:
        return hashlib.sha256(repr(func).encode()).hexdigest()[:16]
    package = root.__name__.split(".")[0]
    seen: dict[str, object] = {}
    stack = [root]
    while stack:
        module = stack.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        for value in vars(module).values():
            used = value if inspect.ismodule(value) else inspect.getmodule(value)
            if used is not None and used.__name__.split(".")[0] == package:
                stack.append(used)
    digest = hashlib.sha256()
    for name in sorted(seen):
        try:
            digest.update(inspect.getsource(seen[name]).encode())
        except (OSError, TypeError):
            digest.update(name.encode())
    return digest.hexdigest()[:16]


class PeakMemory:
    """Samples this process's resident memory in a thread; ``peak_mb`` after the block."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


class Runner:
    """Runs a list of stages in order inside ``root`` (the artifacts directory).

    Example:
        >>> runner = Runner(stages, "artifacts")  # doctest: +SKIP
        >>> runner.run()          # runs what is stale  # doctest: +SKIP
        >>> runner.status()       # {'ingest': 'fresh', 'text': 'stale: parameters changed', ...}  # doctest: +SKIP
    """

    def __init__(self, stages: list[Stage], root: str | os.PathLike, log=None):
        self.stages = stages
        self.root = Path(root)
        self.state_dir = self.root / STATE_DIR
        self.state_path = self.state_dir / "state.json"
        self.reports_dir = self.root / "reports"
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise StageError(f"duplicate stage names in {names}")
        self._state = self._load_state()

    # ------------------------------------------------------------ state
    def _load_state(self) -> dict:
        try:
            state = json.loads(self.state_path.read_text())
            if isinstance(state, dict) and "stages" in state and "files" in state:
                return state
        except (OSError, ValueError):
            pass
        return {"stages": {}, "files": {}}

    def _save_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.state_path, self._state)

    def _hash(self, path: Path) -> str:
        """Content hash, cached by path, size and mtime."""
        stat = path.stat()
        key = str(path.resolve())
        cached = self._state["files"].get(key)
        if cached and cached["size"] == stat.st_size and cached["mtime_ns"] == stat.st_mtime_ns:
            return cached["sha256"]
        digest = file_hash(path)
        self._state["files"][key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                     "sha256": digest}
        return digest

    # ------------------------------------------------------------ freshness
    def _input_files(self, stage: Stage) -> dict[str, list[Path]]:
        files = {}
        for name, value in stage.inputs.items():
            paths = value if isinstance(value, (list, tuple)) else [value]
            files[name] = [Path(p) for p in paths]
        return files

    def _fingerprint(self, stage: Stage) -> dict:
        inputs = {}
        for name, paths in self._input_files(stage).items():
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                producer = self._producer_of(missing[0])
                hint = f"; run stage {producer!r} first" if producer else ""
                raise StageError(f"stage {stage.name!r}: input {missing[0]} does not exist{hint}")
            inputs[name] = [self._hash(p) for p in paths]
        return {"params": json.loads(json.dumps(stage.params, sort_keys=True, default=str)),
                "code": _code_hash(stage.func), "inputs": inputs}

    def _producer_of(self, path: str) -> str | None:
        for stage in self.stages:
            if any(Path(p).resolve() == Path(path).resolve() for p in stage.outputs.values()):
                return stage.name
        return None

    def stage_status(self, stage: Stage) -> str:
        """'fresh', or 'stale: <why>'."""
        record = self._state["stages"].get(stage.name)
        for path in stage.outputs.values():
            if not Path(path).is_file():
                return f"stale: output {path} missing"
        if record is None:
            return "stale: never run here"
        try:
            fingerprint = self._fingerprint(stage)
        except StageError as exc:
            return f"stale: {exc}"
        for key, label in (("params", "parameters changed"), ("code", "stage code changed"),
                           ("inputs", "inputs changed")):
            if fingerprint[key] != record["fingerprint"].get(key):
                if key == "inputs":
                    changed = [k for k in fingerprint["inputs"]
                               if fingerprint["inputs"][k] != record["fingerprint"]["inputs"].get(k)]
                    label = f"input {', '.join(changed)} changed"
                return f"stale: {label}"
        for name, path in stage.outputs.items():
            if self._hash(Path(path)) != record["outputs"].get(name):
                return f"stale: output {path} was modified"
        return "fresh"

    def status(self) -> dict[str, str]:
        """Each stage's status; a stage downstream of a stale one is reported as such."""
        result: dict[str, str] = {}
        upstream_stale: set[str] = set()
        for stage in self.stages:
            status = self.stage_status(stage)
            produced_by = {self._producer_of(str(p)) for ps in self._input_files(stage).values()
                           for p in ps} - {None}
            if status == "fresh" and produced_by & upstream_stale:
                status = f"stale: upstream {', '.join(sorted(produced_by & upstream_stale))} will run"
            if status != "fresh":
                upstream_stale.add(stage.name)
            result[stage.name] = status
        self._save_state()
        return result

    # ------------------------------------------------------------ running
    def upstream(self, name: str) -> set[str]:
        """The stage and every stage whose outputs it reads, directly or not."""
        by_name = {s.name: s for s in self.stages}
        needed, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in needed:
                continue
            needed.add(current)
            for paths in self._input_files(by_name[current]).values():
                todo.extend(p for p in (self._producer_of(str(x)) for x in paths) if p)
        return needed

    def select(self, until: str | None = None, only: str | None = None,
               target: str | None = None) -> list[Stage]:
        """``until``: every stage up to and including it, in order; ``only``: that stage;
        ``target``: that stage and what it depends on."""
        names = [s.name for s in self.stages]
        for wanted in (until, only, target):
            if wanted is not None and wanted not in names:
                raise StageError(f"no stage named {wanted!r}; stages are {names}")
        if only is not None:
            return [s for s in self.stages if s.name == only]
        if target is not None:
            needed = self.upstream(target)
            return [s for s in self.stages if s.name in needed]
        if until is not None:
            return self.stages[: names.index(until) + 1]
        return list(self.stages)

    def run(self, force: bool = False, until: str | None = None, only: str | None = None,
            target: str | None = None) -> dict[str, dict]:
        """Run the selected stages that are stale (all of them with ``force``).

        Returns ``{stage: report}`` for the stages that ran; fresh stages are skipped and say so.
        """
        ran: dict[str, dict] = {}
        for stage in self.select(until, only, target):
            status = self.stage_status(stage)
            if status == "fresh" and not force:
                self.log(f"[skip] {stage.name}: fresh")
                continue
            self.log(f"[run ] {stage.name}: {'forced' if force and status == 'fresh' else status}")
            ran[stage.name] = self._run_stage(stage)
        self._save_state()
        return ran

    def _run_stage(self, stage: Stage) -> dict:
        fingerprint = self._fingerprint(stage)
        # Forget the last run first: if we die half-way the stage is stale, never "fresh".
        self._state["stages"].pop(stage.name, None)
        self._save_state()
        tmp = self.state_dir / "tmp" / f"{stage.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        temp_outputs = {name: str(tmp / f"{i}-{Path(path).name}")
                        for i, (name, path) in enumerate(stage.outputs.items())}
        inputs = {k: (list(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
                  for k, v in stage.inputs.items()}
        started = time.perf_counter()
        try:
            with PeakMemory() as memory:
                report = stage.func(**inputs, **temp_outputs, **stage.params) or {}
            for name, path in stage.outputs.items():
                if not Path(temp_outputs[name]).is_file():
                    raise StageError(f"stage {stage.name!r} did not write its output {name}")
            for name, path in stage.outputs.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp_outputs[name], path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        seconds = time.perf_counter() - started
        self._state["stages"][stage.name] = {
            "fingerprint": fingerprint,
            "outputs": {name: self._hash(Path(path)) for name, path in stage.outputs.items()},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self._save_state()
        report = {"stage": stage.name, "seconds": round(seconds, 3),
                  "peak_rss_mb": memory.peak_mb, "params": stage.params, **report}
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.reports_dir / f"{stage.name}.json", report)
        self.log(f"[done] {stage.name}: {seconds:.1f} s, peak RSS {memory.peak_mb} MB, "
                 f"{_summary(report)}")
        return report


def _summary(report: dict) -> str:
    parts = []
    for key, value in report.items():
        if key in ("stage", "seconds", "peak_rss_mb", "params"):
            continue
        if isinstance(value, dict) and isinstance(value.get("rows", value.get("total")), int):
            parts.append(f"{key}={value.get('rows', value.get('total'))}")
        elif isinstance(value, (int, float, str)):
            parts.append(f"{key}={value}")
    return ", ".join(parts[:8])


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


__all__ = ["Stage", "Runner", "PeakMemory", "file_hash"]
