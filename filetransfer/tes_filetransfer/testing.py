"""Test helpers for programs that embed the library (their tests and benchmarks).

:class:`HangingStore` is the store that went away without closing its port: it accepts
every connection and never answers, so only deadlines and interrupts end a transfer to it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from types import TracebackType


class HangingStore:
    """A loopback TCP server that accepts connections, reads what comes and never answers.

    Use it as a context manager; :attr:`url` is ``http://127.0.0.1:<port>``, and
    :attr:`accepted` counts the connections it took.
    """

    files: dict[str, bytes]
    """What GET answers once :meth:`answer` was called, by path (``/a/b.txt``)."""
    received: dict[str, bytes]
    """The bodies PUT to it once :meth:`answer` was called, by path."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._answering = False
        self.files = {}
        self.received = {}
        threading.Thread(target=self._accept, name="hanging-store", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self.accepted += 1
                self._open.append(conn)
                serve = self._serve if self._answering else self._drain
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def answer(self, files: Mapping[str, bytes] | None = None) -> None:
        """From now on answer as a plain HTTP store: GET of a path in ``files`` gets its
        bytes (else 404), PUT stores its body in :attr:`received` (201). Connections
        held until now are dropped."""
        with self._lock:
            self.files.update(files or {})
            self._answering = True
            held, self._open = self._open, []
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            status, payload = "404 Not Found", b""
            if method == "PUT":
                with self._lock:
                    self.received[path] = body
                status = "201 Created"
            elif method in ("GET", "HEAD") and path in self.files:
                status, payload = "200 OK", self.files[path]
            reply = (f"HTTP/1.1 {status}\r\nContent-Length: {len(payload)}\r\n"
                     "Connection: close\r\n\r\n").encode()
            conn.sendall(reply + (payload if method != "HEAD" else b""))

    def close(self) -> None:
        """Stop listening and drop every connection it holds."""
        with self._lock:
            self._closed = True
            conns, self._open = self._open, []
        self._listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> HangingStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
