"""Key Vault references in ``TES_*`` settings, resolved once at start-up.

:func:`resolve_references` is tes-azure's resolver in the entry-point group
``tes.secrets``: ``Settings.from_env`` hands it the ``TES_*`` variables written as
``@Provider(...)`` references (see :mod:`tes_core.secret_references`).

Any ``TES_*`` variable may hold, instead of a plain value, a reference in the
syntax Azure App Service uses for app settings:

* ``@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>[/<version>])``
* ``@Microsoft.KeyVault(VaultName=<vault>;SecretName=<name>[;SecretVersion=<version>])``
  (the public Azure cloud's ``vault.azure.net``; use ``SecretUri`` for other clouds)

Without a version, the secret's current version is read. The secrets are read
with ``azure-keyvault-secrets`` and ``azure-identity``'s ``DefaultAzureCredential``
(managed identity, workload identity, environment, Azure CLI...), imported only
when a reference is present. An error names the variable, never a secret
value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tes_core.config import ConfigError

PREFIX = "@Microsoft.KeyVault("
PUBLIC_CLOUD_SUFFIX = "vault.azure.net"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z]{0,64}$")

CLIENT_OPTIONS: dict[str, Any] = {}
"""Extra keyword arguments for every ``SecretClient`` (e.g. ``connection_verify``)."""


class BadReference(ValueError):
    """A Key Vault reference that is malformed or cannot be resolved."""


@dataclass(frozen=True)
class SecretReference:
    """One secret of one vault, optionally at one version."""

    vault_url: str
    name: str
    version: str | None = None


def is_reference(value: str) -> bool:
    """Whether ``value`` is written as a Key Vault reference."""
    return value.lstrip().startswith(PREFIX)


def parse_reference(value: str) -> SecretReference:
    """Parse ``@Microsoft.KeyVault(...)``; raise :class:`BadReference` saying what is wrong."""
    text = value.strip()
    if not (text.startswith(PREFIX) and text.endswith(")")):
        raise BadReference(f"write it as {PREFIX}SecretUri=...) or {PREFIX}VaultName=...;"
                             "SecretName=...)")
    parts: dict[str, str] = {}
    for item in text[len(PREFIX):-1].split(";"):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep:
            raise BadReference(f"'{item.strip()}' is not a Key=Value pair")
        parts[key.strip().lower()] = val.strip()
    if "secreturi" in parts:
        return _from_uri(parts["secreturi"])
    if "vaultname" in parts and "secretname" in parts:
        vault = parts["vaultname"]
        if not re.fullmatch(r"[0-9A-Za-z-]{3,24}", vault):
            raise BadReference(f"VaultName '{vault}' is not a vault name")
        return _checked(f"https://{vault}.{PUBLIC_CLOUD_SUFFIX}", parts["secretname"],
                        parts.get("secretversion"))
    raise BadReference("give SecretUri, or VaultName and SecretName")


def _from_uri(uri: str) -> SecretReference:
    split = urlsplit(uri)
    segments = [s for s in split.path.split("/") if s]
    if split.scheme != "https" or not split.netloc or not 2 <= len(segments) <= 3 \
            or segments[0] != "secrets":
        raise BadReference(
            f"SecretUri '{uri}' is not https://<vault>/secrets/<name>[/<version>]"
        )
    return _checked(f"https://{split.netloc}", segments[1],
                    segments[2] if len(segments) == 3 else None)


def _checked(vault_url: str, name: str, version: str | None) -> SecretReference:
    if not _NAME.match(name):
        raise BadReference(f"'{name}' is not a Key Vault secret name")
    if version and not _VERSION.match(version):
        raise BadReference(f"'{version}' is not a Key Vault secret version")
    return SecretReference(vault_url, name, version or None)


def default_credential() -> Any:
    """The credential used to read secrets: ``DefaultAzureCredential``."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def resolve_references(
    references: Mapping[str, str], *, credential: Any = None, **client_options: Any
) -> dict[str, str]:
    """The secrets of the Key Vault references among ``references`` (variable to value),
    by variable; values that are not Key Vault references are left to other resolvers.

    Raises :class:`~tes_core.config.ConfigError` naming the variable when a reference
    is malformed or its secret cannot be read.
    """
    parsed: dict[str, SecretReference] = {}
    for name, value in references.items():
        if not is_reference(value):
            continue
        try:
            parsed[name] = parse_reference(value)
        except BadReference as exc:
            raise ConfigError(f"{name} is not a valid Key Vault reference: {exc}") from None
    if not parsed:
        return {}
    from azure.keyvault.secrets import SecretClient

    own_credential = credential is None
    credential = default_credential() if own_credential else credential
    clients: dict[str, Any] = {}
    resolved: dict[str, str] = {}
    try:
        for name, ref in parsed.items():
            client = clients.get(ref.vault_url)
            if client is None:
                client = clients[ref.vault_url] = SecretClient(
                    ref.vault_url, credential, **{**CLIENT_OPTIONS, **client_options}
                )
            try:
                secret = client.get_secret(ref.name, ref.version)
            except Exception as exc:
                raise ConfigError(
                    f"{name}: could not read secret '{ref.name}' from Key Vault {ref.vault_url}: "
                    f"{type(exc).__name__}: {_first_line(exc)}"
                ) from None
            if secret.value is None:
                raise ConfigError(f"{name}: secret '{ref.name}' in {ref.vault_url} has no value")
            resolved[name] = secret.value
    finally:
        for client in clients.values():
            client.close()
        if own_credential and hasattr(credential, "close"):
            credential.close()
    return resolved


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "no details"
