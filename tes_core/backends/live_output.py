"""Reading a running executor's live output from a task folder the server can see.

The runner keeps the end of each executor output stream that the task names no file for
in the task's ``logs`` folder (:func:`tes_runner.workspace.output_name`, capped by
``TES_OUTPUT_LIVE_MAX``). A backend whose task folders this process can read (local,
Slurm's shared folder) answers ``read_output`` with :func:`read_live_output`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tes_runner import PlantedLink, Workspace

from .base import NoLiveOutput, OutputPiece, TaskRecord


def read_live_output(
    workspace: Workspace,
    task: TaskRecord,
    index: int,
    stream: str,
    limit: int,
    offset: int | None = None,
) -> OutputPiece:
    """At most ``limit`` bytes of executor ``index``'s live ``stream`` in ``workspace``
    (the task's folder), from byte ``offset`` of the stream or its end, as
    :meth:`Backend.read_output <tes_core.backends.base.Backend.read_output>` answers.
    Read beneath the task folder without following links, never at a path the task names:
    raises
    :class:`NoLiveOutput` for an executor that names its own file for ``stream`` or a
    link or special file in the way."""
    check_no_own_file(task, index, stream)
    try:
        first, data = workspace.read_output(index, stream, limit, offset)
    except PlantedLink as exc:
        raise NoLiveOutput(f"executor {index}'s {stream} is not readable: {exc}") from None
    return OutputPiece(first, data)


def check_no_own_file(task: TaskRecord, index: int, stream: str) -> None:
    """Raise :class:`NoLiveOutput` if executor ``index`` of ``task`` names its own file for
    ``stream``: that file is the task's data, its end is shown when the executor ends."""
    own = (task.document.get("executors") or [{}])[index].get(stream)
    if own:
        raise NoLiveOutput(
            f"executor {index} writes its {stream} to its own file {own}; its end is "
            "shown when the executor ends"
        )


@dataclass(frozen=True)
class ExecutorOutput:
    """What ``GET /tasks/{id}/executors/{index}/stdout`` answers: ``text``, and where its
    bytes lie in the stream (``first`` up to ``next``) when known (read live)."""

    text: str
    first: int | None = None
    next: int | None = None

    @classmethod
    def of(cls, piece: OutputPiece, whole: bool = False) -> ExecutorOutput:
        """``piece`` as UTF-8 text (a character cut at the start, or any invalid byte,
        becomes U+FFFD); with ``whole``, a character cut at the end is left for the next
        read (``next`` is before it), so a reader following by offsets never splits one."""
        data = piece.data[: _whole_length(piece.data)] if whole else piece.data
        return cls(data.decode("utf-8", errors="replace"), piece.first, piece.first + len(data))


def _whole_length(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 character cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)  # ASCII: nothing cut
        if byte >= 0xC0:  # the lead byte of the last character
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= needed else len(data) - back
    return len(data)  # no lead byte in reach: invalid, shown as U+FFFD
