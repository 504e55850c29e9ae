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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
    return request.getfixturevalue("postgres_url_factory")()


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
