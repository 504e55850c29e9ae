"""The state machine: its table of allowed transitions, and the guarded UPDATE that enforces it."""

from __future__ import annotations

import pytest

from tes_core.db import Database
from tes_core.states import ACTIVE, TERMINAL, TRANSITIONS, State, can_transition, sources_of
from tes_core.store import NewTask, get_state, insert_task, transition

Q, INIT, R, P = State.QUEUED, State.INITIALIZING, State.RUNNING, State.PAUSED
C, EE, SE = State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR
CG, CD, PR, U = State.CANCELING, State.CANCELED, State.PREEMPTED, State.UNKNOWN

EXPECTED = {
    U: {Q},
    Q: {INIT, R, C, EE, SE, PR, CG, CD},
    INIT: {Q, R, P, C, EE, SE, PR, CG},
    R: {P, C, EE, SE, PR, CG},
    P: {R, C, EE, SE, PR, CG},
    CG: {CD, SE},
    C: set(),
    EE: set(),
    SE: set(),
    CD: set(),
    PR: set(),
}


def test_table_is_exactly_the_documented_one() -> None:
    assert {s: set(t) for s, t in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize("current", list(State))
@pytest.mark.parametrize("new", list(State))
def test_can_transition_follows_the_table(current: State, new: State) -> None:
    assert can_transition(current, new) == (new in EXPECTED[current])


def test_terminal_states_have_no_way_out() -> None:
    assert {C, EE, SE, CD, PR} == TERMINAL
    for state in TERMINAL:
        assert not TRANSITIONS[state]


def test_active_states_are_the_rest() -> None:
    assert {Q, INIT, R, P, CG} == ACTIVE


def test_every_state_but_unknown_is_reachable_from_queued() -> None:
    seen, todo = {Q}, [Q]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(State) - {U}


def test_cancel_only_ends_in_canceled_or_system_error() -> None:
    assert sources_of(CD) == {Q, CG}
    assert CG in TRANSITIONS[R] and C not in TRANSITIONS[CG]


@pytest.fixture
def db(tmp_path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'states.sqlite3'}")
    database.create_all()
    return database


def _new(db: Database) -> str:
    with db.driver_write() as tx:
        return insert_task(
            tx, NewTask(document={"executors": [{"image": "a", "command": ["b"]}]}, backend="x")
        )


def test_guarded_update_applies_allowed_moves(db: Database) -> None:
    task_id = _new(db)
    with db.write() as conn:
        assert transition(conn, task_id, INIT)
        assert transition(conn, task_id, R)
        assert transition(conn, task_id, C)
    with db.read() as conn:
        assert get_state(conn, task_id).state == "COMPLETE"


def test_guarded_update_refuses_illegal_moves(db: Database) -> None:
    task_id = _new(db)
    with db.write() as conn:
        assert transition(conn, task_id, CG)
        assert not transition(conn, task_id, R)  # no way back from CANCELING
        assert not transition(conn, task_id, C)
        assert transition(conn, task_id, CD)
        assert not transition(conn, task_id, Q)  # terminal
    with db.read() as conn:
        assert get_state(conn, task_id).state == "CANCELED"


def test_expected_narrows_the_sources(db: Database) -> None:
    task_id = _new(db)
    with db.write() as conn:
        assert not transition(conn, task_id, R, expected=[INIT])
        assert transition(conn, task_id, R, expected=[Q])
