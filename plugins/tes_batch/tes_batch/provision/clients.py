"""The azure-mgmt and Key Vault clients a provisioning request uses, on one credential."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_ARM_URL = "https://management.azure.com"


@dataclass
class AzureClients:
    """Builds the real SDK clients for one subscription.

    :param credential: an azure-core ``TokenCredential``; ``None``: the server's own
        ``DefaultAzureCredential`` (managed identity, workload identity, environment).
    :param arm_url: the Resource Manager endpoint (another cloud's, or a test's).
    :param options: keyword arguments for every client (``connection_verify``,
        ``retry_total``...).
    :param vault_options: more of them for ``SecretClient`` only.
    """

    credential: Any = None
    arm_url: str = DEFAULT_ARM_URL
    options: dict[str, Any] = field(default_factory=dict)
    vault_options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``SecretClient`` only."""
    polling_interval: float | None = None
    """Seconds between polls of a long-running operation when Azure's answer has no
    ``Retry-After`` (the SDKs' default: 30)."""

    def _credential(self) -> Any:
        if self.credential is None:
            from azure.identity import DefaultAzureCredential

            self.credential = DefaultAzureCredential()
        return self.credential

    def resources(self, subscription_id: str) -> Any:
        """``ResourceManagementClient`` (resource groups)."""
        from azure.mgmt.resource.resources import ResourceManagementClient

        return ResourceManagementClient(self._credential(), subscription_id, **self._arm())

    def storage(self, subscription_id: str) -> Any:
        """``StorageManagementClient`` (storage accounts, keys, file shares)."""
        from azure.mgmt.storage import StorageManagementClient

        return StorageManagementClient(self._credential(), subscription_id, **self._arm())

    def batch(self, subscription_id: str) -> Any:
        """``BatchManagementClient`` (Batch accounts, keys, name availability)."""
        from azure.mgmt.batch import BatchManagementClient

        return BatchManagementClient(self._credential(), subscription_id, **self._arm())

    def secrets(self, vault_url: str) -> Any:
        """``SecretClient`` of one vault."""
        from azure.keyvault.secrets import SecretClient

        return SecretClient(vault_url, self._credential(),
                            **{**self.options, **self.vault_options})

    def _arm(self) -> dict[str, Any]:
        interval = {} if self.polling_interval is None else {
            "polling_interval": self.polling_interval}
        return {"base_url": self.arm_url, "credential_scopes": [f"{self.arm_url}/.default"],
                **interval, **self.options}
