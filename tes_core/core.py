"""Assembling the parts of a running server from settings.

``build_core`` is called by ``create_app()`` and by ``tes-server worker``: it
loads plugins, opens the database, builds the backend and wires the task
service and the actors. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .backends.base import Backend, BackendContext
from .config import Settings
from .db import Database
from .events.hub import EventHub
from .events.wiring import wire_events
from .plugins import Hooks, load_plugins
from .provisioning.service import Provisioning
from .reporting import DatabaseReporter
from .service import TaskService
from .shutdown import Deadline, bounded
from .statecache import StateCache
from .telemetry.messages import carry_request_ids
from .telemetry.metrics import instrument_backend, time_reconcile
from .worker.actors import Actors, build_broker
from .worker.lifecycle import Lifecycle
from .worker.process import WorkerProcess
from .worker.registry import WorkerRegistry
from .worker.retention import Retention

log = logging.getLogger(__name__)


@dataclass
class Core:
    """The wired parts of one server or worker process."""

    settings: Settings
    db: Database
    hooks: Hooks
    backend: Backend
    actors: Actors
    reporter: DatabaseReporter
    registry: WorkerRegistry
    service: TaskService
    worker: WorkerProcess
    events: EventHub
    """This process's reader of the task event journal (``GET /events``)."""
    provisioning: Provisioning
    """``POST /provision`` requests (:mod:`tes_core.provisioning`)."""

    def start_worker(self) -> None:
        """Make this process a worker (embedded mode, or ``tes-server worker``)."""
        self.actors.provisioning = self.provisioning
        self.worker.start()

    def close(self, deadline: Deadline | None = None) -> bool:
        """Stop the worker if it runs (handing its tasks over), helper threads, and the
        database pool, each step bounded by ``deadline`` (default: the shutdown grace from
        now). Returns whether the worker's tasks were handed over (see
        :meth:`WorkerProcess.stop`); ``True`` when it did not run."""
        deadline = deadline or Deadline(self.settings.shutdown_grace)
        handed = self.worker.stop(deadline) if self.worker.running else True
        self.service.close()
        bounded(self.events.close, deadline.share(0.5), "closing the event reader")
        bounded(self.db.dispose, deadline.share(0.5), "closing the database connections")
        return handed


def build_core(
    settings: Settings, *, hooks: Hooks | None = None, sole_writer: bool = False
) -> Core:
    """Build every part from ``settings`` without starting anything.

    ``hooks``: the plugins, when the caller loaded them already (to start telemetry
    exporters before the Flask app exists); else they are loaded here.

    ``sole_writer``: this process makes every change to task states (``tes-server
    serve`` in the embedded mode), so it may remember them all between GETs.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    hooks = hooks or load_plugins(settings)
    hooks.check_storage_provider(settings)
    db = Database(settings.database)
    states = StateCache(sole_writer=sole_writer, keep_finished=settings.retention is None)
    reporter = DatabaseReporter(db, hooks, states)
    events = wire_events(settings, db, hooks)
    registry = WorkerRegistry(db, settings.heartbeat_interval)
    context = BackendContext(
        settings=settings,
        reporter=reporter,
        worker_id=registry.worker_id,
        is_worker_alive=registry.is_alive,
    )
    backend = hooks.create_backend(context)
    actors = Actors(carry_request_ids(build_broker(settings)))
    service = TaskService(
        db, hooks, backend, actors, reporter, refresh_timeout=settings.get_refresh_timeout,
        settings=settings,
    )
    context.refresh = service.refresh
    context.prepare_task = service.for_backend
    lifecycle = Lifecycle(
        db, backend, reporter, registry, actors,
        stale_after=max(3 * settings.reconcile_interval, 5.0),
        batch_size=settings.reconcile_batch_size,
        lock_ttl=settings.reconcile_lock_ttl,
        retention=Retention(db, backend, states, settings.retention,
                            settings.retention_batch_size),
    )
    worker = WorkerProcess(
        db, backend, actors, lifecycle, registry,
        threads=settings.worker_threads, reconcile_interval=settings.reconcile_interval,
        database_patience=settings.database_retry_timeout, grace=settings.shutdown_grace,
    )
    provisioning = Provisioning(db, hooks, settings, actors, registry,
                                stale_after=max(3 * settings.reconcile_interval, 5.0))
    lifecycle.after_pass = provisioning.resume
    instrument_backend(backend)
    time_reconcile(lifecycle)
    return Core(settings, db, hooks, backend, actors, reporter, registry, service, worker,
                events, provisioning)
