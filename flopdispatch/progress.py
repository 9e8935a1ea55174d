"""A live progress line for long counted runs: op calls, FLOPs and elapsed time on a terminal.

A background thread reads the recorder's table a few times per second at most and rewrites one
line (``\\r``) on the stream. It is only started when the stream is a terminal, shows nothing for
the first second, and backs off so that reading the table costs under ~2% of the run.
"""
from __future__ import annotations

import gc
import sys
import threading
import time
from typing import Optional, Tuple

from .report import human


def live_totals(counter) -> Optional[Tuple[int, int]]:
    """(op calls, FLOPs) counted so far inside a live ``count`` block, or None outside one.

    Cheaper than ``counter.totals`` (no roll-up per module): one snapshot of the flat table.
    The garbage collector is held off during the snapshot so that no finalizer can run (and let
    the counted thread change the table) while the compiled core walks it.
    """
    mode = getattr(counter, "_mode", None)
    if mode is None or getattr(counter, "_results", None) is not None or not getattr(counter, "_active", False):
        return None
    enabled = gc.isenabled()
    gc.disable()
    try:
        rows = mode.snapshot()[0]
    finally:
        if enabled:
            gc.enable()
    calls = flops = 0
    for row in rows:
        calls += row[3]
        flops += row[4]
    return calls, flops


class Progress:
    """``Progress(count, sys.stderr).start()`` ... ``.stop()``; a no-op when nothing is a terminal."""

    def __init__(self, counter, stream, *, interval: float = 0.25, delay: float = 1.0, force: bool = False):
        self.counter, self.stream = counter, stream
        self.interval, self.delay = interval, delay
        isatty = getattr(stream, "isatty", None)
        self.enabled = force or bool(isatty and isatty())
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._saved = None
        self._thread = None
        self._shown = False
        self._t0 = time.perf_counter()
        self.updates = 0

    def start(self) -> "Progress":
        if self.enabled:
            self._t0 = time.perf_counter()
            self._thread = threading.Thread(target=self._loop, name="flopdispatch-progress", daemon=True)
            self._thread.start()
        return self

    def line(self) -> Optional[str]:
        totals = live_totals(self.counter)
        if totals is None:
            return None
        calls, flops = totals
        elapsed = time.perf_counter() - self._t0
        return f"flopdispatch: {calls:,} op calls, {human(flops, 'FLOPs')}, {elapsed:.1f} s"

    def _loop(self):
        wait = self.interval
        while not self._stop.wait(wait):
            if time.perf_counter() - self._t0 < self.delay:
                continue
            t = time.perf_counter()
            try:
                text = self.line()
            except Exception:  # noqa: BLE001 - progress must never break the counted program
                return
            cost = time.perf_counter() - t
            wait = max(self.interval, 50 * cost)  # reading the table stays under ~2% of the time
            if text is None or self._stop.is_set():
                continue
            with self._lock:
                try:
                    self.stream.write("\r\x1b[K" + text)
                    self.stream.flush()
                except (OSError, ValueError):
                    return
                self._shown = True
                self.updates += 1

    def clear(self) -> None:
        """Erase the progress line (it is drawn again at the next update)."""
        with self._lock:
            if self._shown:
                try:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
                self._shown = False

    def redirect(self) -> "Progress":
        """Make the program's own writes to sys.stdout and sys.stderr erase the line first.

        Only while enabled (a terminal); ``stop`` puts the original streams back (unless the
        program replaced them itself in the meantime).
        """
        if self.enabled and self._saved is None:
            self._saved = (sys.stdout, sys.stderr)
            sys.stdout, sys.stderr = _Clearing(sys.stdout, self), _Clearing(sys.stderr, self)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._saved is not None:
            out, err = self._saved
            if isinstance(sys.stdout, _Clearing) and sys.stdout._progress is self:
                sys.stdout = out
            if isinstance(sys.stderr, _Clearing) and sys.stderr._progress is self:
                sys.stderr = err
            self._saved = None
        self.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class _Clearing:
    """A text stream that erases the progress line before each write (everything else delegated)."""

    def __init__(self, stream, progress):
        self._stream, self._progress = stream, progress

    def write(self, text):
        if text:
            self._progress.clear()
        return self._stream.write(text)

    def writelines(self, lines):
        self._progress.clear()
        return self._stream.writelines(lines)

    def __getattr__(self, name):
        return getattr(self._stream, name)
