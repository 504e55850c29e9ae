"""podman: daemonless containers, driven by the ``podman`` CLI (same flags as Docker).

Unlike Docker, podman 4 refuses a ``--workdir`` that does not exist in the
image; :meth:`PodmanRuntime.run` then runs again with an anonymous volume at
that path (podman copies any image content into it; ``remove`` deletes it).

On machines with hybrid cgroups podman needs ``runtime = "runc"`` and
``cgroup_manager = "cgroupfs"`` in the containers.conf that ``CONTAINERS_CONF``
points to (see scripts/test-services.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess

from .base import ContainerError, ContainerResult, ContainerSpec
from .cli import CliRuntime

_MISSING_WORKDIR = re.compile(r"workdir \S+ does not exist on container")

PROBE_TIMEOUT = 20.0
"""Seconds ``podman info`` gets in :meth:`PodmanRuntime.probe` (it may set up storage)."""


class PodmanRuntime(CliRuntime):
    """Runs executors with ``podman run``; containers live on under conmon, so attach works."""

    name = "podman"
    gpu_args = ("--device", "nvidia.com/gpu=all")
    """Every NVIDIA GPU, through the CDI specification ``nvidia-ctk cdi generate`` writes."""
    rm_options = ("--ignore",)
    """podman 4.3 ``rm -f`` with a name it does not know removes none of the others."""

    @classmethod
    def probe(cls) -> str | None:
        """``None`` when podman is installed and its storage and OCI runtime work, else why not."""
        binary = shutil.which("podman")
        if binary is None:
            return "podman is not installed (apt-get install podman runc)"
        try:
            result = subprocess.run(
                [binary, "info", "--format", "{{.Host.OCIRuntime.Name}}"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PROBE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return f"podman info did not answer within {PROBE_TIMEOUT:g} s"
        except OSError as exc:
            return f"cannot run {binary}: {exc}"
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            return "podman is installed but does not work here: " + (
                lines[-1] if lines else f"podman info exited {result.returncode}"
            )
        return None

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run ``spec``; a workdir missing from the image is made as an anonymous volume."""
        try:
            return self._run(spec)
        except ContainerError as exc:
            if not spec.workdir or not _MISSING_WORKDIR.search(str(exc)):
                raise
        self.remove(spec.name)
        return self._run(spec, ["--mount", f"type=volume,destination={spec.workdir}"])
