"""The backend's own settings, read from ``TES_AKS_*`` variables (see README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tes_core.config import ConfigError, PluginSettings, Settings

from .names import is_dns_label

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The namespace of the pod this runs in (its service account's), ``default`` outside
    a cluster: the server deployed on a cluster runs its tasks next to itself unless told."""
    try:
        return path.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


@dataclass(frozen=True)
class AksSettings:
    """What the operator configured for the Kubernetes backend."""

    namespace: str = "default"
    namespaces: tuple[str, ...] = ("default",)
    """Namespaces a task may pick with ``backend_parameters.namespace``."""
    kubeconfig: str = ""
    """A kubeconfig file; empty: ``$KUBECONFIG`` or ``~/.kube/config``, else in-cluster."""
    context: str = ""
    name_prefix: str = "tes-"
    coordinator_image: str = "tes-aks:0.1.0"
    filetransfer_image: str = "tes-filetransfer:0.1.0"
    coordinator_service_account: str = "tes-coordinator"
    service_accounts: tuple[str, ...] = ()
    """Service accounts a task may give its executors (``backend_parameters.service_account``)."""
    storage_class: str = ""
    default_disk_gb: float = 10.0
    shared_global_claim: str = ""
    """A PVC (ReadWriteMany, e.g. Azure Files) mounted at ``/tes-wd/shared-global``."""
    preemptible_toleration: str = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
    preemptible_node_selector: str = "kubernetes.azure.com/scalesetpriority=spot"
    zone_label: str = "topology.kubernetes.io/zone"
    max_attempts: int = 3
    image_pull_wait: float = 300.0
    """Seconds an executor may wait for its image before the task fails naming it."""
    max_gpus: int = 8
    request_timeout: float = 30.0
    poll_interval: float = 2.0
    """Seconds the coordinator waits before it lists again after a broken watch."""
    watch_timeout: float = 30.0
    """Seconds one watch of the coordinator lasts (it then looks again and watches on)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AksSettings:
        """Read the ``TES_AKS_*`` variables; raise :class:`ConfigError` naming a bad one."""

        reader = PluginSettings(settings, "aks")
        get, number = reader.text, reader.number

        def names(name: str, default: str = "") -> tuple[str, ...]:
            values = tuple(v.strip() for v in get(name, default).split(",") if v.strip())
            for value in values:
                if not is_dns_label(value):
                    raise ConfigError(f"TES_AKS_{name.upper()}: {value!r} is not a DNS-1123 label")
            return values

        namespace = get("namespace", own_namespace())
        if not is_dns_label(namespace):
            raise ConfigError(f"TES_AKS_NAMESPACE={namespace!r} is not a DNS-1123 label")
        prefix = get("name_prefix", "tes-")
        if not is_dns_label(prefix.rstrip("-") or "x") or len(prefix) > 10:
            raise ConfigError(
                f"TES_AKS_NAME_PREFIX={prefix!r}: use up to 10 lower-case letters, digits and '-'"
            )
        return cls(
            namespace=namespace,
            namespaces=tuple(dict.fromkeys((namespace, *names("namespaces")))),
            kubeconfig=get("kubeconfig"),
            context=get("context"),
            name_prefix=prefix,
            coordinator_image=get("coordinator_image", cls.coordinator_image),
            filetransfer_image=get("filetransfer_image", cls.filetransfer_image),
            coordinator_service_account=get(
                "coordinator_service_account", cls.coordinator_service_account
            ),
            service_accounts=names("service_accounts"),
            storage_class=get("storage_class"),
            default_disk_gb=number("default_disk_gb", "10", float, 0.001),
            shared_global_claim=get("shared_global_claim"),
            preemptible_toleration=get("preemptible_toleration", cls.preemptible_toleration),
            preemptible_node_selector=get(
                "preemptible_node_selector", cls.preemptible_node_selector
            ),
            zone_label=get("zone_label", cls.zone_label),
            max_attempts=int(number("max_attempts", "3", int, 1)),
            image_pull_wait=number("image_pull_wait", "300", float, 0),
            max_gpus=int(number("max_gpus", "8", int, 0)),
            request_timeout=number("request_timeout", "30", float, 1),
            poll_interval=number("poll_interval", "2", float, 0.05),
            watch_timeout=number("watch_timeout", "30", float, 1),
        )
