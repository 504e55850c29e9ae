"""Logs (redaction, request ids), Prometheus metrics (one process and gunicorn's
several), and OpenTelemetry export to a local Azure Monitor ingestion endpoint."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import requests

from tes_core.telemetry.logs import install_log_context, request_id
from tests.api.support import API_SUFFIX, NO_RUNTIME, task
from tests.oidc import IdentityProvider
from tests.servers import ChildServer, ServerProcess, server_env, worker_process

SECRETS = {
    "sas": "sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01&sig=Zm9vYmFyYmF6cXV4%2Bsecret%3D",
    "account_key": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
                   "KBHBeksoGMGw==",
    "jwt": "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA",
    "password": "pg-pa55word",
}


@pytest.fixture
def captured() -> Any:
    install_log_context()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    logger = logging.getLogger(f"tes_core.test.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_secrets_never_reach_a_log_line(captured) -> None:
    logger, stream = captured
    url = f"https://acct.blob.core.windows.net/c/b.txt?{SECRETS['sas']}"
    logger.info("downloading %s", url)
    logger.info("headers: %s", {"Authorization": f"Bearer {SECRETS['jwt']}", "Accept": "*/*"})
    logger.info("Authorization: Bearer %s", SECRETS["jwt"])
    logger.info("token %s refused", SECRETS["jwt"])
    logger.warning("storage DefaultEndpointsProtocol=https;AccountName=a;AccountKey=%s;"
                   "EndpointSuffix=core.windows.net", SECRETS["account_key"])
    logger.warning("database postgresql+psycopg://tes:%s@db:5432/tes down",
                   SECRETS["password"])
    try:
        raise OSError(f"403 for {url}")
    except OSError:
        logger.exception("upload failed")
    text = stream.getvalue()
    for name, secret in SECRETS.items():
        assert secret not in text, name
    assert "sig=" not in text.replace("sig=***", "")
    assert "sig=***" in text and "AccountKey=***" in text and "Authorization: ***" in text
    assert "token *** refused" in text and "'Authorization': '***'" in text
    assert "tes:***@db" in text and "Traceback" in text and "OSError: 403 for" in text
    assert "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02" in text  # the rest stays


def test_ordinary_text_is_left_alone(captured) -> None:
    logger, stream = captured
    lines = ["upgrade 0001 -> 0002, task owner and tenant (OAuth bearer tokens)",
             "mail alice@example.org about http://host:8000/x", "the signature is fine"]
    for line in lines:
        logger.info(line)
    assert stream.getvalue().splitlines() == [f"- {line}" for line in lines]


def test_records_carry_the_request_id(captured) -> None:
    logger, stream = captured
    logger.info("outside")
    token = request_id.set("req-42")
    try:
        logger.info("inside")
    finally:
        request_id.reset(token)
    assert stream.getvalue().splitlines() == ["- outside", "req-42 inside"]


# -- request ids over HTTP --------------------------------------------------------------


@pytest.fixture(scope="module")
def idp():
    provider = IdentityProvider()
    yield provider
    provider.close()


def test_request_ids_are_kept_or_made_and_reach_the_log(tmp_path, idp) -> None:
    env = server_env(tmp_path, TES_WORKER_THREADS="0", **idp.settings())
    proc = ServerProcess(tmp_path, env).start()
    try:
        headers = {"X-Request-ID": "wf-7.call-3:attempt-1",
                   "Authorization": f"Bearer {idp.token()}"}
        response = requests.get(f"{proc.url}/tasks", headers=headers, timeout=30)
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == "wf-7.call-3:attempt-1"
        # The first authenticated request fetched the signing keys: its log line says
        # for which request (read from the server's output by a thread: wait for it).
        fetched = re.compile(r"\[wf-7\.call-3:attempt-1\]: fetched 2 signing key")
        deadline = time.monotonic() + 30
        while not fetched.search(proc.log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fetched.search(proc.log()), proc.log()
        made = requests.get(f"{proc.url}/service-info", timeout=30).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        refused = requests.get(f"{proc.url}/tasks", timeout=30,
                               headers={"X-Request-ID": "bad id\twith spaces"})
        assert refused.status_code == 401  # errors have ids too
        assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["X-Request-ID"])
    finally:
        proc.stop()


# -- Prometheus ---------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        head, _, rest = sample.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if head == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_metrics_of_a_running_server(tmp_path) -> None:
    env = server_env(tmp_path, **NO_RUNTIME)
    proc = ServerProcess(tmp_path, env).start()
    try:
        task_id = requests.post(f"{proc.url}/tasks", json=task("true"), timeout=30,
                                headers={"X-Request-ID": "wf-post-1"}).json()["id"]
        for _ in range(3):
            assert requests.get(f"{proc.url}/tasks/{task_id}", timeout=30).ok
        assert requests.get(f"{proc.url}/tasks/unknown-id", timeout=30).status_code == 404
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = requests.get(proc.url[: -len(API_SUFFIX)] + "/metrics", timeout=30).text
            if metric(text, "tes_tasks", state="SYSTEM_ERROR") == 1 and metric(
                text, "tes_reconcile_duration_seconds_count"
            ) >= 1:
                break
            time.sleep(0.2)
        route = f"{API_SUFFIX}/tasks/<task_id>"
        count = "tes_http_request_duration_seconds_count"
        assert metric(text, count, method="GET", route=route, status="200") == 3
        assert metric(text, count, method="GET", route=route, status="404") == 1
        assert metric(text, count, method="POST", route=f"{API_SUFFIX}/tasks") == 1
        assert task_id not in text and "unknown-id" not in text  # templates, not raw paths
        assert metric(text, "tes_tasks", state="SYSTEM_ERROR") == 1
        assert metric(text, "tes_tasks", state="QUEUED") == 0
        assert metric(text, "tes_backend_calls_total", backend="local", operation="submit") >= 1
        assert metric(text, "tes_backend_errors_total", backend="local", operation="submit") >= 1
        assert metric(text, "tes_reconcile_duration_seconds_count") >= 1
        assert 'tes_queue_depth{queue="tes"}' in text
        # The submit message carried the request id: the worker's log lines about the
        # task name the request that created it (the line may trail the state change).
        line = f"[wf-post-1]: task {task_id}: QUEUED -> SYSTEM_ERROR"
        while line not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert line in proc.log(), proc.log()
    finally:
        proc.stop()


def test_queue_depth_counts_waiting_messages(tmp_path) -> None:
    env = server_env(tmp_path, TES_WORKER_THREADS="0")  # nobody takes the messages
    proc = ServerProcess(tmp_path, env).start()
    try:
        for _ in range(3):
            requests.post(f"{proc.url}/tasks", json=task("true"), timeout=30)
        text = requests.get(proc.url[: -len(API_SUFFIX)] + "/metrics", timeout=30).text
        assert metric(text, "tes_queue_depth", queue="tes") >= 3
        assert metric(text, "tes_tasks", state="QUEUED") == 3
    finally:
        proc.stop()


def test_gunicorn_processes_add_up_in_multiprocess_mode(tmp_path) -> None:
    """Two gunicorn workers; whichever answers /metrics reports both workers' requests."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = server_env(
        tmp_path, TES_BROKER_URL="redis://127.0.0.1:6379/0",
        TES_BROKER_NAMESPACE=f"tes-metrics-{uuid.uuid4().hex[:8]}",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    upgrade = subprocess.run([sys.executable, "-m", "tes_core.cli", "db", "upgrade"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    gunicorn = ChildServer(
        name="gunicorn",
        argv=[sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:0",
              "--log-level", "info", "tes_core.app:create_app()"],
        env=env, ready=re.compile(r"Listening at: (\S+)"),
    ).start()
    try:
        pids = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(pids) < 2:
            # Both workers must have booted before the count is meaningful.
            pids = set(re.findall(r"Booting worker with pid: (\d+)", gunicorn.log()))
            time.sleep(0.1)
        assert len(pids) == 2, gunicorn.log()
        for _ in range(40):
            with requests.Session() as fresh:  # new connections spread over both workers
                assert fresh.get(f"{gunicorn.url}/healthz", timeout=30).ok
        counts = {
            metric(requests.get(f"{gunicorn.url}/metrics", timeout=30).text,
                   "tes_http_request_duration_seconds_count", route="/healthz")
            for _ in range(6)
        }
        assert counts == {40.0}, counts
        assert list(multiproc.glob("histogram_*.db")), "no multiprocess files were written"
    finally:
        gunicorn.stop()


def test_a_scrape_counts_tasks_in_one_grouped_query(tmp_path, monkeypatch) -> None:
    from tes_core.app import create_app
    from tes_core.config import Settings
    from tests.querycount import QueryCounter

    app = create_app(Settings.from_env({}, data_dir=tmp_path), start_worker=False)
    core = app.extensions["tes"]
    try:
        core.db.create_all()
        client = app.test_client()
        ids = [client.post(f"{API_SUFFIX}/tasks", json=task("true")).json["id"]
               for _ in range(5)]
        assert client.post(f"{API_SUFFIX}/tasks/{ids[0]}:cancel").status_code == 200
        counter = QueryCounter(core.db, monkeypatch)
        scraped: list[str] = []
        assert counter.during(
            lambda: scraped.append(client.get("/metrics").get_data(as_text=True))
        ) == 1
        assert metric(scraped[0], "tes_tasks", state="QUEUED") == 4
        assert metric(scraped[0], "tes_tasks", state="CANCELING") == 1
        assert metric(scraped[0], "tes_tasks", state="COMPLETE") == 0
    finally:
        core.close()


def test_a_worker_process_serves_its_own_metrics(tmp_path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = server_env(
        tmp_path, TES_BROKER_URL="redis://127.0.0.1:6379/0",
        TES_BROKER_NAMESPACE=f"tes-worker-metrics-{uuid.uuid4().hex[:8]}",
        TES_WORKER_METRICS_PORT=str(port), TES_RECONCILE_INTERVAL="0.5", **NO_RUNTIME,
    )
    upgrade = subprocess.run([sys.executable, "-m", "tes_core.cli", "db", "upgrade"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    worker = worker_process(env).start()
    try:
        deadline = time.monotonic() + 60
        passes = 0.0
        while time.monotonic() < deadline and passes < 1:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            passes = metric(text, "tes_reconcile_duration_seconds_count")
            time.sleep(0.2)
        assert passes >= 1, worker.log()
    finally:
        worker.stop()
