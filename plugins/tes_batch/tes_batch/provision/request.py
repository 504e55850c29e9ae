"""The body of ``POST /provision`` for Azure Batch, checked against Azure's naming rules.

Every field is named in the 400 that refuses it; a field this module does not know is
refused too (no secret is ever taken: the server uses its own credential).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from tes_core.errors import BadRequest

DEFAULT_SHARE = "shared-global"
DEFAULT_SHARE_QUOTA_GIB = 100
DEFAULT_STORAGE_SECRET = "tes-storage-connection-string"
DEFAULT_BATCH_SECRET = "tes-batch-account-key"
VAULT_SUFFIXES = ("vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net",
                  "vault.microsoftazure.de")
"""Key Vault's DNS suffixes in Azure's clouds: the server sends its token to no other host
(unless the operator adds one with ``TES_BATCH_PROVISION_VAULT_SUFFIXES``)."""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
_REGION = re.compile(r"^[a-z][a-z0-9]{1,39}$")
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{1,90}$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_SHARE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$")
_SECRET = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_FIELDS = {"subscription_id", "region", "resource_group", "storage_account", "batch_account",
           "file_share", "share_quota_gib", "key_vault"}
_VAULT_FIELDS = {"url", "storage_secret", "batch_secret"}


@dataclass(frozen=True)
class KeyVaultTarget:
    """Where to keep the accounts' keys, and under which secret names."""

    url: str
    storage_secret: str = DEFAULT_STORAGE_SECRET
    batch_secret: str = DEFAULT_BATCH_SECRET


@dataclass(frozen=True)
class BatchProvisionRequest:
    """A checked request."""

    subscription_id: str
    region: str
    resource_group: str
    storage_account: str
    batch_account: str
    file_share: str = DEFAULT_SHARE
    share_quota_gib: int = DEFAULT_SHARE_QUOTA_GIB
    key_vault: KeyVaultTarget | None = None

    def to_dict(self) -> dict[str, Any]:
        """As stored (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> BatchProvisionRequest:
        """Back from :meth:`to_dict`."""
        vault = stored.get("key_vault")
        return cls(**{**stored, "key_vault": KeyVaultTarget(**vault) if vault else None})


def parse_request(body: dict[str, Any], vault_suffixes: tuple[str, ...] = VAULT_SUFFIXES
                  ) -> BatchProvisionRequest:
    """Check ``body`` (400 naming the field) and return it normalised."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}: the fields are "
                         f"{', '.join(sorted(_FIELDS))} (no secret is taken: the server "
                         "uses its own Azure credential)", field=unknown[0])
    region = _text(body, "region").replace(" ", "").lower()
    request = BatchProvisionRequest(
        subscription_id=_matching(body, "subscription_id", _GUID, "a GUID").lower(),
        region=_checked("region", region, _REGION,
                        "an Azure region name such as westeurope"),
        resource_group=_resource_group(_text(body, "resource_group")),
        storage_account=_matching(body, "storage_account", _ACCOUNT,
                                  "3 to 24 lowercase letters and digits"),
        batch_account=_matching(body, "batch_account", _ACCOUNT,
                                "3 to 24 lowercase letters and digits"),
        file_share=_matching(body, "file_share", _SHARE,
                             "3 to 63 lowercase letters, digits and single hyphens, "
                             "starting and ending with a letter or digit", DEFAULT_SHARE),
        share_quota_gib=_quota(body.get("share_quota_gib", DEFAULT_SHARE_QUOTA_GIB)),
        key_vault=_key_vault(body.get("key_vault"), vault_suffixes),
    )
    return request


def _text(body: dict[str, Any], field: str, default: str | None = None) -> str:
    value = body.get(field, default)
    if value is None or value == "":
        raise BadRequest(f"{field} is required", field=field)
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string", field=field)
    return value


def _checked(field: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not pattern.match(value):
        raise BadRequest(f"{field} {value!r} is not valid: it must be {rule}", field=field)
    return value


def _matching(body: dict[str, Any], field: str, pattern: re.Pattern[str], rule: str,
              default: str | None = None) -> str:
    return _checked(field, _text(body, field, default), pattern, rule)


def _resource_group(value: str) -> str:
    if not _RESOURCE_GROUP.match(value) or value.endswith("."):
        raise BadRequest(
            f"resource_group {value!r} is not valid: it must be 1 to 90 letters, digits, "
            "underscores, hyphens, periods and parentheses, not ending with a period",
            field="resource_group")
    return value


def _quota(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 102400:
        raise BadRequest("share_quota_gib must be a whole number of GiB from 1 to 102400",
                         field="share_quota_gib")
    return value


def _key_vault(value: Any, suffixes: tuple[str, ...]) -> KeyVaultTarget | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("key_vault must be an object: {\"url\", \"storage_secret\", "
                         "\"batch_secret\"}", field="key_vault")
    unknown = sorted(set(value) - _VAULT_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field key_vault.{unknown[0]}",
                         field=f"key_vault.{unknown[0]}")
    url = value.get("url")
    if not isinstance(url, str) or not url:
        raise BadRequest("key_vault.url is required: https://<vault>.vault.azure.net",
                         field="key_vault.url")
    url = url.rstrip("/")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if (parts.scheme != "https" or parts.path or parts.query or parts.username
            or not any(host == s or host.endswith("." + s) for s in suffixes)):
        raise BadRequest(
            f"key_vault.url {url!r} is not a Key Vault: it must be https://<vault>."
            f"{suffixes[0]} (hosts allowed: *.{', *.'.join(suffixes)})", field="key_vault.url")
    names = {}
    for field, default in (("storage_secret", DEFAULT_STORAGE_SECRET),
                           ("batch_secret", DEFAULT_BATCH_SECRET)):
        name = value.get(field, default)
        names[field] = _checked(f"key_vault.{field}", name if isinstance(name, str) else "",
                                _SECRET, "1 to 127 letters, digits and hyphens")
    if names["storage_secret"] == names["batch_secret"]:
        raise BadRequest("key_vault.batch_secret must differ from key_vault.storage_secret",
                         field="key_vault.batch_secret")
    return KeyVaultTarget(url=f"https://{parts.netloc.lower()}", **names)
