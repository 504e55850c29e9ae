"""Driver connections kept per thread stay within the pool, however many HTTP threads.

An API process with more threads than its pool has connections (event streams hold
threads: 1,000 listeners need 1,000) must still find connections for every other use.
"""

from __future__ import annotations

import threading

import pytest

from tes_core.db import Database

SQL = "SELECT 1"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path, postgres_url_factory_lazy):
    url = (f"sqlite:///{tmp_path / 'threads.db'}" if request.param == "sqlite"
           else postgres_url_factory_lazy())
    database = Database(url)
    database.create_all()
    yield database
    database.dispose()


def test_more_threads_than_the_pool_keep_no_more_connections_than_it(db):
    size = db.engine.pool.size()
    threads = size + 12
    done = threading.Barrier(threads + 1)
    leave = threading.Event()
    answers: list[tuple | None] = []
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")

    def request() -> None:  # one HTTP thread: a read and a write, then it idles
        answers.append(db.point_read(SQL, ()))
        with db.driver_write() as tx:
            tx.execute(SQL, ())
        done.wait(60)
        leave.wait(60)

    workers = [threading.Thread(target=request) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        done.wait(60)
        assert answers == [(1,)] * threads
        assert db.kept_connections == size
        assert db.engine.pool.checkedout() == size  # the others gave theirs back
        # The pool still serves the engine's users (the event reader, migrations, ...).
        with db.read() as conn:
            assert conn.exec_driver_sql(SQL).scalar() == 1
        # Connections given back are out of autocommit: a failed write leaves nothing.
        for n in range(threads):
            with pytest.raises(RuntimeError), db.write() as conn:
                conn.exec_driver_sql(f"INSERT INTO t (x) VALUES ({n})")
                raise RuntimeError("abort")
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        leave.set()
        for worker in workers:
            worker.join(60)


def test_a_thread_that_keeps_one_reuses_it(db):
    first = db.point_read(SQL, ())
    checked_out = db.engine.pool.checkedout()
    for _ in range(5):
        assert db.point_read(SQL, ()) == first
    assert db.engine.pool.checkedout() == checked_out == 1
    assert db.kept_connections == 1
