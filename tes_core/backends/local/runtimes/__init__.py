"""Container runtimes for the local backend: Docker, podman and bubblewrap.

Use :func:`select_runtime` to get the one this machine can run, then
``prepare_image``/``run``/``stop``/``remove`` (see :mod:`.base` for the contract).
"""

from .base import (
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    Mount,
    RuntimeUnavailable,
)
from .bubblewrap import BubblewrapRuntime
from .cli import CliRuntime
from .detect import RUNTIMES, RuntimeChoice, choose_runtime, select_runtime, unknown_runtime
from .docker import DockerRuntime
from .podman import PodmanRuntime

__all__ = [
    "RUNTIMES",
    "BubblewrapRuntime",
    "CliRuntime",
    "ContainerError",
    "ContainerResult",
    "ContainerRuntime",
    "ContainerSpec",
    "DockerRuntime",
    "Mount",
    "PodmanRuntime",
    "RuntimeChoice",
    "RuntimeUnavailable",
    "choose_runtime",
    "select_runtime",
    "unknown_runtime",
]
