"""Provisioning requests: accepted by the API, moved step by step by a worker.

``POST /provision`` stores the request (``QUEUED``) and sends a ``tes_provision``
message; the worker that takes it holds the lease ``provision:<id>`` while it calls the
provisioner's ``step`` until it is done, storing ``progress`` after every step. The
reconcile pass sends the message again for a request nobody works on (its worker died,
the in-memory broker lost the message with the process), so a restarted server finishes
what it started; a lease held by a dead worker is taken over.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from ..auth.principal import Principal
from ..config import Settings
from ..db import Database, utcnow
from ..errors import BadRequest, NotFound
from ..plugins import Hooks
from ..worker.actors import Actors, BrokerUnavailable
from ..worker.registry import WorkerRegistry, acquire_lease, lease_holder, release_lease
from .base import Provisioner, ProvisioningFailed
from .store import (
    COMPLETE,
    ERROR,
    QUEUED,
    RUNNING,
    UNFINISHED,
    insert_request,
    load_request,
    save_progress,
    unfinished,
)

log = logging.getLogger(__name__)

LEASE_TTL = 15 * 60.0
"""Seconds a worker's hold on a request lasts without a finished step (renewed after each)."""


class Provisioning:
    """Create, report and run provisioning requests (the API and the workers share it)."""

    def __init__(
        self, db: Database, hooks: Hooks, settings: Settings, actors: Actors,
        registry: WorkerRegistry, stale_after: float = 30.0,
    ) -> None:
        self.db = db
        self.hooks = hooks
        self.settings = settings
        self.actors = actors
        self.registry = registry
        self.stale_after = stale_after
        """Seconds a ``QUEUED`` request may wait for its message before it is sent again."""

    def provisioner(self) -> Provisioner:
        """The configured backend's provisioner; 404 saying so when it offers none."""
        provisioner = self.hooks.provisioner(self.settings)
        if provisioner is None:
            raise NotFound(
                f"the configured backend TES_BACKEND={self.settings.backend!r} offers no "
                "provisioning: POST /provision needs a backend plugin that provides it "
                "(tes-batch does for TES_BACKEND=batch)"
            )
        return provisioner

    # -- the API side -----------------------------------------------------------------

    def create(self, document: Any, principal: Principal | None) -> str:
        """Check and store a request, ask a worker to run it; its id."""
        provisioner = self.provisioner()
        if not isinstance(document, dict):
            raise BadRequest("the body must be a JSON object", field="body")
        request = provisioner.start(document)
        request_id = uuid.uuid4().hex
        insert_request(self.db, request_id, provisioner.name, request,
                       principal.owner.subject if principal else None)
        log.info("provisioning request %s accepted (%s)", request_id, provisioner.name)
        # Stored: when the broker is down, the reconcile pass sends it once it is back.
        with contextlib.suppress(BrokerUnavailable):
            self.actors.provision(request_id)
        return request_id

    def report(self, request_id: str) -> dict[str, Any]:
        """What ``GET /provision/{id}`` answers; 404 for an unknown id."""
        record = load_request(self.db, request_id) if "\x00" not in request_id else None
        if record is None:
            raise NotFound(f"no provisioning request with id {request_id!r}", field="id")
        provisioner = self.hooks.provisioner(self.settings)
        details = (provisioner.describe(record.request, record.progress)
                   if provisioner is not None and provisioner.name == record.provider
                   else {})
        return {
            "id": record.id, "backend": record.provider, "state": record.state,
            "created": record.created, "updated": record.updated,
            "request": record.request, "progress": details, "error": record.error,
        }

    # -- the worker side --------------------------------------------------------------

    def run(self, request_id: str) -> None:
        """Step the request until it is done or fails (the ``tes_provision`` actor).

        Returns at once when another live worker holds it or it has finished.
        """
        lease = f"provision:{request_id}"
        worker = self.registry.worker_id
        if not self._take(lease, worker):
            return
        try:
            record = load_request(self.db, request_id)
            if record is None or record.state not in UNFINISHED:
                return
            provisioner = self.hooks.provisioner(self.settings)
            if provisioner is None or provisioner.name != record.provider:
                save_progress(self.db, request_id, ERROR, record.progress,
                              f"the configured backend {self.settings.backend!r} no longer "
                              f"provisions for {record.provider!r}")
                return
            self._steps(provisioner, record.id, record.request, record.progress, lease, worker)
        finally:
            release_lease(self.db, lease, worker)

    def _steps(
        self, provisioner: Provisioner, request_id: str, request: dict[str, Any],
        progress: dict[str, Any], lease: str, worker: str,
    ) -> None:
        save_progress(self.db, request_id, RUNNING, progress)
        started = time.monotonic()
        while True:
            try:
                done = provisioner.step(request, progress)
            except ProvisioningFailed as exc:
                log.warning("provisioning request %s: step %r failed: %s",
                            request_id, exc.step, exc.reason)
                save_progress(self.db, request_id, ERROR, progress,
                              f"step {exc.step!r} failed: {exc.reason}")
                return
            except Exception as exc:
                log.warning("provisioning request %s failed", request_id, exc_info=True)
                save_progress(self.db, request_id, ERROR, progress,
                              f"{type(exc).__name__}: {exc}")
                return
            save_progress(self.db, request_id, COMPLETE if done else RUNNING, progress)
            if done:
                log.info("provisioning request %s complete after %.1fs", request_id,
                         time.monotonic() - started)
                return
            if not acquire_lease(self.db, lease, worker, ttl=LEASE_TTL):
                log.warning("provisioning request %s: another worker took it over", request_id)
                return

    def _take(self, lease: str, worker: str) -> bool:
        """Hold ``lease``; taken over from a holder that no longer runs."""
        if acquire_lease(self.db, lease, worker, ttl=LEASE_TTL):
            return True
        holder = lease_holder(self.db, lease)
        if holder is not None and not self.registry.is_alive(holder):
            log.info("taking over %s from worker %s, which stopped", lease, holder)
            release_lease(self.db, lease, holder)
            return acquire_lease(self.db, lease, worker, ttl=LEASE_TTL)
        return False

    def resume(self) -> None:
        """Send again the requests nobody works on (called by the reconcile pass)."""
        before = utcnow() - timedelta(seconds=self.stale_after)
        for request_id, state, updated_at in unfinished(self.db):
            if state == QUEUED and updated_at > before:
                continue  # its message is probably still on its way
            holder = lease_holder(self.db, f"provision:{request_id}")
            if holder is not None and self.registry.is_alive(holder):
                continue
            log.info("provisioning request %s: nobody works on it; sending it again",
                     request_id)
            try:
                self.actors.provision(request_id)
            except BrokerUnavailable:
                return
