"""Local file helpers: all-or-nothing writes and efficient copies with progress."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from .progress import PROGRESS_THRESHOLD_BYTES, Progress

_COPY_CHUNK = 64 * 1024 * 1024
_HASH_CHUNK = 1024 * 1024


@contextlib.contextmanager
def atomic_target(dest: Path) -> Iterator[Path]:
    """Yield an unused temporary path next to ``dest``; rename it to ``dest`` if the block
    succeeds.

    ``dest``'s folder must exist. The block creates the file (our own writers open it with
    mode ``"xb"``); it gets the usual umask-based mode (unlike ``mkstemp``'s 0600, so
    executors running as another user can still read it). If the block raises, the
    temporary file is removed and ``dest`` is left as it was; if ``dest`` is a folder, the
    rename fails with :class:`IsADirectoryError`.
    """
    # Nothing is created or checked here, because this runs once per file and the folder
    # is shared by many parallel writers. In particular the file is not created empty
    # first: opening an existing empty file again with O_TRUNC makes ext4 (auto_da_alloc)
    # flush it to disk on close, which cost about a third of the throughput of many small
    # downloads (bench/bench_transfer.py).
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.part")
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def copy_file(src: Path, dest: Path, progress: Progress) -> int:
    """Copy the content of ``src`` to ``dest`` (which must exist or be creatable); return size.

    Small files use :func:`shutil.copyfile` (``sendfile`` on Linux). Large ones are copied
    in big ``sendfile`` chunks so that progress can be logged. Never hard-links: executors
    may write to their inputs.
    """
    size = os.stat(src).st_size
    if size <= PROGRESS_THRESHOLD_BYTES:
        shutil.copyfile(src, dest)
        progress.update(size)
        return size
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        offset = 0
        try:
            while True:
                sent = os.sendfile(fout.fileno(), fin.fileno(), offset, _COPY_CHUNK)
                if sent == 0:
                    break
                offset += sent
                progress.update(sent)
        except (AttributeError, OSError):
            if offset:
                raise
            # No sendfile for this pair of files: plain buffered copy.
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            while chunk := fin.read(8 * 1024 * 1024):
                fout.write(chunk)
                offset += len(chunk)
                progress.update(len(chunk))
    return offset


def copy_and_digest(src: Path, dest: Path, progress: Progress) -> tuple[int, str]:
    """Copy ``src`` to the new file ``dest`` (created with mode ``"xb"``); return its size
    and the SHA-256 hex digest of the bytes copied.

    One read of the data serves both, so checking content costs no second pass.
    """
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(src, "rb", buffering=0) as fin, open(dest, "xb", buffering=0) as fout:
        while count := fin.readinto(buffer):
            chunk = view[:count]
            digest.update(chunk)
            while chunk:
                chunk = chunk[fout.write(chunk):]
            size += count
            progress.update(count)
    return size, digest.hexdigest()
