"""``GET /tasks/{id}/executors/{index}/stdout|stderr``: the live end of a running
executor's output, on a real server running real tasks under bubblewrap, with tokens on.

Hostile cases: a link planted where the runner keeps the output (the server never
follows it), another user's task, an executor the task does not have, bad numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.local.support import require_runtime, sh, start_server, wait_until
from tests.oidc import IdentityProvider
from tests.servers import TERMINAL, ServerProcess

TIMEOUT = 30
COUNTING = ("i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line-$i; echo err-$i >&2; "
            "sleep 0.1; done")
"""An executor that prints a numbered line on each stream ten times a second."""


@pytest.fixture(scope="module")
def server(
    idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with tokens on whose local backend runs bubblewrap."""
    require_runtime("bubblewrap")
    data_dir = tmp_path_factory.mktemp("tes-output")
    proc = start_server(data_dir, "bubblewrap", TES_OUTPUT_TAIL_MAX="4096", **idp.settings())
    yield proc
    proc.stop()


def _as(idp: IdentityProvider, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {idp.token(user)}"}


def _submit(server: ServerProcess, headers: dict[str, str], *executors: dict[str, Any]) -> str:
    response = requests.post(f"{server.url}/tasks", json={"executors": list(executors)},
                             headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _state(server: ServerProcess, task_id: str, headers: dict[str, str]) -> str:
    response = requests.get(f"{server.url}/tasks/{task_id}", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["state"]


def _output(server: ServerProcess, task_id: str, headers: dict[str, str], path: str = "0/stdout",
            **params: str) -> requests.Response:
    return requests.get(f"{server.url}/tasks/{task_id}/executors/{path}", params=params,
                        headers=headers, timeout=TIMEOUT)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("line-", "err-"))]


def _last(text: str) -> int:
    """The number of the last complete ``line-N`` in ``text`` (0: none)."""
    numbers = [int(line[5:]) for line in text.split("\n")[:-1]  # the last one may be cut
               if line.startswith("line-") and line[5:].isdigit()]
    return numbers[-1] if numbers else 0


def test_a_running_executors_output_grows_and_a_planted_link_is_not_followed(server, idp):
    alice = _as(idp, "alice")
    task_id = _submit(server, alice, {**sh(COUNTING), "image": "alpine"})
    seen: dict[str, str] = {}

    def printed(after: int) -> bool:
        """Whether stdout's last line is numbered above ``after`` (keeps it in ``seen``)."""
        response = _output(server, task_id, alice, tail="100000")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/plain")
        assert len(response.content) <= 4096  # cut to TES_OUTPUT_TAIL_MAX
        seen["stdout"] = response.text
        return _last(response.text) > after

    wait_until(lambda: printed(0), 120, "the first line of a running executor")
    first = _last(seen["stdout"])
    if first < 400:  # all of it fits in 4096 bytes
        assert _lines(seen["stdout"])[0] == "line-1", seen["stdout"]
    wait_until(lambda: printed(first + 3), 120, "more lines while it runs")
    assert _state(server, task_id, alice) == "RUNNING"

    stderr = _output(server, task_id, alice, "0/stderr")
    assert stderr.status_code == 200 and "err-1\n" in stderr.text, stderr.text
    end = _output(server, task_id, alice, tail="6")
    assert end.status_code == 200 and 0 < len(end.text.encode()) <= 6, end.text
    assert end.text.endswith("\n"), end.text

    # Another user sees nothing of it; numbers are checked.
    other = _output(server, task_id, _as(idp, "bob"))
    assert other.status_code == 404 and "line-" not in other.text, other.text
    missing = _output(server, task_id, alice, "1/stdout")
    assert missing.status_code == 404 and "no executor 1" in missing.json()["msg"]
    bad = _output(server, task_id, alice, "one/stdout")
    assert bad.status_code == 400 and "index" in bad.json()["errors"], bad.text
    bad = _output(server, task_id, alice, tail="0")
    assert bad.status_code == 400 and "tail" in bad.json()["errors"], bad.text

    # A link where the runner keeps the output: refused, never followed.
    live = server.data_dir / "tasks" / task_id / "logs" / "executor-0.stdout"
    assert live.is_file()
    live.unlink()
    os.symlink("/etc/passwd", live)
    planted = _output(server, task_id, alice)
    assert planted.status_code == 404, planted.text
    assert "root:" not in planted.text and "link" in planted.json()["msg"], planted.text

    response = requests.post(f"{server.url}/tasks/{task_id}:cancel", headers=alice,
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    wait_until(lambda: _state(server, task_id, alice) in TERMINAL, 120, "the cancel")


def test_an_ended_executor_answers_from_its_stored_log(server, idp):
    alice = _as(idp, "alice")
    task_id = _submit(server, alice, sh("echo first-done"),
                      sh("echo to-file; echo second-done >&2", stdout="/out/file.txt"))
    wait_until(lambda: _state(server, task_id, alice) in TERMINAL, 120, "the task to end")
    assert _state(server, task_id, alice) == "COMPLETE"
    folder = server.data_dir / "tasks" / task_id  # removed right after the end is recorded
    wait_until(lambda: not folder.exists(), 60, "the task folder's removal")
    first = _output(server, task_id, alice)
    assert first.status_code == 200 and first.text == "first-done\n", first.text
    second = _output(server, task_id, alice, "1/stderr")
    assert second.status_code == 200 and second.text == "second-done\n", second.text
    assert _output(server, task_id, alice, "0/stdout", tail="5").text == "done\n"


def test_an_executor_with_its_own_stdout_file_has_no_live_output(server, idp):
    alice = _as(idp, "alice")
    task_id = _submit(server, alice, sh(COUNTING, stdout="/out/log.txt"))
    wait_until(lambda: _state(server, task_id, alice) == "RUNNING", 120, "the executor to run")
    response = _output(server, task_id, alice)
    assert response.status_code == 404, response.text
    assert "/out/log.txt" in response.json()["msg"], response.text
    requests.post(f"{server.url}/tasks/{task_id}:cancel", headers=alice, timeout=TIMEOUT)
    wait_until(lambda: _state(server, task_id, alice) in TERMINAL, 120, "the cancel")


LIVE_MAX = 64 * 1024
BIG = "seq 1 200000"
"""1,288,895 bytes: twenty times the live copy's cap in the ``capped`` server."""


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server keeping 64 KiB of each live output (and the task folders, to look at)."""
    require_runtime("bubblewrap")
    data_dir = tmp_path_factory.mktemp("tes-output-capped")
    proc = start_server(data_dir, "bubblewrap", TES_OUTPUT_LIVE_MAX=str(LIVE_MAX),
                        TES_LOCAL_KEEP_WORKDIRS="true")
    yield proc
    proc.stop()


def test_live_output_is_capped_on_disk_and_keeps_its_end(capped):
    """An executor printing 20 times the cap: the live copy on disk stays within the cap,
    the endpoint and the executor log answer its real last bytes, and an executor's own
    ``stdout`` file (the task's data) keeps every byte."""
    expected = "".join(f"{i}\n" for i in range(1, 200_001))
    task_id = _submit(
        capped, {},
        sh(f"{BIG}; echo printed >&2; while [ ! -e /tes-wd/go ]; do sleep 0.1; done"),
        sh(BIG, stdout="/tes-wd/full.txt"),
    )
    logs = capped.data_dir / "tasks" / task_id / "logs"

    def printed() -> bool:
        response = _output(capped, task_id, {}, "0/stderr")
        assert response.status_code == 200, response.text
        return response.text == "printed\n"

    wait_until(printed, 120, "executor 0 to print everything")
    assert _state(capped, task_id, {}) == "RUNNING"
    on_disk = sorted(path.name for path in logs.iterdir())
    assert on_disk[:2] == ["executor-0.stderr", "executor-0.stdout"], on_disk
    assert len(on_disk) == 3 and on_disk[2].startswith("executor-0.stdout."), on_disk
    assert sum(path.stat().st_size for path in logs.glob("executor-0.stdout*")) <= LIVE_MAX
    for tail in (10, 4096, LIVE_MAX // 2):  # across the two files, cut at any byte
        response = _output(capped, task_id, {}, tail=str(tail))
        assert response.status_code == 200, response.text
        assert response.text == expected[-tail:], (tail, response.text[-100:])
    # Following by offsets: from 0, the earliest byte kept; at the end, nothing more.
    response = _output(capped, task_id, {}, offset="0", tail="1000")
    first, after = (int(response.headers[h]) for h in ("X-Output-Offset", "X-Output-Next"))
    assert len(expected) - LIVE_MAX <= first < len(expected) - LIVE_MAX // 2, first
    assert response.text == expected[first:after] and after - first == 1000
    response = _output(capped, task_id, {}, offset=str(len(expected)))
    assert response.text == "" and response.headers["X-Output-Next"] == str(len(expected))
    for bad in ("-1", "x", "1" * 30):
        response = _output(capped, task_id, {}, offset=bad)
        assert response.status_code == 400 and "offset" in response.json()["errors"], bad

    (capped.data_dir / "tasks" / task_id / "tes-wd" / "go").touch()
    wait_until(lambda: _state(capped, task_id, {}) in TERMINAL, 120, "the task to end")
    task = requests.get(f"{capped.url}/tasks/{task_id}", params={"view": "FULL"},
                        timeout=TIMEOUT).json()
    assert task["state"] == "COMPLETE", task
    stored = task["logs"][-1]["logs"][0]["stdout"]
    assert stored and expected.endswith(stored), stored[-100:]
    assert (capped.data_dir / "tasks" / task_id / "tes-wd" / "full.txt").read_text() == expected
    assert sum(path.stat().st_size for path in logs.glob("executor-*")) <= 2 * LIVE_MAX
