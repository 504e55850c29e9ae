"""Files on this machine: plain absolute paths (``/x/y``) and ``file://`` URLs.

Every path goes through the current :class:`~tes_filetransfer.policy.AccessPolicy`: it is
resolved to its real path, which must lie in an allowed folder and outside the denied
ones; a file is then opened without following a final symlink and the opened file's own
path is checked again, so swapping in a symlink after the check gains nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ..errors import TransferError
from ..fsutil import atomic_target
from ..policy import AccessPolicy, current_policy, local_path
from ..progress import Progress, logger

__all__ = ["LocalStorage", "local_path"]

_COPY_CHUNK = 64 * 1024 * 1024


class LocalStorage:
    """Copies files (never hard links: executors may write to their inputs)."""

    def download(self, url: str, dest: Path) -> int:
        """Copy the local file named by ``url`` to ``dest``; keep its permission bits."""
        policy = current_policy()
        src = local_path(url)
        real = policy.check_local(src)
        return self._copy_in(policy, src, real, dest)

    def _copy_in(self, policy: AccessPolicy, src: Path, real: str, dest: Path) -> int:
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except IsADirectoryError:
            raise TransferError(
                f"{src} is a directory: set the input's type to DIRECTORY"
            ) from None
        except FileNotFoundError:
            raise TransferError(
                f"no such file {src}: check the URL and that it is mounted"
            ) from None
        except OSError as exc:
            raise TransferError(
                f"cannot open {src}: {exc.strerror or exc}: check the path and its permissions"
            ) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise TransferError(f"{src} is a directory: set the input's type to DIRECTORY")
            if not stat.S_ISREG(info.st_mode):
                raise TransferError(f"{src} is not a regular file: give a plain file")
            opened = _opened_path(fd)
            if opened is not None and opened != real:
                policy.check_real(opened, str(src))  # it moved or was swapped meanwhile
            return _copy_fd(fd, info, src, dest)
        finally:
            os.close(fd)

    def download_dir(self, url: str, dest: Path) -> int:
        """Copy the tree under the local folder ``url`` into ``dest``; return the file count.

        Symlinks are not followed (linked files and folders are skipped with a warning);
        denied folders and ``dest`` itself are skipped, so a folder that holds the task's
        own folder never copies into itself.
        """
        policy = current_policy()
        src = local_path(url)
        real = policy.check_local(src)
        if not os.path.exists(real):
            raise TransferError(f"no such folder {src}: check the URL and that it is mounted")
        if not os.path.isdir(real):
            raise TransferError(f"{src} is a file, not a folder: set the input's type to FILE")
        dest.mkdir(parents=True, exist_ok=True)
        skip = policy.deny(dest)
        count = 0
        for dirpath, dirnames, filenames in os.walk(real, onerror=_walk_error):
            here = Path(dirpath)
            target_dir = dest / here.relative_to(real)
            kept = []
            for name in sorted(dirnames):
                path = here / name
                if path.is_symlink():
                    logger.warning("skipping %s: not following a linked folder", path)
                elif skip.is_denied(str(path)):
                    logger.warning("skipping %s: the server's own or the task's folder", path)
                else:
                    (target_dir / name).mkdir(exist_ok=True)
                    kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                path = here / name
                if not stat.S_ISREG(path.lstat().st_mode):
                    logger.warning("skipping %s: not a regular file", path)
                    continue
                if skip.is_denied(str(path)):
                    continue
                self._copy_in(policy, path, str(path), target_dir / name)
                count += 1
        return count

    def upload(self, src: Path, url: str) -> int:
        """Copy ``src`` to the local path named by ``url``, creating parent folders."""
        policy = current_policy()
        dest = local_path(url)
        policy.check_local(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransferError(
                f"copying to {dest} failed: cannot create its folder ({exc.strerror or exc}): "
                "check that the output folder is writable"
            ) from None
        # Check the folder again now that it exists, and write into its real path: the
        # final rename replaces a symlink at ``dest`` rather than following it.
        folder = policy.check_local(dest.parent)
        target = Path(folder) / dest.name
        policy.check_real(str(target), str(dest))
        progress = Progress(f"copy {src} -> {dest}", _size(src))
        try:
            with atomic_target(target) as tmp:
                size = _copy_path(src, tmp, progress)
                shutil.copymode(src, tmp)
        except OSError as exc:
            raise TransferError(
                f"copying to {dest} failed: {exc.strerror or exc}: check that the output "
                "folder is writable and has free space"
            ) from None
        progress.done(size)
        return size


def _opened_path(fd: int) -> str | None:
    """The path of the file open as ``fd`` (Linux ``/proc``); None where unknown."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _walk_error(exc: OSError) -> None:
    raise TransferError(
        f"cannot list {exc.filename}: {exc.strerror or exc}: check its permissions"
    )


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _copy_fd(fd: int, info: os.stat_result, src: Path, dest: Path) -> int:
    """Copy the open file ``fd`` to ``dest`` atomically with progress, keeping its mode."""
    progress = Progress(f"copy {src} -> {dest}", info.st_size)
    try:
        with atomic_target(dest) as tmp:
            with open(tmp, "xb") as out:
                size = _sendfile(fd, out.fileno(), progress)
            os.chmod(tmp, stat.S_IMODE(info.st_mode))
    except OSError as exc:
        raise TransferError(
            f"copying {src} failed: {exc.strerror or exc}: check permissions and free space"
        ) from None
    progress.done(size)
    return size


def _copy_path(src: Path, dest: Path, progress: Progress) -> int:
    """Copy the task's file ``src`` (resolved inside the task root) to ``dest``."""
    with open(src, "rb") as fin, open(dest, "xb") as fout:
        return _sendfile(fin.fileno(), fout.fileno(), progress)


def _sendfile(fd_in: int, fd_out: int, progress: Progress) -> int:
    """Copy all of ``fd_in`` to ``fd_out`` (``sendfile``; a plain loop where it fails)."""
    offset = 0
    try:
        while True:
            sent = os.sendfile(fd_out, fd_in, offset, _COPY_CHUNK)
            if sent == 0:
                return offset
            offset += sent
            progress.update(sent)
    except (AttributeError, OSError):
        if offset:
            raise
    os.lseek(fd_in, 0, os.SEEK_SET)
    while data := os.read(fd_in, 8 * 1024 * 1024):
        view = memoryview(data)
        while view:
            view = view[os.write(fd_out, view):]
        offset += len(data)
        progress.update(len(data))
    return offset
