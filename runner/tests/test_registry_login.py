"""The runner logs the engine in to a private registry before pulling one of its images.

Real parts: ``tes-runner run`` with the real Docker, against a registry on loopback with
basic authentication (``fake_registry.py``) that also plays IMDS and ACR's token exchange.
A recording ``docker`` in front of the real one shows the engine commands and what the
login read on its standard input. Docker's client configuration goes to a folder of the
test (``DOCKER_CONFIG``), never the machine's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tes_runner.images import image_registry
from tes_runner.registry import Registry, RegistryLogin, RegistryLoginError
from tes_runner.taskfile import BadTaskFile, parse_task_file

from .fake_registry import ACR_TOKEN_USER, FakeRegistry
from .runner_support import require_runtime, runner_env, status, task_dir_for

pytestmark = pytest.mark.timeout(240)

ROOTFS = Path(os.environ.get("TES_SERVICES_DIR", "/tmp/tes-test-services")) / "busybox-rootfs.tar"
IDENTITY = ("/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities/pull")
PASSWORD = "pw-" + uuid.uuid4().hex


@pytest.mark.parametrize(("image", "host"), [
    ("alpine", "docker.io"),
    ("library/ubuntu:22.04", "docker.io"),
    ("myacr.azurecr.io/tools/samtools:1.17", "myacr.azurecr.io"),
    ("MyAcr.AzureCR.io/x@sha256:" + "a" * 64, "myacr.azurecr.io"),
    ("127.0.0.1:5000/x/y:t", "127.0.0.1:5000"),
    ("localhost/x", "localhost"),
])
def test_the_registry_of_an_image_is_read_as_docker_reads_it(image: str, host: str) -> None:
    assert image_registry(image) == host


@pytest.mark.parametrize(("registry", "message"), [
    ("x", "'registry' must be an object"),
    ({"server": "a/b", "username": "u", "password_file": "/p"}, "registry.server"),
    ({"server": "r.io", "username": "u"}, "needs username and password_file, or identity"),
    ({"server": "r.io", "username": "u", "password_file": "rel"}, "'registry.password_file'"),
    ({"server": "r.io", "identity": IDENTITY, "username": "u"}, "identity excludes"),
    ({"server": "r.io", "password": "p"}, "registry.password is not a registry field"),
    ({"server": "r.io", "username": "u", "password_file": "$TES_NOT_SET_X/p"},
     "names $TES_NOT_SET_X"),
])
def test_a_wrong_registry_field_is_named(tmp_path: Path, registry: Any, message: str) -> None:
    document = {"task": {"id": "t1", "executors": [{"image": "a", "command": ["true"]}]},
                "policy": {"local_dirs": [], "denied_dirs": [], "hosts": []},
                "registry": registry}
    with pytest.raises(BadTaskFile, match="task.json: .*" + re.escape(message)):
        parse_task_file(document, tmp_path)


def test_a_password_file_under_a_node_variable_is_read_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TES_TEST_SHARED", str(tmp_path))
    document = {"task": {"id": "t1", "executors": [{"image": "a", "command": ["true"]}]},
                "policy": {"local_dirs": [], "denied_dirs": [], "hosts": []},
                "registry": {"server": "r.io", "username": "u",
                             "password_file": "$TES_TEST_SHARED/reg/pw"}}
    spec = parse_task_file(document, tmp_path)
    assert spec.registry == Registry(server="r.io", username="u",
                                     password_file=tmp_path / "reg" / "pw")


def test_every_identity_request_is_bounded_by_the_timeout() -> None:
    """IMDS that accepts the connection and never answers: the login fails, naming it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        login = RegistryLogin(Registry(server="r.azurecr.io", identity=IDENTITY),
                              imds_url=f"http://127.0.0.1:{port}/metadata/identity/oauth2/token",
                              timeout=0.5)
        with pytest.raises(RegistryLoginError) as caught:
            login.credentials()
    assert str(caught.value).startswith(
        "cannot log in to registry r.azurecr.io: the instance metadata service (managed "
        f"identity {IDENTITY}) did not answer within 0.5 s")


# -- end to end: tes-runner run, the real Docker, the registry on loopback ------------------

def _recording_docker(folder: Path, log: Path) -> Path:
    """A ``docker`` that logs its arguments (and what ``login`` reads on stdin), then runs
    the real one with the same standard input."""
    real = shutil.which("docker")
    assert real, "docker is not installed"
    folder.mkdir()
    shim = folder / "docker"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import json, subprocess, sys\n"
        "args = sys.argv[1:]\n"
        "stdin = sys.stdin.read() if args[:1] == ['login'] else None\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(json.dumps({'args': args, 'stdin': stdin}) + '\\n')\n"
        "if stdin is None:\n"
        f"    import os; os.execv({real!r}, [{real!r}, *args])\n"
        f"sys.exit(subprocess.run([{real!r}, *args], input=stdin, text=True).returncode)\n"
    )
    shim.chmod(0o755)
    return folder


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def private(tmp_path: Path) -> Any:
    """What an end-to-end test needs: Docker, the root file system, a clean client folder."""
    require_runtime("docker")
    if not ROOTFS.is_file():
        pytest.skip(f"{ROOTFS} (made by scripts/test-services.sh) is missing")
    log = tmp_path / "docker-calls.jsonl"
    shims = _recording_docker(tmp_path / "bin", log)
    env = {**runner_env(), "DOCKER_CONFIG": str(tmp_path / "docker-config"),
           "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}
    pulled: list[str] = []
    yield {"log": log, "env": env, "pulled": pulled, "rootfs": ROOTFS.read_bytes()}
    for image in pulled:
        subprocess.run([shutil.which("docker") or "docker", "rmi", "-f", image],
                       capture_output=True, timeout=60, env=env)


def _run(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tes_runner", "run", str(folder)],
                          capture_output=True, text=True, env=env, timeout=200)
    assert done.returncode == 0, done.stderr
    return status(folder)


def _task(image: str) -> dict[str, Any]:
    return {"executors": [{"image": image, "command": ["sh", "-c", "echo private"]}]}


def test_a_password_login_comes_before_the_pull(tmp_path: Path, private: Any) -> None:
    registry = FakeRegistry(private["rootfs"], "tes/private", {"puller": PASSWORD})
    try:
        image = f"{registry.host}/tes/private:{uuid.uuid4().hex[:10]}"
        private["pulled"].append(image)
        password_file = tmp_path / "registry-password"
        password_file.write_text(PASSWORD + "\n")
        folder = task_dir_for(tmp_path / "tasks", _task(image), "docker", registry={
            "server": registry.host, "username": "puller", "password_file": str(password_file)})
        final = _run(folder, private["env"])
        assert final["state"] == "COMPLETE", final
        assert final["log"]["logs"][0]["stdout"] == "private\n"
        assert f"docker: logged in to registry {registry.host} (user puller)" in \
            final["log"]["system_logs"]
        calls = _calls(private["log"])
        logins = [c for c in calls if c["args"][:1] == ["login"]]
        assert logins == [{"args": ["login", "--username", "puller", "--password-stdin", "--",
                                    registry.host], "stdin": PASSWORD}]
        assert not [c for c in calls if any(PASSWORD in a for a in c["args"])]
        first_login = calls.index(logins[0])
        first_pull = next(i for i, c in enumerate(calls) if c["args"][:1] == ["pull"])
        assert first_login < first_pull
        manifests = registry.seen("/v2/tes/private/manifests/")
        assert manifests and {r["user"] for r in manifests} == {"puller"}
        assert PASSWORD not in (folder / "status.json").read_text()
    finally:
        registry.close()


def test_a_wrong_password_ends_the_task_naming_the_registry(tmp_path: Path,
                                                             private: Any) -> None:
    registry = FakeRegistry(private["rootfs"], "tes/private", {"puller": "another"})
    try:
        image = f"{registry.host}/tes/private:{uuid.uuid4().hex[:10]}"
        password_file = tmp_path / "registry-password"
        password_file.write_text(PASSWORD)
        folder = task_dir_for(tmp_path / "tasks", _task(image), "docker", registry={
            "server": registry.host, "username": "puller", "password_file": str(password_file)})
        final = _run(folder, private["env"])
        assert final["state"] == "SYSTEM_ERROR", final
        [reason] = [line for line in final["log"]["system_logs"] if "log in" in line]
        assert reason.startswith(f"cannot log in to registry {registry.host} as puller: "
                                 "docker login: "), reason
        assert PASSWORD not in (folder / "status.json").read_text()
        assert registry.seen("/v2/tes/private/") == []  # nothing pulled
    finally:
        registry.close()


def test_an_image_of_another_registry_logs_in_nowhere(tmp_path: Path, private: Any) -> None:
    """``alpine`` is on the machine (test services); the configured registry is not its."""
    folder = task_dir_for(tmp_path / "tasks", _task("alpine"), "docker", registry={
        "server": "myacr.azurecr.io", "username": "u",
        "password_file": str(tmp_path / "absent")})
    final = _run(folder, private["env"])
    assert final["state"] == "COMPLETE", final
    assert [c for c in _calls(private["log"]) if c["args"][:1] == ["login"]] == []


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    pytest.importorskip("cryptography")
    try:  # the repository's helper (pytest runs from its root: pythonpath ".")
        from tests.fake_keyvault import self_signed_certificate
    except ImportError:
        pytest.skip("needs the tes-core repository's tests/fake_keyvault.py")

    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def test_a_managed_identity_logs_in_with_an_acr_refresh_token(tmp_path: Path,
                                                             private: Any) -> None:
    """IMDS token -> ``https://SERVER/oauth2/exchange`` -> docker login as the ACR token
    user; the registry (HTTPS, self-signed: trusted through ``SSL_CERT_FILE``) also plays
    IMDS (``IMDS_ENDPOINT``, the variable azure-identity reads)."""
    context, cert = _tls(tmp_path)
    registry = FakeRegistry(private["rootfs"], "tes/private", {}, identity=IDENTITY, tls=context)
    try:
        image = f"{registry.host}/tes/private:{uuid.uuid4().hex[:10]}"
        private["pulled"].append(image)
        folder = task_dir_for(tmp_path / "tasks", _task(image), "docker", registry={
            "server": registry.host, "identity": IDENTITY})
        env = {**private["env"], "SSL_CERT_FILE": str(cert),
               "IMDS_ENDPOINT": f"https://{registry.host}"}
        final = _run(folder, env)
        assert final["state"] == "COMPLETE", final
        assert final["log"]["logs"][0]["stdout"] == "private\n"
        [imds] = registry.seen("/metadata/identity/oauth2/token")
        assert imds["metadata"] == "true"
        assert imds["query"] == {"api-version": "2018-02-01",
                                 "resource": "https://management.azure.com/",
                                 "msi_res_id": IDENTITY}
        [exchange] = registry.seen("/oauth2/exchange")
        assert exchange["content_type"] == "application/x-www-form-urlencoded"
        assert exchange["form"]["grant_type"] == "access_token"
        assert exchange["form"]["service"] == registry.host
        assert exchange["form"]["access_token"] in registry.aad_tokens
        refresh = registry.users[ACR_TOKEN_USER]
        logins = [c for c in _calls(private["log"]) if c["args"][:1] == ["login"]]
        assert logins == [{"args": ["login", "--username", ACR_TOKEN_USER, "--password-stdin",
                                    "--", registry.host], "stdin": refresh}]
        manifests = registry.seen("/v2/tes/private/manifests/")
        assert manifests and {r["user"] for r in manifests} == {ACR_TOKEN_USER}
        text = (folder / "status.json").read_text()
        assert refresh not in text and exchange["form"]["access_token"] not in text
    finally:
        registry.close()


def test_an_identity_the_node_lacks_ends_the_task_naming_the_registry(
        tmp_path: Path, private: Any) -> None:
    registry = FakeRegistry(private["rootfs"], "tes/private", {}, identity=IDENTITY + "-other")
    try:
        image = f"{registry.host}/tes/private:{uuid.uuid4().hex[:10]}"
        folder = task_dir_for(tmp_path / "tasks", _task(image), "docker", registry={
            "server": registry.host, "identity": IDENTITY})
        env = {**private["env"], "IMDS_ENDPOINT": f"http://{registry.host}"}
        final = _run(folder, env)
        assert final["state"] == "SYSTEM_ERROR", final
        assert (f"cannot log in to registry {registry.host}: the instance metadata service "
                f"(managed identity {IDENTITY}) answered HTTP 400: Identity not found"
                ) in final["log"]["system_logs"]
        assert registry.seen("/oauth2/exchange") == []
        assert [c for c in _calls(private["log"]) if c["args"][:1] == ["login"]] == []
    finally:
        registry.close()


def test_a_refused_token_exchange_is_named_and_no_token_is_shown() -> None:
    """IMDS gives a token, the exchange refuses it (the registry is another service)."""
    registry = FakeRegistry(b"", "tes/private", {}, identity=IDENTITY)
    try:
        login = RegistryLogin(Registry(server="other.azurecr.io", identity=IDENTITY),
                              imds_url=f"http://{registry.host}/metadata/identity/oauth2/token",
                              exchange_url=f"http://{registry.host}/oauth2/exchange")
        with pytest.raises(RegistryLoginError) as caught:
            login.credentials()
        assert str(caught.value) == (
            f"cannot log in to registry other.azurecr.io: http://{registry.host}/oauth2/exchange "
            "(ACR token exchange) answered HTTP 401: the access token is not valid")
        [token] = registry.aad_tokens
        assert token not in str(caught.value)
    finally:
        registry.close()
