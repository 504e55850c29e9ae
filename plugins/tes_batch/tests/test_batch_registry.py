"""Executor images from the private registry: the pool's start task writes the password on
each node (the only Batch object holding it besides ``containerRegistries``), each task's
``task.json`` says how the runner logs in (the password's file, or the managed identity),
and a task whose image is in a registry with basic authentication runs on the fake Batch
with the real runner and Docker (the registry on loopback: runner/tests/fake_registry.py)."""

from __future__ import annotations

import json
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from fakebatch.service import wait_until
from runner.tests.fake_registry import FakeRegistry

from tes_batch import ids
from tes_batch.pools import RUNNER_DIR, START_COMMAND

from .test_batch_backend import backend, batch, record  # noqa: F401

IDENTITY = ("/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities/acrpull")
ROOTFS = Path("/tmp/tes-test-services/busybox-rootfs.tar")


def _task_json(fake: Any, job: str) -> dict[str, Any]:
    [add] = fake.recorded("POST", f"/jobs/{job}/tasks")
    [setting] = add.body["environmentSettings"]
    return json.loads(setting["value"])


def test_the_start_task_carries_the_password_and_tasks_only_its_file(
        batch, tmp_path, caplog):  # noqa: F811
    batch.paused = True  # only the requests matter here
    caplog.set_level("DEBUG")
    made = backend(batch, tmp_path, TES_BATCH_REGISTRY_SERVER="acr7.azurecr.io",
                   TES_BATCH_REGISTRY_USERNAME="acr7", TES_BATCH_REGISTRY_PASSWORD="pw-5c1d0",
                   TES_BATCH_RUNNER_INSTALL="tes-runner==1.0")
    job, _ = ids.parse_ref(made.submit(record("registry-pw-1")))
    [pool_add] = batch.recorded("POST", "/pools")
    assert (
        "/bin/bash -c 'set -e; if [ -n \"$TES_REGISTRY_PASSWORD\" ]; then (umask 077; "
        "mkdir -p \"$AZ_BATCH_NODE_SHARED_DIR/tes-registry\"; printf \"%s\" "
        "\"$TES_REGISTRY_PASSWORD\" > \"$AZ_BATCH_NODE_SHARED_DIR/tes-registry/password\"); fi; "
        f"python3 -m venv \"{RUNNER_DIR}\"; \"{RUNNER_DIR}/bin/pip\" install --quiet "
        "--disable-pip-version-check $TES_RUNNER_INSTALL'") == START_COMMAND
    assert pool_add.body["startTask"] == {
        "commandLine": START_COMMAND,
        "environmentSettings": [{"name": "TES_RUNNER_INSTALL", "value": "tes-runner==1.0"},
                                {"name": "TES_REGISTRY_PASSWORD", "value": "pw-5c1d0"}],
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
        "maxTaskRetryCount": 2, "waitForSuccess": True}
    assert _task_json(batch, job)["registry"] == {
        "server": "acr7.azurecr.io", "username": "acr7",
        "password_file": "$AZ_BATCH_NODE_SHARED_DIR/tes-registry/password"}
    # Readers of the job and its tasks never see the password.
    for seen in batch.recorded("POST", f"/jobs/{job}/tasks") + batch.recorded("POST", "/jobs"):
        assert "pw-5c1d0" not in json.dumps(seen.body)
    assert "pw-5c1d0" not in caplog.text


def test_a_managed_identity_needs_nothing_of_the_start_task(batch, tmp_path):  # noqa: F811
    batch.paused = True
    made = backend(batch, tmp_path, TES_BATCH_REGISTRY_SERVER="acr8.azurecr.io",
                   TES_BATCH_REGISTRY_IDENTITY=IDENTITY, TES_BATCH_RUNNER_INSTALL="tes-runner")
    job, _ = ids.parse_ref(made.submit(record("registry-id-1")))
    [pool_add] = batch.recorded("POST", "/pools")
    assert pool_add.body["startTask"]["environmentSettings"] == [
        {"name": "TES_RUNNER_INSTALL", "value": "tes-runner"}]
    assert _task_json(batch, job)["registry"] == {"server": "acr8.azurecr.io",
                                                  "identity": IDENTITY}


def test_a_task_runs_an_image_of_the_private_registry(
        batch, tmp_path, monkeypatch):  # noqa: F811
    """The fake runs the start task (it writes the password, 0600 in a 0700 folder), the
    node's runner logs Docker in with it and pulls the executor's image: COMPLETE."""
    if not ROOTFS.is_file():
        pytest.skip(f"{ROOTFS} (made by scripts/test-services.sh) is missing")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # not the machine's
    password = "pw-" + uuid.uuid4().hex
    registry = FakeRegistry(ROOTFS.read_bytes(), "tes/private", {"puller": password})
    image = f"{registry.host}/tes/private:{uuid.uuid4().hex[:10]}"
    try:
        made = backend(batch, tmp_path, TES_BATCH_REGISTRY_SERVER=registry.host,
                       TES_BATCH_REGISTRY_USERNAME="puller",
                       TES_BATCH_REGISTRY_PASSWORD=password)
        task = record("registry-run-1", {"executors": [
            {"image": image, "command": ["sh", "-c", "echo from the private registry"]}]})
        ref = made.submit(task)
        job, name = ids.parse_ref(ref)
        wait_until(lambda: batch.tasks[job][name]["state"] == "completed", timeout=180)
        node = batch.tasks[job][name]["nodeInfo"]["nodeId"]
        [seen] = made.poll([record(task.id, task.document, ref=ref)])
        assert seen.state == "COMPLETE", seen
        assert seen.executor_logs[0]["stdout"] == "from the private registry\n"
        assert f"docker: logged in to registry {registry.host} (user puller)" in \
            seen.system_logs
        manifests = registry.seen("/v2/tes/private/manifests/")
        assert manifests and {r["user"] for r in manifests} == {"puller"}
        [written] = list(batch.root.glob(f"*/{node}/shared/tes-registry/password"))
        assert written.read_text() == password
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    finally:
        registry.close()
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=60)


def test_a_task_runs_an_image_of_the_registry_with_the_managed_identity(
        batch, tmp_path, monkeypatch):  # noqa: F811
    """The node's runner asks IMDS for the identity's token (``IMDS_ENDPOINT`` points at the
    loopback registry, which plays IMDS), exchanges it at ``https://<server>/oauth2/exchange``
    (self-signed, trusted through ``SSL_CERT_FILE``) and logs Docker in with the ACR token."""
    pytest.importorskip("cryptography")
    if not ROOTFS.is_file():
        pytest.skip(f"{ROOTFS} (made by scripts/test-services.sh) is missing")
    import ssl

    from runner.tests.fake_registry import ACR_TOKEN_USER
    from tests.fake_keyvault import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    registry = FakeRegistry(ROOTFS.read_bytes(), "tes/private", {}, identity=IDENTITY,
                            tls=context)
    image = f"{registry.host}/tes/private:{uuid.uuid4().hex[:10]}"
    # The fake's nodes run tasks with this process's environment.
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("IMDS_ENDPOINT", f"https://{registry.host}")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    try:
        made = backend(batch, tmp_path, TES_BATCH_REGISTRY_SERVER=registry.host,
                       TES_BATCH_REGISTRY_IDENTITY=IDENTITY)
        task = record("registry-msi-1", {"executors": [
            {"image": image, "command": ["sh", "-c", "echo pulled with the identity"]}]})
        ref = made.submit(task)
        job, name = ids.parse_ref(ref)
        wait_until(lambda: batch.tasks[job][name]["state"] == "completed", timeout=180)
        [seen] = made.poll([record(task.id, task.document, ref=ref)])
        assert seen.state == "COMPLETE", seen
        assert seen.executor_logs[0]["stdout"] == "pulled with the identity\n"
        assert f"docker: logged in to registry {registry.host} (managed identity)" in \
            seen.system_logs
        [imds] = registry.seen("/metadata/identity/oauth2/token")
        assert imds["query"]["msi_res_id"] == IDENTITY and imds["metadata"] == "true"
        assert len(registry.seen("/oauth2/exchange")) == 1
        manifests = registry.seen("/v2/tes/private/manifests/")
        assert manifests and {r["user"] for r in manifests} == {ACR_TOKEN_USER}
    finally:
        registry.close()
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=60)
