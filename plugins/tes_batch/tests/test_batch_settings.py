"""The ``TES_BATCH_*`` settings: defaults, the size table, and each bad value named."""

from __future__ import annotations

import json

import pytest
from tes_core.config import ConfigError, Settings

from tes_batch.settings import DEFAULT_VM_SIZES, BatchSettings

IDENTITY = ("/subscriptions/0000/resourceGroups/rg1/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/pull1")


SHARE = "https://stone.file.core.windows.net/shared-global"


def test_shared_global_share_from_the_url_provisioning_reports():
    from tes_batch.pools import container_key

    conf = settings(account_url="http://127.0.0.1:9", shared_global_url=SHARE + "/",
                    shared_global_account_key="a2V5LXNoYXJl")
    share = conf.shared_global
    assert (share.url, share.account_name) == (SHARE, "stone")
    assert "a2V5LXNoYXJl" not in repr(conf) and "a2V5LXNoYXJl" not in container_key(conf)
    assert container_key(conf) != container_key(settings(account_url="http://127.0.0.1:9"))
    # What provisioning reports: the URL, the key in the same account's connection string.
    environ = {"TES_BATCH_ACCOUNT_URL": "http://127.0.0.1:9",
               "TES_BATCH_SHARED_GLOBAL_URL": SHARE, "TES_STORAGE_CONNECTION_STRING":
               "DefaultEndpointsProtocol=https;AccountName=stone;AccountKey=a2V5LWNz;"
               "EndpointSuffix=core.windows.net"}
    from_connection = BatchSettings.from_settings(Settings.from_env(environ))
    assert from_connection.shared_global.account_key == "a2V5LWNz"
    other = {**environ, "TES_STORAGE_CONNECTION_STRING": "AccountName=pebble;AccountKey=eA=="}
    with pytest.raises(ConfigError, match="TES_BATCH_SHARED_GLOBAL_ACCOUNT_KEY is needed"):
        BatchSettings.from_settings(Settings.from_env(other))


def settings(**env: str) -> BatchSettings:
    """The backend's settings from ``TES_BATCH_*`` variables given without the prefix."""
    environ = {f"TES_BATCH_{key.upper()}": value for key, value in env.items()}
    return BatchSettings.from_settings(Settings.from_env(environ))


def test_defaults_and_account_from_the_url():
    conf = settings(account_url="https://acct1.westeurope.batch.azure.com/",
                    account_key="a2V5")
    assert conf.account_url == "https://acct1.westeurope.batch.azure.com"
    assert conf.account_name == "acct1"
    assert conf.shared_key
    assert conf.vm_sizes == DEFAULT_VM_SIZES
    assert conf.max_attempts == 3
    assert "a2V5" not in repr(conf)
    assert conf.region == "westeurope"  # the retail prices are asked for this region
    assert conf.prices_url == "https://prices.azure.com/api/retail/prices"
    assert settings(account_url="http://127.0.0.1:9", prices_url="off").prices_url == ""


def test_size_table_inline_and_from_a_file(tmp_path):
    rows = [{"name": "Standard_A1", "cores": 1, "ram_gb": 2, "disk_gb": 10,
             "price_per_hour_usd": 0.05}]
    conf = settings(account_url="http://127.0.0.1:9", vm_sizes=json.dumps(rows))
    assert [(s.name, s.low_priority_price_per_hour_usd) for s in conf.vm_sizes] == [
        ("Standard_A1", 0.05)]
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(rows))
    assert settings(account_url="http://127.0.0.1:9", vm_sizes=str(path)).vm_sizes == \
        conf.vm_sizes


def test_registry_login_by_password_or_identity_and_what_keys_the_pools():
    from tes_batch.pools import container_key

    plain = settings(account_url="http://127.0.0.1:9")
    assert plain.registry is None
    by_password = settings(account_url="http://127.0.0.1:9", registry_server="acr1.azurecr.io",
                           registry_username="acr1", registry_password="s3cr3t-pw")
    assert by_password.registry.reference().as_dict() == {
        "registryServer": "acr1.azurecr.io", "username": "acr1", "password": "s3cr3t-pw"}
    assert "s3cr3t-pw" not in repr(by_password)
    assert "s3cr3t-pw" not in container_key(by_password)  # the pool id never hashes it
    by_identity = settings(account_url="http://127.0.0.1:9", registry_server="acr1.azurecr.io",
                           registry_identity=IDENTITY)
    assert by_identity.registry.reference().as_dict() == {
        "registryServer": "acr1.azurecr.io", "identityReference": {"resourceId": IDENTITY}}
    keys = {container_key(c) for c in (plain, by_password, by_identity)}
    assert len(keys) == 3  # pools logged in differently are different pools
    assert container_key(plain) == '{"runtime": "docker", "type": "dockerCompatible"}'


@pytest.mark.parametrize(("env", "named"), [
    ({}, "TES_BATCH_ACCOUNT_URL"),
    ({"account_url": "ftp://x"}, "TES_BATCH_ACCOUNT_URL"),
    ({"account_url": "http://127.0.0.1:9", "account_key": "k"}, "TES_BATCH_ACCOUNT_NAME"),
    ({"account_url": "http://127.0.0.1:9", "max_attempts": "0"}, "TES_BATCH_MAX_ATTEMPTS"),
    ({"account_url": "http://127.0.0.1:9", "pool_prefix": "Bad_Prefix"},
     "TES_BATCH_POOL_PREFIX"),
    ({"account_url": "http://127.0.0.1:9", "vm_sizes": "[{\"name\": \"x y\"}]"},
     "TES_BATCH_VM_SIZES[0]"),
    ({"account_url": "http://127.0.0.1:9", "vm_sizes": "/nonexistent/sizes.json"},
     "TES_BATCH_VM_SIZES"),
    ({"account_url": "http://127.0.0.1:9", "runtime": "podman"}, "TES_BATCH_RUNTIME"),
    ({"account_url": "http://127.0.0.1:9", "preempted_dedicated": "maybe"},
     "TES_BATCH_PREEMPTED_DEDICATED"),
    ({"account_url": "http://127.0.0.1:9", "prices_url": "file:///etc/passwd"},
     "TES_BATCH_PRICES_URL"),
    ({"account_url": "http://127.0.0.1:9", "prices_ttl": "0"}, "TES_BATCH_PRICES_TTL"),
    ({"account_url": "http://127.0.0.1:9", "region": "west' or 1 eq 1"}, "TES_BATCH_REGION"),
    ({"account_url": "http://127.0.0.1:9", "registry_username": "u"},
     "TES_BATCH_REGISTRY_SERVER is needed"),
    ({"account_url": "http://127.0.0.1:9", "registry_server": "https://r.io/x"},
     "TES_BATCH_REGISTRY_SERVER='https"),
    ({"account_url": "http://127.0.0.1:9", "registry_server": "r.io", "registry_username": "u"},
     "TES_BATCH_REGISTRY_PASSWORD"),
    ({"account_url": "http://127.0.0.1:9", "registry_server": "r.io"},
     "TES_BATCH_REGISTRY_IDENTITY"),
    ({"account_url": "http://127.0.0.1:9", "registry_server": "r.io",
      "registry_identity": "not-an-id"}, "TES_BATCH_REGISTRY_IDENTITY='not-an-id'"),
    ({"account_url": "http://127.0.0.1:9", "registry_server": "r.io",
      "registry_identity": IDENTITY, "registry_password": "p"}, "excludes"),
    ({"account_url": "http://127.0.0.1:9", "shared_global_account_key": "k"},
     "TES_BATCH_SHARED_GLOBAL_URL is needed"),
    ({"account_url": "http://127.0.0.1:9",
      "shared_global_url": "https://stone.blob.core.windows.net/c",
      "shared_global_account_key": "k"},
     "TES_BATCH_SHARED_GLOBAL_URL='https://stone.blob"),
    ({"account_url": "http://127.0.0.1:9",
      "shared_global_url": "https://stone.file.core.windows.net/s01"},
     "TES_BATCH_SHARED_GLOBAL_ACCOUNT_KEY is needed"),
    ({"account_url": "http://127.0.0.1:9", "shared_global_url": SHARE,
      "shared_global_account_key": "k", "shared_global_mount_options": "-o x'; reboot"},
     "TES_BATCH_SHARED_GLOBAL_MOUNT_OPTIONS"),
])
def test_bad_settings_are_named(env, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        settings(**env)


def test_the_plugin_registers_the_batch_backend():
    from tes_core.plugins import load_plugins

    hooks = load_plugins(Settings.from_env({"TES_BACKEND": "batch"}))
    assert hooks.backend_classes()["batch"].__name__ == "BatchBackend"
