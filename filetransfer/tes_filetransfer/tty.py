"""A one-line live progress display for a terminal (the CLI uses it when stderr is a TTY)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TextIO

from .progress import moved_bytes


class LiveProgress:
    """While active, redraws ``<label>: 123.4 MB, 56.7 MB/s`` every ``interval`` seconds."""

    def __init__(self, label: str, stream: TextIO, interval: float = 0.5) -> None:
        self.label = label
        self.stream = stream
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()
        self._base = moved_bytes()

    def _line(self) -> str:
        moved = moved_bytes() - self._base
        elapsed = max(time.monotonic() - self._start, 1e-9)
        return f"\r{self.label}: {moved / 1e6:.1f} MB, {moved / 1e6 / elapsed:.1f} MB/s "

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.stream.write(self._line())
            self.stream.flush()

    def __enter__(self) -> LiveProgress:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.stream.write(self._line() + "\n")
        self.stream.flush()
