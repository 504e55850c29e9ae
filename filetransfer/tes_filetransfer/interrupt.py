"""Stopping transfers on request: a worker handing its tasks over, a cancelled task.

The caller makes a :class:`threading.Event` current (:func:`interruptible`, or the
``interrupt`` argument of :func:`~tes_filetransfer.stage_inputs` and
:func:`~tes_filetransfer.upload_outputs`). Once it is set, every transfer under it stops
within moments, wherever it is:

* between two chunks of a file (:class:`~tes_filetransfer.progress.Progress` checks it);
* before every retry and during the wait before it (:func:`pause`);
* in a blocking call that no chunk ends (a store that accepted the connection and never
  answers): the pool stops waiting for it at once (:mod:`.pool`); the call's thread is a
  daemon thread, left to end at the storage's own deadline.

What is stopped raises :class:`Interrupted`: not a failure of the store, so the caller
should not count it as one (the transfer can simply be done again later).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator

from .errors import TransferError


class Interrupted(TransferError):
    """A transfer stopped because the caller asked it to (:mod:`.interrupt`)."""

    def __init__(self, message: str = "the transfer was stopped on request") -> None:
        super().__init__(message)


_current: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "tes_filetransfer_interrupt", default=None
)


def current_interrupt() -> threading.Event | None:
    """The event :func:`interruptible` made current in this thread, if any."""
    return _current.get()


@contextlib.contextmanager
def interruptible(event: threading.Event | None) -> Iterator[threading.Event | None]:
    """Make ``event`` the current interrupt for the block (``None``: keep the current one)."""
    if event is None:
        yield _current.get()
        return
    token = _current.set(event)
    try:
        yield event
    finally:
        _current.reset(token)


def check(event: threading.Event | None = None) -> None:
    """Raise :class:`Interrupted` if ``event`` (default: the current interrupt) is set."""
    event = event if event is not None else _current.get()
    if event is not None and event.is_set():
        raise Interrupted()


def pause(seconds: float) -> None:
    """Sleep ``seconds``; raise :class:`Interrupted` as soon as the current interrupt is set."""
    event = _current.get()
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise Interrupted()
