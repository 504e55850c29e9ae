"""Stopping ``tes-server serve`` and ``tes-server worker`` on SIGTERM or SIGINT.

A restart is not a failure: the first signal starts a hand-over (the process stops
taking work, interrupts what it is doing and gives its tasks back; see
:meth:`tes_core.worker.process.WorkerProcess.stop`), and the process exits once that is
done. It never takes longer than ``TES_SHUTDOWN_GRACE`` seconds: after that, or at a
second SIGTERM or SIGINT, it exits at once, as after a crash, which the next worker
recovers from in the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from .config import ConfigError

log = logging.getLogger("tes_core")


def check_grace(grace: float) -> float:
    """``grace`` if usable, else :class:`ConfigError` naming ``TES_SHUTDOWN_GRACE``."""
    if not grace > 0:
        raise ConfigError(f"TES_SHUTDOWN_GRACE={grace:g} must be above 0 (seconds)")
    return grace


def exit_now(status: int) -> None:
    """Flush the logs and standard streams, then end the process without waiting for any
    thread (a task thread waits on a container that goes on running; it is handed over)."""
    for stream in [*logging.getLogger().handlers, sys.stdout, sys.stderr]:
        with contextlib.suppress(Exception):  # an exiting process reports nothing more
            stream.flush()
    os._exit(status)


class GracefulStop:
    """The signal handlers of a serving process: hand over, then exit; at once if asked twice.

    ``begin`` runs in the main thread at the first signal; it must only start the stop
    (set an event, raise ``SystemExit`` to end a server loop): the caller does the rest
    and then calls :func:`exit_now`. A watchdog ends the process ``grace`` seconds after
    the first signal if it is still there.
    """

    def __init__(self, grace: float, begin: Callable[[], None]) -> None:
        self.grace = check_grace(grace)
        self.begin = begin
        self.signalled = threading.Event()

    def install(self) -> None:
        """Take over SIGTERM and SIGINT (call from the main thread)."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signalled.is_set():
            log.warning("signal %d again: stopping at once", signum)
            exit_now(128 + signum)
        self.signalled.set()
        log.info("signal %d: handing over running work and stopping within %g s "
                 "(send it again to stop at once)", signum, self.grace)
        watchdog = threading.Timer(self.grace, self._overdue)
        watchdog.daemon = True
        watchdog.start()
        self.begin()

    def _overdue(self) -> None:
        log.warning("still stopping %g s after the signal (TES_SHUTDOWN_GRACE): exiting now; "
                    "what was not handed over is recovered as after a crash", self.grace)
        exit_now(1)
