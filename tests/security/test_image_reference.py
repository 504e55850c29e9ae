"""Class 10: an image reference that an engine would read as an option (``-v/:/host``,
``--privileged``) or that is no reference at all never reaches an engine's arguments.

The API refuses it with a 400 naming ``executors.N.image``; and because a stored or
resumed task skips the API, every runtime refuses it again before it starts any
process (a ``ContainerError``, which the runner reports as SYSTEM_ERROR).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tes_runner.images import image_reference_problem
from tes_runner.runtimes import (
    RUNTIMES,
    ContainerError,
    ContainerSpec,
)

from tests.api.support import NO_RUNTIME, assert_error, post_task
from tests.security.support import HostCanary, assert_no_leak, server_canary_env
from tests.servers import ServerProcess, server_env

HOSTILE = [
    "-v/:/host",
    "--privileged",
    "--volume=/:/host",
    "-",
    "Alpine",
    "a b",
    "alpine --privileged",
    "alpine\n--privileged",
    "alpine:",
    "ubuntu@sha256:abc",
    "a//b",
    "x" * 300,
]

GOOD = [
    "alpine",
    "ubuntu:22.04",
    "quay.io/biocontainers/samtools:1.17--h00cdaf9_0",
    "ghcr.io/org/img@sha256:" + "0123456789abcdef" * 4,
    "localhost:5000/x/y:tag",
    "docker.io/library/ubuntu",
    "biocontainers/bwa:v0.7.17_cv1",
    "quay.io/broadinstitute/ncbi-tools:2.10.7.10",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that never runs a task: only its answers to creates matter here."""
    data_dir = tmp_path_factory.mktemp("tes-image-ref")
    proc = ServerProcess(
        data_dir, server_env(data_dir, **NO_RUNTIME, **server_canary_env())
    ).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("image", HOSTILE)
def test_api_refuses_hostile_image(
    server: ServerProcess, image: str, canary: HostCanary
) -> None:
    task = {"executors": [
        {"image": "alpine", "command": ["true"]},
        {"image": image, "command": ["sh", "-c", f"cat {canary.file}"]},
    ]}
    body = assert_error(post_task(server.url, task), 400, "executors.1.image")
    assert_no_leak(body, canary=canary)


@pytest.mark.parametrize("image", GOOD)
def test_real_client_images_pass(image: str) -> None:
    assert image_reference_problem(image) is None


def _forbidden(*args: Any, **kwargs: Any) -> None:
    raise AssertionError(f"an engine process was started: {args[:1]}")


@pytest.mark.parametrize("runtime_name", list(RUNTIMES))
@pytest.mark.parametrize("image", ["-v/:/host", "--privileged", "Alpine", "a b"])
def test_runtime_refuses_stored_hostile_image(
    runtime_name: str, image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a resumed task does: straight to ``prepare_image``/``run``, no API in between."""
    runtime = RUNTIMES[runtime_name]()
    monkeypatch.setattr(subprocess, "Popen", _forbidden)
    spec = ContainerSpec(name="tes-image-ref-test", image=image, command=["true"])
    with pytest.raises(ContainerError, match="image"):
        runtime.prepare_image(image)
    with pytest.raises(ContainerError, match="image"):
        runtime.run(spec)
