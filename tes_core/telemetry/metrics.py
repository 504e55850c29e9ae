"""Prometheus metrics, served at ``/metrics``.

* ``tes_tasks{state}``: tasks by state, counted in the database at scrape time
  (one grouped query).
* ``tes_http_request_duration_seconds{method,route,status}``: API latency by route
  template (``/ga4gh/tes/v1/tasks/<task_id>``), never by raw path.
* ``tes_backend_calls_total`` / ``tes_backend_errors_total{backend,operation}``.
* ``tes_queue_depth{queue}``: messages waiting in the broker, at scrape time.
* ``tes_reconcile_duration_seconds``: time of each reconcile pass.
* ``tes_tasks_removed_total{state}``: finished tasks removed by retention (``TES_RETENTION``).

With several processes (gunicorn workers, ``tes-server worker``), set
``PROMETHEUS_MULTIPROC_DIR`` to a folder shared by all of them on one host and
empty at start: counters and histograms then add up across processes
(``prometheus_client``'s multiprocess mode).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..states import State

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
BACKEND_OPERATIONS = ("submit", "cancel", "recover", "poll", "refresh", "remove")

HTTP_DURATION = Histogram(
    "tes_http_request_duration_seconds", "API request latency by route template.",
    ("method", "route", "status"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BACKEND_CALLS = Counter(
    "tes_backend_calls", "Calls to the compute backend.", ("backend", "operation")
)
BACKEND_ERRORS = Counter(
    "tes_backend_errors", "Calls to the compute backend that raised.", ("backend", "operation")
)
RECONCILE_DURATION = Histogram(
    "tes_reconcile_duration_seconds", "Duration of one reconcile pass.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
TASKS_REMOVED = Counter(
    "tes_tasks_removed", "Finished tasks removed by retention (TES_RETENTION), by state.",
    ("state",),
)

_children: dict[tuple[str, str, str], Any] = {}
_children_lock = threading.Lock()


KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one API request (cheap: the labelled child is looked up once per key)."""
    # Labels come from a bounded set: invented methods cannot grow the series.
    key = (method if method in KNOWN_METHODS else "other", route, str(status))
    child = _children.get(key)
    if child is None:
        with _children_lock:
            child = _children.setdefault(key, HTTP_DURATION.labels(*key))
    child.observe(seconds)


# -- instrumenting the backend and the reconcile loop ------------------------------------


def instrument_backend(backend: Any) -> None:
    """Count the calls and errors of ``backend``'s operations (wraps them on the instance,
    so ``type(backend)`` and its overrides stay as they are)."""
    name = backend.name
    for operation in BACKEND_OPERATIONS:
        method = getattr(backend, operation, None)
        if method is not None:
            calls = BACKEND_CALLS.labels(name, operation)
            errors = BACKEND_ERRORS.labels(name, operation)
            wrapper = _counted_iterable if operation == "poll" else _counted
            setattr(backend, operation, wrapper(method, calls, errors))


def _counted(method: Callable[..., Any], calls: Any, errors: Any) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.inc()
        try:
            return method(*args, **kwargs)
        except Exception:
            errors.inc()
            raise

    return call


def _counted_iterable(method: Callable[..., Any], calls: Any, errors: Any) -> Callable[..., Any]:
    """Like :func:`_counted` for ``poll``, whose errors may come while iterating."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
        calls.inc()
        try:
            yield from method(*args, **kwargs)
        except Exception:
            errors.inc()
            raise

    return call


def time_reconcile(lifecycle: Any) -> None:
    """Record the duration of every ``lifecycle.reconcile()`` pass."""
    reconcile = lifecycle.reconcile

    @functools.wraps(reconcile)
    def timed() -> None:
        started = time.perf_counter()
        try:
            reconcile()
        finally:
            RECONCILE_DURATION.observe(time.perf_counter() - started)

    lifecycle.reconcile = timed


# -- what is counted at scrape time ------------------------------------------------------


class ScrapeTimeCollector(Collector):
    """Tasks by state and the broker's queue depth, read when Prometheus scrapes."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The gauges, from one grouped query and one broker call."""
        tasks = GaugeMetricFamily("tes_tasks", "Tasks by state.", labels=["state"])
        try:
            counts = task_counts(self.core.db)
        except Exception as exc:
            log.warning("metrics: cannot count tasks: %s", exc)
        else:
            for state in State:
                tasks.add_metric([state.value], counts.get(state.value, 0))
            yield tasks
        depth = GaugeMetricFamily(
            "tes_queue_depth", "Messages waiting in the broker's queues.", labels=["queue"]
        )
        try:
            for queue, size in queue_depths(self.core.actors.broker).items():
                depth.add_metric([queue], size)
        except Exception as exc:
            log.warning("metrics: cannot read the queue depth: %s", exc)
        else:
            yield depth


def task_counts(db: Any) -> dict[str, int]:
    """``{state: number of tasks}`` in one ``GROUP BY`` (served by ``ix_tasks_state_seq``)."""
    from sqlalchemy import func, select

    from ..models import tasks

    with db.read() as conn:
        rows = conn.execute(select(tasks.c.state, func.count()).group_by(tasks.c.state)).all()
    return {state: count for state, count in rows}


def queue_depths(broker: Any) -> dict[str, int]:
    """Messages waiting in each declared queue (Redis or the in-memory broker)."""
    depths: dict[str, int] = {}
    for queue in sorted(broker.get_declared_queues()):
        if hasattr(broker, "do_qsize"):  # Redis
            depths[queue] = int(broker.do_qsize(queue))
        else:  # StubBroker: queue.Queue objects
            depths[queue] = broker.queues[queue].qsize()
    return depths


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared)
    return shared


def exposition(core: Any) -> bytes:
    """The text Prometheus scrapes: this process's (or all processes') metrics, then the
    gauges counted now."""
    text = generate_latest(process_registry())
    now = CollectorRegistry(auto_describe=False)
    now.register(ScrapeTimeCollector(core))
    return text + generate_latest(now)
