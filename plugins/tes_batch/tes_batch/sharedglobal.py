"""``/tes-wd/shared-global`` from an Azure Files share (``TES_BATCH_SHARED_GLOBAL_*``): the
pools mount it (``mountConfiguration.azureFileShareConfiguration``) and the runner's
``task.json`` points ``shared_global`` at the mount."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from azure.batch import models
from tes_core.config import ConfigError, PluginSettings
from tes_core.telemetry.redact import register_secret

RELATIVE_MOUNT_PATH = "tes-shared-global"
"""Where the share is mounted, under the node's ``$AZ_BATCH_NODE_MOUNTS_DIR``."""
RUNNER_PATH = "$AZ_BATCH_NODE_MOUNTS_DIR/" + RELATIVE_MOUNT_PATH
"""``shared_global`` in ``task.json``: the runner expands the variable on the node."""
DEFAULT_MOUNT_OPTIONS = "-o vers=3.0,dir_mode=0777,file_mode=0777,sec=ntlmssp"
"""The Linux ``mount -t cifs`` options Batch's documentation gives for Azure Files."""

_SHARE_URL = re.compile(r"https://(?P<account>[a-z0-9]{3,24})\.file\.[a-z0-9.-]+/"
                        r"(?P<share>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])")
"""An Azure Files share URL: storage account (3-24) and share name (3-63)."""


@dataclass(frozen=True)
class SharedGlobalShare:
    """The Azure Files share every task sees at ``/tes-wd/shared-global``."""

    url: str
    """``https://<account>.file.core.windows.net/<share>`` (what provisioning reports as
    ``shared_global``)."""
    account_name: str
    account_key: str = field(repr=False)
    mount_options: str = DEFAULT_MOUNT_OPTIONS

    def key(self) -> dict[str, str]:
        """What tells pools apart (never the key)."""
        return {"url": self.url, "mount_options": self.mount_options}

    def mount(self) -> models.MountConfiguration:
        """The pool's mount of the share."""
        return models.MountConfiguration(
            azure_file_share_configuration=models.AzureFileShareConfiguration(
                account_name=self.account_name, azure_file_url=self.url,
                account_key=self.account_key, relative_mount_path=RELATIVE_MOUNT_PATH,
                mount_options=self.mount_options))


def share_from_settings(plugin: PluginSettings) -> SharedGlobalShare | None:
    """The share of ``TES_BATCH_SHARED_GLOBAL_URL`` / ``_ACCOUNT_KEY`` / ``_MOUNT_OPTIONS``;
    ``None`` without a URL; :class:`ConfigError` naming a bad setting."""
    url = plugin.text("shared_global_url").rstrip("/")
    key = plugin.text("shared_global_account_key")
    if key:
        register_secret(key)  # masked in every log line, whatever logs it
    if not url:
        if key:
            raise ConfigError("TES_BATCH_SHARED_GLOBAL_URL is needed with "
                              "TES_BATCH_SHARED_GLOBAL_ACCOUNT_KEY")
        return None
    found = _SHARE_URL.fullmatch(url)
    if not found:
        raise ConfigError(f"TES_BATCH_SHARED_GLOBAL_URL={url!r} is not an Azure Files share "
                          "URL https://<account>.file.core.windows.net/<share>")
    key = key or _key_of(plugin.settings.storage_connection_string, found["account"])
    if not key:
        raise ConfigError("TES_BATCH_SHARED_GLOBAL_ACCOUNT_KEY is needed with "
                          "TES_BATCH_SHARED_GLOBAL_URL (the storage account's key; may be a "
                          "Key Vault reference), unless TES_STORAGE_CONNECTION_STRING is "
                          "that account's")
    options = plugin.text("shared_global_mount_options", DEFAULT_MOUNT_OPTIONS)
    if "\n" in options or "'" in options:
        raise ConfigError("TES_BATCH_SHARED_GLOBAL_MOUNT_OPTIONS holds a newline or a quote")
    return SharedGlobalShare(url=url, account_name=found["account"], account_key=key,
                             mount_options=options)


def _key_of(connection_string: str, account: str) -> str:
    """The ``AccountKey`` of a storage connection string of ``account``; empty otherwise."""
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    if parts.get("AccountName", "").lower() != account.lower():
        return ""
    return parts.get("AccountKey", "")
