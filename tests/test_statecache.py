"""Remembered task states: only what cannot change behind this process's back."""

from __future__ import annotations

from tes_core.statecache import StateCache


def test_a_sole_writer_remembers_every_state_until_it_changes_it() -> None:
    cache = StateCache(sole_writer=True)
    cache.remember("t", "RUNNING", cache.generation())
    assert cache.get("t") == "RUNNING"
    cache.forget("t")
    assert cache.get("t") is None


def test_a_shared_writer_remembers_only_finished_states() -> None:
    cache = StateCache(sole_writer=False)
    cache.remember("running", "RUNNING", cache.generation())
    cache.remember("done", "COMPLETE", cache.generation())
    assert cache.get("running") is None
    assert cache.get("done") == "COMPLETE"


def test_a_read_that_raced_a_change_is_not_remembered() -> None:
    cache = StateCache(sole_writer=True)
    before = cache.generation()  # a GET starts reading...
    cache.forget("t")  # ...a state change commits meanwhile...
    cache.remember("t", "QUEUED", before)  # ...and the GET's old answer arrives
    assert cache.get("t") is None


def test_the_oldest_entry_makes_room() -> None:
    cache = StateCache(sole_writer=True, max_entries=2)
    for task_id in ("a", "b", "c"):
        cache.remember(task_id, "QUEUED", cache.generation())
    assert cache.get("a") is None
    assert cache.get("b") == cache.get("c") == "QUEUED"


def test_with_retention_a_shared_writer_remembers_nothing() -> None:
    """Another process may remove a finished task (TES_RETENTION): its GET must say 404."""
    cache = StateCache(sole_writer=False, keep_finished=False)
    cache.remember("t", "COMPLETE", cache.generation())
    assert cache.get("t") is None
    sole = StateCache(sole_writer=True, keep_finished=False)  # removes them itself
    sole.remember("t", "COMPLETE", sole.generation())
    assert sole.get("t") == "COMPLETE"
