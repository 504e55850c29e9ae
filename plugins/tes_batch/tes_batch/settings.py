"""The backend's own settings, read from ``TES_BATCH_*`` variables (see README.md).

Every value may be a Key Vault reference (``@Microsoft.KeyVault(...)``): the core resolves
those before this module reads them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tes_core.config import ConfigError, PluginSettings, Settings
from tes_core.telemetry.redact import register_secret

from .prices import DEFAULT_URL as DEFAULT_PRICES_URL
from .prices import region_of
from .provision.clients import DEFAULT_ARM_URL
from .quota import AccountId, parse_resource_id
from .registry import RegistryLogin, registry_from_settings
from .sharedglobal import SharedGlobalShare, share_from_settings

POOL_MODES = ("shared", "per-task")
"""``shared``: pools shared by size and node kind; ``per-task``: an auto-pool per attempt."""
DEFAULT_GPU_IMAGE = "microsoft-dsvm:ubuntu-hpc:2204"
"""The HPC image of the Data Science VM family: NVIDIA drivers, Docker and the NVIDIA
container toolkit installed."""
RUNTIMES = ("docker",)
"""Container runtimes the pools' container configuration provides."""

_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{0,15}")


@dataclass(frozen=True)
class VmSize:
    """One row of the size/price table: what a VM size offers and what it costs."""

    name: str
    cores: int
    ram_gb: float
    disk_gb: float
    price_per_hour_usd: float
    low_priority_price_per_hour_usd: float
    gpus: int = 0
    family: str = ""
    """The VM family its dedicated core quota is counted in (e.g. ``standardDSv3Family``);
    empty: derived from the name (:func:`tes_batch.quota.vm_family`)."""

    def price(self, low_priority: bool) -> float:
        """The price per hour of one node of this size."""
        return self.low_priority_price_per_hour_usd if low_priority else self.price_per_hour_usd


DEFAULT_VM_SIZES: tuple[VmSize, ...] = (
    VmSize("Standard_D2s_v3", 2, 8, 16, 0.096, 0.0192),
    VmSize("Standard_D4s_v3", 4, 16, 32, 0.192, 0.0384),
    VmSize("Standard_D8s_v3", 8, 32, 64, 0.384, 0.0768),
    VmSize("Standard_D16s_v3", 16, 64, 128, 0.768, 0.1536),
    VmSize("Standard_E2s_v3", 2, 16, 32, 0.126, 0.0252),
    VmSize("Standard_E4s_v3", 4, 32, 64, 0.252, 0.0504),
    VmSize("Standard_E8s_v3", 8, 64, 128, 0.504, 0.1008),
    VmSize("Standard_E16s_v3", 16, 128, 256, 1.008, 0.2016),
)
"""Sizes used when ``TES_BATCH_VM_SIZES`` is empty: pay-as-you-go Linux list prices of one
region (East US) at the time of writing. Set your own table for your region and prices."""


@dataclass(frozen=True)
class BatchSettings:
    """What the operator configured for the Azure Batch backend."""

    account_url: str
    """The Batch account's endpoint, e.g. ``https://myaccount.westeurope.batch.azure.com``."""
    account_name: str = ""
    account_key: str = field(default="", repr=False)
    """Shared key; empty: Azure AD through ``DefaultAzureCredential``."""
    vm_sizes: tuple[VmSize, ...] = DEFAULT_VM_SIZES
    runner_install: str = "tes-runner tes-filetransfer[all]"
    """pip arguments the pools' start task installs the runner with (names, versions or
    wheel URLs)."""
    node_image: str = "microsoft-dsvm:ubuntu-hpc:2204"
    """``publisher:offer:sku`` of the pools' marketplace image (one with Docker)."""
    node_agent_sku: str = "batch.node.ubuntu 22.04"
    runtime: str = "docker"
    max_attempts: int = 3
    """Attempts of a task whose node Batch preempts (the first run included)."""
    preempted_dedicated: bool = False
    """Run the attempts after a preemption on dedicated nodes."""
    pool_prefix: str = "tes"
    """First part of every pool and job id this server makes (several servers may share
    an account with different prefixes)."""
    max_nodes: int = 10
    """Upper bound of each pool's autoscale formula."""
    pool_idle: float = 1800.0
    """Seconds a pool no active task uses lives before the sweep deletes it."""
    refresh_interval: float = 5.0
    """Seconds between two reads of one task's status file for ``GET`` (per process)."""
    output_cache: float = 1.0
    """Seconds an answer of a running executor's live output is kept and given again to
    readers of the same stream (per process)."""
    sweep_interval: float = 60.0
    """Seconds between two sweeps (finished Batch tasks, idle pools)."""
    request_timeout: float = 60.0
    registry: RegistryLogin | None = None
    """The private container registry the pools log in to, if any."""
    shared_global: SharedGlobalShare | None = None
    """The Azure Files share behind ``/tes-wd/shared-global``; none: private per task."""
    prices_url: str = ""
    """The retail prices API; empty: the size table's prices only."""
    region: str = ""
    """The account's Azure region (``armRegionName``) the prices are asked for."""
    prices_ttl: float = 86400.0
    """Seconds a price from the API is kept."""
    account_resource_id: AccountId | None = None
    """The Batch account in Resource Manager, whose quotas are read; none: not checked."""
    arm_url: str = DEFAULT_ARM_URL
    quota_ttl: float = 3600.0
    """Seconds the account's quotas are kept."""
    pool_mode: str = "shared"
    """``shared`` pools, or ``per-task``: an auto-pool per attempt that goes with its job."""
    gpu_image: str = DEFAULT_GPU_IMAGE
    """``publisher:offer:sku[:version]`` of the pools of sizes with GPUs."""
    gpu_node_agent_sku: str = "batch.node.ubuntu 22.04"

    @property
    def shared_key(self) -> bool:
        """Whether requests are signed with the account's shared key (else Azure AD)."""
        return bool(self.account_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchSettings:
        """Read the ``TES_BATCH_*`` variables; raise :class:`ConfigError` naming a bad one."""

        plugin = PluginSettings(settings, "batch")
        get, number = plugin.text, plugin.number

        url = get("account_url").rstrip("/")
        if not url:
            raise ConfigError("TES_BATCH_ACCOUNT_URL is not set: the Batch account's endpoint, "
                              "e.g. https://myaccount.westeurope.batch.azure.com")
        if not re.fullmatch(r"https?://[^\s/?#]+", url):
            raise ConfigError(f"TES_BATCH_ACCOUNT_URL={url!r} is not an http(s) endpoint "
                              "without a path")
        key = get("account_key")
        if key:
            register_secret(key)  # masked in every log line, whatever logs it
        name = get("account_name") or _account_from_url(url)
        if key and not name:
            raise ConfigError("TES_BATCH_ACCOUNT_NAME is needed with TES_BATCH_ACCOUNT_KEY "
                              "(the endpoint does not name the account)")
        runtime = get("runtime", "docker").lower()
        if runtime not in RUNTIMES:
            raise ConfigError(f"TES_BATCH_RUNTIME={runtime!r} is not one of "
                              f"{', '.join(RUNTIMES)}")
        prefix = get("pool_prefix", "tes").lower()
        if not _PREFIX.fullmatch(prefix):
            raise ConfigError(f"TES_BATCH_POOL_PREFIX={prefix!r}: 1-16 lower-case letters, "
                              "digits and '-', starting with a letter or digit")
        image = _image(get("node_image", "microsoft-dsvm:ubuntu-hpc:2204"),
                       "TES_BATCH_NODE_IMAGE")
        mode = get("pool_mode", "shared").lower()
        if mode not in POOL_MODES:
            raise ConfigError(f"TES_BATCH_POOL_MODE={mode!r} is not one of "
                              f"{', '.join(POOL_MODES)}")
        return cls(
            account_url=url,
            account_name=name,
            account_key=key,
            vm_sizes=parse_vm_sizes(get("vm_sizes")),
            runner_install=get("runner_install", "tes-runner tes-filetransfer[all]"),
            node_image=image,
            node_agent_sku=get("node_agent_sku", "batch.node.ubuntu 22.04"),
            runtime=runtime,
            max_attempts=number("max_attempts", "3", int, 1),
            preempted_dedicated=_flag(get("preempted_dedicated", "false"),
                                      "TES_BATCH_PREEMPTED_DEDICATED"),
            pool_prefix=prefix,
            max_nodes=number("max_nodes", "10", int, 1),
            pool_idle=number("pool_idle", "1800", float, 0),
            refresh_interval=number("refresh_interval", "5", float, 0),
            output_cache=number("output_cache", "1", float, 0),
            sweep_interval=number("sweep_interval", "60", float, 0),
            request_timeout=number("request_timeout", "60", float, 1),
            registry=registry_from_settings(plugin),
            shared_global=share_from_settings(plugin),
            prices_url=_prices_url(get("prices_url", DEFAULT_PRICES_URL)),
            region=_region(get("region").lower() or region_of(url)),
            prices_ttl=number("prices_ttl", "86400", float, 1),
            account_resource_id=parse_resource_id(get("account_resource_id")),
            arm_url=_http_url(get("arm_url", DEFAULT_ARM_URL).rstrip("/"), "TES_BATCH_ARM_URL"),
            quota_ttl=number("quota_ttl", "3600", float, 1),
            pool_mode=mode,
            gpu_image=_image(get("gpu_image", DEFAULT_GPU_IMAGE), "TES_BATCH_GPU_IMAGE"),
            gpu_node_agent_sku=get("gpu_node_agent_sku", "batch.node.ubuntu 22.04"),
        )


def _image(image: str, variable: str) -> str:
    if len(image.split(":")) not in (3, 4) or not all(image.split(":")):
        raise ConfigError(f"{variable}={image!r} is not publisher:offer:sku[:version]")
    return image


def _http_url(raw: str, variable: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+", raw):
        raise ConfigError(f"{variable}={raw!r} is not an http(s) endpoint without a path")
    return raw


def _region(region: str) -> str:
    if not re.fullmatch(r"[a-z0-9]*", region):
        raise ConfigError(f"TES_BATCH_REGION={region!r} is not an Azure region name "
                          "(armRegionName, e.g. westeurope)")
    return region


def _prices_url(raw: str) -> str:
    if raw.lower() in ("", "off"):
        return ""
    if not re.fullmatch(r"https?://[^\s?#]+", raw):
        raise ConfigError(f"TES_BATCH_PRICES_URL={raw!r} is not an http(s) URL without a "
                          "query (or off)")
    return raw


def _flag(raw: str, variable: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{variable}={raw!r} is not true or false")
    return value in ("true", "1", "yes")


def _account_from_url(url: str) -> str:
    host = url.split("://", 1)[1].split(":", 1)[0]
    first = host.split(".", 1)[0]
    return first if ".batch." in host else ""


def parse_vm_sizes(raw: str) -> tuple[VmSize, ...]:
    """The size/price table from ``TES_BATCH_VM_SIZES``: a JSON list (inline, or the path
    of a JSON file) of objects with ``name``, ``cores``, ``ram_gb``, ``disk_gb``,
    ``price_per_hour_usd`` and optionally ``low_priority_price_per_hour_usd`` and ``gpus``;
    empty: :data:`DEFAULT_VM_SIZES`."""
    if not raw:
        return DEFAULT_VM_SIZES
    text = raw
    if not raw.lstrip().startswith("["):
        try:
            text = Path(raw).read_text()
        except OSError as exc:
            raise ConfigError(f"TES_BATCH_VM_SIZES: cannot read {raw!r}: {exc}") from None
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"TES_BATCH_VM_SIZES is not a JSON list: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise ConfigError("TES_BATCH_VM_SIZES must be a non-empty JSON list of sizes")
    sizes = []
    for index, row in enumerate(rows):
        where = f"TES_BATCH_VM_SIZES[{index}]"
        if not isinstance(row, dict):
            raise ConfigError(f"{where} is not an object")
        try:
            name = str(row["name"])
            price = float(row["price_per_hour_usd"])
            size = VmSize(
                name=name,
                cores=int(row["cores"]),
                ram_gb=float(row["ram_gb"]),
                disk_gb=float(row["disk_gb"]),
                price_per_hour_usd=price,
                low_priority_price_per_hour_usd=float(
                    row.get("low_priority_price_per_hour_usd", price)),
                gpus=int(row.get("gpus", 0)),
                family=str(row.get("family", "")),
            )
        except KeyError as exc:
            raise ConfigError(f"{where} lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{1,63}", name):
            raise ConfigError(f"{where}.name={name!r} is not a VM size name")
        if size.cores < 1 or size.ram_gb <= 0 or size.disk_gb < 0 or size.gpus < 0:
            raise ConfigError(f"{where}: cores, ram_gb must be above 0")
        sizes.append(size)
    names = [size.name.lower() for size in sizes]
    if len(set(names)) != len(names):
        raise ConfigError("TES_BATCH_VM_SIZES names a size twice")
    return tuple(sizes)
