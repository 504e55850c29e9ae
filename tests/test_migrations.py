"""Alembic migrations through Flask-Migrate: upgrade to head and back to base, on both databases."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect

from tes_core.models import Base


def _tes_server(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tes_core.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+psycopg2"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
    url = request.getfixturevalue("postgres_url_factory")()
    if request.param == "postgresql+psycopg2":  # the other driver the postgres extra installs
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def test_upgrade_to_head_and_downgrade_to_base(database_url, tmp_path, monkeypatch) -> None:
    from tests.servers import server_env

    env = server_env(tmp_path, database_url)
    up = _tes_server("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    model_tables = set(Base.metadata.tables)
    assert model_tables <= _tables(database_url)
    assert "alembic_version" in _tables(database_url)
    assert "ix_task_tags_key_seq" in _indexes(database_url, "task_tags")
    assert {"ix_tasks_state_seq", "ix_tasks_name"} <= _indexes(database_url, "tasks")

    down = _tes_server("db", "downgrade", "base", env=env)
    assert down.returncode == 0, down.stderr
    assert not model_tables & _tables(database_url)

    again = _tes_server("db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr
    assert model_tables <= _tables(database_url)


def test_models_match_the_migrations(database_url, tmp_path) -> None:
    """Autogenerate finds nothing to do after upgrading: models and revisions agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tests.servers import server_env

    assert _tes_server("db", "upgrade", env=server_env(tmp_path, database_url)).returncode == 0
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_0002_adds_task_owners_and_keeps_tasks_and_tags_both_ways(database_url, tmp_path) -> None:
    """Revision 0002 (owner, tenant, their listing index) on a database holding tasks."""
    from sqlalchemy import text

    from tests.servers import server_env

    env = server_env(tmp_path, database_url)
    assert _tes_server("db", "upgrade", "0001", env=env).returncode == 0
    assert "owner" not in _columns(database_url, "tasks")
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO tasks (id, state, name, creation_time, updated_at, document, logs,"
                " backend) VALUES ('t1', 'QUEUED', 'n', '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00', '{}', '[]', 'local')"
            ))
            seq = conn.execute(text("SELECT seq FROM tasks WHERE id = 't1'")).scalar_one()
            conn.execute(text("INSERT INTO task_tags (task_seq, key, value) VALUES (:s, 'k', 'v')"),
                         {"s": seq})

        up = _tes_server("db", "upgrade", env=env)
        assert up.returncode == 0, up.stderr
        assert {"owner", "tenant"} <= _columns(database_url, "tasks")
        assert "ix_tasks_owner_tenant_seq" in _indexes(database_url, "tasks")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT owner, tenant FROM tasks")).all() == [(None, None)]

        down = _tes_server("db", "downgrade", "0001", env=env)
        assert down.returncode == 0, down.stderr
        assert not {"owner", "tenant"} & _columns(database_url, "tasks")
        assert "ix_tasks_owner_tenant_seq" not in _indexes(database_url, "tasks")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM tasks")).scalars().all() == ["t1"]
            assert conn.execute(text("SELECT key, value FROM task_tags")).all() == [("k", "v")]
    finally:
        engine.dispose()


def test_0006_moves_submitter_tags_into_columns_and_back(database_url, tmp_path) -> None:
    """Revision 0006 on a database holding tagged tasks: the ``ms-submitter-*`` tag rows
    become column values (other tags stay rows), the task's document is untouched, and a
    downgrade writes the rows back."""
    from sqlalchemy import text

    from tests.servers import server_env

    env = server_env(tmp_path, database_url)
    assert _tes_server("db", "upgrade", "0005", env=env).returncode == 0
    document = '{"tags":{"k":"v","ms-submitter-name":"cromwell","ms-submitter-workflow-id":"w1"}}'
    engine = create_engine(database_url)
    rows = {("k", "v"), ("ms-submitter-name", "cromwell"), ("ms-submitter-workflow-id", "w1")}
    try:
        with engine.begin() as conn:
            for task_id in ("t1", "t2"):
                conn.execute(text(
                    "INSERT INTO tasks (id, state, name, creation_time, updated_at, document,"
                    " logs, backend) VALUES (:id, 'QUEUED', 'n', '2026-01-01 00:00:00',"
                    " '2026-01-01 00:00:00', :doc, '[]', 'local')"
                ), {"id": task_id, "doc": document if task_id == "t1" else "{}"})
            seq = conn.execute(text("SELECT seq FROM tasks WHERE id = 't1'")).scalar_one()
            for key, value in rows:
                conn.execute(text("INSERT INTO task_tags (task_seq, key, value)"
                                  " VALUES (:s, :k, :v)"), {"s": seq, "k": key, "v": value})

        up = _tes_server("db", "upgrade", env=env)
        assert up.returncode == 0, up.stderr
        assert "ix_tasks_submitter_workflow_id_seq" in _indexes(database_url, "tasks")
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT id, submitter_tag_name, submitter_workflow_id, submitter_workflow_name,"
                " document FROM tasks ORDER BY id"
            )).all() == [("t1", "cromwell", "w1", None, document), ("t2", None, None, None, "{}")]
            assert conn.execute(text("SELECT key, value FROM task_tags")).all() == [("k", "v")]

        down = _tes_server("db", "downgrade", "0005", env=env)
        assert down.returncode == 0, down.stderr
        assert "submitter_workflow_id" not in _columns(database_url, "tasks")
        with engine.connect() as conn:
            assert set(conn.execute(text("SELECT key, value FROM task_tags")).all()) == rows
    finally:
        engine.dispose()


def test_0007_the_journal_reads_a_tasks_tags_through_their_task_index(
    database_url, tmp_path
) -> None:
    """After 0007 the event journal's task facts query finds a task's tags by ``task_seq``
    through ``ix_task_tags_task_seq`` (before, it scanned every tag); 0006 has no index."""
    from sqlalchemy import text

    from tes_core.db import driver_sql
    from tes_core.events.journal import _TASK_FACTS_SQL
    from tests.servers import server_env

    env = server_env(tmp_path, database_url)
    assert _tes_server("db", "upgrade", env=env).returncode == 0
    assert "ix_task_tags_task_seq" in _indexes(database_url, "task_tags")
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # a tiny table: make the index an option
                conn.execute(text("SET enable_seqscan = off"))
            sql = driver_sql(conn.dialect, _TASK_FACTS_SQL)
            plan = " ".join(str(row) for row in conn.exec_driver_sql(
                "EXPLAIN " + ("QUERY PLAN " if conn.dialect.name == "sqlite" else "") + sql,
                ("t1",)).all())
        assert "ix_task_tags_task_seq" in plan, plan
        down = _tes_server("db", "downgrade", "0006", env=env)
        assert down.returncode == 0, down.stderr
        assert "ix_task_tags_task_seq" not in _indexes(database_url, "task_tags")
    finally:
        engine.dispose()
