"""Provisioning against a real Azure subscription; skipped unless one is named.

Steps (PROVISIONING.md, "Against a real subscription"): give a credential that
``DefaultAzureCredential`` finds (``az login``, or ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/
``AZURE_CLIENT_SECRET``) Contributor on the subscription, set
``TES_TEST_PROVISION_SUBSCRIPTION_ID`` (and optionally ``TES_TEST_PROVISION_REGION``,
``TES_TEST_PROVISION_KEY_VAULT_URL`` for a vault it may set secrets in), then run
``pytest plugins/tes_batch/tests/test_provision_azure.py``. It creates a resource group
``tes-provision-test-<random>`` with a storage account and a Batch account, provisions the
same names again, and deletes the resource group at the end (``TES_TEST_PROVISION_KEEP=1``
keeps it). Secrets written to the vault are left there.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from tes_batch.provision.clients import AzureClients
from tes_batch.provision.provisioner import BatchProvisioner

SUBSCRIPTION = os.environ.get("TES_TEST_PROVISION_SUBSCRIPTION_ID", "")

pytestmark = pytest.mark.skipif(
    not SUBSCRIPTION,
    reason="set TES_TEST_PROVISION_SUBSCRIPTION_ID (and a DefaultAzureCredential source) to "
    "provision in a real subscription",
)


def _run(provisioner: BatchProvisioner, body: dict[str, Any]) -> dict[str, Any]:
    request = provisioner.start(body)
    progress: dict[str, Any] = {}
    while not provisioner.step(request, progress):
        pass
    return provisioner.describe(request, progress)


def test_provisioning_in_a_real_subscription() -> None:
    clients = AzureClients()
    suffix = uuid.uuid4().hex[:10]
    body: dict[str, Any] = {
        "subscription_id": SUBSCRIPTION,
        "region": os.environ.get("TES_TEST_PROVISION_REGION", "westeurope"),
        "resource_group": f"tes-provision-test-{suffix}",
        "storage_account": f"testes{suffix}", "batch_account": f"testes{suffix}",
    }
    vault = os.environ.get("TES_TEST_PROVISION_KEY_VAULT_URL")
    if vault:
        body["key_vault"] = {"url": vault, "storage_secret": f"tes-test-{suffix}-storage",
                             "batch_secret": f"tes-test-{suffix}-batch"}
    provisioner = BatchProvisioner(clients)
    try:
        first = _run(provisioner, body)
        assert {step["state"] for step in first["steps"]} == {"created"}, first
        assert first["settings"]["TES_BATCH_ACCOUNT_URL"].startswith(
            f"https://testes{suffix}.")
        again = _run(provisioner, body)
        assert {step["state"] for step in again["steps"]
                if step["name"] != "key vault secrets"} == {"existing"}, again
    finally:
        if os.environ.get("TES_TEST_PROVISION_KEEP") != "1":
            clients.resources(SUBSCRIPTION).resource_groups.begin_delete(
                body["resource_group"]).result()
