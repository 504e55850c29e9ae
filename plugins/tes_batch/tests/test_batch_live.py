"""Live output of a running executor on Batch, end to end: a real ``tes-server serve`` on
the fake Batch service, whose node runs the real ``tes-runner`` (Docker); the server reads
the runner's rolling copy through the Batch file API (``tes_batch.live``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
requests = pytest.importorskip("requests")

from fakebatch import FakeBatch  # noqa: E402
from fakebatch.server import serve_on  # noqa: E402
from fakebatch.service import wait_until  # noqa: E402

from tes_batch.live import output_path  # noqa: E402

if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
    pytest.skip("no Docker (source $TES_SERVICES_DIR/env.sh after scripts/test-services.sh)",
                allow_module_level=True)

LIVE_MAX = 64
"""The runner keeps at most 64 bytes per stream (two files of 32 taking turns)."""
LINES = 40
EXPECTED = "".join(f"line-{i:02d}\n" for i in range(LINES))  # 8 bytes a line, 320 in all
CACHE = 1.0


@pytest.fixture(scope="module")
def server(fake_batch: FakeBatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve_on(fake_batch, tmp_path_factory.mktemp("batch-live-server"),
                        {"TES_BATCH_REFRESH_INTERVAL": "1", "TES_BATCH_OUTPUT_CACHE": str(CACHE)},
                        TES_OUTPUT_LIVE_MAX=str(LIVE_MAX))


def _get(url: str, **params: Any) -> Any:
    return requests.get(url, params=params, timeout=60)


def test_tail_and_offsets_while_it_runs_own_file_404_and_bounded_requests(server, batch):
    script = (f"i=0; while [ $i -lt {LINES} ]; do printf 'line-%02d\\n' $i; i=$((i+1)); "
              "sleep 0.1; done; echo err-1 >&2; sleep 600")
    answer = requests.post(f"{server.url}/tasks", json={"executors": [
        {"image": "busybox:latest", "command": ["sh", "-c", script]},
        {"image": "busybox:latest", "command": ["true"], "stdout": "/tes-wd/own.txt"},
    ]}, timeout=30)
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["id"]
    base = f"{server.url}/tasks/{task_id}/executors/0"
    try:
        # Follow by offsets while it prints: every piece is the stream's bytes at the offset
        # the server says (the first bytes rolled away before the first read).
        seen: list[tuple[int, str]] = []
        offset = 0
        deadline = time.monotonic() + 300  # a guard against a hang, not a timed assertion
        while not EXPECTED.endswith(text := _get(f"{base}/stdout", tail=8).text) or not text:
            assert time.monotonic() < deadline, text
            piece = _get(f"{base}/stdout", offset=offset)
            if piece.status_code == 200:
                first, after = (int(piece.headers["X-Output-Offset"]),
                                int(piece.headers["X-Output-Next"]))
                assert piece.text == EXPECTED[first:after], (first, piece.text)
                assert first >= offset and after - first == len(piece.text)
                seen.append((first, piece.text))
                offset = after
            else:  # not on a node yet: said so
                assert piece.status_code == 404 and "Batch" in piece.json()["msg"], piece.text
            time.sleep(0.3)
        assert text == "line-39\n" or EXPECTED.endswith(text)
        assert any(text for _, text in seen), seen  # read while it ran, not only at the end

        # It printed all: the tail, an offset inside what is kept, and one rolled away.
        def settled() -> Any:
            got = _get(f"{base}/stderr")
            return got if got.text == "err-1\n" else None

        stderr = wait_until(settled, timeout=120, interval=0.2)
        assert stderr.headers["X-Output-Offset"] == "0"
        tail = _get(f"{base}/stdout", tail=20)
        assert tail.text == EXPECTED[-20:] and tail.headers["X-Output-Next"] == str(320)
        inside = _get(f"{base}/stdout", offset=300, tail=12)
        assert (inside.text, inside.headers["X-Output-Offset"]) == (EXPECTED[300:312], "300")
        early = _get(f"{base}/stdout", offset=0)
        first = int(early.headers["X-Output-Offset"])
        assert 320 - LIVE_MAX <= first <= 320 - LIVE_MAX // 2, first
        assert early.text == EXPECTED[first:]
        own = _get(f"{server.url}/tasks/{task_id}/executors/1/stdout", offset=0)
        assert own.status_code == 404 and "its own file /tes-wd/own.txt" in own.json()["msg"]

        # The requests Batch saw: the listing by name prefix, ranged reads.
        files = [r for r in batch.recorded("GET", "/jobs/") if "/files" in r.path
                 and not r.path.endswith("/status.json")]
        lists = [r for r in files if r.path.endswith("/files")]
        assert lists and all(r.query["recursive"] == "true" and r.query["$filter"] in (
            f"startswith(name,'{output_path(0, 'stdout')}')",
            f"startswith(name,'{output_path(0, 'stderr')}')") for r in lists), lists[0]
        ranged = [r for r in files if r.range]
        assert ranged and all(r.path.split("/files/")[1] in (
            output_path(0, "stdout"), *(f"{output_path(0, 'stdout')}.{n}" for n in range(1, 11)),
            output_path(0, "stderr")) for r in ranged), [r.path for r in ranged]
        bounds = [tuple(map(int, r.range.removeprefix("bytes=").split("-"))) for r in ranged]
        assert all(0 <= a <= b < LIVE_MAX // 2 for a, b in bounds), bounds  # within a half

        # Many clients polling one stream: the requests stay bounded by the cache's seconds.
        batch.reset()
        clients, polls = 8, 5
        started = time.monotonic()

        def follow() -> None:
            for _ in range(polls):
                assert _get(f"{base}/stdout", tail=16).text == EXPECTED[-16:]

        threads = [threading.Thread(target=follow) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        reads = [r for r in batch.recorded("GET", "/jobs/") if "/files" in r.path
                 and (r.path.endswith("/files") or "/executor-0." in r.path)]
        # at most one read (listing, range, listing) per cache period, not one per poll
        assert len(reads) <= 3 * (int(elapsed / CACHE) + 1), (len(reads), elapsed)
        assert len(reads) < clients * polls
    finally:
        requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=30)
        servers.wait_for_state(server.url, task_id, {"CANCELED"}, timeout=120)

