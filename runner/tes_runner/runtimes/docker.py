"""Docker: executors run as containers of a Docker engine, driven by the ``docker`` CLI."""

from __future__ import annotations

import os
import shutil
import subprocess

from .cli import CliRuntime

PROBE_TIMEOUT = 5.0
"""Seconds the engine gets to answer ``docker version`` in :meth:`DockerRuntime.probe`."""


class DockerRuntime(CliRuntime):
    """Runs executors with ``docker run``; the engine is ``$DOCKER_HOST`` or the default socket."""

    name = "docker"

    @classmethod
    def probe(cls) -> str | None:
        """``None`` when a Docker engine (not just the client) answers, else why not."""
        binary = shutil.which("docker")
        if binary is None:
            return "the docker CLI is not installed (apt-get install docker.io)"
        where = os.environ.get("DOCKER_HOST") or "the default socket unix:///var/run/docker.sock"
        try:
            result = subprocess.run(
                [binary, "version", "--format", "{{.Server.Version}}"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PROBE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return (
                f"the docker CLI is installed but no Docker engine answered at {where} "
                f"within {PROBE_TIMEOUT:g} s; start dockerd"
            )
        except OSError as exc:
            return f"cannot run {binary}: {exc}"
        if result.returncode != 0 or not result.stdout.strip():
            detail = result.stderr.strip().splitlines()
            suffix = f" ({detail[0]})" if detail else ""
            return (
                f"the docker CLI is installed but no Docker engine answers at {where}; "
                f"start dockerd{suffix}"
            )
        return None
