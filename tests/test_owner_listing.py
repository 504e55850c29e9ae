"""A user's listing is a keyset range on ``ix_tasks_owner_tenant_seq``, on both databases,
whatever the number of other users' tasks."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from tes_core.auth.principal import Owner
from tes_core.db import Database
from tes_core.schemas.query import ListQuery
from tes_core.store import NewTask, insert_task, list_page

OWNERS = [Owner(f"user-{n}", "tenant-a") for n in range(200)]
ME = OWNERS[7]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'owners.sqlite3'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url_factory")())
    database = Database(url)
    database.create_all()
    with database.driver_write() as tx:
        for number in range(10_000):
            owner = OWNERS[number % len(OWNERS)]
            insert_task(tx, NewTask({"name": f"t{number}", "executors": []}, "local",
                                    owner=owner))
    if not database.is_sqlite:
        with database.engine.begin() as conn:
            conn.execute(text("ANALYZE tasks"))
    yield database
    database.dispose()


def _plan(db: Database, query: ListQuery, owner: Owner) -> tuple[list, str]:
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as conn:
            rows, _ = list_page(conn, query, owner)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, parameters = seen[-1]
    explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()
        cursor.execute(explain + statement, parameters)
        plan = "\n".join(str(row[-1] if db.is_sqlite else row[0]) for row in cursor.fetchall())
    return rows, plan


def test_a_users_pages_come_from_the_owner_index(db) -> None:
    query = ListQuery(page_size=20)
    rows, plan = _plan(db, query, ME)
    assert len(rows) == 20
    assert "ix_tasks_owner_tenant_seq" in plan, plan
    assert "TEMP B-TREE" not in plan.upper() and "Sort" not in plan, plan  # no sort step
    # The next page continues the range, newest first, still on the index.
    later, plan = _plan(db, ListQuery(page_size=20, before_seq=rows[-1].seq), ME)
    assert "ix_tasks_owner_tenant_seq" in plan, plan
    assert [r.seq for r in later] == sorted((r.seq for r in later), reverse=True)
    assert later[0].seq < rows[-1].seq


def test_only_the_owners_tasks_are_listed(db) -> None:
    rows, _ = _plan(db, ListQuery(page_size=2000), ME)
    assert len(rows) == 50
    with db.read() as conn:
        seqs = ",".join(str(r.seq) for r in rows)
        owners = conn.execute(
            text(f"SELECT DISTINCT owner FROM tasks WHERE seq IN ({seqs})")
        ).scalars().all()
    assert owners == [ME.subject]
    other_tenant, _ = _plan(db, ListQuery(), Owner(ME.subject, "tenant-b"))
    assert other_tenant == []
