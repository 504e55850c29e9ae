"""The aks backend against the fake API, without a server: idempotent submits, an API
that is down, placement, hostile parameters, and the manifest check itself."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakekube import schema_check
from tes_core.backends.base import BackendContext, TaskRecord
from tes_core.config import Settings
from tests.signing import UNSIGNED_INPUT, CountingSigner, signed_url

from tes_aks import manifests, names
from tes_aks.backend import AksBackend
from tes_aks.kube import Kube, api_client
from tes_aks.plan import build_plan
from tes_aks.settings import AksSettings


class Reporter:
    """A reporter that accepts everything (the backend here only reads the API)."""

    def report(self, observation: Any) -> bool:
        return True

    def current_state(self, task_id: str) -> str | None:
        return "QUEUED"

    def states_of(self, task_ids: Any) -> dict[str, str]:
        return {}


def backend(cluster: Any, tmp_path: Path, **env: str) -> AksBackend:
    """An :class:`AksBackend` on the fake API; its kubelet leaves coordinators alone
    unless the test asks (their pods stay Pending)."""
    settings = Settings.from_env({"TES_BACKEND": "aks", "TES_DATA_DIR": str(tmp_path),
                                  "TES_AKS_NAME_PREFIX": "ut-",
                                  "TES_AKS_COORDINATOR_IMAGE": "sim/hang", **env})
    return AksBackend(BackendContext(settings, Reporter(), "test"),
                      kube=Kube(api_client(str(cluster.kubeconfig))))


def record(document: dict[str, Any] | None = None, ref: str | None = None,
           state: str = "QUEUED") -> TaskRecord:
    return TaskRecord(id=str(uuid.uuid4()), state=state,
                      document=document or {"executors": [{"image": "alpine",
                                                           "command": ["true"]}]},
                      creation_time=datetime.now(UTC), logs=[{}], backend_ref=ref)


def test_a_repeated_submit_adopts_the_first_job(cluster: Any, tmp_path: Path) -> None:
    aks = backend(cluster, tmp_path)
    task = record()
    first = aks.submit(task)
    again = aks.submit(task)
    assert first == again == f"default/ut-{task.id}-a1"
    jobs = cluster.fake.find("Job", "default", names.task_selector(task.id))
    assert [job["metadata"]["name"] for job in jobs] == [f"ut-{task.id}-a1"]
    posts = [r for r in cluster.fake.requests if r.method == "POST" and r.kind == "Job"
             and r.name == f"ut-{task.id}-a1"]
    assert len(posts) == 2, "the second submit asked to create, was answered 409, adopted"
    aks.cancel(TaskRecord(**{**task.__dict__, "backend_ref": first, "state": "CANCELING"}))
    for kind in ("Job", "ConfigMap", "Pod"):
        assert cluster.fake.find(kind, "default", names.task_selector(task.id)) == []


def test_each_attempt_gets_urls_signed_for_it(cluster: Any, tmp_path: Path) -> None:
    """The coordinator Job of a new attempt (after an eviction) carries the task's URLs
    signed again, not the first attempt's tokens."""
    aks = backend(cluster, tmp_path)
    aks.context.prepare_task = CountingSigner()
    task = record({"executors": [{"image": "alpine", "command": ["true"]}],
                   "inputs": [UNSIGNED_INPUT]})
    first = aks.submit(task)
    aks.submit_attempt(task, 2)
    jobs = {job["metadata"]["name"]: json.dumps(job)
            for job in cluster.fake.find("Job", "default", names.task_selector(task.id))}
    assert signed_url(1) in jobs[f"ut-{task.id}-a1"]
    assert signed_url(2) in jobs[f"ut-{task.id}-a2"]
    assert "az://acct" not in jobs[f"ut-{task.id}-a1"] + jobs[f"ut-{task.id}-a2"]
    aks.cancel(TaskRecord(**{**task.__dict__, "backend_ref": first, "state": "CANCELING"}))


def test_an_unreachable_api_loses_nothing(cluster: Any, tmp_path: Path) -> None:
    aks = backend(cluster, tmp_path)
    task = record()
    cluster.fake.down = True
    try:
        ref = aks.submit(task)  # not taken, not failed: the task keeps its name
        assert list(aks.poll([TaskRecord(**{**task.__dict__, "backend_ref": ref})])) == []
    finally:
        cluster.fake.down = False
    assert cluster.fake.find("Job", "default", names.task_selector(task.id)) == []
    queued = TaskRecord(**{**task.__dict__, "backend_ref": ref})
    assert list(aks.poll([queued])) == []  # the pass that reaches the API submits it
    assert len(cluster.fake.find("Job", "default", names.task_selector(task.id))) == 1
    aks.cancel(queued)


def test_a_job_deleted_outside_tes_fails_the_running_task(cluster: Any,
                                                          tmp_path: Path) -> None:
    aks = backend(cluster, tmp_path)
    task = record()
    ref = aks.submit(task)
    cluster.fake.remove("Job", "default", ref.split("/")[1])
    canceling = TaskRecord(**{**task.__dict__, "backend_ref": ref, "state": "CANCELING"})
    assert list(aks.poll([canceling])) == [], "a cancel's deletions are not a failure"
    [observation] = aks.poll([TaskRecord(**{**task.__dict__, "backend_ref": ref,
                                            "state": "INITIALIZING"})])
    assert observation.state == "SYSTEM_ERROR"
    assert "no longer exists" in observation.system_logs[0]
    aks.cancel(TaskRecord(**{**task.__dict__, "backend_ref": ref}))


def test_placement_of_a_preemptible_zoned_gpu_task() -> None:
    conf = AksSettings(namespaces=("default", "team-a"), service_accounts=("reader",))
    document = {"executors": [{"image": "cuda", "command": ["nvidia-smi"]}],
                "resources": {"preemptible": True, "zones": ["westeurope-1"], "cpu_cores": 2,
                              "ram_gb": 1.5, "backend_parameters": {
                                  "namespace": "team-a", "gpu": "1",
                                  "node_selector": "pool=gpu", "service_account": "reader"}}}
    plan = build_plan("t1", document, 1, conf, {})
    spec = manifests.executor_job(plan, 0)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.azure.com/scalesetpriority": "spot",
                                    "pool": "gpu"}
    assert spec["tolerations"] == [{"key": "kubernetes.azure.com/scalesetpriority",
                                    "operator": "Equal", "value": "spot",
                                    "effect": "NoSchedule"}]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0] == {
        "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["westeurope-1"]}
    resources = spec["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {
        "cpu": "2", "memory": "1536Mi", "nvidia.com/gpu": "1"}
    assert spec["serviceAccountName"] == "reader" and "automountServiceAccountToken" not in spec
    assert plan["namespace"] == "team-a"
    assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    coordinator = manifests.coordinator_job(plan, "img", "tes-coordinator")
    assert "nodeSelector" not in coordinator["spec"]["template"]["spec"]
    for manifest in (coordinator, manifests.executor_job(plan, 0), manifests.volume_claim(plan),
                     manifests.transfer_job(plan, names.STAGE_IN), manifests.task_config_map(plan)):
        manifests.check(manifest)
        schema_check(manifest)


@pytest.mark.parametrize(("key", "value"), [
    ("namespace", "kube-system"), ("namespace", "../default"),
    ("service_account", "tes-server"), ("gpu", "-1"), ("gpu", "1e3"),
    ("node_selector", "a=b\nc"), ("node_selector", "a b=c"), ("node_selector", "=x"),
])
def test_hostile_backend_parameters_are_refused_naming_the_key(key: str, value: str) -> None:
    from tes_aks.params import validate

    with pytest.raises(ValueError, match=f"backend_parameters.{key}"):
        validate({key: value}, AksSettings())


def test_the_manifest_check_fails_on_unknown_or_mistyped_fields() -> None:
    plan = build_plan("t2", {"executors": [{"image": "a", "command": ["b"]}]}, 1,
                      AksSettings(), {})
    job = manifests.executor_job(plan, 0)
    manifests.check(job)
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(ValueError, match="imagePullPolicyy"):
        manifests.check(job)
    with pytest.raises(Exception, match="imagePullPolicyy"):
        schema_check(job)
    job = manifests.executor_job(plan, 0)
    job["spec"]["backoffLimit"] = "0"
    with pytest.raises(ValueError, match="backoffLimit: expected int"):
        manifests.check(job)


def test_a_coordinator_that_dies_fails_the_task_with_its_log(cluster: Any,
                                                             tmp_path: Path) -> None:
    aks = backend(cluster, tmp_path, TES_AKS_COORDINATOR_IMAGE="sim/crash")
    task = record()
    ref = aks.submit(task)
    running = TaskRecord(**{**task.__dict__, "backend_ref": ref, "state": "INITIALIZING"})
    for _ in range(200):
        observations = list(aks.poll([running]))
        if observations:
            break
        time.sleep(0.05)
    [observation] = observations
    assert observation.state == "SYSTEM_ERROR"
    assert "ended (Failed) without recording a final state" in observation.system_logs[0]
    assert "RuntimeError: boom" in observation.system_logs[0]
    assert cluster.fake.find("Job", "default", names.task_selector(task.id)) == []
    aks.remove(running)
    assert cluster.fake.find("ConfigMap", "default", names.task_selector(task.id)) == []


def test_refresh_reads_one_status_config_map(cluster: Any, tmp_path: Path) -> None:
    aks = backend(cluster, tmp_path)
    task = record()
    ref = aks.submit(task)
    running = TaskRecord(**{**task.__dict__, "backend_ref": ref, "state": "INITIALIZING"})
    assert aks.refresh(running) is None  # no status yet
    plan = build_plan(task.id, task.document, 1, aks.conf, {})
    status = {"state": "RUNNING", "final": False, "waiting": None,
              "log": {"start_time": "2026-12-03T06:00:00Z", "logs": [{"exit_code": 0}]}}
    aks.kube.create(manifests.status_config_map(plan, status))
    before = len(cluster.fake.requests)
    observation = aks.refresh(running)
    assert observation.state == "RUNNING" and observation.executor_logs == [{"exit_code": 0}]
    assert len(cluster.fake.requests) - before == 1
    aks.cancel(running)
    assert cluster.fake.find("ConfigMap", "default", names.task_selector(task.id)) == []


def test_the_namespace_defaults_to_the_pods_own(tmp_path: Path) -> None:
    from tes_aks.settings import own_namespace

    (tmp_path / "namespace").write_text("tes\n")
    assert own_namespace(tmp_path / "namespace") == "tes"
    assert own_namespace(tmp_path / "missing") == "default"
