"""The ``TES_BATCH_*`` settings: defaults, the size table, and each bad value named."""

from __future__ import annotations

import json

import pytest
from tes_core.config import ConfigError, Settings

from tes_batch.settings import DEFAULT_VM_SIZES, BatchSettings


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
])
def test_bad_settings_are_named(env, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        settings(**env)


def test_the_plugin_registers_the_batch_backend():
    from tes_core.plugins import load_plugins

    hooks = load_plugins(Settings.from_env({"TES_BACKEND": "batch"}))
    assert hooks.backend_classes()["batch"].__name__ == "BatchBackend"
