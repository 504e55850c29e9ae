"""The Batch provisioner: the core's ``start``/``step``/``describe`` over :mod:`.steps`."""

from __future__ import annotations

import logging
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from tes_core.errors import Conflict
from tes_core.provisioning.base import ProvisioningFailed

from .clients import AzureClients
from .request import VAULT_SUFFIXES, BatchProvisionRequest, parse_request
from .steps import BATCH_ACCOUNT, FILE_SHARE, KEY_VAULT_SECRETS, STORAGE_ACCOUNT, plan

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT = 10.0
"""Seconds ``start`` waits for Azure when it looks for the resource group."""


class BatchProvisioner:
    """Provisioning for ``TES_BACKEND=batch`` (see the package docstring)."""

    name = "batch"

    def __init__(self, clients: AzureClients,
                 vault_suffixes: tuple[str, ...] = VAULT_SUFFIXES) -> None:
        self.clients = clients
        self.vault_suffixes = vault_suffixes

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Check the body (400 naming the field); 409 when the resource group exists in
        another region. An unreachable endpoint is left to the first step to report."""
        checked = parse_request(request, self.vault_suffixes)
        try:
            groups = self.clients.resources(checked.subscription_id).resource_groups
            # In the API request: one try, briefly; the worker's steps retry as Azure says.
            group = groups.get(checked.resource_group, retry_total=0,
                               connection_timeout=LOOKUP_TIMEOUT, read_timeout=LOOKUP_TIMEOUT)
        except ResourceNotFoundError:
            return checked.to_dict()
        except Exception as exc:
            log.info("provisioning: could not look for resource group %r before starting "
                     "(%s); the first step will say", checked.resource_group, type(exc).__name__)
            return checked.to_dict()
        found = (group.location or "").replace(" ", "").lower()
        if found != checked.region:
            raise Conflict(
                f"resource group {checked.resource_group!r} already exists in region "
                f"{group.location!r}, not in {checked.region!r}: ask for region "
                f"{group.location!r} or another resource group", field="resource_group")
        return checked.to_dict()

    def step(self, request: dict[str, Any], progress: dict[str, Any]) -> bool:
        """Run the first step of the plan not yet in ``progress["done"]``."""
        checked = BatchProvisionRequest.from_dict(request)
        done = progress.setdefault("done", {})
        for name, step in plan(checked):
            if name in done:
                continue
            log.info("provisioning %s %r", name, _resource_name(checked, name))
            done[name] = _attempt(name, lambda step=step: step(self.clients, checked, done))
            return False
        return True

    def describe(self, request: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
        """Each step's state and result, and the settings the server then needs."""
        checked = BatchProvisionRequest.from_dict(request)
        done = progress.get("done", {})
        steps = [{"name": name, "resource": _resource_name(checked, name),
                  **done.get(name, {"state": "pending"})} for name, _ in plan(checked)]
        return {"steps": steps, "settings": server_settings(checked, done),
                "shared_global": shared_global_url(checked, done)}


def _attempt(step: str, call: Any) -> dict[str, Any]:
    """``call()``, its Azure errors turned into :class:`ProvisioningFailed` naming ``step``."""
    try:
        return call()  # type: ignore[no-any-return]
    except ProvisioningFailed:
        raise
    except ClientAuthenticationError as exc:
        raise ProvisioningFailed(step, "the server's Azure credential was refused or could "
                                 f"not get a token: {_message(exc)}") from exc
    except HttpResponseError as exc:
        raise ProvisioningFailed(step, _message(exc)) from exc
    except ServiceRequestError as exc:
        raise ProvisioningFailed(step, f"Azure could not be reached: {exc.message}") from exc


def _message(exc: HttpResponseError | ClientAuthenticationError) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        return f"{error.code}: {error.message}"
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {exc.message}" if status else str(exc.message)


def _resource_name(request: BatchProvisionRequest, step: str) -> str:
    return {
        "resource group": request.resource_group,
        STORAGE_ACCOUNT: request.storage_account,
        "file share": f"{request.storage_account}/{request.file_share}",
        BATCH_ACCOUNT: request.batch_account,
        KEY_VAULT_SECRETS: request.key_vault.url if request.key_vault else "",
    }[step]


def server_settings(request: BatchProvisionRequest, done: dict[str, Any]) -> dict[str, str]:
    """The ``TES_*`` settings for the server to use what was made; keys as Key Vault
    references (``@Microsoft.KeyVault(SecretUri=...)``), never values."""
    settings: dict[str, str] = {"TES_BACKEND": "batch"}
    batch = done.get(BATCH_ACCOUNT)
    storage = done.get(STORAGE_ACCOUNT)
    if batch:
        settings["TES_BATCH_ACCOUNT_URL"] = batch["endpoint"]
        if batch.get("id"):  # the backend reads the account's quotas there
            settings["TES_BATCH_ACCOUNT_RESOURCE_ID"] = batch["id"]
    if storage and storage.get("blob_endpoint"):
        settings["TES_STORAGE_ACCOUNT_URL"] = storage["blob_endpoint"].rstrip("/")
    secrets = done.get(KEY_VAULT_SECRETS)
    if secrets and request.key_vault:
        vault = request.key_vault
        settings["TES_STORAGE_CONNECTION_STRING"] = _reference(
            secrets["secrets"][vault.storage_secret])
        settings["TES_BATCH_ACCOUNT_NAME"] = request.batch_account
        settings["TES_BATCH_ACCOUNT_KEY"] = _reference(secrets["secrets"][vault.batch_secret])
        share = shared_global_url(request, done)
        if share and done.get(FILE_SHARE):
            # The share's key comes from the storage connection string (same account).
            settings["TES_BATCH_SHARED_GLOBAL_URL"] = share
    return settings


def shared_global_url(request: BatchProvisionRequest, done: dict[str, Any]) -> str | None:
    """The Azure Files share for ``/tes-wd/shared-global``, once the storage account exists."""
    storage = done.get(STORAGE_ACCOUNT) or {}
    endpoint = storage.get("file_endpoint")
    return f"{endpoint.rstrip('/')}/{request.file_share}" if endpoint else None


def _reference(secret_uri: str) -> str:
    return f"@Microsoft.KeyVault(SecretUri={secret_uri})"
