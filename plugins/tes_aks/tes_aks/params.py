"""``resources.backend_parameters``, ``preemptible`` and ``zones``: where a task's pods go.

Every value a task gives is checked here, before anything is sent to Kubernetes: the
namespace and the service account must be ones the operator allows, node selector keys
and values must be valid label syntax, the GPU count a small integer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .names import is_dns_label, is_label_value
from .settings import AksSettings

PARAMETERS: dict[str, str] = {
    "namespace": "Kubernetes namespace of the task's pods, one the operator allows "
    "(TES_AKS_NAMESPACES)",
    "node_selector": "node labels the executors need, 'key=value,key2=value2'",
    "service_account": "service account of the executor pods, one the operator allows "
    "(TES_AKS_SERVICE_ACCOUNTS); without it executors get no API token",
    "gpu": "NVIDIA GPUs per executor (nvidia.com/gpu requests and limits)",
}
"""The ``resources.backend_parameters`` keys the backend takes, for service-info."""

_LABEL_KEY = re.compile(
    r"^(?:(?=.{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
)
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class Placement:
    """Where and as whom a task's pods run."""

    namespace: str
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    zone_label: str = "topology.kubernetes.io/zone"
    service_account: str | None = None
    gpus: int = 0


def parse_selector(text: str, what: str) -> dict[str, str]:
    """``'k=v,k2=v2'`` as a dict, every key and value valid label syntax, or ``ValueError``."""
    result: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL_KEY.match(key) or not is_label_value(value):
            raise ValueError(f"{what}: {part[:80]!r} is not key=value with a valid label key "
                             "and value")
        result[key] = value
    return result


def parse_toleration(text: str) -> dict[str, str] | None:
    """``'key=value:Effect'`` (or ``'key:Effect'``) as a toleration; ``None`` for ``''``."""
    if not text:
        return None
    rest, _, effect = text.rpartition(":")
    key, sep, value = rest.partition("=")
    if not _LABEL_KEY.match(key) or effect not in _TAINT_EFFECTS or (
            sep and not is_label_value(value)):
        raise ValueError(f"{text!r} is not key=value:Effect (Effect: {', '.join(_TAINT_EFFECTS)})")
    if sep:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def validate(parameters: Mapping[str, Any], conf: AksSettings) -> None:
    """Check every known backend parameter; ``ValueError`` names the first bad one."""
    placement({"resources": {"backend_parameters": dict(parameters)}}, conf)


def placement(document: Mapping[str, Any], conf: AksSettings) -> Placement:
    """The placement of a task from its resources; ``ValueError`` names a bad parameter."""
    resources = document.get("resources") or {}
    given = {k: str(v).strip() for k, v in (resources.get("backend_parameters") or {}).items()
             if v not in (None, "")}
    namespace = given.get("namespace", conf.namespace)
    if namespace not in conf.namespaces:
        raise ValueError(f"backend_parameters.namespace={namespace[:80]!r} is not allowed "
                         f"(allowed: {', '.join(conf.namespaces)})")
    try:
        selector = parse_selector(given.get("node_selector", ""), "node_selector")
    except ValueError as exc:
        raise ValueError(f"backend_parameters.{exc}") from None
    account = given.get("service_account")
    if account is not None and (account not in conf.service_accounts
                                or not is_dns_label(account)):
        allowed = ", ".join(conf.service_accounts) or "none"
        raise ValueError(f"backend_parameters.service_account={account[:80]!r} is not "
                         f"allowed (allowed: {allowed})")
    gpus = 0
    if "gpu" in given:
        text = given["gpu"]
        if not text.isdigit() or int(text) > conf.max_gpus:
            raise ValueError(f"backend_parameters.gpu={text[:80]!r} is not a whole number "
                             f"from 0 to {conf.max_gpus}")
        gpus = int(text)
    tolerations: list[dict[str, str]] = []
    if resources.get("preemptible"):
        selector = {**parse_selector(conf.preemptible_node_selector,
                                     "TES_AKS_PREEMPTIBLE_NODE_SELECTOR"), **selector}
        toleration = parse_toleration(conf.preemptible_toleration)
        if toleration:
            tolerations.append(toleration)
    zones = [str(z) for z in resources.get("zones") or () if str(z)]
    bad = [z for z in zones if not is_label_value(z)]
    if bad:
        raise ValueError(f"resources.zones: {bad[0][:80]!r} is not a valid zone name")
    return Placement(namespace=namespace, node_selector=selector, tolerations=tolerations,
                     zones=zones, zone_label=conf.zone_label, service_account=account, gpus=gpus)
