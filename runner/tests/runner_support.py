"""Helpers for the tests of ``tes-runner run``: task folders, the command, its status.

Real runtimes (start them with ``bash scripts/test-services.sh`` and source the
``env.sh`` it writes): a runtime whose probe fails is skipped with its reason, unless
``TES_REQUIRE_RUNTIMES`` (comma list, as CI sets it) names it: then the test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tes_filetransfer.policy import AccessPolicy

from tes_runner.runtimes import RUNTIMES

REQUIRED = {n.strip() for n in os.environ.get("TES_REQUIRE_RUNTIMES", "").split(",") if n.strip()}
_PROBES: dict[str, str | None] = {}
S3_ENDPOINT = os.environ.get("TES_TEST_S3_ENDPOINT", "http://127.0.0.1:5000")


def require_runtime(name: str) -> None:
    """Skip unless runtime ``name`` works here (fail if TES_REQUIRE_RUNTIMES names it)."""
    if name not in _PROBES:
        _PROBES[name] = RUNTIMES[name].probe()
    reason = _PROBES[name]
    if reason is None:
        return
    if name in REQUIRED:
        pytest.fail(f"runtime {name} is required (TES_REQUIRE_RUNTIMES) but unusable: {reason}")
    pytest.skip(f"runtime {name} is not usable here: {reason}")


def sh(script: str, **fields: Any) -> dict[str, Any]:
    """An executor running ``sh -c SCRIPT`` in alpine (bubblewrap: the host's sh)."""
    return {"image": "alpine", "command": ["sh", "-c", script], **fields}


def task_dir_for(
    root: Path, task: dict[str, Any], runtime: str, *, allowed: list[Path] | None = None,
    **extra: Any,
) -> Path:
    """A task folder under ``root`` with its ``task.json``; files of ``allowed`` folders
    and loopback hosts are reachable."""
    task_id = task.setdefault("id", f"t{uuid.uuid4().hex[:12]}")
    folder = root / task_id
    folder.mkdir(parents=True)
    policy = AccessPolicy.build([str(p) for p in allowed or []], ["127.0.0.1", "localhost"])
    document = {"task": task, "attempt": 1, "runtime": runtime, "policy": policy.portable(),
                **extra}
    (folder / "task.json").write_text(json.dumps(document))
    return folder


def runner_env() -> dict[str, str]:
    """This environment with moto's S3 endpoint and test credentials."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "TES_FT_S3_ENDPOINT_URL": S3_ENDPOINT,
    }


def start_runner(task_dir: Path, *args: str) -> subprocess.Popen[str]:
    """``tes-runner run TASK_DIR`` as a child process (output captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tes_runner", "run", str(task_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=runner_env(),
    )


def run_runner(task_dir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``tes-runner run TASK_DIR`` to its end."""
    proc = start_runner(task_dir, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def status(task_dir: Path) -> dict[str, Any]:
    """The task's ``status.json``."""
    return json.loads((task_dir / "status.json").read_text())


def wait_for(condition: Any, what: str, timeout: float = 120) -> None:
    """Poll ``condition()`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
