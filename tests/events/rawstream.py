"""Many ``GET /events`` streams over bare sockets, read by one thread.

A thousand listeners as a thousand client threads would measure the client; as sockets
under one selector they cost the client little, so tests and benchmarks see the server.
HTTP/1.0 requests: the response body is the stream itself (no chunked framing).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable

from tes_core.client.sse import ServerEvent, read_events

EVENTS_PATH = "/ga4gh/tes/v1/events"


class RawStream:
    """One event stream; its events are kept with the time each arrived."""

    def __init__(self, port: int, path: str = EVENTS_PATH) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.head = b""
        self.headers_done = False
        self.began = False
        self.closed = False
        self.frames: list[tuple[float, ServerEvent]] = []
        """``(arrival time.time(), event)`` of every event received."""
        self._body = b""

    def read(self) -> None:
        """Take what arrived (the socket is readable)."""
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        now = time.time()
        if self.headers_done:
            self._take(chunk, now)
            return
        self.head += chunk
        if b"\r\n\r\n" in self.head:
            self.head, _, rest = self.head.partition(b"\r\n\r\n")
            self.headers_done = True
            if self.status != 200:  # refused (a 503): its head says why
                self.close()
                return
            self._take(rest, now)

    def _take(self, data: bytes, now: float) -> None:
        self.began = self.began or bool(data)
        self._body += data
        end = self._body.rfind(b"\n\n")
        if end < 0:
            return
        complete, self._body = self._body[: end + 2], self._body[end + 2:]
        self.frames += [(now, event) for event in read_events(complete.splitlines(True))]

    @property
    def status(self) -> int | None:
        """The response's status code once its first line arrived."""
        first = self.head.partition(b"\r\n")[0].split()
        return int(first[1]) if len(first) > 1 and first[1].isdigit() else None

    @property
    def opened(self) -> bool:
        """The stream began (a 200 and its first line, ``retry:``)."""
        return self.headers_done and self.status == 200 and self.began

    def events(self, kind: str = "state") -> list[ServerEvent]:
        """The events of ``kind`` received so far, in order."""
        return [event for _, event in self.frames if event.event == kind]

    def close(self) -> None:
        """Hang up. As soon as the server ended or refused the stream too: gunicorn closes
        a connection by waiting (up to 2 s, in its one main thread, serving no one
        meanwhile) for the client to close its side."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def pump(streams: list[RawStream], until: Callable[[], bool], timeout: float) -> None:
    """Read every stream until ``until()`` holds or ``timeout`` seconds pass."""
    selector = selectors.DefaultSelector()
    for stream in streams:
        if not stream.closed:
            stream.sock.setblocking(False)
            selector.register(stream.sock, selectors.EVENT_READ, stream)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                key.data.read()
                if key.data.closed:
                    selector.unregister(key.fd)
    finally:
        selector.close()
