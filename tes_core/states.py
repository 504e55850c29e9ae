"""The task state machine: the one table of allowed state transitions.

Backends only report what they observe; whether an observation may move a
task is decided here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """TES 1.1 task states (``tesState``)."""

    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    PREEMPTED = "PREEMPTED"
    CANCELING = "CANCELING"


TERMINAL: frozenset[State] = frozenset(
    {State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.CANCELED, State.PREEMPTED}
)
"""States a task never leaves."""

ACTIVE: frozenset[State] = frozenset(set(State) - TERMINAL - {State.UNKNOWN})
"""States the reconcile loop keeps an eye on."""

_ENDINGS = {State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.PREEMPTED}

TRANSITIONS: dict[State, frozenset[State]] = {
    State.UNKNOWN: frozenset({State.QUEUED}),
    State.QUEUED: frozenset(
        {State.INITIALIZING, State.RUNNING, State.SYSTEM_ERROR, State.CANCELING, State.CANCELED}
        | _ENDINGS
    ),
    State.INITIALIZING: frozenset(
        {State.QUEUED, State.RUNNING, State.PAUSED, State.CANCELING} | _ENDINGS
    ),
    State.RUNNING: frozenset({State.PAUSED, State.CANCELING} | _ENDINGS),
    State.PAUSED: frozenset({State.RUNNING, State.CANCELING} | _ENDINGS),
    # Once cancel is asked, only its completion (or a failure to clean up) may follow.
    State.CANCELING: frozenset({State.CANCELED, State.SYSTEM_ERROR}),
    State.COMPLETE: frozenset(),
    State.EXECUTOR_ERROR: frozenset(),
    State.SYSTEM_ERROR: frozenset(),
    State.CANCELED: frozenset(),
    State.PREEMPTED: frozenset(),
}
"""``TRANSITIONS[a]`` holds every state a task in state ``a`` may move to.

INITIALIZING may fall back to QUEUED: a backend that lost its machine before
the executors started puts the task back in line.
"""


def can_transition(current: State | str, new: State | str) -> bool:
    """Whether a task in ``current`` may move to ``new`` (staying put is not a transition)."""
    return State(new) in TRANSITIONS[State(current)]


def is_terminal(state: State | str) -> bool:
    """Whether ``state`` is final."""
    return State(state) in TERMINAL


def sources_of(new: State | str) -> frozenset[State]:
    """Every state from which a task may move to ``new``: for guarded UPDATE statements."""
    return frozenset(s for s, targets in TRANSITIONS.items() if State(new) in targets)
