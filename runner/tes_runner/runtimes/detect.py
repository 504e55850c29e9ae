"""Choose the container runtime this machine can use."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

from .apptainer import ApptainerRuntime, SingularityRuntime
from .base import ContainerRuntime, RuntimeOptions, RuntimeUnavailable
from .bubblewrap import BubblewrapRuntime
from .docker import DockerRuntime
from .podman import PodmanRuntime

log = logging.getLogger(__name__)

RUNTIMES: dict[str, type[ContainerRuntime]] = {
    "docker": DockerRuntime,
    "podman": PodmanRuntime,
    "bubblewrap": BubblewrapRuntime,
    "apptainer": ApptainerRuntime,
    "singularity": SingularityRuntime,
}
"""Every runtime by name."""

AUTO = ("docker", "podman", "bubblewrap")
"""The runtimes ``"auto"`` tries, in this order (Apptainer and Singularity only when named:
they fetch images from registries on first use, which an operator should choose)."""

INSTALL_HINTS = {
    "docker": "install and start Docker (apt-get install docker.io)",
    "podman": "install podman (apt-get install podman runc)",
    "bubblewrap": "install bubblewrap (apt-get install bubblewrap)",
    "apptainer": "install Apptainer (https://apptainer.org/docs/admin/)",
    "singularity": "install SingularityCE (https://docs.sylabs.io/)",
}


def unknown_runtime(preference: str) -> str | None:
    """Why ``preference`` names no runtime (with the closest valid name), or ``None``."""
    wanted = (preference or "auto").strip().lower()
    if wanted == "auto" or wanted in RUNTIMES:
        return None
    choices = ["auto", *RUNTIMES]
    close = difflib.get_close_matches(wanted, choices, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"TES_LOCAL_RUNTIME={preference!r} is an unknown container runtime; {hint}"
        f"choose one of {', '.join(choices)}"
    )


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime :func:`choose_runtime` picked, and why (for the server's ready line)."""

    runtime: ContainerRuntime
    why: str


def select_runtime(
    preference: str = "auto", options: RuntimeOptions | None = None
) -> ContainerRuntime:
    """Return a ready runtime: the named one, or with ``"auto"`` the first usable one.

    See :func:`choose_runtime`, which also says why this one was chosen.
    """
    return choose_runtime(preference, options).runtime


def choose_runtime(
    preference: str = "auto", options: RuntimeOptions | None = None
) -> RuntimeChoice:
    """Pick a ready runtime: the named one, or with ``"auto"`` the first usable one.

    With ``options`` the runtime takes its limits and sandbox user from them, and must
    pass :meth:`ContainerRuntime.verify` so configured.

    ``"auto"`` tries docker, podman and bubblewrap in that order. Raises
    :class:`RuntimeUnavailable` with one message that says what to install
    when the wanted runtime (or, for ``"auto"``, every runtime) is unusable.
    """
    unknown = unknown_runtime(preference)
    if unknown:
        raise RuntimeUnavailable(unknown)
    wanted = (preference or "auto").strip().lower()
    names = list(AUTO) if wanted == "auto" else [wanted]
    reasons: dict[str, str] = {}
    for name in names:
        cls = RUNTIMES[name]
        reason = cls.probe()
        runtime = None
        if reason is None:
            runtime = cls.from_options(options) if options is not None else cls()
            reason = runtime.verify() if options is not None else None
        if runtime is not None and reason is None:
            log.info("container runtime: %s (asked for %s)", name, wanted)
            if runtime.limits_note:
                log.warning("%s", runtime.limits_note)
            return RuntimeChoice(runtime, _why(wanted, reasons))
        log.debug("container runtime %s is not usable: %s", name, reason)
        reasons[name] = reason
    if wanted == "auto":
        hints = [INSTALL_HINTS[name] for name in names]
        what = ", or ".join(hints)
        why = "; ".join(f"{name}: {reason}" for name, reason in reasons.items())
        raise RuntimeUnavailable(f"No container runtime found: {what}. Reasons: {why}")
    raise RuntimeUnavailable(
        f"Container runtime {wanted!r} is not usable: {reasons[wanted]}. "
        f"To use it, {INSTALL_HINTS[wanted]}; or set TES_LOCAL_RUNTIME=auto "
        f"to take the first of {', '.join(AUTO)} that works."
    )


def _why(wanted: str, skipped: dict[str, str]) -> str:
    if wanted != "auto":
        return f"TES_LOCAL_RUNTIME={wanted}"
    why = f"TES_LOCAL_RUNTIME=auto: the first of {', '.join(AUTO)} that works"
    return why + "".join(f"; not {name}: {reason}" for name, reason in skipped.items())
