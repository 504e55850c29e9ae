"""What every attack test checks afterwards: nothing on the host changed or leaked.

An attack test submits a hostile task to a real server and asserts that the task was
refused or failed; these canaries then show that the attack had no side effect:

* :class:`HostCanary`: a secret file in a folder no setting allows (under ``/var/tmp``, not
  ``/tmp``), and a secret in the server's own environment. The attack must neither read
  them (nothing of them in the task, its logs or its outputs) nor change the folder.
* :class:`LoopbackSentinel`: a TCP listener on 127.0.0.1 that records every connection;
  a refused request-forgery attempt must never reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_SECRET_ENV = "TES_CANARY_SERVER_SECRET"
"""Name of the marker variable in the environment of the servers these tests start."""

SERVER_SECRET = f"server-secret-{uuid.uuid4().hex}"
"""Its value: must never show up in a task, a log or an output."""


def server_canary_env() -> dict[str, str]:
    """Extra environment for a server under attack: the marker secret."""
    return {SERVER_SECRET_ENV: SERVER_SECRET}


@dataclass
class HostCanary:
    """A host folder holding a secret file that no task may read, write or replace."""

    folder: Path
    secret: str = field(default_factory=lambda: f"host-secret-{uuid.uuid4().hex}")

    @classmethod
    def create(cls) -> HostCanary:
        """Make the folder under ``/var/tmp`` (outside every default allow-list)."""
        folder = Path("/var/tmp") / f"tes-canary-{uuid.uuid4().hex[:12]}"
        folder.mkdir(mode=0o700)
        canary = cls(folder)
        canary.file.write_text(canary.secret)
        canary._snapshot = canary.snapshot()
        return canary

    @property
    def file(self) -> Path:
        """The secret file."""
        return self.folder / "secret.txt"

    @property
    def url(self) -> str:
        """The secret file as a ``file://`` URL."""
        return f"file://{self.file}"

    def snapshot(self) -> dict[str, tuple[int, int, str]]:
        """Every entry of the folder: (mode, size, content or link target)."""
        state: dict[str, tuple[int, int, str]] = {}
        for path in sorted(self.folder.rglob("*")):
            st = path.lstat()
            if path.is_symlink():
                body = "-> " + os.readlink(path)
            elif path.is_file():
                body = path.read_text(errors="replace")
            else:
                body = ""
            state[str(path.relative_to(self.folder))] = (st.st_mode, st.st_size, body)
        return state

    def assert_untouched(self) -> None:
        """Fail if anything in the folder was added, removed or changed."""
        assert self.snapshot() == self._snapshot, "the host canary folder was changed"

    def remove(self) -> None:
        """Delete the folder."""
        shutil.rmtree(self.folder, ignore_errors=True)

    _snapshot: dict[str, tuple[int, int, str]] = field(default_factory=dict, repr=False)


def assert_no_leak(*texts: Any, canary: HostCanary | None = None) -> None:
    """Fail if the server's marker secret (or ``canary``'s) appears in any of ``texts``.

    Texts may be strings, bytes, or JSON-able values (a task in FULL view, say).
    """
    secrets = [SERVER_SECRET] + ([canary.secret] if canary else [])
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        elif not isinstance(text, str):
            text = json.dumps(text)
        for secret in secrets:
            assert secret not in text, "a secret leaked into what the task could see"


class LoopbackSentinel:
    """A TCP listener on 127.0.0.1 that records every connection made to it."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.hits: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.settimeout(1.0)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            with self._lock:
                self.hits.append(data)
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            conn.close()

    def reset(self) -> None:
        """Forget the connections seen so far."""
        with self._lock:
            self.hits.clear()

    def assert_no_hits(self) -> None:
        """Fail if anything connected since the last :meth:`reset`."""
        with self._lock:
            assert not self.hits, f"the loopback sentinel was reached: {self.hits[:3]}"

    def close(self) -> None:
        """Stop listening."""
        self._sock.close()
