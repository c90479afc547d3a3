"""Progress of long steps: a tqdm bar on a terminal; elsewhere (a log file, a pipe, a CI job) a
line every half minute, so a long stage is never silent and its log stays readable.

    >>> import io
    >>> with Progress(total=1000, what="reading ratings.csv", unit="B", stream=io.StringIO(), every=0) as p:
    ...     p.update(250)
    ...     p.stream.getvalue().split(", ")[0]
    'reading ratings.csv: 250 B of 1,000 B (25%)'
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

#: Seconds between two progress lines when the output is not a terminal.
LINE_EVERY = 30.0


def _amount(value: float, unit: str) -> str:
    if unit == "B":
        for scale, prefix in ((2**30, "GiB"), (2**20, "MiB")):
            if value >= scale:
                return f"{value / scale:,.1f} {prefix}"
    return f"{value:,.0f} {unit}".rstrip()


class Progress:
    """Counts work done (``update(n)``) out of ``total`` (None: unknown) in ``unit`` ("B" for
    bytes). On a terminal a tqdm bar; otherwise a line ``what: done of total (share), rate,
    time left`` at most every ``every`` seconds (``LINE_EVERY``), on ``stream`` (standard error)."""

    def __init__(self, total: float | None, what: str, unit: str = "", stream=None, every: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.what, self.unit = total, what, unit
        self.every = LINE_EVERY if every is None else every
        self.done = 0.0
        self.started = self.last = time.perf_counter()
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.bar = tqdm(total=total, desc=what, unit=unit or "it", unit_scale=unit == "B", leave=False,
                        file=self.stream) if tty else None

    def update(self, n: float) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.perf_counter()) - self.started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.what}: {_amount(self.done, self.unit)}"
        if self.total:
            text += f" of {_amount(self.total, self.unit)} ({100 * self.done / self.total:.0f}%)"
        text += f", {_amount(rate, self.unit)}/s"
        if self.total and rate > 0:
            text += f", about {max(self.total - self.done, 0) / rate / 60:.1f} min left"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Heartbeat:
    """For one long call that reports nothing itself (a native library's): a line ``what`` when
    it starts, ``what: N s so far`` every ``every`` seconds while the block runs (from a thread:
    the call must release the GIL, as faiss and numpy do), and ``what: done in N s`` at its end,
    so that the silence around it is bounded too.

    Example:
        >>> import io
        >>> stream = io.StringIO()
        >>> with Heartbeat("building a graph", stream=stream, every=0.01):
        ...     time.sleep(0.05)
        >>> lines = stream.getvalue().splitlines()
        >>> lines[0], "s so far" in lines[1], lines[-1].startswith("building a graph: done in")
        ('building a graph', True, True)
    """

    def __init__(self, what: str, stream=None, every: float | None = None):
        import threading

        self.what, self.stream = what, stream if stream is not None else sys.stderr
        self.every = LINE_EVERY if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._started = 0.0

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._say(f"{self.what}: {time.perf_counter() - self._started:.0f} s so far")

    def __enter__(self) -> "Heartbeat":
        self._started = time.perf_counter()
        self._say(self.what)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._say(f"{self.what}: done in {time.perf_counter() - self._started:.0f} s")
