"""A capped copy of an output stream that keeps its end: two files taking turns.

An executor's live output (what the server shows while it runs) must not grow without
bound: a task printing 50 GB would fill the server's disk. So the copy is written to
``NAME`` until it holds half the cap; then ``NAME`` becomes ``NAME.<n>`` (``n`` counting
the rolls from 1), the ``NAME.<n-1>`` before it is deleted, and a new ``NAME`` is begun.
Together they never hold more than the cap, and always at least its last half. Every
rolled file holds exactly half the cap, so ``NAME`` starts at byte ``n`` times that of
the whole stream: a reader can follow the stream by absolute offsets.

Renames are atomic, so a reader in another process (:func:`read`, the server) needs no
lock: it checks that no roll happened while it opened the files, and tries again if one
did. Every name is opened in a folder the caller holds open (a descriptor reached beneath
the task folder without following links), never following a link itself.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from tes_filetransfer import beneath

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""The cap of a live copy unless configured (the server's ``TES_OUTPUT_LIVE_MAX``)."""

MIN_BYTES = 2
"""The smallest cap (each file then holds at least one byte)."""

_TRIES = 8
"""How often :func:`read` opens the files again when the writer rolled meanwhile."""


@dataclass(frozen=True)
class RollingFile:
    """Where a capped copy goes: ``name`` (and ``name.<n>``) in the folder open as
    ``folder_fd`` (the caller's, open while the copy is written), at most ``max_bytes``
    together."""

    folder_fd: int
    name: str
    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_bytes < MIN_BYTES:
            raise ValueError(f"a rolling file's cap must be at least {MIN_BYTES} bytes")

    def open(self) -> RollingWriter:
        """Start the copy afresh: ``name`` created or emptied, older rolled files removed.
        Raises :class:`OSError` or :class:`~tes_filetransfer.beneath.UnsafePath`."""
        return RollingWriter(self)


class RollingWriter:
    """Writes a :class:`RollingFile`; a context manager that closes it."""

    def __init__(self, target: RollingFile) -> None:
        self._target = target
        self._segment = target.max_bytes // 2
        for rolled in _rolled(target.folder_fd, target.name).values():
            _remove(target.folder_fd, rolled)
        self._fd = beneath.open_file(target.folder_fd, target.name, write=True)
        self._written = 0
        self._rolls = 0

    def write(self, data: bytes) -> int:
        """Append ``data``, rolling over whenever the current file is full; returns its
        length."""
        view = memoryview(data)
        while view:
            if self._written >= self._segment:
                self._roll()
            count = os.write(self._fd, view[: self._segment - self._written])
            self._written += count
            view = view[count:]
        return len(data)

    def flush(self) -> None:
        """Nothing to do: every write goes straight to the file."""

    def close(self) -> None:
        """Close the current file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RollingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _roll(self) -> None:
        folder, name = self._target.folder_fd, self._target.name
        self._rolls += 1
        os.rename(name, rolled_name(name, self._rolls), src_dir_fd=folder, dst_dir_fd=folder)
        _remove(folder, rolled_name(name, self._rolls - 1))
        self.close()
        self._fd = beneath.open_file(folder, name, write=True)
        self._written = 0


def read(folder_fd: int, name: str, limit: int, offset: int | None = None) -> tuple[int, bytes]:
    """``(first, data)``: at most ``limit`` bytes of the rolling file ``name`` in the folder
    open as ``folder_fd``, from byte ``offset`` of the whole stream (or from the earliest
    byte still kept, if that is later), or its last bytes when ``offset`` is ``None``;
    ``first`` is the stream offset of ``data``'s first byte. ``(0, b"")`` when nothing
    exists. Raises :class:`~tes_filetransfer.beneath.UnsafePath` if a link or a special
    file is in the way."""
    for _ in range(_TRIES):
        with contextlib.ExitStack() as opened:
            rolls = _rolled(folder_fd, name)
            current = _open(folder_fd, name, opened)
            previous = _open(folder_fd, rolls[max(rolls)], opened) if rolls else None
            again = _open(folder_fd, name, opened)
            if _same(current, again) and _rolled(folder_fd, name) == rolls:
                # No roll meanwhile: ``previous`` holds what came right before ``current``.
                return _slice(previous, max(rolls, default=0), current, limit, offset)
    with contextlib.ExitStack() as opened:  # rolling very fast: the current file alone
        return _slice(None, 0, _open(folder_fd, name, opened), limit, None)


def read_end(folder_fd: int, name: str, limit: int) -> bytes:
    """The last ``limit`` bytes (at most) written to the rolling file ``name`` (see
    :func:`read`)."""
    return read(folder_fd, name, limit)[1]


@dataclass(frozen=True)
class Span:
    """Where the bytes :func:`read` answers lie, worked out from the files' sizes alone (so
    a reader of the files elsewhere, e.g. through an HTTP API, answers the same): ``data``
    starts at byte ``first`` of the stream and is ``previous`` (``(at, count)``: bytes of the
    last rolled file) then ``current`` (of ``NAME``); ``earliest`` and ``end`` bound what
    is kept."""

    first: int
    previous: tuple[int, int]
    current: tuple[int, int]
    earliest: int
    end: int


def span(rolls: int, kept: int, size: int, limit: int, offset: int | None) -> Span:
    """The :class:`Span` of at most ``limit`` bytes from byte ``offset`` of the stream (or
    its end), given ``rolls`` (the number of the last rolled file, 0 for none), ``kept``
    (its size: every rolled file holds as many) and ``size`` (that of ``NAME``)."""
    start = rolls * kept
    end = start + size
    earliest = max(start - kept, 0)
    first = max(end - limit if offset is None else offset, earliest)
    if first >= end:
        return Span(min(first, end), (0, 0), (0, 0), earliest, end)
    want = min(limit, end - first)
    before = min(want, start - first) if first < start else 0
    current = (max(first, start) - start, want - before)
    return Span(first, (first - earliest, before), current, earliest, end)


def rolled_name(name: str, number: int) -> str:
    """The name of the ``number``-th rolled file of ``name``."""
    return f"{name}.{number}"


def roll_number(entry: str, name: str) -> int | None:
    """The number of ``entry`` if it is a rolled file of ``name``, else ``None``."""
    number = entry[len(name) + 1 :]
    if entry.startswith(name + ".") and number.isdigit() and number.isascii():
        return int(number)
    return None


def _slice(
    previous: int | None, rolls: int, current: int | None, limit: int, offset: int | None
) -> tuple[int, bytes]:
    """The bytes asked of :func:`read` from a consistent pair of files."""
    kept = os.fstat(previous).st_size if previous is not None else 0
    size = os.fstat(current).st_size if current is not None else 0
    where = span(rolls, kept, size, limit, offset)
    data = b""
    if where.previous[1] and previous is not None:
        data = os.pread(previous, where.previous[1], where.previous[0])
    if where.current[1] and current is not None:
        data += os.pread(current, where.current[1], where.current[0])
    return where.first, data


def _rolled(folder_fd: int, name: str) -> dict[int, str]:
    """The rolled files of ``name`` in the folder, by number."""
    found = {}
    listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=folder_fd)
    try:
        for entry in os.listdir(listing):
            if (number := roll_number(entry, name)) is not None:
                found[number] = entry
    finally:
        os.close(listing)
    return found


def _open(folder_fd: int, name: str, opened: contextlib.ExitStack) -> int | None:
    """``name`` opened for reading (closed with ``opened``), or ``None`` if missing."""
    try:
        fd = beneath.open_file(folder_fd, name)
    except FileNotFoundError:
        return None
    opened.callback(os.close, fd)
    return fd


def _same(first: int | None, second: int | None) -> bool:
    """Whether two descriptors (or two absences) are the same file."""
    if first is None or second is None:
        return first is second
    one, two = os.fstat(first), os.fstat(second)
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)


def _remove(folder_fd: int, name: str) -> None:
    """Delete ``name`` (the entry itself, never what a link names); quiet if missing."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder_fd)
