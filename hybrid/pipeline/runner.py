"""A make-style stage runner: stages declare inputs, outputs and parameters; the runner runs
what is stale, skips what is fresh, writes outputs atomically and reports each stage.

Freshness is decided by content, not by modification times: a stage is fresh when the hash of
its parameters, its code and the *contents* of its inputs matches the last successful run and
its outputs still hold what that run wrote. File hashes are cached by (size, mtime), so an
untouched multi-GB input is not re-read, and a touched but unchanged one is re-hashed and
found unchanged.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
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

from hybrid.core.errors import StageError

STATE_DIR = ".hybrid"


@dataclass
class Stage:
    """One pipeline step: ``func(**inputs, **outputs, **params) -> report dict``.

    ``inputs`` and ``outputs`` map the function's keyword names to file paths. ``own_process``:
    the runner calls ``func`` in a fresh Python process of its own (``func`` and the arguments
    must pickle: a module-level function), so that everything the stage held, TensorFlow's
    runtime included, goes back to the system when it ends and the next stage starts from an
    empty process, as ``make`` runs each recipe; its errors reach the caller as raised.

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
    own_process: bool = False

    def __post_init__(self):
        if not self.outputs:
            raise StageError(f"stage {self.name!r} declares no outputs")


def file_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _ModuleIndex:
    """A module's top-level statements by the name they define, and its imports.

    Statements that define no single name (``if``/``try`` blocks, calls such as
    ``REGISTRY.update(...)``) are the module's *glue*: part of every closure that touches it.
    """

    def __init__(self, name: str, source: str, is_package: bool):
        self.name = name
        self.package = name if is_package else name.rpartition(".")[0]
        try:
            tree = ast.parse(source)
        except SyntaxError:
            tree = ast.Module(body=[], type_ignores=[])
        self.defs: dict[str, list[ast.AST]] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}
        self.glue: list[ast.AST] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports.update(self.resolve_import(node))
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
                for name in names:
                    self.defs.setdefault(name, []).append(node)
                if not names:
                    self.glue.append(node)
            elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                self.glue.append(node)  # docstrings are not code

    def resolve_import(self, node) -> dict[str, tuple[str, str | None]]:
        """local name -> (module, attribute or None for the module itself)."""
        out = {}
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    out[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".")[0]
                    out[top] = (top, None)
            return out
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(p for p in parts + ([node.module] if node.module else []) if p)
        for alias in node.names:
            out[alias.asname or alias.name] = (base, alias.name)
        return out


_PARSED: dict[tuple, _ModuleIndex] = {}  # parsed modules by (name, file, size, mtime)


def _closure(index_of, module_name: str, name: str) -> set[str]:
    """Every top-level definition (as a syntax dump) that ``name`` of ``module_name`` reaches,
    through names, imports (also inside function bodies) and whole modules."""
    parts: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [(module_name, name)]
    while todo:
        module_name, symbol = todo.pop()
        if (module_name, symbol) in seen:
            continue
        seen.add((module_name, symbol))
        index = index_of(module_name)
        if index is None:
            continue
        if symbol == "*module*":  # a module used as a whole (``from . import x``; ``x.f``)
            todo.extend((module_name, n) for n in index.defs)
            continue
        if symbol in index.imports:
            target, attribute = index.imports[symbol]
            todo.append((target, attribute or "*module*"))
            continue
        nodes = index.defs.get(symbol)
        if nodes is None:
            if index.package == module_name:  # a package: the name may be a submodule
                submodule = f"{module_name}.{symbol}"
                if index_of(submodule) is not None:
                    todo.append((submodule, "*module*"))
            continue
        if ("glue", module_name) not in seen:
            seen.add(("glue", module_name))
            nodes = nodes + index.glue
        for node in nodes:
            parts.add(f"{module_name}:{ast.dump(node)}")
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name):
                    todo.append((module_name, inner.id))
                elif isinstance(inner, (ast.Import, ast.ImportFrom)):  # imports inside functions
                    for target, attribute in index.resolve_import(inner).values():
                        todo.append((target, attribute or "*module*"))
    return parts


def _code_hash(func: Callable) -> str:
    """Hash of exactly the code a stage runs: the stage function's definition and, transitively,
    every top-level definition of the same package it refers to - functions, classes,
    constants, also through imports made inside function bodies. Editing a model changes the
    train stage's hash and not the text stage's; comments and formatting change nothing."""
    module = inspect.getmodule(func)
    name = getattr(func, "__name__", None)
    if module is None or name is None:
        return hashlib.sha256(repr(func).encode()).hexdigest()[:16]
    package = module.__name__.split(".")[0]
    indexes: dict[str, _ModuleIndex | None] = {}

    def index_of(module_name: str) -> _ModuleIndex | None:
        if module_name.split(".")[0] != package:
            return None
        if module_name not in indexes:  # read from source: no import (and no TensorFlow) needed
            indexes[module_name] = None
            try:
                spec = importlib.util.find_spec(module_name)
            except (ImportError, ValueError):
                spec = None
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                origin = Path(spec.origin)
                stat = origin.stat()
                key = (module_name, str(origin), stat.st_size, stat.st_mtime_ns)
                if key not in _PARSED:
                    _PARSED[key] = _ModuleIndex(module_name, origin.read_text(encoding="utf-8"),
                                                spec.submodule_search_locations is not None)
                indexes[module_name] = _PARSED[key]
        return indexes[module_name]

    if index_of(module.__name__) is None:  # e.g. a function of a script (__main__)
        try:
            return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:16]
        except (OSError, TypeError):
            return hashlib.sha256(repr(func).encode()).hexdigest()[:16]
    parts = _closure(index_of, module.__name__, name)
    digest = hashlib.sha256()
    for part in sorted(parts):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def tree_rss(process: psutil.Process) -> tuple[int, int]:
    """Resident bytes of ``process`` and of it with every process it started, summed."""
    own = process.memory_info().rss
    tree = own
    for child in process.children(recursive=True):
        try:
            tree += child.memory_info().rss
        except psutil.Error:  # ended between the listing and the reading
            pass
    return own, tree


def _reset_peak_rss() -> bool:
    """Reset the kernel's record of this process's peak resident memory (Linux's ``VmHWM``,
    reset by writing 5 to ``/proc/self/clear_refs``); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:  # not Linux, or /proc not writable
        return False


def _kernel_peak_rss() -> int:
    """This process's peak resident bytes since the last reset, as the kernel counted them
    (0 where it cannot be read)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class PeakMemory:
    """Samples resident memory in a thread: ``peak_mb`` of this process, ``tree_peak_mb`` of it
    and every process it started (ingest's workers, Spark's JVM and Python workers), summed.

    A sampling thread can miss a short peak: one long C call (numpy filling a buffer) holds
    the GIL, so the thread does not run until it returns, and what it filled may already be
    freed. Where the kernel keeps the process's high-water mark (Linux), it is reset on
    entry and read on exit, and ``peak_mb`` is never below it."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = self.tree_peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._kernel_peak = False

    def _measure(self) -> None:
        own, tree = tree_rss(self._process)
        self.peak, self.tree_peak = max(self.peak, own), max(self.tree_peak, tree)

    def _sample(self):
        while not self._stop.is_set():
            self._measure()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._kernel_peak = _reset_peak_rss()
        self._measure()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._measure()
        if self._kernel_peak:
            kernel = _kernel_peak_rss()
            self.peak = max(self.peak, kernel)
            self.tree_peak = max(self.tree_peak, self.peak)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def tree_peak_mb(self) -> float:
        return round(self.tree_peak / 2**20, 1)


class Runner:
    """Runs a list of stages in order inside ``root`` (the artifacts directory).

    Example:
        >>> runner = Runner(stages, "artifacts")  # doctest: +SKIP
        >>> runner.run()          # runs what is stale  # doctest: +SKIP
        >>> runner.status()       # {'ingest': 'fresh', 'text': 'stale: parameters changed', ...}  # doctest: +SKIP
    """

    def __init__(self, stages: list[Stage], root: str | os.PathLike, log=None, processes: bool = True):
        """``processes`` False: every stage runs in this process, ``own_process`` or not
        (for a debugger; the memory a stage leaves behind stays with the run)."""
        self.stages = stages
        self.processes = processes
        self.root = Path(root)
        self.state_dir = self.root / STATE_DIR
        self.state_path = self.state_dir / "state.json"
        self.reports_dir = self.root / "reports"
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise StageError(f"duplicate stage names in {names}")
        self._state = self._load_state()
        self.cleaned_tmp = self._clean_stale_tmp()

    def _clean_stale_tmp(self) -> list[str]:
        """Remove temporary output folders left by runs that were killed (their process is
        gone); a folder of a run still going on in another process is left alone."""
        removed = []
        tmp_root = self.state_dir / "tmp"
        if not tmp_root.is_dir():
            return removed
        for folder in tmp_root.iterdir():
            pid = folder.name.rpartition("-")[2]
            if pid.isdigit() and int(pid) != os.getpid() and psutil.pid_exists(int(pid)):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        return removed

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
        """Content hash, cached by path, size and mtime; a folder (a saved model) hashes its
        files' relative paths and hashes."""
        if path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(f"{file.relative_to(path)}\0{self._hash(file)}\n".encode())
            return digest.hexdigest()
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
            missing = [str(p) for p in paths if not p.exists()]
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
            if not Path(path).exists():
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
        return result  # writes nothing: asking is not running (the folder may not even exist)

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
            target: str | None = None, record: dict[str, str] | None = None) -> dict[str, dict]:
        """Run the selected stages that are stale (all of them with ``force``). ``record``:
        ``{file name: text}`` written under the root, each atomically, once this run holds the
        folder and before any stage runs (what the run was asked, e.g. its settings).

        Returns ``{stage: report}`` for the stages that ran; fresh stages are skipped and say so.
        """
        ran: dict[str, dict] = {}
        with self.lock():
            for name, text in (record or {}).items():
                _write_text_atomic(self.root / name, text)
            self._state = self._load_state()  # (as the run before, which may have ended meanwhile, left it)
            for stage in self.select(until, only, target):
                status = self.stage_status(stage)
                if status == "fresh" and not force:
                    self.log(f"[skip] {stage.name}: fresh")
                    continue
                self.log(f"[run ] {stage.name}: {'forced' if force and status == 'fresh' else status}")
                ran[stage.name] = self._run_stage(stage)
            self._save_state()
        return ran

    @contextlib.contextmanager
    def lock(self):
        """Hold this output folder for one run: a second run on it stops at once with a
        ``StageError`` naming the holder's pid (two runs would read each other's half-written
        files). The lock is the kernel's (``flock``): a killed run leaves none behind."""
        import fcntl

        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.state_dir / "run.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StageError(f"{self.root}: another run is using this folder ({holder}); wait for it to "
                             "finish, or give another --out") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

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
            arguments = {**inputs, **temp_outputs, **stage.params}
            try:
                if stage.own_process and self.processes:
                    report, memory = _in_own_process(stage, arguments)
                else:
                    report, memory = _measured_call(stage.func, arguments)
            except OSError as exc:
                if exc.filename is not None:
                    raise
                # a library's error of the system that names no file (Arrow's disk full): say where
                raise StageError(f"stage {stage.name!r}: {exc.strerror or exc} (it writes its outputs "
                                 f"under {self.state_dir / 'tmp'})") from None
            for name, path in stage.outputs.items():
                if not Path(temp_outputs[name]).exists():
                    raise StageError(f"stage {stage.name!r} did not write its output {name}")
            for name, path in stage.outputs.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                _replace(temp_outputs[name], path, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            release_memory()
        seconds = time.perf_counter() - started
        self._state["stages"][stage.name] = {
            "fingerprint": fingerprint,
            "outputs": {name: self._hash(Path(path)) for name, path in stage.outputs.items()},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self._save_state()
        report = {"stage": stage.name, "seconds": round(seconds, 3),
                  "peak_rss_mb": memory["peak_mb"], "peak_tree_rss_mb": memory["tree_peak_mb"],
                  "own_process": bool(stage.own_process and self.processes), "params": stage.params, **report}
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.reports_dir / f"{stage.name}.json", report)
        children = (f" ({memory['tree_peak_mb']} MB with its child processes)"
                    if memory["tree_peak_mb"] > memory["peak_mb"] + 1 else "")
        where = " in its own process" if report["own_process"] else ""
        self.log(f"[done] {stage.name}: {seconds:.1f} s{where}, peak RSS {memory['peak_mb']} MB{children}, "
                 f"{_summary(report)}")
        return report


def _measured_call(func: Callable[..., dict], kwargs: dict) -> tuple[dict, dict]:
    """``func(**kwargs)`` and the peak resident memory while it ran (``peak_mb`` of this
    process, ``tree_peak_mb`` with the processes it started)."""
    with PeakMemory() as memory:
        report = func(**kwargs) or {}
    return report, {"peak_mb": memory.peak_mb, "tree_peak_mb": memory.tree_peak_mb}


def _in_own_process(stage: Stage, kwargs: dict) -> tuple[dict, dict]:
    """``_measured_call`` of the stage in a fresh (spawned, never forked: TensorFlow's threads
    do not survive a fork) Python process; an error it raises is raised here as it was."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        try:
            return pool.submit(_measured_call, stage.func, kwargs).result()
        except BrokenProcessPool:
            raise StageError(f"stage {stage.name!r}: its process ended without finishing (killed, "
                             "perhaps for lack of memory; run it alone with --stage to see)") from None


def _die_with_parent(parent: int) -> None:
    """In a stage's process: end when the run that started it ends, however it ends (a
    ``SIGKILL`` of the run included: Linux's parent-death signal), rather than run on alone."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux: no such signal
        return
    if os.getppid() != parent:  # the run ended before the signal was set
        os._exit(1)


def release_memory() -> None:
    """Give what a finished stage freed back to the system before the next one starts: its
    objects (``gc``) and the C heap's free pages (glibc's ``malloc_trim``; TensorFlow and numpy
    free into it, and without a trim the process keeps them: at Electronics size the
    recommender stage ran some 1.3 GB above what it needs alone). Keras's global state goes too
    (``clear_session``): the models are in the stage's saved outputs, not in this process."""
    import gc

    if "keras" in sys.modules:  # Keras's global state (graphs, name counters) from a stage's models
        sys.modules["keras"].backend.clear_session(free_memory=False)
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def _replace(new: str, target: str, scratch: Path) -> None:
    """Move a finished output into place. A folder output (a saved model) replaces the old
    folder by two renames, the old one first moved into ``scratch`` (removed with it)."""
    if Path(new).is_dir() and Path(target).is_dir():
        os.replace(target, scratch / f"old-{Path(target).name}")
    os.replace(new, target)


def _summary(report: dict) -> str:
    parts = []
    for key, value in report.items():
        if key in ("stage", "seconds", "peak_rss_mb", "peak_tree_rss_mb", "own_process", "params"):
            continue
        if isinstance(value, dict) and isinstance(value.get("rows", value.get("total")), int):
            parts.append(f"{key}={value.get('rows', value.get('total'))}")
        elif isinstance(value, (int, float, str)):
            parts.append(f"{key}={value}")
    return ", ".join(parts[:8])


def _write_json_atomic(path: Path, data: Any) -> None:
    _write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable))


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


__all__ = ["Stage", "Runner", "PeakMemory", "file_hash"]
