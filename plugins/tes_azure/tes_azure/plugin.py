"""The hooks of tes-azure: blob storage for the submitter plugins, Azure Monitor export."""

from __future__ import annotations

from tes_core import hookimpl
from tes_core.config import Settings
from tes_core.telemetry.exporters import AZURE_MONITOR

from .accounts import StorageAccounts
from .monitor import configure_azure_monitor


@hookimpl
def tes_blob_storage(settings: Settings) -> StorageAccounts | None:
    """The accounts ``TES_STORAGE_CONNECTION_STRING``, ``TES_STORAGE_ACCOUNT_URL`` and
    ``TES_STORAGE_CONNECTION_STRING_<NAME>`` name (see :mod:`tes_azure.accounts`)."""
    return StorageAccounts.from_settings(settings)


@hookimpl
def tes_configure_telemetry(settings: Settings) -> str | None:
    """Export traces and logs to Azure Monitor when a connection string is set."""
    return AZURE_MONITOR if configure_azure_monitor(settings) else None
