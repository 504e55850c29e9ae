"""Applying what backends observe to the database, through the state machine."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from .backends.base import Observation
from .db import Database
from .models import tasks
from .plugins import Hooks
from .statecache import StateCache
from .states import State, can_transition, is_terminal
from .store import lock_for_update, set_fields, transition
from .tasklogs import apply, is_empty

log = logging.getLogger(__name__)


class DatabaseReporter:
    """The core's :class:`~tes_core.backends.base.TaskReporter`: observations become rows."""

    def __init__(self, db: Database, hooks: Hooks, states: StateCache | None = None) -> None:
        self.db = db
        self.hooks = hooks
        self.states = states or StateCache(sole_writer=False)

    def report(self, observation: Observation) -> bool:
        """Apply ``observation``; return ``False`` when its state change is not allowed."""
        changed_from: str | None = None
        with self.db.write() as conn:
            row = lock_for_update(conn, observation.task_id)
            if row is None or is_terminal(row.state):
                return False  # a finished task's state and logs never change again
            new_state = State(observation.state) if observation.state else None
            moves = new_state is not None and new_state.value != row.state
            if moves and not can_transition(row.state, new_state):
                log.info(
                    "task %s: ignoring %s -> %s (not allowed)",
                    observation.task_id, row.state, new_state,
                )
                return False
            values: dict[str, object] = {}
            if not is_empty(observation):
                values["logs"] = json.dumps(apply(json.loads(row.logs), observation))
            if observation.backend_ref:
                values["backend_ref"] = observation.backend_ref
            if moves:
                if not transition(conn, observation.task_id, new_state, values=values):
                    return False
                changed_from = row.state
            elif values:
                set_fields(conn, observation.task_id, **values)
        if changed_from is not None and new_state is not None:
            self.states.forget(observation.task_id)
            log.info("task %s: %s -> %s", observation.task_id, changed_from, new_state.value)
            self.hooks.task_state_changed(observation.task_id, changed_from, new_state.value)
        return True

    def current_state(self, task_id: str) -> str | None:
        """The task's state as stored now."""
        with self.db.read() as conn:
            return conn.execute(select(tasks.c.state).where(tasks.c.id == task_id)).scalar()
