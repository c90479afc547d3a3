"""Serving with reloads by process handover: what ``hybrid serve`` runs.

The ``hybrid serve`` process is a small supervisor. It binds the listening socket and starts
worker processes (``--workers``, one by default) that each load the model and answer on that
socket (uvicorn running the app of :mod:`hybrid.serving.app`). A reload (``SIGHUP`` to the
supervisor, or ``POST /api/admin/reload``, which a worker passes on) starts as many new workers on
the same socket:

1. the new workers load and warm up the model while the old ones go on serving, each on its own
   interpreter (no shared GIL, so a load of many seconds costs the serving processes nothing but
   a share of the cores);
2. once they are ready they start accepting; the old workers stop accepting, answer what they
   have been asked with ``Connection: close`` (clients reconnect, to the new workers, without a
   failed request) and exit once their connections are gone, or after ``drain_seconds``;
3. if a new worker fails to load, the new ones exit, and the old ones serve on and are told why
   (``last_reload_error`` in ``GET /api/model``; the reload endpoint answers 503).

A worker that dies on its own is replaced by a fresh one from the same directory, holding the
products the others were given through the API. ``SIGTERM`` or ``SIGINT`` stop the supervisor
and its workers (uvicorn's graceful shutdown in each).
"""

import asyncio
import concurrent.futures
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hybrid.core.errors import ArgumentError, HybridError
from hybrid.serving.slot import Loaded, ModelLoadError, ModelSlot, ServiceLimits, add_records, allowed_hosts

LOG = logging.getLogger("hybrid.serving.app")
LOG_FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"


@dataclass(eq=False)  # a worker is itself: compared and hashed by identity
class _Worker:
    process: multiprocessing.Process
    conn: multiprocessing.connection.Connection
    info: dict  # generation, loaded_at, load_seconds

    @property
    def generation(self) -> int:
        return self.info["generation"]


class Supervisor:
    """Starts, replaces and stops the worker processes that serve ``directory`` on ``sock``.

    ``workers`` processes answer side by side (the kernel hands each new connection to one of
    them); each loads its own copy of the model. Products added through the API on one worker
    are passed to the others before the request is answered, and replayed to a worker that
    replaces a dead one, until a reload serves the saved model again."""

    def __init__(self, directory: str | os.PathLike, sock: socket.socket, limits, log_level: str = "info",
                 drain_seconds: float = 10.0, threads: int = 1, workers: int = 1):
        self.directory = Path(directory)
        self.sock, self.limits, self.log_level, self.threads = sock, limits, log_level, threads
        self.workers, self.drain_seconds = workers, drain_seconds
        self._context = multiprocessing.get_context("spawn")
        self._retiring: list[_Worker] = []
        self._reload_asked = False
        self._stopping = False
        self._generation = 0  # the last one loaded: a reload or a replacement takes the next
        self.current: list[_Worker] = []
        self.added: list[list[dict]] = []  # API additions to the serving generation, in order
        self._pending: dict[int, tuple[_Worker, list[_Worker]]] = {}  # add token: asker, workers yet to apply

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        """Serve until ``SIGTERM``/``SIGINT``; raises ``ModelLoadError`` if the first load fails."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        if hasattr(signal, "SIGHUP"):
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_signal)
        try:
            started = self._start(self.workers)
            if isinstance(started, str):
                if self._stopping:
                    return
                raise ModelLoadError(started, 0)
            self.current = started
            LOG.info("serving generation 1 (process %s, loaded in %.1f s)",
                     ", ".join(str(w.process.pid) for w in started), max(w.info["load_seconds"] for w in started))
            while not self._stopping:
                self._step()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()

    def _on_signal(self, signum, _frame) -> None:
        if hasattr(signal, "SIGHUP") and signum == signal.SIGHUP:
            self._reload_asked = True
        else:
            self._stopping = True

    def _step(self) -> None:
        by_handle = {h: w for w in self.current for h in (w.conn, w.process.sentinel)}
        ready = multiprocessing.connection.wait(list(by_handle), timeout=0.25)
        if self._stopping:
            return
        dead, askers = [], []
        for handle in ready:
            worker = by_handle[handle]
            if handle is worker.process.sentinel:
                dead.append(worker)
                continue
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):  # its end of the pipe closed: it has died (or is dying)
                dead.append(worker)
                continue
            if message[0] == "reload":
                askers.append(worker)
            elif message[0] == "add":
                self._share(worker, *message[1:])
            elif message[0] == "added":
                self._applied(worker, message[1])
        for worker in dict.fromkeys(dead):
            self._replace_dead(worker)
        if askers or (self._reload_asked and not self._stopping):
            self._reload_asked = False
            self._reload([w for w in askers if w in self.current])
        self._reap()

    # ------------------------------------------------------------------ products added through the API
    def _share(self, asker: _Worker, token: int, records: list[dict]) -> None:
        """``asker`` added ``records``: the other workers add them too, then the asker hears so."""
        self.added.append(records)
        others = [w for w in self.current if w is not asker]
        for worker in others:
            self._tell(worker, ("add", token, records))
        self._pending[token] = (asker, others)
        self._applied(None, token)

    def _applied(self, worker: "_Worker | None", token: int) -> None:
        if token not in self._pending:
            return
        asker, waiting = self._pending[token]
        waiting = [w for w in waiting if w is not worker and w in self.current]
        if waiting:
            self._pending[token] = (asker, waiting)
        else:
            del self._pending[token]
            self._tell(asker, ("add_done", token))

    def _replace_dead(self, worker: _Worker) -> None:
        worker.process.join(10)
        if worker.process.is_alive():  # its pipe is gone but it lingers: finish it
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        if worker not in self.current:
            return
        self.current.remove(worker)
        for token in list(self._pending):  # what it was to apply, it need not
            self._applied(None, token)
        LOG.error("the serving process (generation %d) exited with code %s; starting a new one",
                  worker.generation, worker.process.exitcode)
        started = self._start(1, self.added)  # what the others hold, it holds too
        if isinstance(started, str):
            if self._stopping:
                return
            if self.current:  # the others serve on
                LOG.error("the serving process could not be replaced: %s", started)
                return
            raise ModelLoadError(f"the serving process died and a new one could not load the model: {started}", 0)
        self.current.append(started[0])

    def _reload(self, askers: list[_Worker]) -> None:
        old = self.current
        new = self._start(self.workers)
        if isinstance(new, str):
            LOG.error("reload of %s failed, still serving generation %d: %s", self.directory, old[0].generation, new)
            for worker in old:
                self._tell(worker, ("reload_failed", new, worker in askers))
            return
        for token in list(self._pending):  # the retiring workers' additions are not in the saved model
            asker, _ = self._pending.pop(token)
            self._tell(asker, ("add_done", token))
        for worker in old:
            self._tell(worker, ("retire", new[0].info, self.drain_seconds))
        self._retiring.extend(old)
        self.current, self.added = new, []
        LOG.info("serving generation %d from %s (process %s, loaded in %.1f s); process %s drain and exit",
                 new[0].generation, self.directory, ", ".join(str(w.process.pid) for w in new),
                 max(w.info["load_seconds"] for w in new), ", ".join(str(w.process.pid) for w in old))

    def _start(self, count: int, added: list | None = None) -> "list[_Worker] | str":
        """``count`` new workers of the next generation, loading side by side (and adding the
        products of ``added`` before they answer), once all have loaded; or why one could not
        (the others are stopped)."""
        spawned = [self._spawn(self._generation + 1, added or []) for _ in range(count)]
        outcomes = [self._wait_ready(*pair) for pair in spawned]
        failed = next((o for o in outcomes if isinstance(o, str)), None)
        if failed is None:
            self._generation += 1  # a failed load takes no number
            return outcomes
        self._stop_workers([o for o in outcomes if isinstance(o, _Worker)])
        return failed

    def _spawn(self, generation: int, added: list):
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, name=f"hybrid-serve-{generation}", daemon=True,
            args=(str(self.directory), generation, self.sock, self.limits, self.log_level, theirs, self.threads,
                  added))
        process.start()
        theirs.close()
        return process, ours

    def _wait_ready(self, process, ours) -> "_Worker | str":
        while True:  # loading takes seconds to minutes; a stop request ends the wait
            if ours.poll(0.25):
                try:
                    kind, payload = ours.recv()
                except (EOFError, OSError):
                    kind, payload = "failed", None
                if kind == "ready":
                    return _Worker(process, ours, payload)
                process.join(30)
                return payload or f"the loading process exited with code {process.exitcode}"
            if not process.is_alive():
                process.join()
                return f"the loading process exited with code {process.exitcode} before it was ready"
            if self._stopping:
                process.terminate()
                process.join(30)
                return "stopped while loading"

    @staticmethod
    def _tell(worker: _Worker, message) -> None:
        try:
            worker.conn.send(message)
        except (OSError, ValueError):  # it has gone meanwhile: nothing to tell
            pass

    def _reap(self) -> None:
        for worker in list(self._retiring):
            if not worker.process.is_alive():
                worker.process.join()
                worker.conn.close()
                self._retiring.remove(worker)

    def _stop_all(self) -> None:
        self._stop_workers([*self.current, *self._retiring])

    @staticmethod
    def _stop_workers(workers: list[_Worker]) -> None:
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()  # uvicorn's graceful shutdown
        deadline = time.monotonic() + 30
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


class WorkerSlot(ModelSlot):
    """The worker's model slot: its reloads are asked of the supervisor (the new model loads in
    another process; this one answers until it is retired), and the products added through the
    API here are passed through it to the other workers."""

    def __init__(self, directory, generation: int, conn):
        super().__init__(directory, generation=generation)
        self._conn = conn
        self._sending = threading.Lock()  # the request threads, the event loop and the control thread send
        self._answers: queue.Queue = queue.Queue()
        self._successor: dict | None = None  # the generation that replaces this worker
        self._tokens = itertools.count(1)
        self._shared: dict[int, concurrent.futures.Future] = {}

    def send(self, message) -> None:
        with self._sending:
            self._conn.send(message)

    def reload_failed(self, message: str, asked: bool) -> None:
        """A reload (ours if ``asked``, else one the supervisor was signalled) did not load."""
        self.last_reload_error = message
        if asked:
            self._answers.put(("reload_failed", message))

    def retire(self, successor: dict) -> None:
        """This worker is being replaced: a reload asked of it is answered by the replacement
        (whether it caused the reload or crossed the supervisor's retire message)."""
        self._successor, self.last_reload_error = successor, None
        self._answers.put(("reloaded", successor))
        for token in list(self._shared):  # the replacement serves the saved model: nothing to wait for
            self.shared(token)

    def reload(self) -> Loaded:
        with self._reloading:
            if self._successor is not None:
                kind, payload = "reloaded", self._successor
            else:
                self.send(("reload",))
                kind, payload = self._answers.get()
        if kind == "reload_failed":
            raise ModelLoadError(payload, self.current.generation)
        return Loaded(None, self.directory, payload["generation"], payload["loaded_at"], payload["load_seconds"],
                      {})

    async def share_added(self, records: list[dict], timeout: float = 60.0) -> None:
        """Once the other workers hold ``records`` too (added here through the API; at most
        ``timeout`` seconds)."""
        if self._successor is not None:
            return
        token = next(self._tokens)
        done = self._shared[token] = concurrent.futures.Future()
        self.send(("add", token, records))
        try:
            await asyncio.wait_for(asyncio.wrap_future(done), timeout)
        except asyncio.TimeoutError:
            LOG.error("the other serving processes did not confirm %d added products in %.0f s", len(records),
                      timeout)
        finally:
            self._shared.pop(token, None)

    def shared(self, token: int) -> None:
        """The supervisor says every other worker holds the products of ``token``."""
        done = self._shared.get(token)
        if done is not None and not done.done():
            done.set_result(True)

    def add_from_peer(self, token: int, records: list[dict]) -> None:
        """Another worker added ``records``: add them here too (called on the event loop, where
        requests read the model), then say so."""
        try:
            add_records(self.current.rec, records)
        except Exception as exc:  # the asker added them to the same model: this is not expected
            LOG.error("could not add %d products another serving process added: %s", len(records), exc)
        self.send(("added", token))


class Draining:
    """ASGI wrapper of the worker's app: notes the event loop, and once the worker is retired
    answers every request with ``Connection: close`` so that clients reconnect elsewhere."""

    def __init__(self, app):
        self.app, self.loop, self.active = app, None, False

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":  # the app itself needs no start-up: note the loop
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.loop = asyncio.get_running_loop()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def closing(message):
            if self.active and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        return await self.app(scope, receive, closing)


def _logging(log_level: str) -> None:
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format=LOG_FORMAT)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which CPU build it picked


def _limit_threads(threads: int) -> None:
    """Threads per model call in this process (BLAS, OpenMP, faiss). A request's calls are small:
    on one thread they are fastest (two threads cost more in waking each other than they share),
    and the cores stay free for other requests, other workers and a reload. Serving runs no
    TensorFlow (the networks' paths are NumPy)."""
    import faiss
    import scipy.sparse  # noqa: F401  (its libraries loaded, so that the limit reaches them)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    faiss.omp_set_num_threads(threads)


def _worker_main(directory: str, generation: int, sock: socket.socket, limits, log_level: str, conn,
                 threads: int = 1, added: list = ()) -> None:
    """A worker process: load (and add the products of ``added``, a list of ``POST /api/items``
    records: what the workers it joins hold), say ready, serve on ``sock`` until retired or
    stopped."""
    _logging(log_level)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the supervisor, which stops us
    try:
        import uvicorn

        from hybrid.serving.app import create_app

        _limit_threads(threads)
        slot = WorkerSlot(directory, generation, conn)
        for records in added:
            add_records(slot.current.rec, records)
    except Exception as exc:  # reported to the supervisor, which reports it
        conn.send(("failed", f"{type(exc).__name__}: {exc}" if not isinstance(exc, HybridError) else str(exc)))
        conn.close()
        return
    app = Draining(create_app(slot, limits))
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=30))

    def control():
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the supervisor is gone: stop too
                server.should_exit = True
                return
            if message[0] == "retire":  # a new worker serves: close to new clients, then say so
                _, successor, drain_seconds = message
                app.active = True
                _stop_accepting(server, app)
                slot.retire(successor)
                _drain(server, drain_seconds)
            elif message[0] == "add":  # ("add", token, records): another worker added products
                _on_loop(app, slot.add_from_peer, *message[1:])
            elif message[0] == "add_done":  # ("add_done", token): the others hold what we added
                slot.shared(message[1])
            else:  # ("reload_failed", message, asked)
                slot.reload_failed(*message[1:])

    current = slot.current
    conn.send(("ready", {"generation": generation, "loaded_at": current.loaded_at,
                         "load_seconds": current.load_seconds}))
    threading.Thread(target=control, name="hybrid-control", daemon=True).start()
    server.run(sockets=[sock])


def _on_loop(app: "Draining", work, *args) -> None:
    """Run ``work(*args)`` on the worker's event loop (once it runs), where requests read the model."""
    while app.loop is None:
        time.sleep(0.01)
    app.loop.call_soon_threadsafe(work, *args)


def _stop_accepting(server, app: Draining) -> None:
    """Close this worker's listener (the socket stays open in the supervisor and the new worker)
    and wait until that is done: a client told of the reload connects only to the new worker."""
    if app.loop is None:
        return
    done = threading.Event()

    def close():
        for listener in getattr(server, "servers", []):
            listener.close()
        done.set()

    app.loop.call_soon_threadsafe(close)
    done.wait(5)


def _drain(server, drain_seconds: float) -> None:
    """Exit once every open connection has had its last answer (``Connection: close``), or
    after ``drain_seconds``."""
    deadline = time.monotonic() + drain_seconds
    while server.server_state.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    server.should_exit = True


def serve_forever(directory, host: str, port: int, limits, log_level: str = "info", threads: int = 1,
                  workers: int = 1) -> None:
    """Bind ``host:port`` and serve ``directory`` from ``workers`` processes, with reloads by
    process handover."""
    _logging(log_level)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio then sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ArgumentError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    LOG.info("loading %s, then serving on http://%s:%d/", directory, host, port)
    try:
        Supervisor(directory, sock, limits, log_level, threads=threads, workers=workers).run()
    finally:
        sock.close()


def serve(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          limits: ServiceLimits | None = None, log_level: str = "info", threads: int = 1, workers: int = 1) -> None:
    """Serve ``model_dir`` until interrupted; ``SIGHUP`` or ``POST /api/admin/reload`` load it
    again in new processes that take over the socket (see ``Supervisor``). ``workers``: serving
    processes side by side, each with its own copy of the model (one per core the service may
    use is the most that helps); ``threads``: threads per model call (BLAS, faiss)
    in each. Without
    ``limits.allowed_hosts`` the service answers the ``Host`` names of ``allowed_hosts(host)``."""
    import dataclasses

    from hybrid.serving.app import _fastapi

    _fastapi()
    try:
        import uvicorn  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency
        raise ArgumentError("the service needs uvicorn: pip install uvicorn") from None
    limits = limits or ServiceLimits()
    if limits.allowed_hosts is None:
        limits = dataclasses.replace(limits, allowed_hosts=allowed_hosts(host))
    serve_forever(model_dir, host, port, limits, log_level, threads, workers)
