"""Class 9: an executor's ``env`` values are not visible to other local users, and the
server's own environment does not reach the executor.

``ps`` (``/proc/<pid>/cmdline``) shows every process's arguments to every user of the
machine; the values used to be there (``docker run -e K=V``, ``bwrap --setenv K V``).
"""

from __future__ import annotations

import uuid

import pytest

from tests.local.support import Tes, executor_logs, processes_with, sh, wait_until
from tests.security.support import SERVER_SECRET, SERVER_SECRET_ENV, HostCanary, assert_no_leak

pytestmark = pytest.mark.timeout(180)


def test_env_values_not_on_any_command_line(attacked: Tes, canary: HostCanary) -> None:
    marker = f"env-secret-{uuid.uuid4().hex}"
    running = f"tes-env-probe-{uuid.uuid4().hex[:12]}"  # in the executor shell's own argv
    value = f"{marker} with spaces=and equals"
    script = (
        f'echo "seen=$TES_TASK_SECRET"; echo "server=${SERVER_SECRET_ENV}"; '
        f"cat {canary.file} 2>&1; sleep 3; :"
    )
    task_id = attacked.submit({
        "name": "env-visibility",
        "executors": [{**sh(script), "command": ["sh", "-c", script, running],
                       "env": {"TES_TASK_SECRET": value}}],
    })

    # While the executor runs, no process of this machine carries the value in its argv.
    wait_until(lambda: processes_with(running), 60, "the executor to start")
    assert processes_with(marker) == []

    task = attacked.wait(task_id, timeout=60)
    assert task["state"] == "COMPLETE", task
    stdout = executor_logs(task)[0]["stdout"]
    assert f"seen={value}\n" in stdout  # delivered intact
    assert "server=\n" in stdout  # the server's marker variable is not set in the executor
    assert SERVER_SECRET not in stdout
    assert_no_leak(task, canary=canary)
