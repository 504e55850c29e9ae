"""End to end on a real cluster (kind, k3s, AKS...): runs only when ``TES_TEST_KUBECONFIG``
is set, following the steps in the plugin's README ("Tests on a real cluster").

A real ``tes-server serve`` with ``TES_BACKEND=aks`` submits to that cluster; the
coordinator and filetransfer images must be reachable from its nodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("tes_aks")
servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
requests = pytest.importorskip("requests")

KUBECONFIG = os.environ.get("TES_TEST_KUBECONFIG", "")
if not KUBECONFIG:
    pytest.skip(
        "no real cluster: set TES_TEST_KUBECONFIG (see plugins/tes_aks/README.md, "
        "'Tests on a real cluster')",
        allow_module_level=True,
    )
NAMESPACE = os.environ.get("TES_TEST_AKS_NAMESPACE", "tes-test")
IMAGE = os.environ.get("TES_TEST_AKS_EXECUTOR_IMAGE", "busybox:1.36")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("aks-cluster")
    env = servers.server_env(
        data,
        **{
            "TES_BACKEND": "aks",
            "TES_RECONCILE_INTERVAL": "2",
            "TES_AKS_KUBECONFIG": KUBECONFIG,
            "TES_AKS_NAMESPACE": NAMESPACE,
            "TES_AKS_NAME_PREFIX": "tt-",
            "TES_AKS_IMAGE_PULL_WAIT": "60",
            "TES_AKS_COORDINATOR_IMAGE": os.environ.get(
                "TES_TEST_AKS_COORDINATOR_IMAGE", "tes-aks:dev"
            ),
            "TES_AKS_FILETRANSFER_IMAGE": os.environ.get(
                "TES_TEST_AKS_FILETRANSFER_IMAGE", "tes-filetransfer:dev"
            ),
            "TES_AKS_STORAGE_CLASS": os.environ.get("TES_TEST_AKS_STORAGE_CLASS", ""),
            "TES_AKS_DEFAULT_DISK_GB": "1",
        },
    )
    proc = servers.ServerProcess(data, env).start()
    try:
        yield proc
    finally:
        proc.stop()


def run(server: Any, document: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(f"{server.url}/tasks", json=document, timeout=30)
    assert answer.status_code == 200, answer.text
    return servers.wait_for_state(
        server.url, answer.json()["id"], servers.TERMINAL, timeout=600, view="FULL"
    )


def test_inputs_executors_in_order_and_stdout_file(server: Any) -> None:
    task = run(
        server,
        {
            "inputs": [{"path": "/data/in.txt", "content": "hello cluster\n"}],
            "executors": [
                {
                    "image": IMAGE,
                    "command": ["sh", "-c", "tr a-z A-Z < /data/in.txt"],
                    "stdout": "/tes-wd/upper.txt",
                },
                {"image": IMAGE, "command": ["cat", "/tes-wd/upper.txt"]},
            ],
            "resources": {"cpu_cores": 1, "ram_gb": 0.25, "disk_gb": 1},
        },
    )
    assert task["state"] == "COMPLETE", task["logs"]
    assert task["logs"][-1]["logs"][1]["stdout"].strip() == "HELLO CLUSTER"


def test_a_failing_executor_and_an_image_that_does_not_exist(server: Any) -> None:
    task = run(
        server,
        {
            "executors": [
                {"image": IMAGE, "command": ["sh", "-c", "echo out; echo err >&2; exit 3"]}
            ]
        },
    )
    assert task["state"] == "EXECUTOR_ERROR"
    executor = task["logs"][-1]["logs"][0]
    assert (executor["exit_code"], executor["stdout"], executor["stderr"]) == (3, "out\n", "err\n")
    task = run(server, {"executors": [{"image": "tes-core.invalid/none:0", "command": ["x"]}]})
    assert task["state"] == "SYSTEM_ERROR"
    assert any("tes-core.invalid/none:0" in line for line in task["logs"][-1]["system_logs"]), task[
        "logs"
    ]
