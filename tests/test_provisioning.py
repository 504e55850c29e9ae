"""The core's side of ``POST /provision``: storing, stepping, failing and resuming requests.

An in-test provisioner stands in for a backend plugin's (tes-batch's runs against a fake
ARM in its own tests, with a real server restarted mid-way); the database, the leases and
the worker registry are the real ones, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import types
from datetime import timedelta

import pytest
from sqlalchemy import update

from tes_core import hookimpl
from tes_core.auth.principal import Owner, Principal
from tes_core.config import Settings
from tes_core.db import Database, utcnow
from tes_core.errors import BadRequest, NotFound
from tes_core.models import provisions, workers
from tes_core.plugins import load_plugins
from tes_core.provisioning.base import Provisioner, ProvisioningFailed
from tes_core.provisioning.service import Provisioning
from tes_core.worker.registry import HOSTNAME, WorkerRegistry, acquire_lease, lease_holder

STEPS = ("group", "account", "vault")


class CountingProvisioner:
    """Three steps; ``fail_at`` makes one fail, ``crash_at`` raise something unexpected."""

    name = "example"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_at: str | None = None
        self.crash_at: str | None = None

    def start(self, request):
        if not request.get("region"):
            raise BadRequest("region is required", field="region")
        return {"region": request["region"]}

    def step(self, request, progress):
        done = progress.setdefault("done", [])
        left = [name for name in STEPS if name not in done]
        if not left:
            return True
        self.calls.append(left[0])
        if left[0] == self.fail_at:
            raise ProvisioningFailed(left[0], "quota exceeded in " + request["region"])
        if left[0] == self.crash_at:
            raise RuntimeError("connection refused")
        done.append(left[0])
        return len(left) == 1

    def describe(self, request, progress):
        return {"done": progress.get("done", [])}


class Sent:
    """Records the messages the service sends instead of a broker."""

    def __init__(self) -> None:
        self.provisions: list[str] = []

    def provision(self, request_id: str) -> None:
        self.provisions.append(request_id)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path, postgres_url_factory_lazy):
    db = Database(postgres_url_factory_lazy() if request.param == "postgresql"
                  else f"sqlite:///{tmp_path / 'provision.sqlite3'}")
    db.create_all()
    settings = Settings.from_env({}, data_dir=tmp_path, backend="example")
    hooks = load_plugins(settings, require_backend=False)
    provisioner = CountingProvisioner()
    plugin = types.SimpleNamespace(tes_provisioner=hookimpl(
        lambda settings: provisioner if settings.backend == "example" else None))
    hooks.pm.register(plugin, name="example")
    registry = WorkerRegistry(db, heartbeat_interval=0.2)
    registry.register()
    sent = Sent()
    service = Provisioning(db, hooks, settings, sent, registry, stale_after=0)  # type: ignore[arg-type]
    yield service, provisioner, sent, db, registry
    registry.unregister()
    db.dispose()


def finished_pid() -> int:
    """The pid of a process that has ended (what a killed worker leaves behind)."""
    process = subprocess.Popen(["true"])  # noqa: S607
    process.wait()
    return process.pid


ADMIN = Principal(Owner("root"), admin=True)


def test_the_provisioner_matches_the_protocol(world) -> None:
    assert isinstance(world[1], Provisioner)


def test_a_backend_without_provisioning_is_a_404_naming_it(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'none.sqlite3'}")
    db.create_all()
    settings = Settings.from_env({}, data_dir=tmp_path)
    service = Provisioning(db, load_plugins(settings), settings, Sent(),  # type: ignore[arg-type]
                           WorkerRegistry(db))
    with pytest.raises(NotFound, match="TES_BACKEND='local' offers no provisioning"):
        service.create({"region": "westeurope"}, None)


def test_a_request_is_stored_sent_and_stepped_to_complete(world) -> None:
    service, provisioner, sent, _, _ = world
    request_id = service.create({"region": "westeurope", "ignored": 1}, ADMIN)
    assert sent.provisions == [request_id]
    report = service.report(request_id)
    assert report["state"] == "QUEUED" and report["request"] == {"region": "westeurope"}
    service.run(request_id)
    report = service.report(request_id)
    assert report["state"] == "COMPLETE", report
    assert report["progress"] == {"done": list(STEPS)} and report["error"] is None
    assert provisioner.calls == list(STEPS)
    service.run(request_id)  # a duplicate message: nothing left to do
    assert provisioner.calls == list(STEPS)


def test_bad_input_is_a_400_and_nothing_is_stored(world) -> None:
    service, _, sent, _, _ = world
    with pytest.raises(BadRequest) as caught:
        service.create({"region": ""}, ADMIN)
    assert caught.value.errors == {"region": ["region is required"]}
    with pytest.raises(BadRequest, match="JSON object"):
        service.create(["region"], ADMIN)
    assert sent.provisions == []


@pytest.mark.parametrize(("fault", "error", "done"), [
    ({"fail_at": "account"}, "step 'account' failed: quota exceeded in westeurope", ["group"]),
    ({"crash_at": "vault"}, "RuntimeError: connection refused", ["group", "account"]),
])
def test_a_failing_step_ends_in_error_saying_why(world, fault, error, done) -> None:
    """A step that cannot succeed is named; an unexpected exception gives its message."""
    service, provisioner, _, _, _ = world
    vars(provisioner).update(fault)
    request_id = service.create({"region": "westeurope"}, ADMIN)
    service.run(request_id)
    report = service.report(request_id)
    assert (report["state"], report["error"]) == ("ERROR", error)
    assert report["progress"] == {"done": done}  # what was made is still reported


def test_an_unknown_id_is_a_404(world) -> None:
    with pytest.raises(NotFound, match="no provisioning request with id 'nope'"):
        world[0].report("nope")


def test_a_request_held_by_a_live_worker_is_left_alone(world) -> None:
    service, provisioner, sent, db, _ = world
    request_id = service.create({"region": "westeurope"}, ADMIN)
    other = WorkerRegistry(db, heartbeat_interval=0.2)
    other.register()
    try:
        assert acquire_lease(db, f"provision:{request_id}", other.worker_id, ttl=600)
        service.run(request_id)
        assert provisioner.calls == []
        sent.provisions.clear()
        service.resume()
        assert sent.provisions == []
    finally:
        other.unregister()


def test_a_request_whose_worker_died_is_resumed_from_its_last_step(world) -> None:
    """What a restart finds: RUNNING, one step done, the lease held by a dead worker."""
    service, provisioner, sent, db, _ = world
    request_id = service.create({"region": "westeurope"}, ADMIN)
    dead = "dead-worker"
    with db.write() as conn:
        conn.execute(workers.insert().values(
            id=dead, hostname=HOSTNAME, pid=finished_pid(),
            started_at=utcnow() - timedelta(hours=1), heartbeat_at=utcnow()))
        conn.execute(update(provisions).where(provisions.c.id == request_id).values(
            state="RUNNING", progress='{"done": ["group"]}'))
    assert acquire_lease(db, f"provision:{request_id}", dead, ttl=600)
    sent.provisions.clear()
    service.resume()
    assert sent.provisions == [request_id]
    service.run(request_id)
    assert provisioner.calls == ["account", "vault"]  # not "group" again
    assert service.report(request_id)["state"] == "COMPLETE"
    assert lease_holder(db, f"provision:{request_id}") is None


def test_a_queued_request_is_sent_again_only_once_stale(world) -> None:
    service, _, sent, _, _ = world
    service.stale_after = 3600
    request_id = service.create({"region": "westeurope"}, ADMIN)
    sent.provisions.clear()
    service.resume()
    assert sent.provisions == []  # its first message may still be on its way
    service.stale_after = 0
    service.resume()
    assert sent.provisions == [request_id]
