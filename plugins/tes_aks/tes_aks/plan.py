"""The plan the server hands a coordinator: one task attempt, everything it needs to run.

JSON in the coordinator container's ``TES_AKS_PLAN`` variable (see
:func:`tes_aks.manifests.coordinator_job`); the coordinator reads nothing else.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .names import base_name
from .params import placement
from .settings import AksSettings


def build_plan(
    task_id: str, document: dict[str, Any], attempt: int, conf: AksSettings, policy: dict[str, Any]
) -> dict[str, Any]:
    """The plan of ``attempt`` of the task; ``ValueError`` names a bad backend parameter."""
    place = placement(document, conf)
    resources = document.get("resources") or {}
    disk_gb = float(resources.get("disk_gb") or conf.default_disk_gb)
    return {
        "task": {**document, "id": task_id},
        "attempt": attempt,
        "base": base_name(conf.name_prefix, task_id, attempt),
        "namespace": place.namespace,
        "placement": asdict(place),
        "disk_gb": disk_gb,
        "storage_class": conf.storage_class,
        "shared_global_claim": conf.shared_global_claim,
        "filetransfer_image": conf.filetransfer_image,
        "policy": policy,
        "image_pull_wait": conf.image_pull_wait,
        "poll_interval": conf.poll_interval,
        "watch_timeout": conf.watch_timeout,
    }
