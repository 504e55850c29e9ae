"""Folding observations into a task's logs: the waiting reason is one line, replaced."""

from __future__ import annotations

from tes_core.backends.base import Observation
from tes_core.tasklogs import MAX_SYSTEM_LOG_LINES, apply


def _wait(logs: list, reason: str, **more: object) -> list:
    return apply(logs, Observation(task_id="t", waiting_reason=reason, **more))  # type: ignore[arg-type]


def test_waiting_reason_is_one_line_replaced_in_place_then_cleared() -> None:
    logs = _wait([], "waiting for a local slot: 4 of 4 in use")
    logs = apply(logs, Observation(task_id="t", system_logs=["a note"]))
    logs = _wait(logs, "waiting for a local slot: 3 of 3 in use")
    (attempt,) = logs
    assert attempt["metadata"] == {"waiting_reason": "waiting for a local slot: 3 of 3 in use"}
    # The line was replaced where it stood; nothing was appended for the new reason.
    assert attempt["system_logs"] == ["waiting for a local slot: 3 of 3 in use", "a note"]
    # Cleared: the metadata entry goes, the line stays; a later reason is a new line.
    logs = _wait(logs, "", metadata={"hostname": "h"})
    assert logs[0]["metadata"] == {"hostname": "h"}
    logs = _wait(logs, "staging inputs: 1 of 3 files")
    logs = _wait(logs, "staging inputs: 2 of 3 files")
    assert logs[0]["metadata"]["waiting_reason"] == "staging inputs: 2 of 3 files"
    assert logs[0]["system_logs"] == [
        "waiting for a local slot: 3 of 3 in use", "a note", "staging inputs: 2 of 3 files",
    ]


def test_clearing_a_reason_never_written_changes_nothing() -> None:
    assert _wait([], "") == [{"logs": [], "outputs": []}]
    logs = _wait([], "x")
    assert _wait(logs, "") == [{"logs": [], "outputs": [], "system_logs": ["x"]}]


def test_system_logs_stay_bounded() -> None:
    logs = apply([], Observation(task_id="t", system_logs=[str(i) for i in range(300)]))
    logs = _wait(logs, "waiting")
    assert len(logs[0]["system_logs"]) == MAX_SYSTEM_LOG_LINES
    assert logs[0]["system_logs"][-1] == "waiting"
