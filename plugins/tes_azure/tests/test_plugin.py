"""tes-azure as the core finds it: through its entry points, behind the core's seams."""

from __future__ import annotations

from importlib.metadata import entry_points

from tes_core.blobstore import BlobStore
from tes_core.config import Settings
from tes_core.plugins import load_plugins

from tes_azure import keyvault
from tes_azure.accounts import StorageAccounts
from tes_azure.blobstorage import BlobStorage

AZURITE = "UseDevelopmentStorage=true"


def test_the_core_loads_the_plugin_with_its_hooks() -> None:
    hooks = load_plugins(Settings())
    azure = next(info for info in hooks.plugins() if info.name == "azure")
    assert azure.distribution == "tes-azure"
    assert azure.hooks == ["tes_blob_storage", "tes_configure_telemetry"]


def test_the_server_storage_comes_from_the_plugin() -> None:
    hooks = load_plugins(Settings())
    storage = hooks.blob_storage(Settings(storage_connection_string=AZURITE))
    assert isinstance(storage, StorageAccounts)
    assert isinstance(storage.default, BlobStorage)
    assert isinstance(storage, BlobStore), "it has every member the core's protocol names"
    assert storage.account_name == "devstoreaccount1"
    assert hooks.blob_storage(Settings()) is None


def test_no_exporter_starts_without_a_connection_string() -> None:
    assert load_plugins(Settings()).configure_telemetry(Settings()) == []


def test_the_key_vault_resolver_is_declared_for_the_core() -> None:
    declared = {ep.name: ep for ep in entry_points(group="tes.secrets")}
    assert declared["keyvault"].load() is keyvault.resolve_references


def test_the_resolver_leaves_other_references_alone() -> None:
    assert keyvault.resolve_references({"TES_CONTACT_URL": "@Other.Store(x)"}) == {}


def test_storage_settings_it_cannot_use_stop_start_up() -> None:
    import pytest
    from tes_core.config import ConfigError

    account = "DefaultEndpointsProtocol=https;AccountName=alpha;AccountKey=a2V5"
    settings = Settings.from_env({"TES_STORAGE_CONNECTION_STRING": account,
                                  "TES_STORAGE_CONNECTION_STRING_AGAIN": account})
    with pytest.raises(ConfigError, match="'alpha' is configured twice"):
        load_plugins(settings).check_storage_provider(settings)
    load_plugins(Settings()).check_storage_provider(Settings())  # nothing set: nothing built
