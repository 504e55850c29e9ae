"""Apptainer / Singularity: the exact ``exec`` command line and environment the runtime
builds (neither is installed here; where one is, test_runtimes.py runs it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tes_runner.runtimes import (
    RUNTIMES,
    ApptainerRuntime,
    ContainerError,
    ContainerSpec,
    Mount,
    RuntimeUnavailable,
    SingularityRuntime,
    choose_runtime,
)


def _spec(**changes: object) -> ContainerSpec:
    spec = ContainerSpec(
        name="tes-t1-1-0",
        image="quay.io/biocontainers/samtools:1.17--h00cdaf9_0",
        command=["samtools", "view", "-h", "/data/in.bam"],
        mounts=[
            Mount(Path("/scratch/t1/work/tes-wd"), "/tes-wd"),
            Mount(Path("/scratch/t1/work/tes-wd/shared/data"), "/data", read_only=True),
        ],
        workdir="/data",
        env={"THREADS": "4", "NOTE": "a b; $(rm -rf /)"},
        cpu_cores=2,
        ram_gb=4.0,
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def test_apptainer_exec_command_line() -> None:
    runtime = ApptainerRuntime(binary="/usr/bin/apptainer")
    assert runtime.build_args(_spec()) == [
        "/usr/bin/apptainer", "exec", "--containall", "--no-mount", "bind-paths",
        "--net", "--network", "none",
        "--bind", "/scratch/t1/work/tes-wd:/tes-wd:rw",
        "--bind", "/scratch/t1/work/tes-wd/shared/data:/data:ro",
        "--pwd", "/data",
        "docker://quay.io/biocontainers/samtools:1.17--h00cdaf9_0",
        "samtools", "view", "-h", "/data/in.bam",
    ]


def test_singularity_and_an_allowed_network() -> None:
    runtime = SingularityRuntime(binary="singularity")
    args = runtime.build_args(_spec(network=None, workdir=None, mounts=[]))
    assert args == [
        "singularity", "exec", "--containall", "--no-mount", "bind-paths",
        "docker://quay.io/biocontainers/samtools:1.17--h00cdaf9_0",
        "samtools", "view", "-h", "/data/in.bam",
    ]
    assert runtime.build_args(_spec(network="bridge", mounts=[]))[5:8] == [
        "--net", "--network", "bridge",
    ]


def test_env_goes_in_prefixed_variables_never_the_command_line() -> None:
    runtime = ApptainerRuntime(binary="apptainer")
    base = {"PATH": "/usr/bin", "APPTAINERENV_LEFTOVER": "x", "HOME": "/home/u"}
    env = runtime.exec_env(_spec().env, base)
    assert env == {
        "PATH": "/usr/bin", "HOME": "/home/u",
        "APPTAINERENV_THREADS": "4", "APPTAINERENV_NOTE": "a b; $(rm -rf /)",
    }
    assert not any("rm -rf" in arg for arg in runtime.build_args(_spec()))
    singularity = SingularityRuntime(binary="singularity").exec_env({"A": "1"}, {})
    assert singularity == {"SINGULARITYENV_A": "1"}
    with pytest.raises(ContainerError, match="letters, digits"):
        runtime.exec_env({"A-B": "1"}, {})
    with pytest.raises(ContainerError, match="NUL"):
        runtime.exec_env({"A": "x\0y"}, {})


@pytest.mark.parametrize("path", ["/data/a,b", "/data/a:b"])
def test_a_path_a_bind_cannot_carry_is_refused(path: str) -> None:
    runtime = ApptainerRuntime(binary="apptainer")
    spec = _spec(mounts=[Mount(Path("/scratch/t1/x"), path)])
    with pytest.raises(ContainerError, match="cannot bind"):
        runtime.build_args(spec)


@pytest.mark.parametrize("image", ["-v/:/host", "Alpine", "docker://alpine", "a b"])
def test_a_hostile_image_never_reaches_the_command_line(image: str) -> None:
    with pytest.raises(ContainerError, match="image"):
        ApptainerRuntime(binary="apptainer").build_args(_spec(image=image))


def test_chosen_only_by_name_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RUNTIMES["apptainer"] is ApptainerRuntime
    assert RUNTIMES["singularity"] is SingularityRuntime
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "apptainer is not installed" in (ApptainerRuntime.probe() or "")
    with pytest.raises(RuntimeUnavailable, match="install Apptainer"):
        choose_runtime("apptainer")
    with pytest.raises(RuntimeUnavailable) as info:
        choose_runtime("auto")
    assert "apptainer" not in str(info.value)  # auto never picks it


def test_limits_are_noted_not_applied() -> None:
    assert "cpu_cores" in (ApptainerRuntime.limits_note or "")
    assert "singularity" in (SingularityRuntime.limits_note or "")
