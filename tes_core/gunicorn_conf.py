"""The production gunicorn configuration for the TES API.

    gunicorn -c python:tes_core.gunicorn_conf 'tes_core.app:create_app()'

Command-line options override what is set here (``--bind 0.0.0.0:8000 --workers 4``),
as does ``GUNICORN_CMD_ARGS``; the address is gunicorn's default (``127.0.0.1:8000``,
or ``0.0.0.0:$PORT`` when ``PORT`` is set). Why each value (see also the README,
"Production"):

* ``gthread`` workers with a few threads each: requests are short and wait on
  PostgreSQL and Redis, not on the CPU, so threads overlap those waits cheaply; a
  client that keeps a connection open (workflow engines poll over keep-alive)
  holds a thread, not a whole process.
* ``workers`` = the CPUs (at least 2, so one busy or restarting process never
  leaves the API with none). Each process holds up to ``threads`` database
  connections for the fast paths plus its pool's, so size PostgreSQL's
  ``max_connections`` for ``workers x threads x 2`` per API machine, plus workers;
  with many threads (event listeners), at most its pool's 40 per process.
* No ``preload_app``: ``create_app()`` opens a connection pool, a Redis connection
  pool and helper threads, none of which survive ``fork()``; each process builds
  its own app after the fork. Starting takes a second longer and a little more
  memory, and no state is shared by accident.
* ``timeout`` 60 s: no request legitimately takes that long (a GET's backend
  refresh is bounded by ``TES_GET_REFRESH_TIMEOUT``); a stuck process is replaced.
* ``graceful_timeout`` ``TES_SHUTDOWN_GRACE`` (10 s): on SIGTERM (a deployment, a
  scale-in) processes stop accepting, finish requests in flight, then close their
  database pools; gunicorn kills what is still running after that. Requests are short
  (see ``timeout``), and the whole stop fits in Kubernetes' 30 s before its SIGKILL.
  SIGINT (or SIGQUIT) stops at once.
* ``keepalive`` 75 s: longer than the idle timeout of the usual load balancers
  (Azure Load Balancer and Application Gateway: 4 min max, 60 s is common), so the
  balancer, not gunicorn, closes idle connections and no request meets a
  half-closed socket.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from tes_core.config import setting_from_env

workers = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = max(1, math.ceil(float(setting_from_env("shutdown_grace"))))  # type: ignore[arg-type]
keepalive = 75
preload_app = False
limit_request_line = 8190
"""8 KiB request lines (gunicorn's default is 4 KiB): ``GET /tasks`` with many
``tag_key``/``tag_value`` pairs. gunicorn has no body limit of its own: the app refuses
bodies over ``TES_MAX_BODY_BYTES``, chunked ones included, with the JSON 413."""
control_socket_disable = True
"""Recent gunicorn versions open a control socket at one fixed path per user; several
servers on a host (API, tests, benchmarks) would take it from each other, and nothing
here uses it. Older gunicorn versions ignore the setting."""
accesslog = None
"""Off: at hundreds of polls a second an access log costs more than the requests;
turn on with ``--access-logfile -`` when needed."""


def on_starting(server: Any) -> None:
    """Before any process starts: stop gunicorn with one line on stderr when the app could
    never serve (a malformed setting, a plugin that fails, a database never upgraded)."""
    from tes_core.config import Settings
    from tes_core.startup import check_api_process, explain

    try:
        check_api_process(Settings.from_env())
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise
        print(f"tes-core: {explained[1]}", file=sys.stderr, flush=True)
        raise SystemExit(explained[0]) from None


def worker_exit(server: Any, worker: Any) -> None:
    """Close the database pool and helper threads of a stopping process."""
    app = getattr(worker, "wsgi", None)
    core = getattr(app, "extensions", {}).get("tes") if app is not None else None
    if core is not None:
        core.close()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead process's live gauges from Prometheus' multiprocess files.

    Only with ``PROMETHEUS_MULTIPROC_DIR`` set (several processes sharing metrics);
    counters and histograms of the process are kept, as prometheus_client intends.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
