"""One idempotent function per resource: find it, or create it and wait for Azure.

Each returns what the report shows of it (never a key). A resource that exists already
is reported ``existing`` and left as it is; one in another region than the request's is
a failure naming both. Run again after a crash, a step finds what the first run made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from tes_core.provisioning.base import ProvisioningFailed

from .clients import AzureClients
from .request import BatchProvisionRequest

RESOURCE_GROUP = "resource group"
STORAGE_ACCOUNT = "storage account"
FILE_SHARE = "file share"
BATCH_ACCOUNT = "batch account"
KEY_VAULT_SECRETS = "key vault secrets"

Step = Callable[[AzureClients, BatchProvisionRequest, dict[str, Any]], dict[str, Any]]


def _same_region(step: str, name: str, found: str | None, wanted: str) -> None:
    if (found or "").replace(" ", "").lower() != wanted:
        raise ProvisioningFailed(step, f"{name!r} exists in region {found!r}, not in "
                                 f"{wanted!r}: use another name or region {found!r}")


def _succeeded(resource: Any) -> bool:
    state = getattr(getattr(resource, "properties", None), "provisioning_state", None)
    return state in (None, "Succeeded")


def _reason(availability: Any) -> str:
    """``AlreadyExists: <Azure's message>`` from a name availability answer."""
    reason = getattr(availability.reason, "value", availability.reason)
    return f"{reason}: {availability.message}"


def resource_group(clients: AzureClients, request: BatchProvisionRequest,
                   done: dict[str, Any]) -> dict[str, Any]:
    """The resource group, in the request's region."""
    groups = clients.resources(request.subscription_id).resource_groups
    try:
        group = groups.get(request.resource_group)
        _same_region(RESOURCE_GROUP, request.resource_group, group.location, request.region)
        if _succeeded(group):
            return {"state": "existing", "id": group.id}
    except ResourceNotFoundError:
        pass
    group = groups.create_or_update(
        request.resource_group, {"location": request.region, "tags": {"created-by": "tes"}})
    return {"state": "created", "id": group.id}


def storage_account(clients: AzureClients, request: BatchProvisionRequest,
                    done: dict[str, Any]) -> dict[str, Any]:
    """A StorageV2 account (HTTPS only, TLS 1.2, no public blobs) in the group."""
    accounts = clients.storage(request.subscription_id).storage_accounts
    name = request.storage_account
    try:
        account = accounts.get_properties(request.resource_group, name)
        _same_region(STORAGE_ACCOUNT, name, account.location, request.region)
        if _succeeded(account):
            return _storage_report("existing", account)
    except ResourceNotFoundError:
        availability = accounts.check_name_availability(
            {"name": name, "type": "Microsoft.Storage/storageAccounts"})
        if not availability.name_available:
            raise ProvisioningFailed(
                STORAGE_ACCOUNT, f"the name {name!r} cannot be used "
                f"({_reason(availability)}); storage account names are global across Azure: "
                "choose another") from None
    account = accounts.begin_create(request.resource_group, name, {
        "location": request.region, "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
        "tags": {"created-by": "tes"},
        "properties": {"minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False,
                       "supportsHttpsTrafficOnly": True},
    }).result()
    return _storage_report("created", account)


def _storage_report(state: str, account: Any) -> dict[str, Any]:
    endpoints = account.properties.primary_endpoints
    return {"state": state, "id": account.id,
            "blob_endpoint": getattr(endpoints, "blob", None),
            "file_endpoint": getattr(endpoints, "file", None)}


def file_share(clients: AzureClients, request: BatchProvisionRequest,
               done: dict[str, Any]) -> dict[str, Any]:
    """The Azure Files share mounted at ``/tes-wd/shared-global`` on the nodes."""
    shares = clients.storage(request.subscription_id).file_shares
    try:
        share = shares.get(request.resource_group, request.storage_account, request.file_share)
        return {"state": "existing", "id": share.id}
    except ResourceNotFoundError:
        pass
    share = shares.create(request.resource_group, request.storage_account, request.file_share,
                          {"properties": {"shareQuota": request.share_quota_gib}})
    return {"state": "created", "id": share.id}


def batch_account(clients: AzureClients, request: BatchProvisionRequest,
                  done: dict[str, Any]) -> dict[str, Any]:
    """The Batch account (Batch service pool allocation), linked to the storage account."""
    client = clients.batch(request.subscription_id)
    name = request.batch_account
    storage_id = done[STORAGE_ACCOUNT]["id"]
    try:
        account = client.batch_account.get(request.resource_group, name)
        _same_region(BATCH_ACCOUNT, name, account.location, request.region)
        if _succeeded(account):
            return _batch_report("existing", account)
    except ResourceNotFoundError:
        availability = client.location.check_name_availability(
            request.region, {"name": name, "type": "Microsoft.Batch/batchAccounts"})
        if not availability.name_available:
            raise ProvisioningFailed(
                BATCH_ACCOUNT, f"the name {name!r} cannot be used in {request.region} "
                f"({_reason(availability)}): choose another") from None
    account = client.batch_account.begin_create(request.resource_group, name, {
        "location": request.region, "tags": {"created-by": "tes"},
        "properties": {"autoStorage": {"storageAccountId": storage_id},
                       "poolAllocationMode": "BatchService"},
    }).result()
    return _batch_report("created", account)


def _batch_report(state: str, account: Any) -> dict[str, Any]:
    properties = account.properties
    auto_storage = getattr(properties, "auto_storage", None)
    return {"state": state, "id": account.id,
            "endpoint": f"https://{properties.account_endpoint}",
            "auto_storage": getattr(auto_storage, "storage_account_id", None)}


def key_vault_secrets(clients: AzureClients, request: BatchProvisionRequest,
                      done: dict[str, Any]) -> dict[str, Any]:
    """The storage connection string and the Batch account key, as Key Vault secrets.

    The keys go from Azure's answer straight into ``set_secret``: never stored, returned
    or logged. Setting them again makes a new version with the same value.
    """
    vault = request.key_vault
    assert vault is not None  # only planned with a vault
    storage = clients.storage(request.subscription_id)
    keys = storage.storage_accounts.list_keys(request.resource_group,
                                              request.storage_account).keys_property
    suffix = _endpoint_suffix(done[STORAGE_ACCOUNT].get("blob_endpoint"),
                              request.storage_account)
    connection = (f"DefaultEndpointsProtocol=https;AccountName={request.storage_account};"
                  f"AccountKey={keys[0].value};EndpointSuffix={suffix}")
    batch_key = clients.batch(request.subscription_id).batch_account.get_keys(
        request.resource_group, request.batch_account).primary
    secrets = clients.secrets(vault.url)
    stored = {}
    for name, value in ((vault.storage_secret, connection), (vault.batch_secret, batch_key)):
        secret = secrets.set_secret(name, value, tags={"created-by": "tes"})
        stored[name] = f"{vault.url}/secrets/{secret.name}"
    return {"state": "created", "secrets": stored}


def _endpoint_suffix(blob_endpoint: str | None, account: str) -> str:
    """``core.windows.net`` from ``https://<account>.blob.core.windows.net/``."""
    host = (blob_endpoint or "").split("://", 1)[-1].strip("/")
    prefix = f"{account}.blob."
    return host[len(prefix):] if host.startswith(prefix) else "core.windows.net"


PLAN: tuple[tuple[str, Step], ...] = (
    (RESOURCE_GROUP, resource_group),
    (STORAGE_ACCOUNT, storage_account),
    (FILE_SHARE, file_share),
    (BATCH_ACCOUNT, batch_account),
    (KEY_VAULT_SECRETS, key_vault_secrets),
)
"""Every step in order; the last only when the request names a vault."""


def plan(request: BatchProvisionRequest) -> list[tuple[str, Step]]:
    """The steps this request needs, in order."""
    return [(name, step) for name, step in PLAN
            if name != KEY_VAULT_SECRETS or request.key_vault is not None]
