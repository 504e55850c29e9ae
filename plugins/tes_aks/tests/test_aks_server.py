"""End to end: a real ``tes-server serve`` with ``TES_BACKEND=aks`` and ``KUBECONFIG`` on
the fake API. The fake's kubelet runs the real coordinator program, which runs the real
tes-filetransfer Jobs and the executors (in bubblewrap)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tes_aks")
servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
requests = pytest.importorskip("requests")

from tes_aks import names  # noqa: E402


def aks_env(data: Path, cluster: Any, folder: Path, **extra: str) -> dict[str, str]:
    """A server environment for the aks backend on the fake API."""
    return servers.server_env(
        data,
        **{
            "TES_BACKEND": "aks",
            "TES_RECONCILE_INTERVAL": "1",
            "KUBECONFIG": str(cluster.kubeconfig),
            "TES_AKS_POLL_INTERVAL": "0.1",
            "TES_AKS_IMAGE_PULL_WAIT": "2",
            "TES_AKS_NAME_PREFIX": f"t{os.getpid() % 1000}-",
            "TES_AKS_NAMESPACES": "team-a",
            "TES_ALLOWED_LOCAL_DIRS": str(folder),
            **extra,
        },
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tasks' file:// inputs and outputs live (inside the session's tmp)."""
    return tmp_path_factory.mktemp("aks-files")


@pytest.fixture(scope="module")
def server(cluster: Any, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("aks-server")
    proc = servers.ServerProcess(data, aks_env(data, cluster, folder)).start()
    try:
        yield proc
    finally:
        proc.stop()


def post(url: str, document: dict[str, Any]) -> str:
    answer = requests.post(f"{url}/tasks", json=document, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def test_a_task_runs_to_complete(server: Any, cluster: Any, folder: Path) -> None:
    (folder / "in.txt").write_text("abc\n")
    task_id = post(
        server.url,
        {
            "name": "a name with spaces & ÜNICODE / slashes",
            "tags": {"x": "../../etc"},
            "inputs": [{"url": f"file://{folder}/in.txt", "path": "/in/in.txt"}],
            "outputs": [{"url": f"file://{folder}/out.txt", "path": "/out/out.txt"}],
            "executors": [
                {
                    "image": "alpine",
                    "command": [
                        "sh",
                        "-c",
                        "rev /in/in.txt > /out/out.txt; echo said; echo complained >&2",
                    ],
                }
            ],
            "resources": {"cpu_cores": 1, "ram_gb": 0.5, "disk_gb": 1},
        },
    )
    task = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=120, view="FULL")
    assert task["state"] == "COMPLETE", task["logs"]
    assert (folder / "out.txt").read_text() == "cba\n"
    attempt = task["logs"][0]
    assert attempt["logs"][0]["exit_code"] == 0
    assert (attempt["logs"][0]["stdout"], attempt["logs"][0]["stderr"]) == (
        "said\n",
        "complained\n",
    )
    assert attempt["outputs"][0]["size_bytes"] == "4"
    assert attempt["metadata"]["namespace"] == "default"
    assert cluster.invalid == []
    # The finished attempt's Job and task ConfigMap are gone; its status ConfigMap stays.
    left = cluster.fake.find("Job", selector=names.task_selector(task_id))
    assert left == []


def test_executor_error_and_bad_parameters(server: Any) -> None:
    task_id = post(server.url, {"executors": [{"image": "alpine", "command": ["false"]}]})
    task = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=120, view="FULL")
    assert task["state"] == "EXECUTOR_ERROR"
    assert task["logs"][0]["logs"][0]["exit_code"] == 1
    for key, value in {
        "namespace": "kube-system",
        "service_account": "tes-server",
        "gpu": "99",
        "node_selector": "a b=c",
    }.items():
        answer = requests.post(
            f"{server.url}/tasks",
            json={
                "executors": [{"image": "alpine", "command": ["true"]}],
                "resources": {"backend_parameters": {key: value}},
            },
            timeout=30,
        )
        assert answer.status_code == 400, (key, answer.text)
        assert f"backend_parameters.{key}" in answer.text
    answer = requests.post(
        f"{server.url}/tasks",
        json={
            "executors": [{"image": "alpine", "command": ["true"]}],
            "resources": {"backend_parameters": {"nope": "1"}, "backend_parameters_strict": True},
        },
        timeout=30,
    )
    assert answer.status_code == 400 and "nope" in answer.text
    info = requests.get(f"{server.url}/service-info", timeout=30).json()
    assert set(info["tesResources_backend_parameters"]) == {
        "namespace",
        "node_selector",
        "service_account",
        "gpu",
    }


def test_an_image_that_cannot_be_pulled_fails_naming_it(server: Any) -> None:
    task_id = post(
        server.url, {"executors": [{"image": "sim/no-such-image:2", "command": ["true"]}]}
    )
    task = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=120, view="FULL")
    assert task["state"] == "SYSTEM_ERROR"
    assert any(
        "'sim/no-such-image:2' cannot be pulled" in line for line in task["logs"][-1]["system_logs"]
    ), task["logs"]


def test_an_unschedulable_executor_says_what_is_missing_then_cancel(
    server: Any, cluster: Any
) -> None:
    task_id = post(
        server.url,
        {
            "executors": [{"image": "alpine", "command": ["true"]}],
            "resources": {"backend_parameters": {"gpu": "2", "namespace": "team-a"}},
        },
    )
    deadline_task: dict[str, Any] = {}
    for _ in range(600):
        deadline_task = requests.get(
            f"{server.url}/tasks/{task_id}", params={"view": "FULL"}, timeout=10
        ).json()
        reason = (
            (deadline_task.get("logs") or [{}])[-1].get("metadata", {}).get("waiting_reason", "")
        )
        if "0/3 nodes are available: 3 Insufficient nvidia.com/gpu" in reason:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no waiting reason naming the GPU: {deadline_task}")
    assert deadline_task["state"] == "QUEUED", "waiting for a node, the task is in the queue"
    assert requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=30).status_code == 200
    servers.wait_for_state(server.url, task_id, {"CANCELED"}, timeout=60)
    selector = names.task_selector(task_id)
    for kind in ("Job", "PersistentVolumeClaim", "ConfigMap", "Pod"):
        assert cluster.fake.find(kind, "team-a", selector) == [], kind


def test_an_evicted_coordinator_is_retried_then_preempted(
    cluster: Any, folder: Path, tmp_path: Path
) -> None:
    proc = servers.ServerProcess(
        tmp_path,
        aks_env(
            tmp_path,
            cluster,
            folder,
            TES_AKS_COORDINATOR_IMAGE="sim/evict",
            TES_AKS_MAX_ATTEMPTS="2",
            TES_AKS_NAME_PREFIX="ev-",
        ),
    ).start()
    try:
        task_id = post(
            proc.url,
            {
                "executors": [{"image": "alpine", "command": ["true"]}],
                "resources": {"preemptible": True},
            },
        )
        task = servers.wait_for_state(proc.url, task_id, servers.TERMINAL, timeout=120, view="FULL")
    finally:
        proc.stop()
    assert task["state"] == "PREEMPTED", task["state"]
    lines = [line for attempt in task["logs"] for line in attempt.get("system_logs") or ()]
    assert sum("attempt 2 is Job default/ev-" in line for line in lines) == 1, lines[:5]
    assert "no attempt is left (TES_AKS_MAX_ATTEMPTS=2)" in lines[-1], lines[-3:]
    assert cluster.fake.find("Job", selector=names.task_selector(task_id)) == []


def test_cancel_of_a_running_task_stops_its_coordinator_and_leaves_nothing(
    server: Any, cluster: Any
) -> None:
    task_id = post(server.url, {"executors": [{"image": "sim/hang", "command": ["x"]}]})
    servers.wait_for_state(server.url, task_id, {"RUNNING"}, timeout=120)
    assert requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=30).status_code == 200
    servers.wait_for_state(server.url, task_id, {"CANCELED"}, timeout=60)
    selector = names.task_selector(task_id)
    left: list[str] = []
    for _ in range(100):  # the coordinator, stopped by SIGTERM, deletes what it made
        left = [
            f"{kind} {o['metadata']['name']}"
            for kind in ("Job", "PersistentVolumeClaim", "ConfigMap", "Pod")
            for o in cluster.fake.find(kind, "default", selector)
        ]
        if not left:
            break
        time.sleep(0.1)
    assert left == []


def test_live_output_of_a_running_executor_from_its_pod_logs(server: Any) -> None:
    task_id = post(
        server.url,
        {
            "executors": [
                {
                    "image": "alpine",
                    "command": ["sh", "-c", "echo out-1; echo err-1 >&2; sleep 120"],
                },
                {"image": "alpine", "command": ["true"], "stdout": "/tmp/own.txt"},
            ]
        },
    )
    url = f"{server.url}/tasks/{task_id}/executors"
    answer = requests.get(f"{url}/0/stdout", timeout=10)
    for _ in range(600):
        answer = requests.get(f"{url}/0/stdout", timeout=10)
        if answer.status_code == 200 and answer.text:
            break
        time.sleep(0.1)
    assert (answer.status_code, answer.text) == (200, "out-1\n"), answer.text
    assert answer.headers["X-Output-Offset"] == "0" and answer.headers["X-Output-Next"] == "6"
    for _ in range(100):  # the stderr container copies it within its poll (0.2 s)
        stderr = requests.get(f"{url}/0/stderr", timeout=10)
        if stderr.text:
            break
        time.sleep(0.1)
    assert stderr.text == "err-1\n"
    piece = requests.get(f"{url}/0/stdout", params={"offset": 2, "tail": 2}, timeout=10)
    assert piece.text == "t-" and piece.headers["X-Output-Next"] == "4"
    assert requests.get(f"{url}/0/stdout", params={"tail": 3}, timeout=10).text == "-1\n"
    own = requests.get(f"{url}/1/stdout", timeout=10)
    assert own.status_code == 404 and "its own file /tmp/own.txt" in own.text
    assert requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=30).status_code == 200
    servers.wait_for_state(server.url, task_id, {"CANCELED"}, timeout=60)
