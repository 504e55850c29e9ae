"""A task asking for GPUs (``resources.backend_parameters.gpus``, as the Batch backend
takes them) runs its executors with the node's GPUs: ``docker run --gpus all`` (podman:
the CDI device). This machine has no GPU, so the end-to-end test puts a recording
``docker`` in front of the real one: it logs each command line and drops ``--gpus all``
before running the real Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tes_runner.runtimes.base import ContainerSpec, requested_gpus
from tes_runner.runtimes.docker import DockerRuntime
from tes_runner.runtimes.podman import PodmanRuntime

from .runner_support import require_runtime, runner_env, sh, status, task_dir_for


def gpu_task(gpus: str | None) -> dict:
    resources = {"backend_parameters": {"gpus": gpus}} if gpus is not None else {}
    return {"executors": [sh("echo ran")], "resources": resources}


def test_requested_gpus_reads_the_backend_parameter() -> None:
    assert requested_gpus(gpu_task("2")) == 2
    assert requested_gpus(gpu_task(" 1 ")) == 1
    for none in (gpu_task(None), gpu_task("0"), gpu_task("two"), gpu_task("-1"), {}):
        assert requested_gpus(none) == 0
    assert requested_gpus({"resources": {"backend_parameters": ["gpus"]}}) == 0


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [(DockerRuntime, ["--gpus", "all"]), (PodmanRuntime, ["--device", "nvidia.com/gpu=all"])],
)
def test_the_engine_options_come_before_the_image(runtime, expected) -> None:
    engine = runtime(binary="/bin/false")
    spec = ContainerSpec(name="n", image="alpine", command=["--gpus", "x"], gpus=True)
    args = engine.build_run_args(spec)
    end = args.index("--")
    at = args.index(expected[0])
    assert args[at : at + 2] == expected and at < end
    assert args[end:] == ["--", "alpine", "--gpus", "x"]  # the task's words stay arguments
    plain = engine.build_run_args(ContainerSpec(name="n", image="alpine", command=["true"]))
    assert expected[0] not in plain


def _recording_docker(folder: Path, log: Path) -> Path:
    """A ``docker`` that logs its arguments, drops ``--gpus all`` and runs the real one."""
    real = shutil.which("docker")
    assert real, "docker is not installed"
    shim = folder / "docker"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(json.dumps(args) + '\\n')\n"
        "if '--gpus' in args:\n"
        "    at = args.index('--gpus')\n"
        "    del args[at:at + 2]\n"
        f"os.execv({real!r}, [{real!r}, *args])\n"
    )
    shim.chmod(0o755)
    return folder


@pytest.mark.parametrize("gpus", ["1", None])
def test_the_runner_runs_a_gpu_task_with_gpus_all(tmp_path: Path, gpus: str | None) -> None:
    require_runtime("docker")
    log = tmp_path / "docker-calls.jsonl"
    (tmp_path / "bin").mkdir()
    shims = _recording_docker(tmp_path / "bin", log)
    folder = task_dir_for(tmp_path / "tasks", gpu_task(gpus), "docker")
    env = {**runner_env(), "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "tes_runner", "run", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    final = status(folder)
    assert final["state"] == "COMPLETE", final
    assert final["log"]["logs"][0]["stdout"] == "ran\n"
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [args for args in runs if args and args[0] == "run"]
    assert len(runs) == 1, runs
    [args] = runs
    if gpus:
        at = args.index("--gpus")
        assert args[at + 1] == "all" and at < args.index("--")
    else:
        assert "--gpus" not in args
