"""Running the workers: Dramatiq worker threads, the heartbeat and the reconcile clock."""

from __future__ import annotations

import contextlib
import logging
import threading

import dramatiq

from ..backends.base import Backend
from ..db import Database
from ..shutdown import Deadline, bounded
from .actors import Actors, BrokerUnavailable
from .lifecycle import Lifecycle
from .registry import WorkerRegistry, acquire_lease

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "reconcile-clock"
CONSUMERS_SHARE = 0.25
"""Part of a stop's time for no longer taking messages (those being handled finish)."""
HANDOVER_SHARE = 0.7
"""Part of what is left then for the backend's hand-over; removing the worker's row and
asking for a reconcile pass get the rest (at least a fifth)."""


class WorkerProcess:
    """Everything that makes this process a worker; ``start()`` then ``stop()``."""

    def __init__(
        self,
        db: Database,
        backend: Backend,
        actors: Actors,
        lifecycle: Lifecycle,
        registry: WorkerRegistry,
        threads: int,
        reconcile_interval: float,
        database_patience: float = 0.0,
        grace: float = 10.0,
    ) -> None:
        self.db = db
        self.backend = backend
        self.actors = actors
        self.lifecycle = lifecycle
        self.registry = registry
        self.threads = threads
        self.reconcile_interval = reconcile_interval
        self.database_patience = database_patience
        self.grace = grace
        """Seconds :meth:`stop` may take (``TES_SHUTDOWN_GRACE``)."""
        self._stop = threading.Event()
        self._clock: threading.Thread | None = None
        self._worker: dramatiq.Worker | None = None
        self.running = False
        """Whether :meth:`start` ran and :meth:`stop` has not."""

    def start(self) -> None:
        """Start the backend, register, take messages, and start the reconcile clock.

        A backend that cannot run tasks here raises from its ``start()`` before anything
        else started: the process can then stop with the reason.
        """
        self.backend.start()
        self.registry.register()
        self.running = True
        # From now on this process runs tasks: what they report must outlive a database
        # restart rather than end them (or leave them stuck) on the first failed write.
        self.lifecycle.reporter.patience = self.database_patience
        self.actors.handler = self.lifecycle
        self._worker = dramatiq.Worker(
            self.actors.broker, worker_threads=self.threads, worker_timeout=100
        )
        self._worker.start()
        self._clock = threading.Thread(target=self._tick, name="tes-reconcile-clock", daemon=True)
        self._clock.start()
        log.info("worker %s started with %d threads on backend %s",
                 self.registry.worker_id, self.threads, self.backend.name)

    def _tick(self) -> None:
        # The first pass runs at once: it is what recovers tasks after a crash.
        while not self._stop.is_set():
            try:
                self.lifecycle.release_stale_claims()
            except Exception:
                log.warning("could not check this worker's claims", exc_info=True)
            try:
                if acquire_lease(
                    self.db, SCHEDULER_LEASE, self.registry.worker_id,
                    ttl=2 * self.reconcile_interval,
                ):
                    self.actors.reconcile()
            except BrokerUnavailable:
                pass  # logged once per outage by the sender; the next tick tries again
            except Exception:
                log.warning("could not schedule a reconcile pass", exc_info=True)
            self._stop.wait(self.reconcile_interval)

    def stalled_reason(self) -> str | None:
        """Why this worker can no longer do its work by itself (a thread it needs has
        died), or ``None``; ``tes-server worker``'s ``/healthz`` answers 503 with it, so
        that an orchestrator restarts the process. An unreachable database or broker is
        not a stall (``/readyz`` says so): the threads wait for them to come back."""
        if not self.running:
            return None
        threads = {"the reconcile clock": self._clock, "the heartbeat": self.registry.thread}
        if self._worker is not None:
            threads |= {f"the message consumer of {queue}": consumer
                        for queue, consumer in self._worker.consumers.items()}
            dead_workers = sum(not thread.is_alive() for thread in self._worker.workers)
            if dead_workers:
                return f"{dead_workers} of {len(self._worker.workers)} worker threads have died"
        for name, thread in threads.items():
            if thread is not None and not thread.is_alive():
                return f"{name} thread has died"
        return None

    def stop(self, deadline: Deadline | None = None) -> bool:
        """Hand this worker's work over, then stop, each step bounded by ``deadline``
        (default: :attr:`grace` from now); a step still going at its time is left behind.

        Stops taking messages (those not taken stay in the broker for the other workers;
        one being handled gets a quarter of the time), has the backend hand its tasks
        over (:meth:`Backend.shutdown <tes_core.backends.base.Backend.shutdown>`:
        containers go on running, transfers are interrupted; most of what is left), then
        unregisters: that releases every claim of this worker at once, and the reconcile
        pass it asks for takes its tasks over as after a crash, without waiting for its
        heartbeat to go stale. A hand-over that did not end (a task thread still busy)
        leaves the claims alone: they are released once this process is gone, as after a
        crash, so that no task runs here and in its next worker at once.

        Returns whether the work was handed over (else it is recovered as after a crash).
        """
        deadline = deadline or Deadline(self.grace)
        self._stop.set()
        self.running = False
        if self._worker is not None:
            worker, consumers = self._worker, deadline.share(CONSUMERS_SHARE)
            # Dramatiq joins its worker threads, then its consumer threads, each for up
            # to the timeout; then it puts back the messages prefetched and not handled.
            wait_ms = max(1, int(consumers.remaining() * 1000 / 2))
            bounded(lambda: worker.stop(timeout=wait_ms), consumers, "stopping taking messages")
        # The backend wraps up by ``handover``; the wait for it allows a little more.
        backend, handover = self.backend, deadline.share(HANDOVER_SHARE)
        waited = deadline.share(HANDOVER_SHARE + 0.1)
        if not bounded(lambda: backend.shutdown(handover), waited, "the hand-over"):
            log.warning("stopping: this worker's claims are left to be released once it is "
                        "gone, as after a crash")
            return False
        # Each step after gets half of what is left, so that the next ones get some time.
        bounded(self.registry.unregister, deadline.share(0.5), "removing this worker's row")
        # Another worker takes this one's tasks over now (else at its next scheduled pass).
        bounded(self._ask_reconcile, deadline.share(0.5), "asking for a reconcile pass")
        if self._clock is not None:
            self._clock.join(timeout=min(2.0, deadline.remaining() / 2))
        return True

    def _ask_reconcile(self) -> None:
        with contextlib.suppress(BrokerUnavailable):  # the sender logs it once per outage
            self.actors.reconcile()
