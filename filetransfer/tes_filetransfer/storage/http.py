"""``http://`` and ``https://``: streamed GET downloads and PUT uploads, with retries."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests

from ..errors import TransferError, TransientError
from ..fsutil import atomic_target
from ..interrupt import pause
from ..policy import current_policy
from ..progress import Progress, logger
from ..urls import redact_url, scrub_text
from .base import RemoteFile
from .deadlines import CONNECT_TIMEOUT, READ_TIMEOUT
from .netguard import guarded_session

_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")


class _RedactFilter(logging.Filter):
    """Strips query strings from urllib3's debug lines (they print the full request path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub_text(record.getMessage())
        record.args = None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactFilter())


class _Retryable(Exception):
    """A failure worth another attempt (network trouble, 5xx, 429, short body)."""


_RETRYABLE_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _ProgressReader:
    """File wrapper with a length (so requests sends Content-Length) that counts reads."""

    def __init__(self, fileobj: BinaryIO, size: int, progress: Progress) -> None:
        self._fileobj = fileobj
        self._size = size
        self._progress = progress

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        data = self._fileobj.read(amount)
        self._progress.update(len(data))
        return data


def _worth_retrying(status: int) -> bool:
    """Whether an HTTP answer is a passing trouble: a server error or 429 Too Many Requests."""
    return status >= 500 or status == 429


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a requests exception."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broke during the transfer"
    if isinstance(exc, _Retryable):
        return str(exc)
    found = _ERRNO.search(str(exc))
    detail = scrub_text(found.group(0).strip()) if found else type(exc).__name__
    return f"connection failed ({detail})"


def _advice(status: int, upload: bool) -> str:
    if status in (401, 403):
        if upload:
            return "check that the output URL's token or credentials allow writing (expired?)"
        return "check that the input URL's token or credentials allow reading (expired?)"
    if status == 404:
        if upload:
            return "check the output URL (does the bucket or folder exist?)"
        return "check the input URL"
    if status == 405 and upload:
        return "this server does not accept PUT at that URL: use a store that accepts uploads"
    return "check the URL" if not upload else "check the output URL"


class HttpStorage:
    """Downloads with streamed GET, uploads with PUT.

    Connection errors, timeouts, HTTP 5xx and 429 are retried: ``attempts`` tries in all,
    waiting ``backoff``, ``2*backoff``, ... seconds between them. HTTP cannot list a folder,
    so directory inputs are refused.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: float = 0.5,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        chunk_size: int = 1024 * 1024,
    ) -> None:
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = (connect_timeout, read_timeout)
        self.chunk_size = chunk_size
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """One requests session per thread (sessions are not thread-safe) and network
        policy (the current one: every connection it opens is checked against it)."""
        network = current_policy().network
        sessions = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(network)
        if session is None:
            session = sessions[network] = guarded_session(network)
        return session

    def _retry_wait(self, attempt: int, problem: str, safe_url: str) -> None:
        delay = self.backoff * (2 ** (attempt - 1))
        logger.warning(
            "%s from %s (attempt %d of %d); retrying in %.1f s",
            problem, safe_url, attempt, self.attempts, delay,
        )
        pause(delay)

    def download(self, url: str, dest: Path) -> int:
        """GET ``url`` into ``dest`` (temp file + rename); return the size in bytes."""
        safe = redact_url(url)
        progress = Progress(f"download {safe} -> {dest}", announce=False)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                return self._download_once(url, safe, dest, progress)
            except _Retryable as exc:
                problem = str(exc)
            except requests.exceptions.InvalidURL:
                raise TransferError(f"{safe} is not a valid URL: fix the input URL") from None
            except _RETRYABLE_ERRORS as exc:
                problem = _reason(exc)
            except requests.RequestException as exc:
                raise TransferError(
                    f"GET {safe} failed ({_reason(exc)}): check the input URL"
                ) from None
            except OSError as exc:
                raise TransferError(
                    f"writing {dest} failed: {exc.strerror or exc}: "
                    "check the task folder's permissions and free space"
                ) from None
            if attempt < self.attempts:
                self._retry_wait(attempt, problem, safe)
        raise TransferError(
            f"{problem} from {safe} after {self.attempts} attempts: "
            "the server or network failed; try again later"
        )

    def _download_once(self, url: str, safe: str, dest: Path, progress: Progress) -> int:
        headers = {"Accept-Encoding": "identity"}
        with self.session.get(url, stream=True, timeout=self.timeout, headers=headers) as resp:
            status = resp.status_code
            if _worth_retrying(status):
                raise _Retryable(f"HTTP {status}")
            if status >= 300:
                raise TransferError(f"HTTP {status} from {safe}: {_advice(status, upload=False)}")
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            progress.begin(total)
            written = 0
            with atomic_target(dest) as tmp, open(tmp, "xb") as out:
                for chunk in resp.iter_content(chunk_size=self.chunk_size):
                    out.write(chunk)
                    written += len(chunk)
                    progress.update(len(chunk))
                if total is not None and written != total:
                    raise _Retryable(f"short body ({written} of {total} bytes)")
        progress.done(written)
        return written

    def stat(self, url: str) -> RemoteFile:
        """HEAD ``url`` for its ETag, size and Last-Modified (what the cache checks).

        A server that refuses HEAD, or sends neither ETag nor Last-Modified, gives a
        RemoteFile without version: no caching. A dropped connection, a timeout, 429 or
        5xx raise :class:`TransientError`, for the caller's retries: a pooled connection the
        server had closed must not make a cached file a download.
        """
        try:
            resp = self.session.head(url, timeout=self.timeout, allow_redirects=True)
        except _RETRYABLE_ERRORS as exc:
            raise TransientError(f"HEAD {redact_url(url)} failed ({_reason(exc)})") from None
        except requests.RequestException:
            return RemoteFile(url=url, size=None)
        with resp:
            if _worth_retrying(resp.status_code):
                raise TransientError(f"HEAD {redact_url(url)} answered HTTP {resp.status_code}")
            if resp.status_code >= 300:
                return RemoteFile(url=url, size=None)
            length = resp.headers.get("Content-Length")
            if not resp.headers.get("ETag") and not resp.headers.get("Last-Modified"):
                return RemoteFile(url=url, size=None)  # size alone is too weak a version here
            return RemoteFile(
                url=url,
                size=int(length) if length and length.isdigit() else None,
                etag=resp.headers.get("ETag"),
                modified=resp.headers.get("Last-Modified"),
            )

    def download_dir(self, url: str, dest: Path) -> int:
        """Always fails: plain HTTP has no way to list a folder."""
        raise TransferError(
            f"directory inputs are not supported over HTTP ({redact_url(url)}): directory "
            "inputs need a listable store (a local path, file:// or an object store plugin); "
            "or pack the folder into one file"
        )

    def upload(self, src: Path, url: str) -> int:
        """PUT the file ``src`` to ``url``; return its size in bytes."""
        safe = redact_url(url)
        size = src.stat().st_size
        headers = {"Content-Type": "application/octet-stream"}
        host = urlsplit(url).hostname or ""
        if host.endswith(".blob.core.windows.net"):
            headers["x-ms-blob-type"] = "BlockBlob"  # Azure refuses a PUT (SAS URL) without it
        progress = Progress(f"upload {src} -> {safe}", size)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            progress.reset()
            try:
                with open(src, "rb") as fileobj:
                    body = _ProgressReader(fileobj, size, progress)
                    resp = self.session.put(url, data=body, headers=headers, timeout=self.timeout)
                with resp:
                    status = resp.status_code
                if 200 <= status < 300:
                    progress.done(size)
                    return size
                if _worth_retrying(status):
                    problem = f"HTTP {status}"
                else:
                    raise TransferError(
                        f"HTTP {status} from PUT {safe}: {_advice(status, upload=True)}"
                    )
            except requests.exceptions.InvalidURL:
                raise TransferError(f"{safe} is not a valid URL: fix the output URL") from None
            except _RETRYABLE_ERRORS as exc:
                problem = _reason(exc)
            except requests.RequestException as exc:
                raise TransferError(
                    f"PUT {safe} failed ({_reason(exc)}): check the output URL"
                ) from None
            except OSError as exc:
                raise TransferError(
                    f"reading {src} failed: {exc.strerror or exc}: check the file's permissions"
                ) from None
            if attempt < self.attempts:
                self._retry_wait(attempt, problem, safe)
        raise TransferError(
            f"{problem} from PUT {safe} after {self.attempts} attempts: "
            "the server or network failed; try again later"
        )
