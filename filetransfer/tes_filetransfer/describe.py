"""Shared bits for reading TES input/output dicts and naming them in messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import TransferError
from .interrupt import Interrupted
from .urls import redact_url, scrub_text, url_scheme

FILE = "FILE"
DIRECTORY = "DIRECTORY"


def describe(kind: str, item: Mapping[str, Any], index: int) -> str:
    """``input 'reads' (/data/r.fq)``, ``output /out/x`` or ``input #2`` for messages."""
    name = item.get("name")
    path = item.get("path")
    where = path if isinstance(path, str) and path else f"#{index}"
    if isinstance(name, str) and name:
        return f"{kind} {name!r} ({where})"
    return f"{kind} {where}"


def file_type(item: Mapping[str, Any], what: str) -> str:
    """The item's ``type`` as ``FILE`` or ``DIRECTORY`` (``FILE`` when absent)."""
    value = item.get("type") or FILE
    value = getattr(value, "value", value)  # tolerate an Enum
    text = str(value).upper()
    if text not in (FILE, DIRECTORY):
        raise TransferError(f"{what}: type {value!r} is unknown: use FILE or DIRECTORY")
    return text


@contextlib.contextmanager
def reported_as(what: str, url: str, local: object, *, upload: bool) -> Iterator[None]:
    """Re-raise any failure inside the block as a :class:`TransferError` naming ``what``.

    ``local`` is the file on this machine (written for inputs, read for outputs), named
    in messages about local I/O errors; other exceptions are a storage plugin's bug.
    """
    try:
        yield
    except Interrupted:
        raise  # stopped on request: nothing failed, nothing to name
    except TransferError as exc:
        message = str(exc)
        raise TransferError(
            message if message.startswith(what) else f"{what}: {message}"
        ) from None
    except OSError as exc:
        if upload:
            raise TransferError(
                f"{what}: reading {exc.filename or local} failed: {exc.strerror or exc}: "
                "check the task folder's permissions"
            ) from None
        raise TransferError(
            f"{what}: writing {local} failed: {exc.strerror or exc}: "
            "check the task folder's permissions and free space"
        ) from None
    except Exception as exc:
        action = f" uploading to {redact_url(url)}" if upload else ""
        raise TransferError(
            f"{what}: the {url_scheme(url) or 'local'} storage failed{action} "
            f"({type(exc).__name__}: {scrub_text(str(exc))}): report this to its maintainers"
        ) from None
