"""A restart is not a failure: SIGTERM to ``tes-server serve`` hands its tasks over.

Three tasks are busy when the server gets SIGTERM: one runs ``sleep`` in its
container, one stages an input from a store that accepts connections and never
answers, one uploads its output to such a store. The server must be gone within
``TES_SHUTDOWN_GRACE`` having handed over (exit status 0, not the watchdog's 1);
started again, with the store back, every task ends COMPLETE and no executor ran
twice (each appends ``start``/``end`` lines to one journal file). A bubblewrap
sandbox cannot outlive its server: that task ends SYSTEM_ERROR saying so, the
others still complete.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from tes_filetransfer.testing import HangingStore

from tests.local.support import (
    ENGINES,
    Tes,
    containers_of,
    require_runtime,
    sh,
    start_server,
    system_logs,
    token,
    wait_until,
)
from tests.servers import TERMINAL

pytestmark = pytest.mark.timeout(240)

GRACE = 10


def _journal(path: Path) -> Counter:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


@pytest.mark.parametrize("runtime", ["docker", "podman", "bubblewrap"])
def test_sigterm_hands_running_staging_and_uploading_tasks_over(
    runtime: str, tmp_path: Path
) -> None:
    require_runtime(runtime)
    journal = f"handover-{token()}.log"
    log = f"/tes-wd/shared-global/{journal}"
    data = tmp_path / "data"
    server = start_server(data, runtime, TES_LOCAL_MAX_TASKS="3",
                          TES_SHUTDOWN_GRACE=str(GRACE))
    tes = Tes(server, runtime)
    host_journal = data / "shared-global" / journal
    with HangingStore() as inputs, HangingStore() as outputs:
        jobs = {
            "running": {"executors": [sh(f"echo start running >> {log}; sleep 4; "
                                         f"echo end running >> {log}")]},
            "staging": {
                "inputs": [{"url": f"{inputs.url}/in.txt", "path": "/data/in.txt"}],
                "executors": [sh(f"echo start staging >> {log}; cat /data/in.txt >> {log}")],
            },
            "uploading": {
                "executors": [sh(f"echo start uploading >> {log}; echo result > /out/r.txt")],
                "outputs": [{"url": f"{outputs.url}/r.txt", "path": "/out/r.txt"}],
            },
        }
        ids = {name: tes.submit({"name": name, **job}) for name, job in jobs.items()}
        wait_until(lambda: _journal(host_journal)["start running"] and inputs.accepted
                   and outputs.accepted, 60, "a running, a staging and an uploading task")

        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        try:
            status = server.proc.wait(GRACE + 1)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {GRACE + 1} s after SIGTERM:\n{server.log()}")
        assert status == 0, f"not handed over in time (status {status}):\n{server.log()}"
        if runtime in ENGINES:
            assert containers_of(runtime, ids["running"]), "the container outlives the server"

        inputs.answer({"/in.txt": b"staged\n"})
        outputs.answer()
        server.restart()
        final = {name: tes.wait(task_id, TERMINAL, timeout=90) for name, task_id in ids.items()}
        server.stop()
        lines = _journal(host_journal)
        for name in jobs:
            assert lines[f"start {name}"] == 1, (name, lines)
        for name in ("staging", "uploading"):  # resumed, never counted as a failure
            assert final[name]["state"] == "COMPLETE", (name, system_logs(final[name]))
            assert len(final[name]["logs"]) == 1, "the same attempt went on"
        assert lines["staged"] == 1
        assert outputs.received.get("/r.txt") == b"result\n"
        running = final["running"]
        if runtime in ENGINES:
            assert running["state"] == "COMPLETE", system_logs(running)
            assert "re-attached" in system_logs(running)
            assert lines["end running"] == 1
        else:
            assert running["state"] == "SYSTEM_ERROR", system_logs(running)
            assert "cannot outlive its worker" in system_logs(running)
