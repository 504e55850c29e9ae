"""The ``stderr`` container of an executor pod: copies the executor's stderr to its own log.

Kubernetes keeps one log per container and merges a container's two streams into it. So
the executor container's ``/bin/sh`` wrapper (:func:`tes_aks.manifests.executor_command`)
sends the executor's stderr to a file in the pod's ``emptyDir`` and, once the executor
ended, creates a ``done`` file next to it. This program runs in a second container of the
same pod (the filetransfer image, which has Python) and copies that file to its stdout as
it grows, so the pod log of container ``stderr`` is the executor's stderr, live, and the
pod log of container ``executor`` its stdout. It ends once ``done`` exists and the file
is read to its end.

With ``--at-end`` (the task named its own stderr file) it waits for ``done`` and prints
only the last bytes of that file.

The manifests run this module's source with ``python3 -c`` (standard library only), so
the filetransfer image needs nothing of this distribution.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import Any, BinaryIO

POLL = 0.2
CHUNK = 1 << 16


def read_from(path: str, position: int, size: int = CHUNK) -> bytes:
    """Up to ``size`` bytes of the regular file ``path`` from ``position`` (``b""`` while it
    does not exist, is not a regular file or is a symbolic link: never followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        os.lseek(fd, position, os.SEEK_SET)
        return os.read(fd, size)
    finally:
        os.close(fd)


def follow(
    path: str, done: str, out: BinaryIO, poll: float = POLL, sleep: Any = time.sleep
) -> None:
    """Copy ``path`` to ``out`` as it grows until ``done`` exists and all is copied."""
    position = 0
    while True:
        finished = os.path.exists(done)
        chunk = read_from(path, position)
        if chunk:
            out.write(chunk)
            out.flush()
            position += len(chunk)
        elif finished:
            return
        else:
            sleep(poll)


def tail_at_end(
    path: str, done: str, out: BinaryIO, limit: int, poll: float = POLL, sleep: Any = time.sleep
) -> None:
    """Wait for ``done``, then copy the last ``limit`` bytes of ``path`` to ``out``."""
    while not os.path.exists(done):
        sleep(poll)
    try:
        size = os.stat(path, follow_symlinks=False).st_size
    except OSError:
        return
    out.write(read_from(path, max(0, size - limit), limit))
    out.flush()


def main(argv: list[str]) -> int:
    """``python3 -c <this file> PATH DONE [--at-end LIMIT]``."""
    if len(argv) == 4 and argv[2] == "--at-end":
        tail_at_end(argv[0], argv[1], sys.stdout.buffer, int(argv[3]))
    elif len(argv) == 2:
        follow(argv[0], argv[1], sys.stdout.buffer)
    else:
        print("usage: follow PATH DONE [--at-end LIMIT]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
