"""Opening paths beneath a trusted folder without following any symlink.

A task's executors can change its folder between two uses by the server: replace a
folder with a symlink to ``/``, rename folders, put a FIFO or a device node where a
file was. Every use here therefore starts from a file descriptor of a folder the server
trusts and walks the relative path one component at a time with ``openat``
(``O_NOFOLLOW | O_DIRECTORY``), refusing any component that is a symlink, so nothing
the executors did can send the server outside that folder:

* :func:`open_dir` gives a descriptor of a folder (creating missing folders if asked);
  :func:`pinned` turns it into a path (``/proc/self/fd/N``) for writers that need one:
  whatever happens to the folder's ancestors, that path keeps naming the same folder.
* :func:`open_file` opens a regular file (never a symlink, FIFO or device node);
  :func:`reading` gives it as a pinned path for readers that need one.
* :func:`check` verifies, right before a container start, that a bind source is still
  the folder or file it was.

A refused path raises :class:`UnsafePath` naming the offending component. Linux only
(``/proc/self/fd``); this module never imports the server.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import TransferError

DIR = "folder"
FILE = "file"

_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_DIR_FLAGS = _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(TransferError):
    """A component of a path is a symlink or not the kind of file the server expects."""

    def __init__(self, rel: str, problem: str, advice: str = "") -> None:
        self.rel = rel
        """The path, relative to the trusted folder, up to the offending component."""
        self.problem = problem
        """What is wrong with it, e.g. ``"is a symbolic link"``."""
        super().__init__(f"/{rel} {problem}: " + (advice or (
            "executors must not replace a task's files or folders with links or special "
            "files (the server never follows or opens them)"
        )))


def parts_of(rel: str) -> list[str]:
    """The components of the relative path ``rel``; refuses ``..``."""
    parts = [part for part in rel.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(rel, "contains '..'", "give paths without '..' components")
    return parts


def open_root(folder: Path | str, *, follow: bool = False) -> int:
    """A descriptor of the trusted ``folder`` itself (its path is the caller's to trust).

    Its last component must not be a symlink unless ``follow``. Close it with
    :func:`os.close`.
    """
    flags = _DIR_FLAGS & ~os.O_NOFOLLOW if follow else _DIR_FLAGS
    try:
        return os.open(folder, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(str(folder), _what_it_is(folder, None)) from None
        raise


def open_dir(root_fd: int, rel: str, *, create: bool = False, mode: int = 0o777) -> int:
    """A descriptor of the folder ``rel`` beneath ``root_fd``; no component may be a link.

    With ``create``, missing folders are made (``mode`` before the umask). Raises
    :class:`UnsafePath` for a symlink or non-folder component, :class:`FileNotFoundError`
    for a missing one without ``create``. Close the result with :func:`os.close`.
    """
    fd = os.open(".", _DIR_FLAGS, dir_fd=root_fd)
    done: list[str] = []
    try:
        for part in parts_of(rel):
            done.append(part)
            fd = _step(fd, part, "/".join(done), create, mode)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _step(fd: int, part: str, so_far: str, create: bool, mode: int) -> int:
    """Open the folder ``part`` in ``fd`` (made if ``create``), close ``fd``; the new fd."""
    try:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, mode, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(so_far, _what_it_is(part, fd)) from None
        raise
    os.close(fd)
    return child


def _what_it_is(name: str | Path, dir_fd: int | None) -> str:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return "changed while it was opened"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if stat.S_ISREG(st.st_mode):
        return "is a file, not a folder"
    return "is a special file (FIFO, socket or device), not a folder or regular file"


def pinned(fd: int) -> Path:
    """A path naming the folder (or file) open as ``fd`` for as long as it stays open."""
    return Path(f"/proc/self/fd/{fd}")


@contextlib.contextmanager
def folder(root_fd: int, rel: str, *, create: bool = False) -> Iterator[Path]:
    """The folder ``rel`` beneath ``root_fd`` as a pinned path, open while the block runs."""
    fd = open_dir(root_fd, rel, create=create)
    try:
        yield pinned(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(root: Path, rel: str) -> Iterator[Path]:
    """The regular file ``rel`` beneath the trusted folder ``root`` (followed if a link),
    opened for reading while the block runs and named by a ``/proc/self/fd`` path: a
    reader given that path reads this file, whatever changes in the folder meanwhile."""
    root_fd = open_root(root, follow=True)
    try:
        fd = open_file(root_fd, rel)
    finally:
        os.close(root_fd)
    try:
        yield pinned(fd)
    finally:
        os.close(fd)


def split(rel: str) -> tuple[str, str]:
    """``(parent, name)`` of the relative path ``rel``; ``name`` is never empty."""
    parts = parts_of(rel)
    if not parts:
        raise UnsafePath(rel, "names a folder, not a file in it", "give a file's path")
    return "/".join(parts[:-1]), parts[-1]


def open_file(
    root_fd: int, rel: str, *, write: bool = False, create_parents: bool = False
) -> int:
    """A descriptor of the regular file ``rel`` beneath ``root_fd``.

    Read-only by default; with ``write`` the file is opened write-only, created if missing
    and emptied (``create_parents`` also makes its folders). A symlink, FIFO, socket or
    device node anywhere is refused with :class:`UnsafePath` before it is opened, so
    opening never blocks or touches a device. Close the result with :func:`os.close`.
    """
    parent, name = split(rel)
    dir_fd = open_dir(root_fd, parent, create=create_parents)
    try:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            if not write:
                raise
        else:
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(rel, _what_it_is(name, dir_fd))
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        flags |= (os.O_WRONLY | os.O_CREAT) if write else os.O_RDONLY
        try:
            fd = os.open(name, flags, 0o666, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise UnsafePath(rel, _what_it_is(name, dir_fd)) from None
            raise
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the stat and the open
            raise UnsafePath(rel, "is not a regular file")
        os.set_blocking(fd, True)
        if write:
            os.ftruncate(fd, 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


def check(root_fd: int, rel: str, kind: str) -> None:
    """Raise unless ``rel`` beneath ``root_fd`` is a ``kind`` (:data:`DIR` or :data:`FILE`)
    reached without any symlink. A missing path raises :class:`FileNotFoundError`."""
    if kind == DIR:
        os.close(open_dir(root_fd, rel))
        return
    parent, name = split(rel)
    dir_fd = open_dir(root_fd, parent)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(rel, _what_it_is(name, dir_fd))
    finally:
        os.close(dir_fd)
