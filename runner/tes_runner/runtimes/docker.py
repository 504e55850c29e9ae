"""Docker: executors run as containers of a Docker engine, driven by the ``docker`` CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from .cli import CliRuntime

PROBE_TIMEOUT = 5.0
"""Seconds the engine gets to answer ``docker version`` in :meth:`DockerRuntime.probe`."""
DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_socket() -> str | None:
    """The Unix socket the docker CLI talks to, when that is plain to see: ``DOCKER_HOST``
    (``unix://``) or the default socket, with no CLI context chosen; ``None`` otherwise."""
    if os.environ.get("DOCKER_CONTEXT"):
        return None
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        if "currentContext" in config.read_text(errors="replace"):
            return None
    except OSError:
        pass  # no CLI configuration: the CLI uses DOCKER_HOST or the default socket
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    return host[len("unix://"):] if host.startswith("unix://") else None


def engine_pings(path: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the engine at the Unix socket ``path`` answers ``GET /_ping`` with ``OK``:
    about a millisecond, where starting the docker CLI takes 30 to 100 ms."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
                if len(answer) > 65536:
                    return False
    except OSError:
        return False
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n", 1)[0] \
        and body.strip() == b"OK"


class DockerRuntime(CliRuntime):
    """Runs executors with ``docker run``; the engine is ``$DOCKER_HOST`` or the default socket."""

    name = "docker"
    gpu_args = ("--gpus", "all")
    """Every GPU of the node (the NVIDIA container toolkit; a GPU task gets a node of its own)."""

    @classmethod
    def probe(cls) -> str | None:
        """``None`` when a Docker engine (not just the client) answers, else why not.

        Asks the engine's socket directly when it is plain which one the CLI uses (each
        ``tes-runner run`` probes once); else, or when that fails, ``docker version``,
        whose answer says why.
        """
        binary = shutil.which("docker")
        if binary is None:
            return "the docker CLI is not installed (apt-get install docker.io)"
        path = engine_socket()
        if path is not None and engine_pings(path):
            return None
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
