"""Files on this machine: plain absolute paths (``/x/y``) and ``file://`` URLs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import TransferError
from ..fsutil import atomic_target, copy_file
from ..progress import Progress, logger
from ..urls import redact_url, url_scheme


def local_path(url: str) -> Path:
    """Turn ``/x/y`` or ``file:///x/y`` (``file://localhost/x/y``) into a local path."""
    if url_scheme(url) == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise TransferError(
                f"{redact_url(url)} names host {parts.netloc!r}: file:// URLs must be local "
                "(use file:///path)"
            )
        path = unquote(parts.path)
    else:
        path = url
    if not path.startswith("/"):
        raise TransferError(f"{redact_url(url)} is not an absolute path: start it with '/'")
    return Path(path)


class LocalStorage:
    """Copies files with :func:`shutil.copyfile` (never hard links: executors may write)."""

    def download(self, url: str, dest: Path) -> int:
        """Copy the local file named by ``url`` to ``dest``; keep its permission bits."""
        src = local_path(url)
        if src.is_dir():
            raise TransferError(f"{src} is a directory: set the input's type to DIRECTORY")
        if not src.exists():
            raise TransferError(f"no such file {src}: check the URL and that it is mounted")
        return _copy(src, dest, f"copying {src} failed", "check permissions and free space")

    def download_dir(self, url: str, dest: Path) -> int:
        """Copy the tree under the local folder ``url`` into ``dest``; return the file count."""
        src = local_path(url)
        if not src.exists():
            raise TransferError(f"no such folder {src}: check the URL and that it is mounted")
        if not src.is_dir():
            raise TransferError(f"{src} is a file, not a folder: set the input's type to FILE")
        dest.mkdir(parents=True, exist_ok=True)
        count = 0
        for dirpath, dirnames, filenames in os.walk(src, onerror=_walk_error):
            here = Path(dirpath)
            target_dir = dest / here.relative_to(src)
            for name in sorted(dirnames):
                if (here / name).is_symlink():
                    logger.warning("skipping %s: not following a linked folder", here / name)
                    continue
                (target_dir / name).mkdir(exist_ok=True)
            for name in sorted(filenames):
                file_src = here / name
                if not file_src.is_file():
                    logger.warning("skipping %s: not a regular file", file_src)
                    continue
                self.download(str(file_src), target_dir / name)
                count += 1
        return count

    def upload(self, src: Path, url: str) -> int:
        """Copy ``src`` to the local path named by ``url``, creating parent folders."""
        dest = local_path(url)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransferError(
                f"copying to {dest} failed: cannot create its folder ({exc.strerror or exc}): "
                "check that the output folder is writable"
            ) from None
        return _copy(
            src, dest, f"copying to {dest} failed",
            "check that the output folder is writable and has free space",
        )


def _walk_error(exc: OSError) -> None:
    raise TransferError(
        f"cannot list {exc.filename}: {exc.strerror or exc}: check its permissions"
    )


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _copy(src: Path, dest: Path, failure: str, advice: str) -> int:
    """Copy one file atomically with progress, keeping its mode; the byte count."""
    progress = Progress(f"copy {src} -> {dest}", _size(src))
    try:
        with atomic_target(dest) as tmp:
            size = copy_file(src, tmp, progress)
            shutil.copymode(src, tmp)
    except OSError as exc:
        raise TransferError(f"{failure}: {exc.strerror or exc}: {advice}") from None
    progress.done(size)
    return size
