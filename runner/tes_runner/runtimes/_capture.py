"""Run one child process with its output streamed to files and kept as short tails.

Shared by the CLI engines and bubblewrap: both run one attached process whose
standard output and error may be large, so each pipe is drained by its own
thread (no deadlock however much either side writes).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tes_filetransfer.beneath import UnsafePath

from .base import ContainerError, ContainerResult, OutputSink, OutputTarget, open_target

TAIL_BYTES = 10 * 1024
"""How much of the end of each stream is kept for the task's logs."""

_CHUNK = 64 * 1024


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class _Tail:
    """The last ``TAIL_BYTES`` bytes written to it."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > 2 * TAIL_BYTES:
            del self._buf[:-TAIL_BYTES]

    def text(self) -> str:
        return bytes(self._buf[-TAIL_BYTES:]).decode("utf-8", errors="replace")


def _open_sink(target: OutputTarget | None, stack: contextlib.ExitStack) -> OutputSink | None:
    """``target`` opened for writing from its start (closed with ``stack``)."""
    return None if target is None else stack.enter_context(open_target(target))


def _drain(
    pipe: IO[bytes], sink: OutputSink | None, tail: _Tail, errors: list[BaseException]
) -> None:
    try:
        while chunk := pipe.read1(_CHUNK):  # type: ignore[attr-defined]
            tail.add(chunk)
            if sink is not None:
                sink.write(chunk)
                sink.flush()  # readable at once: the server serves a running executor's end
    except BaseException as exc:  # reported by the caller, never lost in a thread
        errors.append(exc)
        # Keep reading so the child never blocks on a full pipe.
        with contextlib.suppress(Exception):
            while pipe.read1(_CHUNK):  # type: ignore[attr-defined]
                pass
    finally:
        pipe.close()


@dataclass
class Captured:
    """What one finished child process produced."""

    returncode: int
    start_time: datetime
    end_time: datetime
    stdout_tail: str
    stderr_tail: str

    def result(self) -> ContainerResult:
        """This process as an executor's result (its exit code, times and tails)."""
        return ContainerResult(
            exit_code=self.returncode,
            start_time=self.start_time,
            end_time=self.end_time,
            stdout_tail=self.stdout_tail,
            stderr_tail=self.stderr_tail,
        )


def run_captured(
    argv: Sequence[str],
    *,
    stdin_path: Path | None = None,
    stdout_path: OutputTarget | None = None,
    stderr_path: OutputTarget | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    popen_options: Mapping[str, Any] | None = None,
) -> Captured:
    """Run ``argv`` to completion, streaming its output to the given files (a
    :class:`RollingFile` keeps only the end of its stream).

    ``on_start`` is called with the ``Popen`` as soon as the child runs (so that
    another thread can stop it); ``popen_options`` are further ``Popen`` arguments
    (``pass_fds``, ``preexec_fn``). A child killed by signal N gets the shell's
    return code 128 + N. Raises :class:`ContainerError` if the child cannot be
    started or a file cannot be opened or written.
    """
    with contextlib.ExitStack() as stack:
        try:
            stdin: IO[bytes] | int = (
                stack.enter_context(open(stdin_path, "rb"))
                if stdin_path is not None
                else subprocess.DEVNULL
            )
            out_file = _open_sink(stdout_path, stack)
            err_file = _open_sink(stderr_path, stack)
        except (OSError, UnsafePath) as exc:
            raise ContainerError(
                f"cannot open an executor's stdin/stdout/stderr file: {exc}"
            ) from exc

        start = utc_now()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else None,
                start_new_session=new_session,
                **(popen_options or {}),
            )
        except OSError as exc:
            raise ContainerError(f"cannot start {argv[0]!r}: {exc}") from exc

        out_tail, err_tail = _Tail(), _Tail()
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_drain, args=(proc.stdout, out_file, out_tail, errors), daemon=True
            ),
            threading.Thread(
                target=_drain, args=(proc.stderr, err_file, err_tail, errors), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        if on_start is not None:
            on_start(proc)
        returncode = proc.wait()
        for thread in threads:
            thread.join()
        end = utc_now()

    if errors:
        raise ContainerError(f"cannot save the output of {argv[0]!r}: {errors[0]}")
    if returncode < 0:
        returncode = 128 - returncode
    return Captured(returncode, start, end, out_tail.text(), err_tail.text())
