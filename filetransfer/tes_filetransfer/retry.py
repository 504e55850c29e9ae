"""Retrying a transfer with exponential backoff on transient errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .errors import TransferError, TransientError
from .interrupt import check, pause
from .progress import logger

T = TypeVar("T")


def with_retries(call: Callable[[], T], *, label: str, attempts: int, backoff: float) -> T:
    """Run ``call``; on :class:`TransientError` wait ``backoff * 2**n`` s and run it again.

    ``label`` (already redacted) names the transfer in warnings. After ``attempts`` tries
    the last problem is raised as a final :class:`TransferError` saying how many tries
    were made. Under an interrupt (:mod:`.interrupt`) it raises
    :class:`~tes_filetransfer.interrupt.Interrupted` before a try and during a wait.
    """
    for attempt in range(1, attempts + 1):
        check()
        try:
            return call()
        except TransientError as exc:
            if attempt == attempts:
                raise TransferError(
                    f"{exc} (after {attempts} attempts): the server or network failed; "
                    "try again later"
                ) from None
            delay = backoff * (2 ** (attempt - 1))
            logger.warning(
                "%s: %s (attempt %d of %d); retrying in %.1f s",
                label, exc, attempt, attempts, delay,
            )
            pause(delay)
    raise AssertionError("unreachable")
