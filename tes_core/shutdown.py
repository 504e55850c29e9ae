"""Stopping ``tes-server serve`` and ``tes-server worker`` on SIGTERM or SIGINT.

A restart is not a failure: the first signal starts a hand-over (the process stops
taking work, interrupts what it is doing and gives its tasks back; see
:meth:`tes_core.worker.process.WorkerProcess.stop`), and the process exits once that is
done. It never takes longer than ``TES_SHUTDOWN_GRACE`` seconds: every step of the
hand-over is bounded by a :class:`Deadline` set at the signal (the grace less
:func:`exit_reserve`, kept for exiting), and a step still going at its time is left
behind (:func:`bounded`). Should the process still be there two fifths into the reserve,
or at a second SIGTERM or SIGINT, it exits at once, as after a crash, which the next
worker recovers from in the same way; it first logs where each of its threads was (what
held the stop). A backstop that needs neither the interpreter lock nor any other lock
(:func:`faulthandler.dump_traceback_later`) ends it four fifths into the reserve should
even that exit be held.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

from .config import ConfigError

log = logging.getLogger("tes_core")


def check_grace(grace: float) -> float:
    """``grace`` if usable, else :class:`ConfigError` naming ``TES_SHUTDOWN_GRACE``."""
    if not grace > 0:
        raise ConfigError(f"TES_SHUTDOWN_GRACE={grace:g} must be above 0 (seconds)")
    return grace


def exit_reserve(grace: float) -> float:
    """Seconds of ``grace`` kept for exiting (a fifth, at most 2 s): the hand-over has the
    rest, so that the process is gone within the grace even on a busy machine."""
    return min(2.0, grace / 5)


class Deadline:
    """A moment on the monotonic clock by which a stop must be done; each step of the
    hand-over gets what is left of it (or a share: :meth:`share`)."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (0 once it passed)."""
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        """Whether no time is left."""
        return self.remaining() <= 0

    def share(self, fraction: float) -> Deadline:
        """A deadline ``fraction`` of the time left from now: one step's part, leaving the
        rest to the steps after it."""
        return Deadline(self.remaining() * fraction)


def bounded(step: Callable[[], object], deadline: Deadline, what: str) -> bool:
    """Run ``step`` in a daemon thread and wait for it until ``deadline``.

    ``True`` if it ended in time without an error. Else ``False``, logged naming ``what``:
    an error with its traceback; a step still going (a call that does not answer, a lock
    held elsewhere) is left behind, the process exits without it.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # reported by the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"tes-stop: {what}", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # the interpreter is exiting (an atexit handler): no new threads
        run()
    else:
        thread.join(deadline.remaining())
    if thread.is_alive():
        log.warning("stopping: %s was still going when its time was up; going on without it", what)
        return False
    if failure:
        log.warning("stopping: %s failed", what, exc_info=failure[0])
        return False
    return True


def thread_stacks() -> str:
    """Where every thread of this process is, innermost call last (no variables: no
    secret can be in it)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"thread {names.get(ident, ident)}:\n{''.join(traceback.format_stack(frame)).rstrip()}"
        for ident, frame in sys._current_frames().items()
    )


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
    (set an event, raise ``SystemExit`` to end a server loop): the caller does the rest,
    each step bounded by :attr:`deadline`, and then calls :func:`exit_now`. Two fifths
    into the :func:`exit_reserve` that follows a watchdog logs where each thread is and
    ends the process if it is still there; four fifths into it a backstop that needs no
    lock ends it (its stacks on stderr) should even the watchdog be held.
    """

    def __init__(self, grace: float, begin: Callable[[], None]) -> None:
        self.grace = check_grace(grace)
        self.begin = begin
        self.signalled = threading.Event()
        self.deadline: Deadline | None = None
        """When the hand-over must be done; set at the first signal."""

    def install(self) -> None:
        """Take over SIGTERM and SIGINT (call from the main thread)."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signalled.is_set():
            log.warning("signal %d again: stopping at once", signum)
            exit_now(128 + signum)
        reserve = exit_reserve(self.grace)
        self.deadline = Deadline(self.grace - reserve)
        with contextlib.suppress(AttributeError, ValueError, RuntimeError):  # no stderr
            faulthandler.dump_traceback_later(self.grace - reserve / 5, exit=True, file=sys.stderr)
        self.signalled.set()
        log.info(
            "signal %d: handing over running work and stopping within %g s "
            "(send it again to stop at once)",
            signum,
            self.grace,
        )
        watchdog = threading.Timer(self._overdue_after(), self._overdue)
        watchdog.daemon = True
        watchdog.start()
        self.begin()

    def _overdue_after(self) -> float:
        """Seconds after the signal the watchdog ends the process."""
        return self.grace - exit_reserve(self.grace) * 3 / 5

    def _overdue(self) -> None:
        log.warning(
            "still stopping %g s after the signal (TES_SHUTDOWN_GRACE=%g): exiting "
            "now; what was not handed over is recovered as after a crash. What "
            "held the stop:\n%s",
            self._overdue_after(),
            self.grace,
            thread_stacks(),
        )
        exit_now(1)
