"""The coordinator program end to end against the fake API: real tes-filetransfer Jobs,
executors run in bubblewrap, failures made by the simulator."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tes_aks import names
from tes_aks.coordinator import Coordinator
from tes_aks.plan import build_plan
from tes_aks.settings import AksSettings

CONF = AksSettings(poll_interval=0.05, image_pull_wait=0.0)


def run_task(
    kube: Any,
    cluster: Any,
    document: dict[str, Any],
    folder: Path,
    conf: AksSettings = CONF,
    settle: float = 10,
) -> dict[str, Any]:
    """Write the plan, run the coordinator in this process, return its status document."""
    task_id = str(uuid.uuid4())
    plan = build_plan(task_id, document, 1, conf, {"local_dirs": [str(folder)], "hosts": []})
    code = Coordinator(kube, plan, settle=settle).run()
    status = kube.get("ConfigMap", plan["namespace"], names.object_name(plan["base"], names.STATUS))
    document = json.loads(status["data"]["status.json"])
    assert code == 0
    assert document["final"] is True
    left = [
        o["metadata"]["name"]
        for kind in ("Job", "PersistentVolumeClaim")
        for o in cluster.fake.find(kind, selector=names.task_selector(task_id))
    ]
    assert left == [], "the coordinator deletes the Jobs and the volume it made"
    assert cluster.invalid == []
    return document


def test_inputs_executors_outputs(kube: Any, cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello kubernetes\n")
    document = {
        "inputs": [{"url": f"file://{tmp_path}/in.txt", "path": "/data/in.txt", "type": "FILE"}],
        "outputs": [
            {
                "url": f"file://{tmp_path}/out/upper.txt",
                "path": "/outputs/upper.txt",
                "type": "FILE",
            },
            {"url": f"file://{tmp_path}/out/copy.txt", "path": "/outputs/copy.txt", "type": "FILE"},
        ],
        "executors": [
            {
                "image": "alpine",
                "command": [
                    "sh",
                    "-c",
                    "tr a-z A-Z < /data/in.txt > /outputs/upper.txt; echo wrote; pwd",
                ],
                "workdir": "/outputs",
            },
            {
                "image": "alpine",
                "command": ["cat", "/data/in.txt"],
                "stdout": "/outputs/copy.txt",
                "env": {"GREETING": "hi"},
            },
            {
                "image": "alpine",
                "command": ["sh", "-c", "echo $GREETING"],
                "env": {"GREETING": "hi there"},
            },
            {
                "image": "alpine",
                "command": [
                    "sh",
                    "-c",
                    "cat /tes-wd/shared/data/in.txt; ls -d /scratch; "
                    "echo x > /tes-wd/shared-global/mark; "
                    "echo y > /data/in.txt || echo read-only",
                ],
            },
        ],
        "volumes": ["/scratch"],
    }
    status = run_task(kube, cluster, document, tmp_path)
    assert status["state"] == "COMPLETE", status["log"]["system_logs"]
    assert (tmp_path / "out/upper.txt").read_text() == "HELLO KUBERNETES\n"
    assert (tmp_path / "out/copy.txt").read_text() == "hello kubernetes\n"
    logs = status["log"]["logs"]
    assert [entry["exit_code"] for entry in logs] == [0, 0, 0, 0]
    assert logs[3]["stdout"].startswith("hello kubernetes\n/scratch\n")
    assert "read-only" in logs[3]["stdout"], "inputs are mounted read-only"
    assert logs[0]["stdout"] == "wrote\n/outputs\n"
    assert logs[2]["stdout"] == "hi there\n"
    assert sorted(o["path"] for o in status["log"]["outputs"]) == [
        "/outputs/copy.txt",
        "/outputs/upper.txt",
    ]
    assert {o["size_bytes"] for o in status["log"]["outputs"]} == {"17"}


def test_stdout_and_stderr_are_kept_apart(kube: Any, cluster: Any, tmp_path: Path) -> None:
    noisy = "import sys\nfor i in range(3000): print(f'err line {i}', file=sys.stderr)\n"
    document = {
        "outputs": [
            {"url": f"file://{tmp_path}/err.txt", "path": "/outputs/err.txt", "type": "FILE"}
        ],
        "executors": [
            {
                "image": "alpine",
                "command": ["sh", "-c", "echo out; echo err >&2; echo out2; echo err2 >&2; exit 4"],
                "ignore_error": True,
            },
            {"image": "python", "command": ["python3", "-c", noisy]},
            {
                "image": "alpine",
                "command": ["sh", "-c", "echo to-file >&2; echo shown"],
                "stderr": "/outputs/err.txt",
            },
        ],
    }
    status = run_task(kube, cluster, document, tmp_path)
    assert status["state"] == "COMPLETE", status["log"]["system_logs"]
    first, second, third = status["log"]["logs"]
    assert (first["stdout"], first["stderr"], first["exit_code"]) == (
        "out\nout2\n",
        "err\nerr2\n",
        4,
    )
    assert second["stdout"] == ""
    assert len(second["stderr"].encode()) == 10 * 1024
    assert second["stderr"].endswith("err line 2999\n")
    assert (third["stdout"], third["stderr"]) == ("shown\n", "to-file\n")
    assert (tmp_path / "err.txt").read_text() == "to-file\n"


def test_an_image_without_a_shell_runs_with_merged_streams(
    kube: Any, cluster: Any, tmp_path: Path
) -> None:
    document = {
        "executors": [
            {"image": "sim/noshell", "command": ["sh", "-c", "echo out; echo err >&2"]},
            {"image": "sim/noshell", "command": ["echo", "x"], "stdout": "/tmp/x"},
        ]
    }
    status = run_task(kube, cluster, document, tmp_path)
    first, second = status["log"]["logs"]
    assert first["exit_code"] == 0
    assert sorted(first["stdout"].splitlines()) == ["err", "out"] and first["stderr"] == ""
    lines = status["log"]["system_logs"]
    assert any(
        "executor 0 (sim/noshell) has no /bin/sh" in line and "holds both streams" in line
        for line in lines
    ), lines
    assert second["exit_code"] == 128 and status["state"] == "EXECUTOR_ERROR"
    assert any(
        "executor 1 (sim/noshell) could not start" in line and "need /bin/sh" in line
        for line in lines
    ), lines


def test_the_coordinator_watches_its_pods_and_lists_again_after_410_gone(
    kube: Any, cluster: Any, tmp_path: Path
) -> None:
    """Each wait is one list and watches from its resourceVersion; a watch whose version was
    compacted away (410 Gone) is followed by a list and a new watch, and nothing is lost."""
    fake = cluster.fake
    stop = threading.Event()

    def compact() -> None:  # etcd compacting while the executor runs
        while not stop.wait(0.2):
            fake.compact()

    before = len(fake.requests)
    conf = AksSettings(poll_interval=0.05, image_pull_wait=0.0, watch_timeout=1)
    thread = threading.Thread(target=compact, daemon=True)
    thread.start()
    try:
        status = run_task(
            kube,
            cluster,
            {
                "executors": [
                    {"image": "alpine", "command": ["sh", "-c", "sleep 3; echo late"]},
                    {"image": "alpine", "command": ["echo", "quick"]},
                ]
            },
            tmp_path,
            conf,
        )
    finally:
        stop.set()
        thread.join()
    assert status["state"] == "COMPLETE", status["log"]["system_logs"]
    assert [e["stdout"] for e in status["log"]["logs"]] == ["late\n", "quick\n"]
    requests = fake.requests[before:]

    def pod_calls(method: str, job: str) -> int:
        return sum(
            1
            for r in requests
            if r.method == method
            and r.kind == "Pod"
            and r.query.get("labelSelector") == f"job-name={job}"
        )

    first = next(r.name for r in requests if r.method == "POST" and r.kind == "Job")
    assert pod_calls("WATCH", first) >= 3, "a watch lasts watch_timeout, then another"
    assert pod_calls("LIST", first) >= 2, "an expired watch (410) is followed by a list"
    # Polling every poll_interval (0.05 s) for 3 s would have made some 60 lists.
    assert pod_calls("LIST", first) <= min(pod_calls("WATCH", first) + 1, 10)


def test_failing_executor_stops_unless_ignore_error(
    kube: Any, cluster: Any, tmp_path: Path
) -> None:
    document = {
        "executors": [
            {"image": "alpine", "command": ["sh", "-c", "exit 3"], "ignore_error": True},
            {"image": "alpine", "command": ["sh", "-c", "echo second; exit 5"]},
            {"image": "alpine", "command": ["echo", "never"]},
        ]
    }
    status = run_task(kube, cluster, document, tmp_path)
    assert status["state"] == "EXECUTOR_ERROR"
    assert [entry["exit_code"] for entry in status["log"]["logs"]] == [3, 5]
    assert "executor 1 (alpine) exited with code 5" in status["log"]["system_logs"]


def test_oom_killed_executor_says_so(kube: Any, cluster: Any, tmp_path: Path) -> None:
    # Killed with its wrapper, it never marks its end: its stderr container is given
    # ``settle`` seconds, then its log is read as it is.
    status = run_task(
        kube, cluster, {"executors": [{"image": "sim/oom", "command": ["x"]}]}, tmp_path, settle=0.5
    )
    assert status["state"] == "EXECUTOR_ERROR"
    assert status["log"]["logs"][0]["exit_code"] == 137
    assert any("out of memory (OOMKilled" in line for line in status["log"]["system_logs"])


def test_image_that_cannot_be_pulled_is_named(kube: Any, cluster: Any, tmp_path: Path) -> None:
    status = run_task(
        kube, cluster, {"executors": [{"image": "sim/no-such-image:1", "command": ["x"]}]}, tmp_path
    )
    assert status["state"] == "SYSTEM_ERROR"
    assert any(
        "image 'sim/no-such-image:1' cannot be pulled (ImagePullBackOff)" in line
        for line in status["log"]["system_logs"]
    )


def test_evicted_pod_is_preempted(kube: Any, cluster: Any, tmp_path: Path) -> None:
    status = run_task(
        kube, cluster, {"executors": [{"image": "sim/evict", "command": ["x"]}]}, tmp_path
    )
    assert status["state"] == "PREEMPTED"
    assert any("taken off its node" in line for line in status["log"]["system_logs"])


def test_failed_staging_is_a_system_error(kube: Any, cluster: Any, tmp_path: Path) -> None:
    document = {
        "inputs": [{"url": f"file://{tmp_path}/missing.txt", "path": "/data/x", "type": "FILE"}],
        "executors": [{"image": "alpine", "command": ["echo", "never"]}],
    }
    status = run_task(kube, cluster, document, tmp_path)
    assert status["state"] == "SYSTEM_ERROR"
    assert status["log"]["logs"] == []
    assert any(
        "staging the inputs failed" in line and "missing.txt" in line
        for line in status["log"]["system_logs"]
    ), status["log"]["system_logs"]


@pytest.mark.parametrize("hostile", ["../../etc", "UPPER case ünïcode/..", "-" * 300])
def test_hostile_names_still_valid(hostile: str) -> None:
    base = names.base_name("tes-", hostile, 12)
    assert names.is_dns_label(base) and len(base) <= 46
    for role in (names.COORDINATOR, names.STAGE_IN, names.STATUS, names.VOLUME):
        assert names.is_dns_label(names.object_name(base, role))
    assert names.is_label_value(names.labels(hostile, 1, names.COORDINATOR)[names.TASK])
