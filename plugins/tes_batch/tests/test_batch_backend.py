"""The backend in this process on the fake Batch service: sizing and ids, adopting a task
a repeated submit finds, Retry-After, paging, Batch's failures, a lost task, the sweep,
and a wrong key."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakebatch import FakeBatch
from fakebatch.service import wait_until
from tes_core.backends.base import (
    BackendContext,
    Observation,
    TaskRecord,
    UnsupportedParameterValue,
)
from tes_core.config import ConfigError, Settings
from tests.signing import UNSIGNED_INPUT, CountingSigner, signed_url

from tes_batch import ids, sizing
from tes_batch.backend import WAIT, BatchBackend
from tes_batch.settings import DEFAULT_VM_SIZES, VmSize


class Reporter:
    """The core's side, as the sweep asks it: which TES tasks ended."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    def report(self, observation: Any) -> bool:
        return True

    def current_state(self, task_id: str) -> str | None:
        return self.states.get(task_id)

    def states_of(self, task_ids: Any) -> dict[str, str]:
        return {i: self.states[i] for i in task_ids if i in self.states}


@pytest.fixture
def batch(batch: FakeBatch, request: pytest.FixtureRequest) -> Any:
    """The fake; what the test made (pools ``<prefix>-*``) is deleted afterwards."""
    yield batch
    batch.drop(prefix_of(request.node.name))


def prefix_of(test_name: str) -> str:
    """A pool prefix of the test's own (Batch ids: at most 16 characters here)."""
    return "t" + hashlib.sha256(test_name.encode()).hexdigest()[:10]


IMAGE = "busybox:latest"


def backend(fake: FakeBatch, tmp_path: Path, reporter: Reporter | None = None,
            **extra: str) -> BatchBackend:
    """The backend on the fake, its pools named after the running test."""
    test = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].split(" ")[0]
    env = {**fake.settings(**extra), "TES_DATA_DIR": str(tmp_path),
           "TES_RECONCILE_INTERVAL": "1"}
    env.setdefault("TES_BATCH_POOL_PREFIX", prefix_of(test))
    made = BatchBackend(BackendContext(Settings.from_env(env), reporter or Reporter(), "w1"))
    made.start()
    return made


def record(task_id: str, document: dict[str, Any] | None = None, *, ref: str | None = None,
           state: str = "QUEUED", logs: list | None = None) -> TaskRecord:
    return TaskRecord(id=task_id, state=state, creation_time=datetime.now(UTC),
                      document=document or {"executors": [{"image": "busybox:latest",
                                                           "command": ["true"]}]},
                      logs=logs if logs is not None else [{}], backend_ref=ref)


# -- sizing and ids -------------------------------------------------------------------------


def test_the_cheapest_fitting_size_and_low_priority() -> None:
    sizes = DEFAULT_VM_SIZES + (VmSize("Standard_NC6", 6, 56, 340, 0.9, 0.18, gpus=1),)
    pick = sizing.choose({"resources": {"cpu_cores": 2, "ram_gb": 12}}, sizes)
    assert (pick.size.name, pick.low_priority) == ("Standard_E2s_v3", False)
    pick = sizing.choose({"resources": {"preemptible": True, "backend_parameters": {
        "gpus": "1"}}}, sizes)
    assert pick.metadata() == {"vm_size": "Standard_NC6", "vm_low_priority": "true",
                               "vm_price_per_hour_usd": "0.18"}
    named = sizing.choose({"resources": {"backend_parameters": {"vm_size": "standard_e8s_v3"}}},
                          sizes)
    assert named.size.name == "Standard_E8s_v3"
    with pytest.raises(sizing.NeverFits, match="disk_gb=5000"):
        sizing.choose({"resources": {"disk_gb": 5000}}, sizes)


def test_parameter_checks_name_the_field() -> None:
    with pytest.raises(UnsupportedParameterValue) as refused:
        sizing.validate({"vm_size": "Standard_M416ms_v2"}, DEFAULT_VM_SIZES)
    assert refused.value.key == "vm_size"
    for bad in ({"vm_size": "a b"}, {"vm_size": "$(x)"}, {"gpus": "-1"}, {"gpus": "two"}):
        with pytest.raises(ValueError, match="backend_parameters."):
            sizing.validate(bad, DEFAULT_VM_SIZES)


def test_ids_are_valid_for_batch_and_never_collide() -> None:
    assert ids.task_id("abc-123", 2) == "abc-123-2"
    dotted, underscored = ids.task_id("a.b", 1), ids.task_id("a_b", 1)
    assert dotted != underscored and dotted.startswith("a_b-1-")
    long = ids.task_id("x" * 80, 1)
    assert len(long) <= 64 and long != ids.task_id("x" * 81, 1)
    pool = ids.pool_id("tes", "Standard_D2s_v3", True, "{}")
    assert pool.startswith("tes-standard_d2s_v3-lp-") and len(pool) <= 64
    assert ids.parse_ref(ids.ref("j", "t")) == ("j", "t")
    assert ids.parse_ref("a/b/c") is None and ids.parse_ref(None) is None


# -- against the fake -----------------------------------------------------------------------


def test_a_repeated_submit_adopts_the_task_instead_of_adding_another(batch, tmp_path):
    batch.paused = True  # nothing runs: only the requests matter here
    first = backend(batch, tmp_path)
    task = record("repeat-1")
    ref = first.submit(task)
    # A second worker (the first died after its request) submits the same attempt.
    again = backend(batch, tmp_path).submit(task)
    assert again == ref
    adds = [r.status for r in batch.recorded("POST") if r.path.endswith("/tasks")]
    assert adds == [201, 409]
    job, name = ids.parse_ref(ref)
    assert list(batch.tasks[job]) == [name]


def test_pools_log_in_to_the_private_registry_and_never_log_its_password(batch, tmp_path,
                                                                        caplog):
    batch.paused = True  # only the requests matter here
    caplog.set_level("DEBUG")
    made = backend(batch, tmp_path, TES_BATCH_REGISTRY_SERVER="acr7.azurecr.io",
                   TES_BATCH_REGISTRY_USERNAME="acr7", TES_BATCH_REGISTRY_PASSWORD="pw-7f3e9")
    ref = made.submit(record("registry-1"))
    job, _ = ids.parse_ref(ref)
    [pool_add] = batch.recorded("POST", "/pools")
    assert pool_add.body["virtualMachineConfiguration"]["containerConfiguration"] == {
        "type": "dockerCompatible",
        "containerRegistries": [{"registryServer": "acr7.azurecr.io", "username": "acr7",
                                 "password": "pw-7f3e9"}]}
    assert batch.jobs[job]["poolInfo"]["poolId"] == pool_add.body["id"]
    assert "pw-7f3e9" not in caplog.text and "pw-7f3e9" not in pool_add.body["id"]
    # The same size without the registry is another pool (its nodes are not logged in).
    plain = backend(batch, tmp_path).submit(record("registry-2"))
    assert ids.parse_ref(plain)[0] != job


def test_shared_global_is_the_pools_azure_files_mount(batch, tmp_path, caplog):
    caplog.set_level("DEBUG")
    url = "https://stone.file.core.windows.net/shared-global"
    made = backend(batch, tmp_path, TES_BATCH_SHARED_GLOBAL_URL=url,
                   TES_BATCH_SHARED_GLOBAL_ACCOUNT_KEY="c2hhcmUta2V5LTQy")
    task = record("shared-global-1", {"executors": [{
        "image": IMAGE, "command": ["sh", "-c", "echo kept > /tes-wd/shared-global/kept.txt"]}]})
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    [pool_add] = batch.recorded("POST", "/pools")
    assert pool_add.body["mountConfiguration"] == [{"azureFileShareConfiguration": {
        "accountName": "stone", "azureFileUrl": url, "accountKey": "c2hhcmUta2V5LTQy",
        "relativeMountPath": "tes-shared-global",
        "mountOptions": "-o vers=3.0,dir_mode=0777,file_mode=0777,sec=ntlmssp"}}]
    [add] = [r for r in batch.recorded("POST", f"/jobs/{job}/tasks")]
    document = json.loads(add.body["environmentSettings"][0]["value"])
    assert document["shared_global"] == "$AZ_BATCH_NODE_MOUNTS_DIR/tes-shared-global"
    wait_until(lambda: batch.tasks[job][name]["state"] == "completed", timeout=180)
    assert (batch.share_dir(url) / "kept.txt").read_text() == "kept\n"
    assert "c2hhcmUta2V5LTQy" not in caplog.text


def test_the_price_in_metadata_comes_from_the_retail_prices_api(batch, tmp_path):
    from fakeprices import FakePrices, row

    prices = FakePrices().start()
    try:
        prices.pages = [[row("D2s v3", "Virtual Machines DSv3 Series", 0.123)]]
        batch.paused = True
        made = backend(batch, tmp_path, TES_BATCH_PRICES_URL=prices.url,
                       TES_BATCH_REGION="WestEurope")
        task = record("priced-1")
        ref = made.submit(task)
        [seen] = made.poll([record(task.id, ref=ref)])
        assert seen.metadata["vm_price_per_hour_usd"] == "0.123"  # not the table's 0.096
        assert "armRegionName eq 'westeurope'" in prices.queries[0]["$filter"][0]
    finally:
        prices.stop()


def test_an_answer_lost_after_the_add_makes_no_second_task(batch, tmp_path):
    """A worker killed mid-submit looks the same to Batch: the add arrived, nobody heard."""
    batch.paused = True
    made = backend(batch, tmp_path)
    made.submit(record("lost-answer-0"))  # pool and job exist
    batch.lose_answers = 1
    task = record("lost-answer-1")
    held = made.submit(task)  # no answer: was it added? The next pass will know.
    assert held.startswith(WAIT)
    time.sleep(0.6)  # the next pass (TES_RECONCILE_INTERVAL=1: the pool waits 0.5 s)
    [seen] = made.poll([record(task.id, ref=held)])
    ref = seen.backend_ref  # Batch said TaskExists: the task is adopted
    assert ref == held.removeprefix(WAIT)
    adds = [r.status for r in batch.recorded("POST") if (r.body or {}).get(
        "displayName") == task.id]
    assert adds == [201, 409]
    job, name = ids.parse_ref(ref)
    assert [t for t in batch.tasks[job] if t.startswith("lost-answer-1")] == [name]


def test_throttling_is_retried_after_retry_after(batch, tmp_path):
    batch.paused = True
    made = backend(batch, tmp_path)
    made.submit(record("throttled-0"))  # the pool and job exist from here on
    batch.reset()
    batch.paused = True
    batch.throttled = [(429, 1), (503, 1)]
    started = time.monotonic()
    made.submit(record("throttled-1"))
    waited = time.monotonic() - started
    statuses = [r.status for r in batch.recorded()]
    assert statuses == [429, 503, 201], statuses
    assert waited >= 2  # a lower bound only: Retry-After was honoured twice


def test_listing_pages_and_one_list_per_job_whatever_the_number_of_tasks(batch, tmp_path):
    batch.paused = True
    made = backend(batch, tmp_path)
    tasks = [record(f"page-{i}", ref=None) for i in range(1005)]
    job, _ = ids.parse_ref(made.submit(tasks[0]))
    # Add the rest straight to the fake (no request recorded): only polling is measured.
    for task in tasks[1:]:
        name = ids.task_id(task.id, 1)
        batch.tasks[job][name] = {**batch.tasks[job][ids.task_id(tasks[0].id, 1)], "id": name}
    refs = [record(t.id, ref=ids.ref(job, ids.task_id(t.id, 1))) for t in tasks]
    batch.reset()
    batch.paused = True
    made.snapshots.forget()
    made.sweeper._last = time.monotonic()  # no sweep in this pass
    observations = list(made.poll(refs))
    assert len(observations) == len(refs)
    assert all("waiting for a node" in o.waiting_reason for o in observations)
    gets = [(r.path, r.query.get("skip")) for r in batch.recorded("GET")]
    assert gets == [("/pools", None), ("/nodecounts", None), (f"/jobs/{job}/tasks", None),
                    (f"/jobs/{job}/tasks", "1000")]


def test_batch_failure_info_is_a_system_error_with_batch_text(batch, tmp_path):
    made = backend(batch, tmp_path)
    task = record("failing-1")
    name = ids.task_id(task.id, 1)
    batch.task_failures[name] = {"category": "ServerError", "code": "ContainerPoolingFailed",
                                 "message": "Docker could not pull the image"}
    ref = made.submit(task)
    job, _ = ids.parse_ref(ref)
    wait_until(lambda: batch.tasks[job][name]["state"] == "completed")
    made.snapshots.forget()
    [seen] = made.poll([record(task.id, ref=ref, state="INITIALIZING")])
    assert seen.state == "SYSTEM_ERROR"
    assert seen.system_logs == [f"Batch task {name} failed (ServerError, "
                                "ContainerPoolingFailed): Docker could not pull the image"]


def test_nodes_failing_their_start_task_are_the_waiting_reason(batch, tmp_path):
    made = backend(batch, tmp_path)
    batch.start_task_failures.add("*")
    task = record("start-fails-1")
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    pool = batch.jobs[job]["poolInfo"]["poolId"]
    wait_until(lambda: batch.nodes.get(pool))
    made.snapshots.forget()
    [seen] = made.poll([record(task.id, ref=ref)])
    assert seen.state is None and "1 node(s) failed the start task" in seen.waiting_reason
    assert "TES_BATCH_RUNNER_INSTALL" in seen.waiting_reason
    assert batch.tasks[job][name]["state"] == "active"


def test_get_reads_a_running_task_status_file_at_most_once_per_interval(batch, tmp_path):
    made = backend(batch, tmp_path, TES_BATCH_REFRESH_INTERVAL="3600")
    task = record("refresh-1", {"executors": [{"image": "busybox:latest",
                                               "command": ["sleep", "30"]}]})
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    path = f"/jobs/{job}/tasks/{name}/files/wd/tes/status.json"
    wait_until(lambda: batch.tasks[job][name]["state"] == "running")
    looks = [made.refresh(record(task.id, ref=ref, state="INITIALIZING")) for _ in range(5)]
    assert looks[1:] == [None] * 4
    assert len(batch.recorded("GET", path)) == 1
    made.cancel(record(task.id, ref=ref, state="CANCELING"))


def test_a_task_deleted_outside_tes_is_a_system_error(batch, tmp_path):
    batch.paused = True
    made = backend(batch, tmp_path)
    task = record("lost-1")
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    del batch.tasks[job][name]
    made.snapshots.forget()
    [seen] = made.poll([record(task.id, ref=ref)])
    assert seen.state == "SYSTEM_ERROR" and "deleted outside TES" in seen.system_logs[0]


def test_a_pool_quota_at_submit_waits_then_goes(batch, tmp_path):
    batch.paused = True
    made = backend(batch, tmp_path)
    batch.quota["pools"] = "PoolQuotaReached"
    task = record("quota-1")
    ref = made.submit(task)
    assert ref.startswith(WAIT)
    [seen] = made.poll([record(task.id, ref=ref)])
    assert "PoolQuotaReached" in seen.waiting_reason and seen.backend_ref.startswith(WAIT)
    assert seen.metadata["vm_size"] == "Standard_D2s_v3"
    # Many tasks of the pool waiting: a pass asks Batch once for the pool, not once each.
    others = [record(f"quota-{i}") for i in range(2, 52)]
    refs = [made.submit(other) for other in others]
    assert all(r.startswith(WAIT) for r in refs)
    time.sleep(0.6)
    before = len(batch.recorded("POST", "/pools"))
    seen_all = made.poll([record(o.id, ref=r) for o, r in zip(others, refs, strict=True)])
    assert len(batch.recorded("POST", "/pools")) == before + 1
    assert all("PoolQuotaReached" in o.waiting_reason for o in seen_all)
    del batch.quota["pools"]
    time.sleep(0.6)
    [seen] = made.poll([record(task.id, ref=ref)])
    assert seen.backend_ref == ref.removeprefix(WAIT) and seen.waiting_reason == ""


def test_the_sweep_deletes_finished_tasks_and_idle_pools(batch, tmp_path):
    reporter = Reporter()
    made = backend(batch, tmp_path, reporter, TES_BATCH_POOL_IDLE="0")
    done, running = record("swept-1"), record("kept-1")
    job, done_name = ids.parse_ref(made.submit(done))
    wait_until(lambda: batch.tasks[job][done_name]["state"] == "completed")
    reporter.states = {"swept-1": "INITIALIZING"}
    assert made.sweeper.sweep() == []
    assert done_name in batch.tasks[job]  # its TES task has not seen the end yet
    reporter.states = {"swept-1": "COMPLETE"}
    batch.paused = True
    _, kept_name = ids.parse_ref(made.submit(running))
    reporter.states["kept-1"] = "QUEUED"
    assert made.sweeper.sweep() == []
    assert list(batch.tasks[job]) == [kept_name]
    made.cancel(record("kept-1", ref=ids.ref(job, kept_name), state="CANCELING"))
    pool = batch.jobs[job]["poolInfo"]["poolId"]
    for node in batch.nodes[pool]:
        node.task = None
    batch.nodes[pool].clear()
    batch.pools[pool]["currentDedicatedNodes"] = 0
    assert made.sweeper.sweep() == [pool]
    assert pool not in batch.pools and job not in batch.jobs
    deletes = [r.path for r in batch.recorded("DELETE")]
    assert f"/jobs/{job}" in deletes and f"/pools/{pool}" in deletes
    # The next submit of that kind makes the pool and job again.
    ref = made.submit(record("after-1"))
    assert ids.parse_ref(ref)[0] == job and pool in batch.pools


def preempt_first_attempt(
    made: BatchBackend, batch: FakeBatch, task: TaskRecord
) -> tuple[Observation, str, str]:
    """Submit ``task``, preempt its node once it runs, poll: what the poll said, and the
    first attempt's job and Batch task."""
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    wait_until(lambda: batch.tasks[job][name]["state"] == "running")
    batch.preempt(name)
    made.snapshots.forget()
    running = record(task.id, task.document, ref=ref, state="RUNNING",
                     logs=[{"start_time": "2026-12-03T06:00:00Z"}])
    [seen] = made.poll([running])
    return seen, job, name


def test_a_preempted_task_goes_on_dedicated_nodes_when_asked(batch, tmp_path):
    made = backend(batch, tmp_path, TES_BATCH_PREEMPTED_DEDICATED="true")
    document = {"executors": [{"image": "busybox:latest", "command": ["sleep", "30"]}],
                "resources": {"preemptible": True}}
    task = record("spot-1", document)
    seen, job, name = preempt_first_attempt(made, batch, task)
    assert "-lp-" in job
    assert seen.new_attempt and "-dd-" in seen.backend_ref, seen
    assert name not in batch.tasks[job]  # the preempted attempt is gone
    second = record(task.id, document, ref=seen.backend_ref, logs=[{}, {}])
    made.snapshots.forget()
    [waiting] = made.poll([second])
    assert waiting.metadata["vm_low_priority"] == "false"
    made.cancel(second)


def test_each_attempt_gets_urls_signed_for_it(batch, tmp_path):
    """A new attempt after preemption gets the task's URLs signed again (fresh SAS tokens:
    the first attempt's may have expired meanwhile), not the first attempt's."""
    made = backend(batch, tmp_path)
    made.context.prepare_task = CountingSigner()
    sent: list[str] = []
    task_file = made.task_file
    made.task_file = lambda task, attempt: (  # type: ignore[method-assign]
        sent.append(task.document["inputs"][0]["url"]) or task_file(task, attempt))
    document = {"executors": [{"image": IMAGE, "command": ["sleep", "30"]}],
                "inputs": [UNSIGNED_INPUT]}
    task = record("signed-1", document)
    seen, _, _ = preempt_first_attempt(made, batch, task)
    assert seen.new_attempt, seen
    assert sent == [signed_url(1), signed_url(2)]
    made.cancel(record(task.id, document, ref=seen.backend_ref, logs=[{}, {}]))


def test_a_batch_outage_at_submit_loses_nothing(batch, tmp_path):
    batch.paused = True
    made = backend(batch, tmp_path)
    made.submit(record("outage-0"))  # pool and job exist
    batch.throttled = [(503, 0)] * 7  # the first try and the SDK's 6 retries
    task = record("outage-1")
    ref = made.submit(task)
    assert ref.startswith(WAIT)
    assert not [r for r in batch.recorded("POST") if r.status == 201 and
                r.body.get("displayName") == task.id]
    time.sleep(0.6)
    [seen] = made.poll([record(task.id, ref=ref)])
    assert seen.backend_ref == ref.removeprefix(WAIT)
    job, name = ids.parse_ref(seen.backend_ref)
    assert list(batch.tasks[job]).count(name) == 1


def test_the_account_key_never_reaches_a_log_line(batch, tmp_path):
    from tes_core.telemetry.redact import redact

    backend(batch, tmp_path)
    assert batch.key not in redact(f"signing with {batch.key}")


def test_the_key_may_be_a_key_vault_reference(batch, tmp_path, monkeypatch):
    keyvault = pytest.importorskip("tes_azure.keyvault")
    fake_vault = pytest.importorskip("tests.fake_keyvault")
    vault = fake_vault.FakeKeyVault(tmp_path)
    try:
        monkeypatch.setattr(keyvault, "default_credential", fake_vault.StaticCredential)
        monkeypatch.setattr(keyvault, "CLIENT_OPTIONS", vault.client_options())
        vault.set("batch-key", batch.key)
        reference = f"@Microsoft.KeyVault(SecretUri={vault.url}/secrets/batch-key/)"
        made = backend(batch, tmp_path, TES_BATCH_ACCOUNT_KEY=reference)
    finally:
        vault.close()
    batch.paused = True
    assert made.conf.account_key == batch.key
    assert made.submit(record("vault-1")).endswith("/vault-1-1")


def test_without_a_key_requests_are_signed_by_azure_ad(batch, tmp_path):
    from azure.identity import DefaultAzureCredential

    env = {**batch.settings(), "TES_BATCH_ACCOUNT_KEY": "", "TES_DATA_DIR": str(tmp_path)}
    made = BatchBackend(BackendContext(Settings.from_env(env), Reporter(), "w1"))
    assert not made.conf.shared_key
    assert isinstance(made.api.client._config.credential, DefaultAzureCredential)
    assert "Azure AD" in made.describe()


def test_a_wrong_key_stops_the_start(batch, tmp_path):
    env = {**batch.settings(), "TES_BATCH_ACCOUNT_KEY": "d3Jvbmcta2V5",
           "TES_DATA_DIR": str(tmp_path)}
    made = BatchBackend(BackendContext(Settings.from_env(env), Reporter(), "w1"))
    with pytest.raises(ConfigError, match="refuses the credentials.*AuthenticationFailed"):
        made.start()
    assert "d3Jvbmcta2V5" not in repr(made.conf)


def test_a_gpu_size_gets_the_gpu_image_and_the_runner_its_gpus(batch, tmp_path):
    batch.paused = True  # only the requests matter here
    sizes = [{"name": "Standard_D2s_v3", "cores": 2, "ram_gb": 8, "disk_gb": 16,
              "price_per_hour_usd": 0.1},
             {"name": "Standard_NC4as_T4_v3", "cores": 4, "ram_gb": 28, "disk_gb": 180,
              "price_per_hour_usd": 0.526, "gpus": 1}]
    made = backend(batch, tmp_path, TES_BATCH_VM_SIZES=json.dumps(sizes),
                   TES_BATCH_GPU_IMAGE="microsoft-dsvm:ubuntu-hpc:2204:22.04.2025",
                   TES_BATCH_GPU_NODE_AGENT_SKU="batch.node.ubuntu 22.04",
                   TES_BATCH_NODE_IMAGE="canonical:0001-com-ubuntu-server-jammy:22_04-lts")
    gpu = record("gpu-1", {"executors": [{"image": "nvidia/cuda", "command": ["nvidia-smi"]}],
                           "resources": {"backend_parameters": {"gpus": "1"}}})
    job, _ = ids.parse_ref(made.submit(gpu))
    made.submit(record("cpu-1"))
    pools = {r.body["vmSize"]: r.body["virtualMachineConfiguration"]
             for r in batch.recorded("POST", "/pools")}
    assert pools["Standard_NC4as_T4_v3"]["imageReference"] == {
        "publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204",
        "version": "22.04.2025"}
    assert pools["Standard_NC4as_T4_v3"]["nodeAgentSKUId"] == "batch.node.ubuntu 22.04"
    assert pools["Standard_D2s_v3"]["imageReference"]["publisher"] == "canonical"
    # The runner reads the GPUs asked for from the task document it gets (docker --gpus all).
    [add] = [r for r in batch.recorded("POST", f"/jobs/{job}/tasks")]
    document = json.loads(add.body["environmentSettings"][0]["value"])
    assert document["task"]["resources"]["backend_parameters"] == {"gpus": "1"}


def test_a_new_attempt_whose_report_was_dropped_is_adopted_not_lost(batch, tmp_path):
    """The core drops a pass's write for a task whose row changed since the pass read it
    (a client's GET refreshed it): the next pass sees attempt 1, whose Batch task the
    first pass removed. It adopts attempt 2 instead of calling the task lost."""
    made = backend(batch, tmp_path)
    task = record("dropped-1", {"executors": [{"image": IMAGE, "command": ["sleep", "60"]}],
                                "resources": {"preemptible": True}})
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    wait_until(lambda: batch.tasks[job][name]["state"] == "running", timeout=120)
    batch.preempt(name)
    running = record(task.id, task.document, ref=ref, state="INITIALIZING")
    made.snapshots.forget()
    [first] = made.poll([running])
    assert first.new_attempt and first.backend_ref.endswith("/dropped-1-2")
    made.snapshots.forget()
    [again] = made.poll([running])  # the same record: the first report never landed
    assert (again.state, again.new_attempt, again.backend_ref) == (None, True,
                                                                   first.backend_ref)
    assert again.system_logs == first.system_logs
    assert [t for tasks in batch.tasks.values() for t in tasks
            if t.startswith("dropped-1-")] == ["dropped-1-2"]
    made.cancel(record(task.id, ref=first.backend_ref, state="CANCELING"))
