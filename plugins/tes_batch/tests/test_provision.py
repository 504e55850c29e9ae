"""tes-batch's provisioner on the real azure-mgmt-* and Key Vault clients, against a
loopback fake of ARM (``fake_arm.py``) and of Key Vault (``tests/fake_keyvault.py``), both
over HTTPS: creation with long-running operations polled at ``Location`` and at
``Azure-AsyncOperation``, idempotence, the 409 and 400s, and Azure's refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tes_core.errors import BadRequest, Conflict
from tes_core.provisioning.base import Provisioner, ProvisioningFailed
from tests.fake_keyvault import FakeKeyVault, StaticCredential

from tes_batch.provision.clients import AzureClients
from tes_batch.provision.provisioner import BatchProvisioner
from tes_batch.provision.request import VAULT_SUFFIXES

from .fake_arm import FakeArm

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"


@pytest.fixture(scope="module")
def arm(tmp_path_factory) -> Iterator[FakeArm]:
    fake = FakeArm(tmp_path_factory.mktemp("arm"))
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def vault(tmp_path_factory) -> Iterator[FakeKeyVault]:
    fake = FakeKeyVault(tmp_path_factory.mktemp("vault"))
    yield fake
    fake.close()


def provisioner_for(arm: FakeArm, vault: FakeKeyVault, **options: Any) -> BatchProvisioner:
    """The real clients, trusting the fakes' certificates; the fake answers ``Retry-After:
    0`` ("poll again now"), on which the SDKs wait their polling interval."""
    clients = AzureClients(credential=StaticCredential(), arm_url=arm.url,
                           options={"connection_verify": str(arm.cert_file), **options},
                           vault_options=vault.client_options(), polling_interval=0.05)
    return BatchProvisioner(clients, vault_suffixes=(*VAULT_SUFFIXES, "localhost"))


@pytest.fixture
def provisioner(arm, vault) -> BatchProvisioner:
    arm.regions = {"westeurope", "northeurope"}
    arm.throttle, arm.batch_quota, arm.polls = 0, 5, 1
    return provisioner_for(arm, vault)


def body(name: str, vault: FakeKeyVault | None = None, **extra: Any) -> dict[str, Any]:
    """A request for resources called after ``name`` (unique per test)."""
    document: dict[str, Any] = {
        "subscription_id": SUBSCRIPTION, "region": "West Europe",
        "resource_group": f"rg-{name}", "storage_account": f"st{name}",
        "batch_account": f"ba{name}", **extra}
    if vault is not None:
        document["key_vault"] = {"url": vault.url}
    return document


def provision(provisioner: BatchProvisioner, document: dict[str, Any]
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``start``, then ``step`` until done (as the core's worker calls them)."""
    request = provisioner.start(document)
    progress: dict[str, Any] = {}
    for _ in range(10):
        if provisioner.step(request, progress):
            return request, provisioner.describe(request, progress)
        json.dumps(progress)  # stored as JSON after every step
    raise AssertionError(f"not done after 10 steps: {progress}")


def test_the_provisioner_has_the_core_interface(provisioner) -> None:
    assert isinstance(provisioner, Provisioner)


def test_everything_is_created_linked_and_reported_without_a_secret(
        provisioner, arm, vault) -> None:
    before = len(arm.requests)
    request, report = provision(provisioner, body("one", vault, share_quota_gib=50))
    assert request["region"] == "westeurope"  # normalised
    states = {step["name"]: step["state"] for step in report["steps"]}
    assert states == {"resource group": "created", "storage account": "created",
                      "file share": "created", "batch account": "created",
                      "key vault secrets": "created"}
    assert arm.groups["rg-one"]["location"] == "westeurope"
    storage = arm.storage["stone"]["body"]
    assert storage["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert storage["properties"]["allowBlobPublicAccess"] is False
    assert arm.shares[("stone", "shared-global")]["properties"] == {"shareQuota": 50}
    batch = arm.batch["baone"]["body"]["properties"]
    assert batch["autoStorage"]["storageAccountId"] == storage["id"]
    # Both kinds of long-running operation were polled to their end.
    polled = [path for method, path in arm.requests[before:] if path.startswith("/operations/")]
    assert len(polled) >= 4, arm.requests[before:]
    # The keys went to Key Vault, and nowhere else.
    storage_key, batch_key = arm.storage["stone"]["keys"][0], arm.batch["baone"]["keys"][0]
    connection = vault.secrets["tes-storage-connection-string"][-1][1]
    assert f"AccountName=stone;AccountKey={storage_key};" in connection
    assert vault.secrets["tes-batch-account-key"][-1][1] == batch_key
    assert storage_key not in json.dumps(report) and batch_key not in json.dumps(report)
    assert storage_key not in json.dumps(request)
    assert report["settings"] == {
        "TES_BACKEND": "batch",
        "TES_BATCH_ACCOUNT_URL": "https://baone.westeurope.batch.azure.com",
        "TES_BATCH_ACCOUNT_RESOURCE_ID": arm.batch["baone"]["body"]["id"],
        "TES_STORAGE_ACCOUNT_URL": "https://stone.blob.core.windows.net",
        "TES_STORAGE_CONNECTION_STRING":
            f"@Microsoft.KeyVault(SecretUri={vault.url}/secrets/tes-storage-connection-string)",
        "TES_BATCH_ACCOUNT_NAME": "baone",
        "TES_BATCH_ACCOUNT_KEY":
            f"@Microsoft.KeyVault(SecretUri={vault.url}/secrets/tes-batch-account-key)",
        "TES_BATCH_SHARED_GLOBAL_URL": "https://stone.file.core.windows.net/shared-global",
    }
    assert report["shared_global"] == "https://stone.file.core.windows.net/shared-global"


def test_the_same_names_again_report_the_existing_resources(provisioner, arm) -> None:
    provision(provisioner, body("two"))
    before = len(arm.requests)
    _, report = provision(provisioner, body("two"))
    assert {step["state"] for step in report["steps"]} == {"existing"}
    assert [step["name"] for step in report["steps"]] == [
        "resource group", "storage account", "file share", "batch account"]
    assert all(method == "GET" for method, _ in arm.requests[before:]), arm.requests[before:]
    assert "TES_BATCH_ACCOUNT_KEY" not in report["settings"]  # no vault: nothing to refer to
    assert "TES_BATCH_SHARED_GLOBAL_URL" not in report["settings"]  # nor a key to mount with


def test_a_resource_group_in_another_region_is_a_409(provisioner, arm) -> None:
    provision(provisioner, {**body("three"), "region": "northeurope"})
    with pytest.raises(Conflict, match="'rg-three' already exists in region 'northeurope', "
                       "not in 'westeurope'") as caught:
        provisioner.start(body("three"))
    assert caught.value.status_code == 409


@pytest.mark.parametrize(("field", "value"), [
    ("subscription_id", "not-a-guid"),
    ("region", "west/europe"),
    ("resource_group", "ends-with-a-period."),
    ("resource_group", "x" * 91),
    ("storage_account", "Has-Capitals"),
    ("storage_account", "ab"),
    ("batch_account", "a" * 25),
    ("file_share", "double--hyphen"),
    ("share_quota_gib", 0),
    ("client_secret", "s3cret"),  # no secret is ever taken
    ("key_vault.url", "https://attacker.example.com"),
    ("key_vault.url", "http://myvault.vault.azure.net"),
    ("key_vault.url", "https://myvault.vault.azure.net@attacker.example.com"),
    ("key_vault.url", "https://myvault.vault.azure.net.attacker.example.com"),
    ("key_vault.storage_secret", "under_score"),
])
def test_bad_input_is_a_400_naming_the_field(provisioner, field, value) -> None:
    document = body("bad", key_vault={"url": "https://myvault.vault.azure.net"})
    if field.startswith("key_vault."):
        document["key_vault"][field.split(".")[1]] = value
    else:
        document[field] = value
    with pytest.raises(BadRequest) as caught:
        provisioner.start(document)
    assert list(caught.value.errors) == [field], caught.value.errors
    assert str(value) not in caught.value.message or field != "client_secret"


@pytest.mark.parametrize("field", ["subscription_id", "region", "resource_group",
                                   "storage_account", "batch_account"])
def test_a_missing_name_is_a_400_naming_it(provisioner, field) -> None:
    document = body("missing")
    del document[field]
    with pytest.raises(BadRequest, match=f"{field} is required"):
        provisioner.start(document)


def test_a_storage_name_taken_elsewhere_fails_that_step(provisioner, arm) -> None:
    arm.taken_storage_names.add("sttaken")
    with pytest.raises(ProvisioningFailed) as caught:
        provision(provisioner, body("taken"))
    assert caught.value.step == "storage account"
    assert "AlreadyExists" in caught.value.reason and "choose another" in caught.value.reason


def test_the_batch_quota_fails_that_step_with_azures_reason(provisioner, arm) -> None:
    arm.batch_quota = 0
    with pytest.raises(ProvisioningFailed) as caught:
        provision(provisioner, body("quota"))
    assert caught.value.step == "batch account"
    assert caught.value.reason.startswith("AccountQuotaExceeded: The regional Batch account")


def test_a_region_not_allowed_fails_the_first_step(provisioner, arm) -> None:
    with pytest.raises(ProvisioningFailed) as caught:
        provision(provisioner, {**body("region"), "region": "southindia"})
    assert caught.value.step == "resource group"
    assert caught.value.reason.startswith("LocationNotAvailableForResourceType: The provided "
                                          "location 'southindia' is not available")


def test_throttling_is_waited_out_as_retry_after_says(provisioner, arm) -> None:
    arm.throttle, arm.throttled = 2, 0
    _, report = provision(provisioner, body("slow"))
    assert arm.throttled == 2
    assert {step["state"] for step in report["steps"]} == {"created"}


def test_an_unreachable_endpoint_fails_the_step_saying_so(arm, vault) -> None:
    clients = AzureClients(credential=StaticCredential(), arm_url="https://127.0.0.1:9",
                           options={"retry_total": 0})
    provisioner = BatchProvisioner(clients)
    request = provisioner.start(body("down"))  # it could not look: the step will say
    with pytest.raises(ProvisioningFailed) as caught:
        provisioner.step(request, {})
    assert caught.value.step == "resource group"
    assert caught.value.reason.startswith("Azure could not be reached")


def test_a_refused_credential_is_named(arm, vault) -> None:
    class WrongToken(StaticCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            from azure.core.credentials import AccessToken

            return AccessToken("not-the-token", super().get_token(*scopes).expires_on)

    clients = AzureClients(credential=WrongToken(), arm_url=arm.url,
                           options={"connection_verify": str(arm.cert_file)})
    provisioner = BatchProvisioner(clients)
    with pytest.raises(ProvisioningFailed) as caught:
        provisioner.step(provisioner.start(body("denied")), {})
    assert caught.value.step == "resource group"
    assert "AuthenticationFailed" in caught.value.reason


def test_the_plugin_module_imports_no_azure_sdk() -> None:
    """Every server with tes-batch installed loads the hook's module, whatever its backend."""
    import subprocess
    import sys

    code = ("import sys, tes_batch.provision.plugin; "
            "print(sorted(m for m in sys.modules if m.startswith('azure')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout
