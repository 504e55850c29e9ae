"""``TES_BATCH_POOL_MODE=per-task``: each attempt gets a job whose auto-pool Batch makes
when the job is added and deletes with the job; polling lists the attempts' jobs by id
prefix (with the pools and their node counts), never one request per task while tasks
wait or run; the sweep and cancel delete the job, and so the pool."""

from __future__ import annotations

import time

from fakebatch.service import wait_until

from tes_batch import ids
from tes_batch.backend import WAIT
from tes_batch.pools import START_COMMAND

from .test_batch_backend import Reporter, backend, batch, prefix_of, record  # noqa: F401

IMAGE = "busybox:latest"


def sh(task_id: str, script: str, **resources: object):
    return record(
        task_id,
        {"executors": [{"image": IMAGE, "command": ["sh", "-c", script]}], "resources": resources},
    )


def test_each_attempt_gets_a_job_with_its_own_pool(batch, tmp_path):  # noqa: F811
    batch.paused = True  # only the requests and the entities matter here
    made = backend(batch, tmp_path, TES_BATCH_POOL_MODE="per-task")
    prefix = prefix_of("test_each_attempt_gets_a_job_with_its_own_pool")
    task = sh("auto-1", "true", cpu_cores=2, preemptible=True)
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    assert (job, name) == (f"{prefix}-ap-auto-1-1", "auto-1-1")
    assert not batch.recorded("POST", "/pools"), "no shared pool is made"
    [job_add] = [r.body for r in batch.recorded("POST", "/jobs") if r.path == "/jobs"]
    auto = job_add["poolInfo"]["autoPoolSpecification"]
    assert job_add["displayName"] == "auto-1" and job_add["onAllTasksComplete"] == "noaction"
    assert (auto["autoPoolIdPrefix"], auto["poolLifetimeOption"], auto["keepAlive"]) == (
        f"{prefix}-ap",
        "job",
        False,
    )
    pool = auto["pool"]
    assert pool["vmSize"] == "Standard_D2s_v3"
    assert (pool["targetLowPriorityNodes"], pool["targetDedicatedNodes"]) == (1, 0)
    assert "enableAutoScale" not in pool and "autoScaleFormula" not in pool
    assert pool["taskSlotsPerNode"] == 1 and pool["startTask"]["commandLine"] == START_COMMAND
    # Batch made the pool with the job; the task went to that job.
    pool_id = batch.jobs[job]["executionInfo"]["poolId"]
    assert pool_id.startswith(f"{prefix}-ap_") and pool_id in batch.pools
    assert list(batch.tasks[job]) == [name]
    # A second worker submitting the same attempt adopts job and task.
    assert backend(batch, tmp_path, TES_BATCH_POOL_MODE="per-task").submit(task) == ref
    statuses = [(r.path, r.status) for r in batch.recorded("POST")]
    assert statuses == [
        ("/jobs", 201),
        (f"/jobs/{job}/tasks", 201),
        ("/jobs", 409),
        (f"/jobs/{job}/tasks", 409),
    ]
    assert [p for p in batch.pools if p.startswith(f"{prefix}-ap_")] == [pool_id]
    # Cancel deletes the task and the job, and with it the pool.
    made.cancel(record(task.id, ref=ref, state="CANCELING"))
    assert job not in batch.jobs and pool_id not in batch.pools


def test_polling_lists_jobs_not_tasks_and_the_sweep_deletes_job_and_pool(
    batch,  # noqa: F811
    tmp_path,
):
    reporter = Reporter()
    made = backend(batch, tmp_path, reporter, TES_BATCH_POOL_MODE="per-task")
    prefix = prefix_of("test_polling_lists_jobs_not_tasks_and_the_sweep_deletes_job_and_pool")
    tasks = [sh(f"poll-{i}", f"sleep 3; echo {i}") for i in range(3)]
    refs = [made.submit(t) for t in tasks]
    records = [record(t.id, t.document, ref=r) for t, r in zip(tasks, refs, strict=True)]
    made.sweeper._last = time.monotonic()  # no sweep while polling

    def pass_requests() -> tuple[list, list]:
        made.snapshots.forget()
        before = len(batch.requests)
        seen = list(made.poll(records))
        return seen, batch.requests[before:]

    def all_tasks(state: str) -> bool:
        mine = [t for j in batch.jobs if j.startswith(prefix) for t in batch.tasks[j].values()]
        return len(mine) == 3 and all(t["state"] == state for t in mine)

    # While they wait or run: the jobs, the pools and their node counts, nothing per task.
    wait_until(lambda: all_tasks("running"), timeout=120)
    seen, sent = pass_requests()
    assert {o.state for o in seen} == {"INITIALIZING"}
    counts = -(-len(batch.pools) // 10)  # one page per 10 pools of the account
    assert [(r.method, r.path) for r in sent] == [
        ("GET", "/pools"),
        *[("GET", "/nodecounts")] * counts,
        ("GET", "/jobs"),
    ]
    assert sent[-1].query["$filter"] == f"startswith(id,'{prefix}-ap-')"
    assert sent[-1].query["$select"] == "id,state,executionInfo,displayName"
    # Once a node idles (its task ended), that task alone is read, then its status file.
    wait_until(lambda: all_tasks("completed"), timeout=120)
    seen, sent = pass_requests()
    assert [o.state for o in seen] == ["COMPLETE"] * 3, [o.system_logs for o in seen]
    assert [o.executor_logs[0]["stdout"] for o in seen] == ["0\n", "1\n", "2\n"]
    per_task = [r.path for r in sent if r.path.startswith(f"/jobs/{prefix}")]
    tasks_of = [f"/jobs/{j}/tasks/{n}" for j, n in map(ids.parse_ref, refs)]
    assert sorted(per_task) == sorted(
        p for path in tasks_of for p in (path, f"{path}/files/wd/tes/status.json")
    )
    # The sweep deletes the jobs of ended TES tasks; Batch deletes their pools with them.
    pools = {batch.jobs[ids.parse_ref(r)[0]]["executionInfo"]["poolId"] for r in refs}
    reporter.states.update({t.id: "COMPLETE" for t in tasks[:2]})
    reporter.states[tasks[2].id] = "RUNNING"
    made.sweeper.sweep()
    left = [j for j in batch.jobs if j.startswith(prefix)]
    assert left == [ids.parse_ref(refs[2])[0]]
    assert [p for p in pools if p in batch.pools] == [
        batch.jobs[left[0]]["executionInfo"]["poolId"]
    ]
    assert [r.path for r in batch.recorded("DELETE")] == [
        f"/jobs/{ids.parse_ref(r)[0]}" for r in refs[:2]
    ]


def test_a_preempted_auto_pool_node_makes_a_new_attempt_with_a_new_job(
    batch,  # noqa: F811
    tmp_path,
):
    made = backend(batch, tmp_path, TES_BATCH_POOL_MODE="per-task")
    # The pass notices a preemption by the pool's preempted node; on a swamped machine the
    # fake's default 10 s of being preempted ran out once before the pass looked.
    batch.requeue_delay = 60.0
    task = sh("preempt-auto", "sleep 60", preemptible=True)
    ref = made.submit(task)
    job, name = ids.parse_ref(ref)
    wait_until(lambda: batch.tasks[job][name]["state"] == "running", timeout=120)
    batch.preempt(name)  # requeued; the pool gets a new node
    made.snapshots.forget()
    [seen] = made.poll([record(task.id, task.document, ref=ref, state="INITIALIZING")])
    assert seen.new_attempt and seen.backend_ref == ids.ref(
        job.removesuffix("-1") + "-2", ids.task_id(task.id, 2)
    )
    assert job not in batch.jobs  # the old attempt's job, and its pool, are gone
    made.cancel(record(task.id, ref=seen.backend_ref, state="CANCELING"))


def test_a_pool_batch_cannot_make_waits_and_is_submitted_again(batch, tmp_path):  # noqa: F811
    batch.paused = True
    batch.quota["pools"] = "PoolQuotaReached"
    reporter = Reporter()
    reporter.states["no-pool"] = "QUEUED"  # the sweep keeps its job
    made = backend(batch, tmp_path, reporter, TES_BATCH_POOL_MODE="per-task")
    task = sh("no-pool", "true")
    ref = made.submit(task)
    job, _ = ids.parse_ref(ref)
    assert "poolId" not in batch.jobs[job]["executionInfo"]  # added, without its pool
    for _ in range(2):  # the same again when the first report did not land
        made.snapshots.forget()
        [seen] = made.poll([record(task.id, task.document, ref=ref)])
        assert seen.state is None and seen.backend_ref == WAIT + ref
    assert (
        f"could not make the pool of job {job}: PoolQuotaReached: The specified account "
        "has reached its pool quota (the account has as many pools as its quota allows)"
        in seen.waiting_reason
    )
    del batch.quota["pools"]
    waiting = record(task.id, task.document, ref=seen.backend_ref)
    # The next pass deletes the job without a pool, the one after adds it again.
    [retry] = made.poll([waiting])
    assert retry.backend_ref == WAIT + ref and "deleted, to be added again" in (
        retry.waiting_reason
    )
    assert job not in batch.jobs
    time.sleep(0.6)  # the size's other tasks wait half a reconcile interval
    [again] = made.poll([waiting])
    assert again.backend_ref == ref and again.waiting_reason == ""
    assert batch.jobs[job]["executionInfo"]["poolId"] in batch.pools
    made.cancel(record(task.id, ref=ref, state="CANCELING"))
