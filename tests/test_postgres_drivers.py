"""Both PostgreSQL drivers work, fast paths included, on the real server:
``postgresql+psycopg2://`` (psycopg2-binary), ``postgresql+psycopg://`` (psycopg 3) and a
plain ``postgresql://``, which is psycopg2 on SQLAlchemy 2.0 and psycopg 3 on 2.1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import select

from tes_core.backends.base import Observation
from tes_core.config import Settings
from tes_core.db import Database
from tes_core.models import tasks
from tes_core.plugins import load_plugins
from tes_core.reporting import DatabaseReporter
from tes_core.schemas.query import ListQuery
from tes_core.states import State
from tes_core.store import (
    NewTask,
    active_batch,
    get_full,
    insert_task,
    list_page,
    peek_state,
    store_task,
)
from tes_core.worker.lifecycle import _stored
from tests.querycount import QueryCounter
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state

DRIVERS = {
    "psycopg2": "postgresql+psycopg2://",
    "psycopg": "postgresql+psycopg://",
    "default": "postgresql://",
}


def with_driver(url: str, driver: str) -> str:
    """``url`` (any PostgreSQL URL) spelled for ``driver``."""
    rest = url.split("://", 1)[1]
    return DRIVERS[driver] + rest


@pytest.fixture(params=sorted(DRIVERS))
def database(request, postgres_url_factory) -> Iterator[Database]:
    db = Database(with_driver(postgres_url_factory(), request.param))
    if request.param != "default":
        assert db.engine.dialect.driver == request.param
    db.create_all()
    yield db
    db.dispose()


def _store(db: Database, name: str, tags: dict[str, str]) -> str:
    with db.driver_write() as tx:
        return insert_task(
            tx,
            NewTask(
                document={"name": name, "tags": tags,
                          "executors": [{"image": "alpine", "command": ["true"]}]},
                backend="local",
            ),
        )


def test_driver_fast_paths_and_queries(database: Database) -> None:
    first = _store(database, "align.one", {"project": "alpha", "sample": "s1"})
    second = _store(database, "align.two", {"project": "beta"})
    assert peek_state(database, first) == "QUEUED"
    assert peek_state(database, "no-such-task") is None
    with database.read() as conn:
        row = get_full(conn, second)
        assert json.loads(row.document)["tags"] == {"project": "beta"}
        rows, more = list_page(
            conn, ListQuery(view="MINIMAL", page_size=10, tags=[("project", "alpha")])
        )
        assert [r.id for r in rows] == [first] and more is None
        rows, _ = list_page(conn, ListQuery(view="MINIMAL", page_size=10, name_prefix="align."))
        assert [r.id for r in rows] == [second, first]


def test_a_create_is_one_statement_and_safe_to_repeat(database: Database, monkeypatch) -> None:
    task = NewTask(
        document={"name": "once", "tags": {"a": "1", "ms-submitter-workflow-id": "wf-1", "b": ""},
                  "executors": [{"image": "alpine", "command": ["true"]}]},
        backend="local",
    )
    counter = QueryCounter(database, monkeypatch)
    assert counter.during(lambda: store_task(database, task)) == 1
    store_task(database, task)  # a retry after a lost answer: nothing more is stored
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM tasks").scalar() == 1
        tags = conn.exec_driver_sql("SELECT key, value FROM task_tags ORDER BY key").all()
        workflow = conn.exec_driver_sql("SELECT submitter_workflow_id FROM tasks").scalar()
    # The ms-submitter-* tags are columns of the task row, not tag rows.
    assert [tuple(t) for t in tags] == [("a", "1"), ("b", "")]
    assert workflow == "wf-1"
    untagged = NewTask(document={"executors": [{"image": "a", "command": ["b"]}]},
                       backend="local")
    assert peek_state(database, store_task(database, untagged)) == "QUEUED"


def test_a_failed_driver_write_rolls_back(database: Database) -> None:
    with pytest.raises(RuntimeError), database.driver_write() as tx:
        tx.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, now())", ("x", "y")
        )
        raise RuntimeError("abort")
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM leases").scalar() == 0


def test_batched_state_writes(database: Database, tmp_path) -> None:
    ids = [_store(database, f"t{n}", {}) for n in range(3)]
    reporter = DatabaseReporter(database, load_plugins(Settings.from_env({}, data_dir=tmp_path)))
    with database.read() as conn:
        rows = active_batch(conn, State.QUEUED, 0, 10)
    stored = {row.id: _stored(row) for row in rows}
    # A concurrent change to the third task after the read: the batch must leave it alone.
    with database.driver_write() as tx:
        tx.execute("UPDATE tasks SET updated_at = updated_at + interval '1 second' WHERE id = ?",
                   (ids[2],))
    changed = reporter.report_batch(
        [Observation(ids[0], state="RUNNING", metadata={"node": "n1"}),
         Observation(ids[1], backend_ref="job-1"),
         Observation(ids[2], state="RUNNING")],
        stored,
    )
    assert changed == 2
    with database.read() as conn:
        result = {r.id: r for r in conn.execute(select(tasks)).all()}
    assert result[ids[0]].state == "RUNNING"
    assert json.loads(result[ids[0]].logs)[-1]["metadata"] == {"node": "n1"}
    assert result[ids[1]].state == "QUEUED" and result[ids[1]].backend_ref == "job-1"
    assert result[ids[2]].state == "QUEUED"


@pytest.mark.parametrize("driver", ["psycopg2"])
def test_a_server_on_psycopg2(tmp_path, postgres_url_factory, driver) -> None:
    """``tes-server serve`` on psycopg2: migrations, create, get, list, cancel and a task run
    (the server suite runs on psycopg 3)."""
    url = with_driver(postgres_url_factory(), driver)
    server = ServerProcess(tmp_path, server_env(tmp_path, url)).start()
    try:
        body = {"name": "psycopg2", "tags": {"driver": driver},
                "executors": [{"image": "alpine", "command": ["echo", "hi"]}]}
        task_id = requests.post(f"{server.url}/tasks", json=body, timeout=10).json()["id"]
        done = wait_for_state(server.url, task_id, TERMINAL, timeout=90)
        assert done["state"] in TERMINAL
        listed = requests.get(f"{server.url}/tasks", timeout=10,
                              params={"tag_key": "driver", "tag_value": driver}).json()
        assert [t["id"] for t in listed["tasks"]] == [task_id]
        sleeper = requests.post(
            f"{server.url}/tasks", timeout=10,
            json={"executors": [{"image": "alpine", "command": ["sleep", "60"]}]},
        ).json()["id"]
        assert requests.post(f"{server.url}/tasks/{sleeper}:cancel", timeout=10).json() == {}
        assert wait_for_state(server.url, sleeper, TERMINAL, timeout=60)["state"] == "CANCELED"
    finally:
        server.stop()
