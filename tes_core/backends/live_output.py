"""Reading a running executor's live output from a task folder the server can see.

The runner keeps the end of each executor output stream that the task names no file for
in the task's ``logs`` folder (:func:`tes_runner.workspace.output_name`, capped by
``TES_OUTPUT_LIVE_MAX``). A backend whose task folders this process can read (local,
Slurm's shared folder) answers ``output_tail`` with :func:`read_live_output`.
"""

from __future__ import annotations

from tes_runner import PlantedLink, Workspace

from .base import NoLiveOutput, TaskRecord


def read_live_output(
    workspace: Workspace, task: TaskRecord, index: int, stream: str, limit: int
) -> str:
    """The last ``limit`` bytes (at most) of executor ``index``'s live ``stream`` in
    ``workspace`` (the task's folder), decoded as UTF-8 (a character cut at the start, or
    any invalid byte, becomes U+FFFD); ``""`` before it wrote anything. Read beneath the
    task folder without following links, never at a path the task names: raises
    :class:`NoLiveOutput` for an executor that names its own file for ``stream`` or a
    link or special file in the way."""
    own = (task.document.get("executors") or [{}])[index].get(stream)
    if own:
        raise NoLiveOutput(
            f"executor {index} writes its {stream} to its own file {own}; its end is "
            "shown when the executor ends"
        )
    try:
        _first, data = workspace.read_output(index, stream, limit)
    except PlantedLink as exc:
        raise NoLiveOutput(f"executor {index}'s {stream} is not readable: {exc}") from None
    return data.decode("utf-8", errors="replace")
