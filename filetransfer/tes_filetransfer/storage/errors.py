"""Turning the exceptions of fsspec file systems and cloud SDKs into TransferError.

Transient problems (dropped connections, timeouts, HTTP 429 and 5xx) become
:class:`TransientError`, retried by the caller; everything else is final. Messages are
built from status codes and error codes, never from the SDK's text, which may hold the
request URL with its token.
"""

from __future__ import annotations

import asyncio
import errno
import ftplib
from pathlib import Path

from ..errors import TransferError, TransientError
from ..urls import scrub_text

_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _status(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, if any."""
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(value, int):
            return value
    return None


def _remote_missing(exc: BaseException) -> bool:
    """A FileNotFoundError about the remote object (local files have absolute names)."""
    if not isinstance(exc, FileNotFoundError):
        return False
    return exc.filename is None or not str(exc.filename).startswith("/")


def _azure_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return f" {code}" if code else ""


def translate(exc: BaseException, safe_url: str, *, upload: bool, local: Path | None) -> Exception:
    """The :class:`TransferError` to raise for ``exc`` met while moving ``safe_url``.

    ``local`` is the file on this machine being read or written (named in disk errors).
    """
    if isinstance(exc, TransferError):
        return exc
    verb = "upload to" if upload else "download of"
    access = "writing" if upload else "reading"
    status = _status(exc)
    # Azure and aiohttp raise these without an errno; compare by class name so that this
    # module needs neither SDK installed.
    name = type(exc).__name__
    if status in (401, 403) or isinstance(exc, PermissionError):
        detail = f"HTTP {status}{_azure_code(exc)}" if status else "access denied"
        return TransferError(
            f"{verb} {safe_url} was refused ({detail}): check that the URL's token "
            f"(SAS) or the credentials allow {access} and have not expired"
        )
    if status == 404 or _remote_missing(exc) or (
        isinstance(exc, ftplib.error_perm) and str(exc).startswith("550")
    ):
        what = "the output's container or bucket" if upload else "the input URL"
        return TransferError(f"{safe_url} was not found: check {what}")
    if status is not None and (status == 429 or status >= 500 or status == 408):
        return TransientError(f"HTTP {status}{_azure_code(exc)} from {safe_url}")
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return TransferError(
            f"{'reading' if upload else 'writing'} {local or 'the local file'} failed: "
            f"{exc.strerror}: free space on the task's disk or give it a larger disk"
        )
    # An Azure HttpResponseError without a status is a transport failure (short body).
    no_status_response = name == "HttpResponseError" and status is None
    if no_status_response or isinstance(
        exc, ConnectionError | TimeoutError | asyncio.TimeoutError | EOFError | ftplib.error_temp
    ) or name in {
        "ServiceRequestError", "ServiceResponseError", "ClientConnectionError",
        "ClientPayloadError", "ServerDisconnectedError", "ClientOSError",
        "IncompleteReadError", "ServerTimeoutError", "IncompleteRead",
        "ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError",
        "ConnectionClosedError", "ResponseStreamingError",
    }:
        return TransientError(f"connection to {safe_url} failed ({name})")
    if status is not None:
        return TransferError(f"HTTP {status}{_azure_code(exc)} from {safe_url}: check the URL")
    if isinstance(exc, OSError) and local is not None and exc.filename is not None:
        return TransferError(
            f"{'reading' if upload else 'writing'} {local} failed: {exc.strerror or exc}: "
            "check the task folder's permissions and free space"
        )
    return TransferError(
        f"{verb} {safe_url} failed ({name}: {scrub_text(str(exc))[:300]})"
    )
