"""Which VM size a task runs on: ``backend_parameters.vm_size`` when it names an allowed
size, else the cheapest size of the table that fits ``cpu_cores``, ``ram_gb``,
``disk_gb`` and ``backend_parameters.gpus``; ``preemptible`` picks low-priority nodes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tes_core.backends.base import UnsupportedParameterValue

from .settings import VmSize

PARAMETERS: dict[str, str] = {
    "vm_size": "Azure VM size of the node, e.g. 'Standard_D4s_v3'; one of the sizes the "
    "server allows (TES_BATCH_VM_SIZES); another is refused with backend_parameters_strict, "
    "else ignored (the cheapest fitting size is taken, and system_logs say so)",
    "gpus": "GPUs the node needs (a whole number); the cheapest allowed size with as many",
}
"""The ``resources.backend_parameters`` keys the backend takes, for service-info."""

_SIZE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,63}")


class NeverFits(ValueError):
    """No allowed VM size can ever run the task; the message says what it asked for."""


@dataclass(frozen=True)
class Choice:
    """The node a task attempt runs on."""

    size: VmSize
    low_priority: bool

    @property
    def price(self) -> float:
        """Price per hour of the node, from the size table."""
        return self.size.price(self.low_priority)

    def metadata(self) -> dict[str, str]:
        """What ``logs[].metadata`` says about the node (Cromwell reads the price)."""
        return {
            "vm_size": self.size.name,
            "vm_low_priority": "true" if self.low_priority else "false",
            "vm_price_per_hour_usd": f"{self.price:g}",
        }


def find_size(sizes: Sequence[VmSize], name: str) -> VmSize | None:
    """The allowed size of that name (case-insensitive), or ``None``."""
    wanted = name.strip().lower()
    return next((size for size in sizes if size.name.lower() == wanted), None)


def validate(parameters: Mapping[str, Any], sizes: Sequence[VmSize]) -> None:
    """Check ``vm_size`` and ``gpus``: ``ValueError`` for a malformed value,
    :class:`UnsupportedParameterValue` for a size the server does not allow."""
    gpus = parameters.get("gpus")
    if gpus not in (None, "") and not re.fullmatch(r"\d{1,2}", str(gpus).strip()):
        raise ValueError(f"backend_parameters.gpus={str(gpus)[:40]!r} is not a whole number "
                         "from 0 to 99")
    name = parameters.get("vm_size")
    if name in (None, ""):
        return
    if not _SIZE_NAME.fullmatch(str(name).strip()):
        raise ValueError(f"backend_parameters.vm_size={str(name)[:80]!r} is not a VM size "
                         "name (letters, digits and '_')")
    if find_size(sizes, str(name)) is None:
        allowed = ", ".join(size.name for size in sizes)
        raise UnsupportedParameterValue(
            "vm_size", f"backend_parameters.vm_size={str(name)!r} is not an allowed VM size "
                       f"(allowed: {allowed})")


def choose(document: Mapping[str, Any], sizes: Sequence[VmSize], *,
           dedicated: bool = False) -> Choice:
    """The node for a task document (``dedicated``: never low-priority, as after a
    preemption with ``TES_BATCH_PREEMPTED_DEDICATED``); :class:`NeverFits` when no allowed
    size can run it."""
    resources = document.get("resources") or {}
    parameters = resources.get("backend_parameters") or {}
    low_priority = bool(resources.get("preemptible")) and not dedicated
    cores = float(resources.get("cpu_cores") or 1)
    ram = float(resources.get("ram_gb") or 0)
    disk = float(resources.get("disk_gb") or 0)
    gpus = int(str(parameters.get("gpus") or 0).strip() or 0)
    named = parameters.get("vm_size")
    if named:
        size = find_size(sizes, str(named))
        if size is not None:
            return Choice(size, low_priority)
    fitting = [s for s in sizes
               if s.cores >= cores and s.ram_gb >= ram and s.disk_gb >= disk and s.gpus >= gpus]
    if not fitting:
        largest = ", ".join(f"{s.name} ({s.cores} cores, {s.ram_gb:g} GB RAM, "
                            f"{s.disk_gb:g} GB disk, {s.gpus} GPUs)" for s in sizes)
        raise NeverFits(
            f"no allowed VM size fits the task's cpu_cores={cores:g}, ram_gb={ram:g}, "
            f"disk_gb={disk:g}, gpus={gpus}; the allowed sizes are {largest}")
    best = min(fitting, key=lambda s: (s.price(low_priority), s.cores, s.ram_gb, s.name))
    return Choice(best, low_priority)
