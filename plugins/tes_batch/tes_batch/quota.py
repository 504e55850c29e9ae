"""The Batch account's quotas, read from Azure Resource Manager (the data plane does not
expose them), and the check that refuses at submit a node the account can never get.

``GET {arm}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/
batchAccounts/{account}`` (through azure-mgmt-batch's ``batch_account.get``, with the
server's ``DefaultAzureCredential``) returns ``properties.dedicatedCoreQuota``,
``lowPriorityCoreQuota``, ``dedicatedCoreQuotaPerVMFamilyEnforced``,
``dedicatedCoreQuotaPerVMFamily[{name, coreQuota}]``, ``poolQuota`` and
``activeJobAndJobScheduleQuota``. Accounts in user-subscription mode leave the core quotas
out (the subscription's quotas apply): nothing is checked then.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tes_core.config import ConfigError

if TYPE_CHECKING:
    from .sizing import Choice

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 600.0
"""Seconds nothing is checked after Resource Manager failed, before it is asked again."""

_RESOURCE_ID = re.compile(
    r"/subscriptions/(?P<sub>[0-9A-Fa-f-]{36})/resourceGroups/(?P<rg>[-\w.()]{1,90})"
    r"/providers/Microsoft\.Batch/batchAccounts/(?P<name>[a-z0-9]{3,24})",
    re.IGNORECASE,
)
_SIZE = re.compile(
    r"(?i)standard_(?P<series>[a-z]+)\d+(?P<suffix>[a-z]*)"
    r"(?P<extra>(?:_[a-z0-9]+?)*?)(?:_(?P<version>v\d+))?"
)


@dataclass(frozen=True)
class AccountId:
    """Where a Batch account lives in Resource Manager."""

    subscription: str
    resource_group: str
    name: str


def parse_resource_id(raw: str) -> AccountId | None:
    """The parts of ``TES_BATCH_ACCOUNT_RESOURCE_ID``; ``None`` when empty;
    :class:`ConfigError` when it is not a Batch account's resource id."""
    if not raw:
        return None
    found = _RESOURCE_ID.fullmatch(raw.strip().rstrip("/"))
    if not found:
        raise ConfigError(
            f"TES_BATCH_ACCOUNT_RESOURCE_ID={raw!r} is not a Batch account's resource id "
            "(/subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.Batch/"
            "batchAccounts/<account>)"
        )
    return AccountId(found["sub"], found["rg"], found["name"].lower())


def vm_family(size: str) -> str:
    """The quota family of a VM size as Batch names it, e.g. ``Standard_D4s_v3`` ->
    ``standardDSv3Family``, ``Standard_NC24ads_A100_v4`` -> ``standardNCADSA100v4Family``
    (compared without case; a ``family`` in the size table overrides this)."""
    found = _SIZE.fullmatch(size)
    if not found:
        return ""
    extra = (found["extra"] or "").replace("_", "")
    return (
        f"standard{found['series']}{found['suffix']}{extra}".upper().replace("STANDARD", "standard")
        + (found["version"] or "")
        + "Family"
    )


@dataclass(frozen=True)
class AccountQuotas:
    """What the account may ever hold (``None``: not stated, not checked)."""

    dedicated_cores: int | None = None
    low_priority_cores: int | None = None
    per_family_enforced: bool = False
    families: dict[str, int] = field(default_factory=dict)
    """Dedicated core quota by VM family, the family names in lower case."""
    pools: int | None = None
    jobs: int | None = None

    @classmethod
    def from_account(cls, account: Any) -> AccountQuotas:
        """From azure-mgmt-batch's ``BatchAccount``."""
        p = account.properties
        return cls(
            dedicated_cores=p.dedicated_core_quota,
            low_priority_cores=p.low_priority_core_quota,
            per_family_enforced=bool(p.dedicated_core_quota_per_vm_family_enforced),
            families={
                (q.name or "").lower(): int(q.core_quota or 0)
                for q in p.dedicated_core_quota_per_vm_family or ()
            },
            pools=p.pool_quota,
            jobs=p.active_job_and_job_schedule_quota,
        )

    def never_fits(self, choice: Choice, account: str) -> str | None:
        """Why no node of ``choice`` can ever run on the account, or ``None``."""
        size, cores = choice.size.name, choice.size.cores
        advice = (
            "request a quota increase for the Batch account (Azure portal: the "
            "account's Quotas page) or ask for a smaller node (cpu_cores, ram_gb, "
            "disk_gb, backend_parameters.vm_size)"
        )
        if self.pools is not None and self.pools < 1:
            return f"the Batch account {account} has a pool quota of 0: {advice}"
        if self.jobs is not None and self.jobs < 1:
            return f"the Batch account {account} has an active job quota of 0: {advice}"
        if choice.low_priority:
            checks = [("low-priority core quota (lowPriorityCoreQuota)", self.low_priority_cores)]
        else:
            checks = [("dedicated core quota (dedicatedCoreQuota)", self.dedicated_cores)]
            family = (choice.size.family or vm_family(size)).lower()
            if self.per_family_enforced and family in self.families:
                checks.append(
                    (
                        f"dedicated core quota of VM family {family} "
                        "(dedicatedCoreQuotaPerVMFamily)",
                        self.families[family],
                    )
                )
        for what, quota in checks:
            if quota is not None and quota < cores:
                return (
                    f"VM size {size} needs {cores} cores per node, but the Batch account "
                    f"{account}'s {what} is {quota}, so the task can never run: {advice}"
                )
        return None


class QuotaReader:
    """The account's quotas from Resource Manager, kept ``ttl`` seconds; after a failure,
    ``None`` (nothing checked, a warning logged) for :data:`RETRY_AFTER_FAILURE` s."""

    def __init__(
        self,
        account: AccountId,
        fetch: Callable[[AccountId], Any],
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self.fetch = fetch
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self._quotas: AccountQuotas | None = None

    def get(self) -> AccountQuotas | None:
        """The quotas, read again when older than ``ttl``."""
        with self._lock:
            now = self._clock()
            if now < self._until:
                return self._quotas
            try:
                self._quotas = AccountQuotas.from_account(self.fetch(self.account))
                self._until = now + self.ttl
                log.info("Batch account %s quotas: %s", self.account.name, self._quotas)
            except Exception as exc:  # Resource Manager down or refusing: check nothing
                log.warning(
                    "could not read the quotas of Batch account %s from Resource "
                    "Manager (tasks beyond them wait instead of failing): %s",
                    self.account.name,
                    str(exc).splitlines()[0] if str(exc) else exc,
                )
                self._quotas = None
                self._until = now + RETRY_AFTER_FAILURE
            return self._quotas

    def never_fits(self, choice: Choice) -> str | None:
        """Why ``choice`` can never run on the account, or ``None`` (also when the quotas
        are unknown)."""
        quotas = self.get()
        return quotas.never_fits(choice, self.account.name) if quotas else None


def arm_fetcher(arm_url: str, timeout: float) -> Callable[[AccountId], Any]:
    """``batch_account.get`` of azure-mgmt-batch on the server's ``DefaultAzureCredential``
    (the provisioning's clients), few retries and short timeouts (a submit waits on it)."""
    from .provision.clients import AzureClients

    clients = AzureClients(
        arm_url=arm_url,
        options={"retry_total": 2, "connection_timeout": timeout, "read_timeout": timeout},
    )

    def fetch(account: AccountId) -> Any:
        return clients.batch(account.subscription).batch_account.get(
            account.resource_group, account.name
        )

    return fetch
