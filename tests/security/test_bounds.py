"""Class 8 (no bounds on size), on real servers: a task may not ask for absurd amounts.

Too many executors, inputs, outputs, volumes or tags, strings longer than any real
workflow sends, resources no machine has: each is a 400 that names the field, the
bound and the setting that raises it, and nothing is stored. A refused giant body
leaves the server healthy. BASIC and FULL listings are bounded in bytes: a page
stops early (with a token that continues exactly where it stopped) rather than
rendering hundreds of megabytes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.api.support import (
    NO_RUNTIME,
    TIMEOUT,
    assert_error,
    create,
    executor,
    post_task,
    task,
    walk,
)
from tests.servers import ServerProcess, server_env

LIST_BUDGET = 256 * 1024
CONTENT = 60_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, postgres_url_factory_lazy) -> Iterator[ServerProcess]:
    """Embedded defaults, no worker (tasks stay as created), a small listing budget."""
    data_dir = tmp_path_factory.mktemp(f"tes-bounds-{request.param}")
    database = postgres_url_factory_lazy() if request.param == "postgresql" else None
    env = server_env(data_dir, database, TES_WORKER_THREADS="0",
                     TES_LIST_MAX_BYTES=str(LIST_BUDGET), **NO_RUNTIME)
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


def _huge(what: str) -> tuple[dict[str, Any], str, str]:
    """A task over one bound: (document, field the 400 must name, setting it must name)."""
    many = 100_000
    long = "x" * 200_000
    one = executor("true")
    cases: dict[str, tuple[dict[str, Any], str, str]] = {
        "executors": (task(executors=[one] * many), "executors", "TES_MAX_EXECUTORS"),
        "inputs": (task(inputs=[{"path": f"/i/{n}", "content": ""} for n in range(many)]),
                   "inputs", "TES_MAX_INPUTS"),
        "outputs": (task(outputs=[{"path": f"/o/{n}", "url": "/tmp/o"} for n in range(many)]),
                    "outputs", "TES_MAX_OUTPUTS"),
        "volumes": (task(volumes=[f"/v/{n}" for n in range(many)]), "volumes",
                    "TES_MAX_VOLUMES"),
        "tags": (task(tags={f"k{n}": "" for n in range(many)}), "tags", "TES_MAX_TAGS"),
        "args": (task(executors=[executor(*["a"] * many)]), "executors.0.command",
                 "TES_MAX_ITEMS"),
        "env": (task(executors=[executor("true", env={f"E{n}": "" for n in range(many)})]),
                "executors.0.env", "TES_MAX_ITEMS"),
        "name": (task(name="n" * 10_000), "name", "TES_MAX_TEXT_CHARS"),
        "description": (task(description=long), "description", "TES_MAX_ARG_CHARS"),
        "arg": (task(executors=[executor("echo", long)]), "executors.0.command.1",
                "TES_MAX_ARG_CHARS"),
        "env value": (task(executors=[executor("true", env={"A": long})]),
                      "executors.0.env.A", "TES_MAX_ARG_CHARS"),
        "path": (task(inputs=[{"path": "/" + "p" * 10_000, "content": ""}]), "inputs.0.path",
                 "TES_MAX_TEXT_CHARS"),
        "url": (task(outputs=[{"path": "/o", "url": "s3://b/" + "u" * 10_000}]),
                "outputs.0.url", "TES_MAX_TEXT_CHARS"),
        "content": (task(inputs=[{"path": "/i", "content": "c" * (1024 * 1024 + 1)}]),
                    "inputs.0.content", "TES_MAX_CONTENT_BYTES"),
        "ram_gb": (task(resources={"ram_gb": 1e308}), "resources.ram_gb", "TES_MAX_RAM_GB"),
        "disk_gb": (task(resources={"disk_gb": 1e12}), "resources.disk_gb", "TES_MAX_DISK_GB"),
        "cpu_cores": (task(resources={"cpu_cores": 10**9}), "resources.cpu_cores",
                      "TES_MAX_CPU_CORES"),
    }
    return cases[what]


@pytest.mark.parametrize("what", [
    "executors", "inputs", "outputs", "volumes", "tags", "args", "env", "name", "description",
    "arg", "env value", "path", "url", "content", "ram_gb", "disk_gb", "cpu_cores",
])
def test_a_task_over_a_bound_is_refused_naming_it(server, what) -> None:
    document, field, setting = _huge(what)
    marker = f"bounds-{uuid.uuid4().hex}"
    if "name" not in document:
        document["name"] = marker
    body = assert_error(post_task(server.url, document), 400, field)
    assert setting in body["msg"], body
    assert requests.get(f"{server.url}/tasks", params={"name_prefix": marker},
                        timeout=TIMEOUT).json()["tasks"] == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1"])
def test_resources_must_be_finite_and_sane(server, number) -> None:
    for name in ("ram_gb", "disk_gb"):
        raw = json.dumps(task("true", resources={name: 0})).replace(": 0}", f": {number}}}")
        assert number in raw
        assert_error(post_task(server.url, raw), 400, f"resources.{name}")


def test_a_create_right_after_a_refused_giant_answers_200(server) -> None:
    giant, _, _ = _huge("executors")
    for _ in range(3):
        started = time.monotonic()
        assert_error(post_task(server.url, giant), 400, "executors")
        create(server.url, task("true"))
        assert time.monotonic() - started < 10


def test_full_listings_are_bounded_in_bytes(server) -> None:
    prefix = f"big-{uuid.uuid4().hex}-"
    ids = [create(server.url, task("true", name=f"{prefix}{n:02}",
                                   inputs=[{"path": "/in", "content": "c" * CONTENT}]))
           for n in range(24)]
    params = [("view", "FULL"), ("page_size", "2047"), ("name_prefix", prefix)]
    first = requests.get(f"{server.url}/tasks", params=params, timeout=TIMEOUT)
    assert first.status_code == 200, first.text
    page = first.json()
    assert 1 <= len(page["tasks"]) < len(ids), len(page["tasks"])
    assert len(first.content) <= LIST_BUDGET + CONTENT, len(first.content)
    assert page["next_page_token"]
    assert all(t["inputs"][0]["content"] == "c" * CONTENT for t in page["tasks"])
    # Following the tokens gives every task once, newest first.
    seen = [t["id"] for t in walk(server.url, params)]
    assert seen == ids[::-1]
    basic = walk(server.url, [("view", "BASIC"), ("page_size", "2047"), ("name_prefix", prefix)])
    assert [t["id"] for t in basic] == ids[::-1]
    # A single task over the budget still comes back, alone on its page.
    huge = create(server.url, task("true", name=f"{prefix}zz",
                                   inputs=[{"path": "/in", "content": "c" * (LIST_BUDGET * 2)}]))
    alone = requests.get(f"{server.url}/tasks", params=params, timeout=TIMEOUT).json()
    assert [t["id"] for t in alone["tasks"]] == [huge] and alone["next_page_token"]
    # MINIMAL pages are not cut: they hold ids and states only.
    minimal = requests.get(f"{server.url}/tasks", timeout=TIMEOUT,
                           params=[("page_size", "2047"), ("name_prefix", prefix)]).json()
    assert len(minimal["tasks"]) == len(ids) + 1 and "next_page_token" not in minimal
