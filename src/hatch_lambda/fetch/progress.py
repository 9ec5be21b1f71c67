"""Download progress in the build output, when downloads take long.

Nothing is shown for downloads that end within ``DELAY`` seconds. After that,
on a terminal one line on stderr is rewritten twice a second; otherwise (CI
logs) a line is printed every ``HATCH_LAMBDA_PROGRESS_INTERVAL`` seconds
(default 10). A last line says what was fetched.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from hatch_lambda.config.options import MB

DELAY = 2.0
TERMINAL_INTERVAL = 0.5


def _interval() -> float:
    text = os.environ.get("HATCH_LAMBDA_PROGRESS_INTERVAL", "").strip()
    try:
        value = float(text) if text else 10.0
    except ValueError:
        value = 10.0
    return value if value > 0 else 10.0


class Progress:
    """Counts bytes and files from several download threads; reports from a thread of its own."""

    def __init__(self, files: int, total: int, *, stream: TextIO | None = None, delay: float = DELAY) -> None:
        self.files = files
        self.total = total  # bytes the lock says the files have (0 when it does not say)
        self.stream = stream or sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = TERMINAL_INTERVAL if self.terminal else _interval()
        self.delay = delay
        self.received = 0
        self.done = 0
        self.shown = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread: threading.Thread | None = None

    def add(self, count: int) -> None:
        with self._lock:
            self.received += count

    def finished_one(self) -> None:
        with self._lock:
            self.done += 1

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        with self._lock:
            received, done = self.received, self.done
        size = f"{received / MB:.1f} of {self.total / MB:.1f} MB" if self.total else f"{received / MB:.1f} MB"
        share = f" ({100 * received / self.total:.0f} %)" if self.total else ""
        return (f"  downloading: {done} of {self.files} files, {size}{share}, "
                f"{received / MB / elapsed:.1f} MB/s")

    def _report(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            self._write(self.line())
            if self._stop.wait(self.interval):
                return

    def _write(self, text: str) -> None:
        self.shown = True
        if self.terminal:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        if self.files:
            self._thread = threading.Thread(target=self._report, name="hatch-lambda-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.shown:
            self._write(self.line().replace("downloading:", "downloaded:"))
            if self.terminal:
                self.stream.write("\n")
                self.stream.flush()
