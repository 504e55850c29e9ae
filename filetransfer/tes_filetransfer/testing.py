"""Test helpers for programs that embed the library (their tests and benchmarks).

:class:`HangingStore` is the store that went away without closing its port: it accepts
every connection and never answers, so only deadlines and interrupts end a transfer to it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class HangingStore:
    """A loopback TCP server that accepts connections, reads what comes and never answers.

    Use it as a context manager; :attr:`url` is ``http://127.0.0.1:<port>``, and
    :attr:`accepted` counts the connections it took.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
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
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

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
