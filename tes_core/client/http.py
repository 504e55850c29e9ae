"""A small TES HTTP client over the standard library (no dependency to install)."""

from __future__ import annotations

import contextlib
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

API_PATH = "/ga4gh/tes/v1"


class ClientError(Exception):
    """The request failed: the server refused it or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UsageError(ClientError):
    """A mistake in what the user asked for, found before any request (exit code 2)."""


def api_base(url: str) -> str:
    """The API base of a server URL: a bare ``http://host:port`` gets ``/ga4gh/tes/v1``."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the server URL must start with http:// or https://, got {url!r}")
    if urllib.parse.urlsplit(url).path in ("", "/"):
        url += API_PATH
    return url


@dataclass
class TesClient:
    """Calls one server's TES API."""

    url: str
    token: str = ""
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.url = api_base(self.url)

    def service_info(self) -> dict[str, Any]:
        """``GET /service-info``."""
        return self._json("GET", "/service-info")

    def create(self, task: dict[str, Any]) -> str:
        """``POST /tasks``; the new task's id."""
        return self._json("POST", "/tasks", body=task)["id"]

    def get(self, task_id: str, view: str = "MINIMAL") -> dict[str, Any]:
        """``GET /tasks/{id}``."""
        return self._json("GET", f"/tasks/{_quote(task_id)}", {"view": view})

    def list(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        """``GET /tasks`` with query parameters (repeated keys allowed)."""
        return self._json("GET", "/tasks", params)

    def cancel(self, task_id: str) -> None:
        """``POST /tasks/{id}:cancel``."""
        self._json("POST", f"/tasks/{_quote(task_id)}:cancel", body={})

    def executor_output(
        self, task_id: str, index: int, stream: str, offset: int | None = None
    ) -> tuple[str, int | None, int | None]:
        """``GET /tasks/{id}/executors/{index}/{stream}`` (a tes-core addition):
        ``(text, first, next)``, the bytes from ``offset`` (else the end) of what the
        executor wrote; ``first``/``next`` are where they lie in the stream, ``None`` when
        the server answered from the stored executor log (the task ended)."""
        params = None if offset is None else {"offset": str(offset)}
        path = f"/tasks/{_quote(task_id)}/executors/{int(index)}/{stream}"
        with self._open("GET", path, params, None, {"Accept": "text/plain"},
                        self.timeout) as response:
            text = response.read().decode("utf-8", errors="replace")
            first, after = (response.headers.get(h) for h in ("X-Output-Offset", "X-Output-Next"))
        if first is None or after is None or not (first.isdigit() and after.isdigit()):
            return text, None, None
        return text, int(first), int(after)

    def open_events(
        self, params: list[tuple[str, str]] | None = None, last_event_id: str | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """Open ``GET /events``; read it with :func:`~tes_core.client.sse.read_events`."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        return self._open("GET", "/events", params, None, headers, timeout)

    def _json(
        self, method: str, path: str, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        with self._open(method, path, params, body, {"Accept": "application/json"},
                        self.timeout) as response:
            data = response.read()
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise ClientError(f"{method} {path}: the server answered something not JSON") \
                from None

    def _open(
        self, method: str, path: str, params: Any, body: Any, headers: dict[str, str],
        timeout: float,
    ) -> Any:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers = {**headers, "Content-Type": "application/json"}
        if self.token:
            headers = {**headers, "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise ClientError(f"{method} {path}: {_reason(exc)}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach {self.url}: {reason}") from None


def _quote(task_id: str) -> str:
    return urllib.parse.quote(task_id, safe="")


def _reason(exc: urllib.error.HTTPError) -> str:
    """The server's error message (``msg`` of the JSON error), or the HTTP status."""
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("msg") if isinstance(body, dict) else None
    except (ValueError, OSError):
        message = None
    return f"HTTP {exc.code}: {message}" if message else f"HTTP {exc.code} {exc.reason}"


def hang_up(response: Any) -> None:
    """Close a streamed response at once, even while another thread reads it (``close()``
    alone waits for that read to return, up to a keepalive later)."""
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        response.close()
