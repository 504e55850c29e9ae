"""tes-batch's ``tes_provisioner`` hook (entry point ``batch-provision``).

Importing it imports no Azure SDK: servers with another backend pay nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tes_core import hookimpl
from tes_core.config import Settings

from .clients import DEFAULT_ARM_URL, AzureClients
from .request import VAULT_SUFFIXES

if TYPE_CHECKING:
    from .provisioner import BatchProvisioner

CLIENT_OPTIONS: dict[str, Any] = {}
"""Extra keyword arguments for every SDK client (tests: trust a fake's certificate)."""
VAULT_CLIENT_OPTIONS: dict[str, Any] = {}
"""Extra keyword arguments for ``SecretClient`` only."""


@hookimpl
def tes_provisioner(settings: Settings) -> BatchProvisioner | None:
    """Provisioning for ``TES_BACKEND=batch``; ``None`` for the other backends."""
    if settings.backend != "batch":
        return None
    from .provisioner import BatchProvisioner  # azure-core only where it is used

    extra = settings.plugin_setting("batch_provision_vault_suffixes")
    suffixes = VAULT_SUFFIXES + tuple(s.strip().lower() for s in extra.split(",") if s.strip())
    arm_url = settings.plugin_setting("batch_provision_arm_url", DEFAULT_ARM_URL).rstrip("/")
    return BatchProvisioner(
        AzureClients(arm_url=arm_url, options=dict(CLIENT_OPTIONS),
                     vault_options=dict(VAULT_CLIENT_OPTIONS)),
        vault_suffixes=suffixes,
    )
