"""Class 3: a bubblewrap executor has no privilege over the host.

It used to run as root with nearly every capability: it could remount the host's
``/etc`` read-write, write to it, and read ``/etc/shadow`` without any input. Now it is
an unprivileged host user with no capabilities, sees only the host paths programs
need (read-only), and the runtime refuses to start when that cannot be had.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tes_runner.runtimes import RuntimeOptions, RuntimeUnavailable, select_runtime
from tes_runner.runtimes.bubblewrap import BubblewrapRuntime, _privilege_problem

from tests.local.support import Tes, executor_logs, require_runtime, start_server
from tests.security.support import HostCanary, assert_no_leak, server_canary_env

pytestmark = pytest.mark.timeout(180)

ATTEMPTS = {
    "remount-etc": "mount -o remount,rw /etc",
    "remount-usr": "mount -o remount,rw /usr",
    "bind-host-fs": "mount --bind / /tmp",
    "write-etc": "echo pwned > /etc/{marker}",
    "write-etc-passwd": "echo pwned >> /etc/passwd",
    "write-usr": "echo pwned > /usr/{marker}",
    "read-shadow": "cat /etc/shadow",
    "read-canary": "cat {canary}",
    "new-userns": "unshare -U true",
    "userns-remount": "unshare -Ur mount -o remount,rw /usr",
    "list-etc-ssh": "ls /etc/ssh",
}


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A real server on bubblewrap, with the marker secret in its environment."""
    require_runtime("bubblewrap")
    data_dir = tmp_path_factory.mktemp("tes-sandbox")
    server = start_server(data_dir, "bubblewrap", **server_canary_env())
    yield Tes(server, "bubblewrap")
    server.stop()


def test_executor_cannot_touch_the_host(sandboxed: Tes, canary: HostCanary) -> None:
    marker = f"tes-pwned-{uuid.uuid4().hex[:12]}"
    lines = [
        f'if {cmd.format(marker=marker, canary=canary.file)} >/dev/null 2>&1; '
        f'then echo "{name}: DONE"; else echo "{name}: refused"; fi'
        for name, cmd in ATTEMPTS.items()
    ]
    lines.append("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Uid)' /proc/self/status")
    lines.append("head -c 64 /etc/shadow 2>&1; true")
    task = sandboxed.run({
        "name": "sandbox-escape",
        "executors": [{"image": "alpine", "command": ["sh", "-c", "\n".join(lines)]}],
    })
    assert task["state"] == "COMPLETE", task
    stdout = executor_logs(task)[0]["stdout"]
    for name in ATTEMPTS:
        assert f"{name}: refused" in stdout, stdout
    status = dict(
        line.split(":", 1) for line in stdout.splitlines() if line.startswith(("Cap", "No", "Uid"))
    )
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap].strip(), 16) == 0, (cap, status)
    assert status["NoNewPrivs"].strip() == "1"
    assert "0" not in status["Uid"].split()
    assert "\nroot:" not in stdout  # no line of /etc/shadow
    for where in (Path("/etc") / marker, Path("/usr") / marker):
        assert not where.exists()
    assert_no_leak(task, canary=canary)


def test_environment_reaches_no_privileged_step(sandboxed: Tes) -> None:
    """The executor's env (LD_PRELOAD and the like) is set only once privileges are gone.

    ``setpriv`` runs with the capabilities to change user; a task-chosen ``LD_PRELOAD``
    in its environment would run the task's code with them. ``LD_DEBUG=libs`` makes the
    dynamic loader name every program it starts: neither ``setpriv`` nor the shell that
    drops into the command may be among them, the command itself must.
    """
    task = sandboxed.run({
        "executors": [{
            "image": "alpine", "command": ["sh", "-c", "echo \"$A_B\" \"$HOME\""],
            "env": {"LD_DEBUG": "libs", "A_B": "it's \"quoted\"\nline two", "HOME": "/h"},
        }],
    })
    assert task["state"] == "COMPLETE", task
    log = executor_logs(task)[0]
    assert "initialize program: sh" in log["stderr"], log  # LD_DEBUG reached the command
    assert "setpriv" not in log["stderr"], log
    assert log["stdout"] == "it's \"quoted\"\nline two /h\n"


def test_task_folders_still_writable(sandboxed: Tes) -> None:
    """The unprivileged executor writes its task's folders, also those the server made."""
    task = sandboxed.run({
        "executors": [
            {"image": "alpine", "command": ["sh", "-c", "echo one > /vol/a"],
             "workdir": "/vol/work"},
            {"image": "alpine", "command": ["sh", "-c", "cat /vol/a; pwd; touch here"],
             "workdir": "/vol/work2", "stdout": "/vol/logs/out.txt"},
            {"image": "alpine", "command": ["sh", "-c",
             "cat /vol/logs/out.txt && echo more > /vol/logs/extra.txt && echo wrote"]},
        ],
        "volumes": ["/vol"],
    })
    assert task["state"] == "COMPLETE", task
    assert executor_logs(task)[2]["stdout"] == "one\n/vol/work2\nwrote\n"


def test_refuses_a_sandbox_that_keeps_privileges() -> None:
    options = RuntimeOptions(sandbox_uid=0, sandbox_gid=0, pids_limit=0)
    if os.geteuid() == 0:
        assert "must not be 0" in (BubblewrapRuntime(sandbox_uid=0).verify() or "")
        require_runtime("bubblewrap")
        with pytest.raises(RuntimeUnavailable, match="must not be 0"):
            select_runtime("bubblewrap", options)
    def problem(text: str, server_is_root: bool = True) -> str:
        return _privilege_problem(text, server_is_root) or ""

    no_caps = "CapEff:\t0\nCapPrm:\t0\nCapBnd:\t0\nCapAmb:\t0\nCapInh:\t0\nNoNewPrivs:\t1\n"
    root_caps = no_caps.replace("CapEff:\t0", "CapEff:\t000001ffffffffff")
    may_gain = no_caps.replace("NoNewPrivs:\t1", "NoNewPrivs:\t0")
    identity = "         0          0 4294967295\n"
    nobody = "Uid:\t65534\t65534\t65534\t65534\n"
    assert "capabilities" in problem(root_caps + nobody + identity)
    assert "capabilities" in problem(root_caps + nobody, server_is_root=False)
    assert "gain" in problem(may_gain + nobody + identity)
    assert "root" in problem(no_caps + "Uid:\t0\t0\t0\t0\n" + identity)
    userns = no_caps + "Uid:\t0\t0\t0\t0\n         0          0          1\n"
    assert "user namespace" in problem(userns)
    assert problem(no_caps + nobody + identity) == ""
    assert problem(userns, server_is_root=False) == ""  # a non-root server cannot map to root
