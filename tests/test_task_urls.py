"""URLs that submitter plugins sign late: checked at create, stored as sent, signed each
time a backend gets the task (:mod:`tes_core.task_urls`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from tes_core import hookimpl
from tes_core.backends.base import BackendError, TaskRecord
from tes_core.config import Settings
from tes_core.core import Core, build_core
from tes_core.errors import SubmitterError
from tes_core.plugins import load_plugins
from tes_core.store import load_record
from tes_core.submitter import Submitter

# The installed submitter plugins stay out: these tests bring their own.
OTHERS = ",".join(sorted({ep.name for ep in entry_points(group="tes")} - {"local"}))
SIGNATURES = itertools.count(1)


SERVICE_DOWN = {"calls": 0}
"""How many more signings of ``flaky://`` URLs fail as a storage service that does not
answer would."""


class LateSigner:
    """Signs ``late://`` URLs when a backend gets the task, with a new signature each time;
    ``bad://`` is refused; ``lost://`` passes the check and cannot be signed later;
    ``flaky://`` is signed once :data:`SERVICE_DOWN` has counted down."""

    def __init__(self, task: dict[str, Any]) -> None:
        self.task = task

    def __call__(self, url: str, direction: str) -> str | None:
        if url.startswith("lost://"):
            raise SubmitterError("the account's key is gone")
        if url.startswith("flaky://") and SERVICE_DOWN["calls"] > 0:
            SERVICE_DOWN["calls"] -= 1
            raise ConnectionError("the identity endpoint did not answer")
        if not self.check(url, direction):
            return None
        return (f"https://store.example/{direction}/{url.partition('://')[2]}"
                f"?sig={next(SIGNATURES)}")

    def check(self, url: str, direction: str) -> bool:
        if url.startswith("bad://"):
            raise SubmitterError("no account for it")
        return url.startswith(("late://", "lost://", "flaky://"))


class Plugin:
    @hookimpl
    def tes_detect_submitter(self, task: dict[str, Any]) -> Submitter | None:
        return Submitter("late") if task.get("name") == "late" else None

    @hookimpl
    def tes_url_rewriter(self, task: dict[str, Any], submitter: Submitter | None) -> Any:
        if submitter is None or submitter.name != "late":
            return None
        return LateSigner(task)

    @hookimpl
    def tes_rewrite_url(self, url: str, submitter: Submitter | None) -> str | None:
        """The old way: rewritten at create, and stored."""
        if submitter is not None and url.startswith("now://"):
            return "https://now.example/" + url[len("now://"):]
        return None


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    settings = Settings.from_env({
        "TES_DATA_DIR": str(tmp_path), "TES_WORKER_THREADS": "0",
        "TES_DISABLED_PLUGINS": OTHERS,
    })
    hooks = load_plugins(settings)
    hooks.pm.register(Plugin(), name="late")
    made = build_core(settings, hooks=hooks)
    made.db.create_all()
    yield made
    made.close()


def task(*urls: str, outputs: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "name": "late",
        "inputs": [{"url": url, "path": f"/in/{n}"} for n, url in enumerate(urls)],
        "outputs": [{"url": url, "path": f"/out/{n}"} for n, url in enumerate(outputs)],
        "executors": [{"image": "alpine", "command": ["true"]}],
    }


def record(core: Core, task_id: str) -> TaskRecord:
    with core.db.read() as conn:
        found = load_record(conn, task_id)
    assert found is not None
    return found


def test_urls_are_stored_as_sent_and_signed_for_each_attempt(core: Core) -> None:
    task_id = core.service.create(task("late://a", "now://b", "s3://c/d",
                                       outputs=("late://out",)))
    stored = core.service.get(task_id, "FULL")
    assert [item["url"] for item in stored["inputs"]] == [
        "late://a", "https://now.example/b", "s3://c/d"]
    assert stored["outputs"][0]["url"] == "late://out"
    assert "sig=" not in json.dumps(stored)

    first = core.backend.dispatched(record(core, task_id))
    second = core.backend.dispatched(record(core, task_id))
    assert first.urls_ready
    urls = [item["url"] for item in first.document["inputs"]]
    assert urls[0].startswith("https://store.example/input/a?sig=")
    assert urls[1:] == ["https://now.example/b", "s3://c/d"], "the others as stored"
    assert first.document["outputs"][0]["url"].startswith("https://store.example/output/out?")
    assert first.document["inputs"][0]["url"] != second.document["inputs"][0]["url"]
    assert core.backend.dispatched(first) is first, "signed once per attempt"
    assert record(core, task_id).document["inputs"][0]["url"] == "late://a", "not written back"


def test_a_url_the_rewriter_could_never_sign_is_a_400_at_create(core: Core) -> None:
    with pytest.raises(SubmitterError) as refused:
        core.service.create(task("late://a", outputs=("bad://x",)))
    assert refused.value.errors == {"outputs.0.url": ["no account for it"]}
    assert str(refused.value.message).startswith("outputs[0].url: ")


def test_the_worker_hands_the_backend_signed_urls(core: Core) -> None:
    seen: list[TaskRecord] = []
    core.backend.submit = lambda record: seen.append(record) or "ref"  # type: ignore[method-assign]
    task_id = core.service.create(task("late://a"))
    core.worker.lifecycle.submit(task_id)
    assert len(seen) == 1
    assert seen[0].document["inputs"][0]["url"].startswith("https://store.example/input/a?sig=")


def test_a_url_that_can_no_longer_be_signed_fails_the_task_saying_why(core: Core) -> None:
    submitted: list[TaskRecord] = []
    core.backend.submit = lambda record: submitted.append(record) or "ref"  # type: ignore[method-assign]
    task_id = core.service.create(task("lost://a"))
    with pytest.raises(BackendError, match="the account's key is gone"):
        core.backend.dispatched(record(core, task_id))

    core.worker.lifecycle.submit(task_id)

    assert submitted == []
    full = core.service.get(task_id, "FULL")
    assert full["state"] == "SYSTEM_ERROR"
    reason = full["logs"][-1]["system_logs"][-1]
    assert ("signing the task's storage URLs failed: inputs[0].url: the account's key is "
            "gone") in reason
    assert "fix the server's storage settings" in reason


def test_a_signing_service_that_does_not_answer_makes_the_task_wait_not_fail(
    core: Core,
) -> None:
    """The storage service or the identity endpoint down for a moment (a delegation key
    being renewed): the task gives its claim back, says why it waits, and is submitted
    once signing works again (the reconcile pass sends it again)."""
    submitted: list[TaskRecord] = []
    core.backend.submit = lambda record: submitted.append(record) or "ref"  # type: ignore[method-assign]
    SERVICE_DOWN["calls"] = 1
    task_id = core.service.create(task("flaky://a"))

    core.worker.lifecycle.submit(task_id)

    assert submitted == []
    waiting = record(core, task_id)
    assert (waiting.state, waiting.backend_ref, waiting.worker_id) == ("QUEUED", None, None)
    reason = waiting.logs[-1]["metadata"]["waiting_reason"]
    assert reason.startswith("waiting to sign the task's storage URLs: the identity endpoint "
                             "did not answer; trying again in about ")
    assert reason in waiting.logs[-1]["system_logs"]

    core.worker.lifecycle.submit(task_id)  # what the reconcile pass sends

    assert [r.document["inputs"][0]["url"].split("?")[0] for r in submitted] == [
        "https://store.example/input/a"]
    started = record(core, task_id)
    assert "waiting_reason" not in (started.logs[-1].get("metadata") or {})
    assert started.backend_ref == "ref"
