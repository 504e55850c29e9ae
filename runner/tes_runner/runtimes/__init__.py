"""Container runtimes of the runner: Docker, podman, bubblewrap, Apptainer and Singularity.

Use :func:`select_runtime` to get the one this machine can run, then
``prepare_image``/``run``/``stop``/``remove`` (see :mod:`.base` for the contract).
"""

from .apptainer import ApptainerRuntime, SingularityRuntime
from .base import (
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    Mount,
    RuntimeOptions,
    RuntimeUnavailable,
)
from .bubblewrap import BubblewrapRuntime
from .cli import CliRuntime
from .detect import RUNTIMES, RuntimeChoice, choose_runtime, select_runtime, unknown_runtime
from .docker import DockerRuntime
from .podman import PodmanRuntime

__all__ = [
    "RUNTIMES",
    "ApptainerRuntime",
    "BubblewrapRuntime",
    "CliRuntime",
    "ContainerError",
    "ContainerResult",
    "ContainerRuntime",
    "ContainerSpec",
    "DockerRuntime",
    "Mount",
    "RuntimeOptions",
    "PodmanRuntime",
    "RuntimeChoice",
    "RuntimeUnavailable",
    "SingularityRuntime",
    "choose_runtime",
    "select_runtime",
    "unknown_runtime",
]
