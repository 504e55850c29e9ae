"""``ftp://[user[:password]@]host[:port]/path`` through fsspec's FTP file system.

Anonymous unless the URL has a user. One connection per thread (ftplib is not
thread-safe). Uploads go to a temporary name next to the target, renamed when complete.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem
from fsspec.callbacks import Callback

from ..errors import TransferError
from ..policy import current_policy
from ..urls import redact_url
from .fsspec_store import FsspecStorage


class FtpStorage(FsspecStorage):
    """FTP servers."""

    label = "FTP"

    def locate(self, url: str) -> tuple[AbstractFileSystem, str]:
        """An FTP connection (per thread, per server and user) and the path on the server."""
        parts = urlsplit(url)
        if not parts.hostname:
            raise TransferError(f"{redact_url(url)} names no server: use ftp://host/path")
        user = unquote(parts.username) if parts.username else "anonymous"
        password = unquote(parts.password) if parts.password else ""
        port = parts.port or 21
        network = current_policy().network
        key = ("ftp", parts.hostname, port, user, password, network)

        def make() -> AbstractFileSystem:
            # Connect to the address the policy checked (data connections of passive mode
            # go to that same address: ftplib ignores the one the server names).
            address = network.resolve(parts.hostname or "", port)[0]
            return self._make(address, port, user, password)

        fs = self.filesystems.get(key, make, per_thread=True)
        return fs, unquote(parts.path) or "/"

    @staticmethod
    def _make(host: str, port: int, user: str, password: str) -> AbstractFileSystem:
        from fsspec.implementations.ftp import FTPFileSystem

        return FTPFileSystem(
            host=host, port=port, username=user, password=password,
            skip_instance_cache=True, timeout=60,
        )

    def put_file(self, fs: AbstractFileSystem, src: Path, path: str, callback: Callback) -> None:
        """Upload under a temporary name, then rename it to ``path``."""
        parent, _, name = path.rpartition("/")
        tmp = f"{parent}/.{name}.{secrets.token_hex(4)}.part"
        fs.makedirs(parent or "/", exist_ok=True)
        fs.put_file(str(src), tmp, callback=callback)
        try:
            if fs.exists(path):
                fs.rm_file(path)
            fs.mv(tmp, path)
        except Exception:
            fs.rm_file(tmp)
            raise
