"""Per-file transfer logging: a start line, throttled progress lines, an end line."""

from __future__ import annotations

import logging
import threading
import time

from .interrupt import check, current_interrupt

logger = logging.getLogger("tes_filetransfer")

#: Transfers larger than this get progress lines between the start and end lines.
PROGRESS_THRESHOLD_BYTES = 8 * 1024 * 1024
#: At most one progress line per this many seconds (tests set it to 0).
PROGRESS_INTERVAL_SECONDS = 2.0

_MB = 1_000_000  # rates are in MB/s (10^6 bytes)

_moved_lock = threading.Lock()
_moved = 0


def moved_bytes() -> int:
    """Bytes counted by every :class:`Progress` of this process so far (for a live display)."""
    return _moved


def _count(nbytes: int) -> None:
    global _moved
    with _moved_lock:
        _moved += nbytes


def _human(nbytes: float) -> str:
    if nbytes < 1024:
        return f"{int(nbytes)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        nbytes /= 1024
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}"
    raise AssertionError("unreachable")


class Progress:
    """Logs one transfer of one file.

    ``label`` must already be safe to log (URLs redacted). Call :meth:`update` with each
    chunk size, then :meth:`done` once. ``total`` is the expected size when known.
    The interrupt current where it is made (:mod:`.interrupt`) stops the transfer at its
    next chunk: :meth:`update` raises :class:`~tes_filetransfer.interrupt.Interrupted`,
    whichever thread (an SDK's chunk thread, fsspec's event loop) calls it.
    """

    def __init__(self, label: str, total: int | None = None, *, announce: bool = True) -> None:
        self.label = label
        self.total = total
        self.transferred = 0
        self._start = time.monotonic()
        self._last_report = self._start
        self._announced = False
        self._interrupt = current_interrupt()
        if announce:
            self.begin(total)

    def begin(self, total: int | None) -> None:
        """Log the start line (first call only) or, on a retry, start counting from zero."""
        self.total = total
        self.transferred = 0
        if not self._announced:
            self._announced = True
            self._start = self._last_report = time.monotonic()
            size = "unknown size" if total is None else _human(total)
            logger.info("start %s (%s)", self.label, size)

    def reset(self) -> None:
        """Start counting again (a retry restarts the transfer from zero)."""
        self.transferred = 0

    def update(self, nbytes: int) -> None:
        """Count ``nbytes`` more and log a progress line if one is due."""
        if self._interrupt is not None:
            check(self._interrupt)
        self.transferred += nbytes
        _count(nbytes)
        big = (self.total or 0) > PROGRESS_THRESHOLD_BYTES or (
            self.transferred > PROGRESS_THRESHOLD_BYTES
        )
        if not big:
            return
        now = time.monotonic()
        if now - self._last_report < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_report = now
        elapsed = max(now - self._start, 1e-9)
        rate = self.transferred / elapsed / _MB
        if self.total:
            pct = 100.0 * self.transferred / self.total
            logger.info(
                "progress %s: %s of %s (%.0f%%), %.1f MB/s",
                self.label, _human(self.transferred), _human(self.total), pct, rate,
            )
        else:
            logger.info(
                "progress %s: %s, %.1f MB/s", self.label, _human(self.transferred), rate
            )

    def done(self, size: int | None = None) -> float:
        """Log the end line and return the elapsed seconds."""
        if size is not None:
            self.transferred = size
        elapsed = time.monotonic() - self._start
        rate = self.transferred / max(elapsed, 1e-9) / _MB
        logger.info(
            "done %s: %s in %.2f s (%.1f MB/s)",
            self.label, _human(self.transferred), elapsed, rate,
        )
        return elapsed
