"""The model a service answers from: loaded from a private copy of a model folder, warmed up,
and swapped for a newly loaded one in one assignment on reload (a failed load keeps the old one
serving)."""

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybrid.core.errors import HybridError, InputFormatError

LOG = logging.getLogger("hybrid.serving.app")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServiceLimits:
    """Bounds on what a request may ask for, and who may change what the service holds.

    ``admin_token``: the bearer token that ``POST /api/admin/reload`` and ``POST /api/items``
    require (``Authorization: Bearer ...``); None turns those endpoints off. ``allowed_hosts``:
    the names a request's ``Host`` header may give (against DNS rebinding: a page on another
    site that resolves its own name to this address); None answers any. A batch request costs
    its ids times ``n`` answers, at most ``max_answers``; a batch of more than 10 ids is answered
    in slices of about ``slice_ms`` with the requests that came meanwhile answered between them,
    one such batch at a time, so a client sending the largest batches delays the others by a slice, not a batch.
    """

    max_n: int = 100
    max_batch: int = 1000  # ids per batch request (and items per add request)
    max_text: int = 10_000  # characters of free text
    max_body_bytes: int = 4 << 20
    max_added_items: int = 10_000  # products added through the API to one loaded model
    max_answers: int = 20_000  # ids x n of one batch request: its cost, bounded
    slice_ms: float = 10.0  # a batch runs in slices of about this long, other requests between them
    admin_token: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] | None = None

    def public(self) -> dict:
        """What ``GET /api/model`` shows: everything but the token."""
        shown = {name: value for name, value in vars(self).items() if name != "admin_token"}
        return {**shown, "admin": self.admin_token is not None}


def allowed_hosts(bound: str, extra=()) -> tuple[str, ...] | None:
    """The ``Host`` names a service bound to ``bound`` answers: the loopback names and ``bound``
    itself plus ``extra``; a wildcard bind (``0.0.0.0``, ``::``) answers any name unless
    ``extra`` names some."""
    extra = tuple(h.strip().lower().strip("[]") for h in extra if h.strip())
    if bound in ("0.0.0.0", "::", "") and not extra:
        return None
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, bound.lower().strip("[]"), *extra)))


@dataclass
class Loaded:
    """One loaded model and what the service says about it."""

    rec: object
    directory: Path
    generation: int
    loaded_at: str
    load_seconds: float
    manifest: dict
    items: int = 0  # products in the catalogue as loaded (the API may add some)


class ModelSlot:
    """The serving model and its reload: the new model is loaded beside the old one and swapped
    in with one assignment; requests hold on to the model they started with."""

    def __init__(self, directory: str | os.PathLike, loader=None, generation: int = 1):
        from hybrid.recommend.two_stage import TwoStageRecommender

        self.directory = Path(directory)
        self._loader = loader or TwoStageRecommender.load
        self._reloading = threading.Lock()
        self.current = self._load(generation)
        self.last_reload_error: str | None = None

    async def share_added(self, records: list[dict]) -> None:
        """Once every serving process holds ``records`` (added here through the API): this one
        is the only one."""

    def _load(self, generation: int) -> Loaded:
        started = time.perf_counter()
        with private_copy(self.directory) as folder:
            rec = self._loader(folder)
            manifest = json.loads((folder / "manifest.json").read_text())
            warm_up(rec)
        return Loaded(rec, self.directory, generation, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      round(time.perf_counter() - started, 2), manifest, len(rec.catalogue))

    def _load_aside(self, generation: int) -> Loaded:
        """Load in a thread of its own at the lowest CPU priority (Linux niceness is per thread):
        the serving thread keeps the cores while the new model loads and warms up."""
        outcome: dict = {}

        def work():
            if hasattr(os, "setpriority"):
                try:
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
                except OSError:  # pragma: no cover - not permitted here: load at normal priority
                    pass
            try:
                outcome["loaded"] = self._load(generation)
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc

        thread = threading.Thread(target=work, name="hybrid-reload", daemon=True)
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["loaded"]

    def reload(self) -> Loaded:
        """Load the directory again and serve it; on failure keep the old model and raise
        ``ModelLoadError``. One reload at a time (a second waits for the first)."""
        with self._reloading:
            try:
                new = self._load_aside(self.current.generation + 1)
            except Exception as exc:  # any failure: the old model keeps serving
                self.last_reload_error = f"{type(exc).__name__}: {exc}"
                LOG.error("reload of %s failed, still serving generation %d: %s", self.directory,
                          self.current.generation, self.last_reload_error)
                raise ModelLoadError(self.last_reload_error, self.current.generation) from None
            self.current, self.last_reload_error = new, None
            LOG.info("serving generation %d from %s", new.generation, self.directory)
            return new


@contextmanager
def private_copy(directory: Path):
    """A copy of ``directory`` that only this process knows, removed when the block ends.

    A model is loaded from it and keeps its memory-mapped arrays open: files that are unlinked
    but mapped live on until the process exits (the system frees them then, however it ends),
    so a model copied over the served folder (``cp -r``, which rewrites files in place) cannot
    change or truncate what a worker is reading. The copy goes beside the folder (the same
    disk), or to the temporary folder where that is not writable."""
    try:
        private = Path(tempfile.mkdtemp(prefix=f".{directory.name}.serving-", dir=directory.parent))
    except OSError:
        private = Path(tempfile.mkdtemp(prefix="hybrid-serving-"))
    copy = private / "model"
    try:
        try:
            shutil.copytree(directory, copy, symlinks=False)
        except OSError as exc:
            raise InputFormatError(f"{directory}: cannot be copied to serve from ({exc})") from None
        try:
            yield copy
        except HybridError as exc:  # named by the folder the user gave, not the private copy
            raise type(exc)(str(exc).replace(str(copy), str(directory))) from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


def warm_up(rec) -> None:
    """One call of each kind before the model serves: compiled graphs are traced and lazy
    indexes built here, not in the first requests (and a model that cannot answer is never
    swapped in)."""
    user = rec.users.ids([0])[0]
    item = rec.catalogue.ids.ids([int(np.flatnonzero(rec.catalogue.trained)[0])])[0]
    rec.recommend(user, N=10)
    rec.recommend([user], N=10)
    rec.recommend_for_new_user(liked_items=[item], N=10)
    rec.similar_items(item, N=10, by="content")
    rec.similar_items(item, N=10, by="collaborative")
    word = next((w for w in (rec.encoder.words[:100] if rec.encoder is not None else []) if w.isalpha()), None)
    if word is not None:
        rec.recommend_for_new_user(text=word, N=10)
        rec.similar_to_text(word, N=10)
    rec.item_details([item])


def add_records(rec, records: list[dict]) -> int:
    """Add the products of ``records`` (``POST /api/items``'s items: an id and text fields) to
    ``rec``'s catalogue; how many were added."""
    import pandas as pd

    return rec.add_items(pd.DataFrame(records))


class ModelLoadError(HybridError):
    def __init__(self, message: str, serving: int):
        super().__init__(message)
        self.serving = serving
