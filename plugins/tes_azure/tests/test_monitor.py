"""Traces and logs exported to Azure Monitor, seen by a local ingestion endpoint.

The server runs as a real process with tes-azure installed; the exporter is the
real azure-monitor-opentelemetry distribution, pointed at an HTTP server on
localhost that answers like Application Insights' ingestion (``v2.1/track``).
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tests.api.support import API_SUFFIX, task
from tests.jsonhttp import JsonHandler, LocalServer
from tests.oidc import IdentityProvider
from tests.servers import ServerProcess, server_env


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


class Ingestion:
    """A local Application Insights ingestion endpoint (``POST .../v2.1/track``)."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        ingestion = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                items = json.loads(data) if self.path.endswith("/track") else []
                ingestion.envelopes.extend(items if isinstance(items, list) else [items])
                self.reply(200, {"itemsReceived": len(items), "itemsAccepted": len(items),
                                 "errors": []})

        self.http = LocalServer(Handler)
        self.url = f"http://127.0.0.1:{self.http.port}/"

    def close(self) -> None:
        """Stop serving."""
        self.http.close()


def azure_monitor_env(tmp_path, endpoint: str) -> dict[str, str]:
    return server_env(
        tmp_path,
        TES_APPLICATIONINSIGHTS_CONNECTION_STRING=(
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
        ),
        # Keep every byte on this machine: no SDK self-telemetry, no remote configuration,
        # no Azure VM metadata probe.
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED="true",
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel",
        # The distribution's default keeps at most 5 traces a second, chosen at random.
        OTEL_TRACES_SAMPLER="always_on",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        TMPDIR=str(tmp_path),
        TES_WORKER_THREADS="0",
    )


def test_traces_and_logs_reach_azure_monitor(tmp_path, idp) -> None:
    ingestion = Ingestion()
    env = {**azure_monitor_env(tmp_path, ingestion.url), **idp.settings()}
    proc = ServerProcess(tmp_path, env).start()
    try:
        headers = {"X-Request-ID": "ai-test-1", "Authorization": f"Bearer {idp.token()}"}
        task_id = requests.post(f"{proc.url}/tasks", json=task("true"), headers=headers,
                                timeout=30).json()["id"]
        assert requests.get(f"{proc.url}/tasks/{task_id}", headers=headers, timeout=30).ok
        deadline = time.monotonic() + 60
        requests_seen: list[dict] = []
        while time.monotonic() < deadline:
            requests_seen = [e for e in ingestion.envelopes
                             if e.get("data", {}).get("baseType") == "RequestData"]
            if len(requests_seen) >= 2 and "signing key" in json.dumps(ingestion.envelopes):
                break
            time.sleep(0.2)
        names = {e["data"]["baseData"]["name"] for e in requests_seen}
        assert f"GET {API_SUFFIX}/tasks/<task_id>" in names, names
        assert f"POST {API_SUFFIX}/tasks" in names, names
        messages = {e["data"]["baseData"].get("message", ""): e["data"]["baseData"]
                    for e in ingestion.envelopes
                    if e.get("data", {}).get("baseType") == "MessageData"}
        assert "exporting traces and logs to Azure Monitor" in messages, messages
        # A record logged while serving a request carries its id (fetching the keys, here).
        fetched = next(m for text, m in messages.items() if "signing key" in text)
        assert fetched["properties"]["request_id"] == "ai-test-1", fetched
    finally:
        proc.stop()
        ingestion.close()
    assert proc.proc.returncode == 0, proc.log()


def test_an_unreachable_ingestion_endpoint_neither_blocks_nor_crashes(tmp_path) -> None:
    proc = ServerProcess(tmp_path, azure_monitor_env(tmp_path, "http://127.0.0.1:9/")).start()
    try:
        for _ in range(20):
            assert requests.get(f"{proc.url}/service-info", timeout=10).ok
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.log()  # stopped by SIGTERM, not killed
