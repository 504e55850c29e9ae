"""Settings from TES_* environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tes_core.config import ConfigError, Settings


def test_defaults_make_an_embedded_server(tmp_path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    assert settings.database == f"sqlite:///{tmp_path / 'tes.sqlite3'}"
    assert settings.broker_url == ""
    assert settings.backend == "local"
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.cors_origins == ()  # CORS is off until the operator names origins
    assert settings.workdirs == tmp_path / "tasks"


def test_every_kind_of_value_is_parsed() -> None:
    settings = Settings.from_env(
        {
            "TES_DATA_DIR": "/srv/tes",
            "TES_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "TES_WORKER_THREADS": "3",
            "TES_RECONCILE_INTERVAL": "0.5",
            "TES_LOCAL_KEEP_WORKDIRS": "yes",
            "TES_DISABLED_PLUGINS": "cromwell, nextflow,,",
            "TES_UNRELATED": "x",
        }
    )
    assert settings.data_dir == Path("/srv/tes")
    assert settings.database == "postgresql+psycopg://u@h/db"
    assert settings.worker_threads == 3
    assert settings.reconcile_interval == 0.5
    assert settings.local_keep_workdirs is True
    assert settings.disabled_plugins == ("cromwell", "nextflow")


def test_overrides_win_over_the_environment(tmp_path) -> None:
    settings = Settings.from_env({"TES_DATA_DIR": "/elsewhere"}, data_dir=str(tmp_path))
    assert settings.data_dir == tmp_path


@pytest.mark.parametrize(
    ("name", "value"),
    [("TES_WORKER_THREADS", "many"), ("TES_LOCAL_KEEP_WORKDIRS", "perhaps"),
     ("TES_RECONCILE_INTERVAL", "soon")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_unknown_tes_variables_are_plugin_settings() -> None:
    settings = Settings.from_env(
        {
            "TES_CROMWELL_CONTAINER": "executions",
            "TES_BACKEND": "local",
            "HOME": "/root",
            "tes_lowercase": "not a TES_ variable",
        }
    )
    assert settings.plugin_settings == {"cromwell_container": "executions"}
    assert settings.plugin_setting("cromwell_container", "cromwell") == "executions"
    assert settings.plugin_setting("TES_CROMWELL_CONTAINER") == "executions"
    assert settings.plugin_setting("cromwell_sas_lifetime", "48h") == "48h"
    assert "backend" not in settings.plugin_settings, "known settings are not plugin settings"


def test_the_storage_connection_string_is_not_in_the_repr() -> None:
    secret = "AccountName=a;AccountKey=c2VjcmV0"
    settings = Settings.from_env({"TES_STORAGE_CONNECTION_STRING": secret})
    assert settings.storage_connection_string == secret
    assert "c2VjcmV0" not in repr(settings)
    assert hash(settings) == hash(Settings.from_env({"TES_STORAGE_CONNECTION_STRING": secret}))


def test_more_storage_accounts_come_from_suffixed_variables() -> None:
    from tes_core.telemetry.redact import redact

    refs = "AccountName=refs;AccountKey=cmVmcy1rZXk="
    settings = Settings.from_env({
        "TES_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=c2VjcmV0",
        "TES_STORAGE_CONNECTION_STRING_REFS": refs,
        "TES_STORAGE_CONNECTION_STRING_EMPTY": "  ",
        "TES_STORAGE_CONNECTION_STRINGS": "not one of them",
    })
    assert settings.storage_connection_strings == {"TES_STORAGE_CONNECTION_STRING_REFS": refs}
    assert "storage_connection_string_refs" not in settings.plugin_settings
    assert "cmVmcy1rZXk" not in repr(settings)
    assert "cmVmcy1rZXk" not in redact(f"connecting with {refs}"), "a secret: masked in logs"


def test_every_setting_has_a_row_in_the_readme() -> None:
    from dataclasses import fields

    from tes_core.config import setting_variable

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [
        setting_variable(f) for f in fields(Settings)
        if f.name != "plugin_settings" and f"| `{setting_variable(f)}` |" not in readme
    ]
    assert not missing, f"add these settings to the README's table: {missing}"


def test_the_standard_application_insights_variable_is_read() -> None:
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    assert Settings.from_env(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection}
    ).applicationinsights_connection_string == connection
    assert Settings.from_env({
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection,
        "TES_APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=ours",
    }).applicationinsights_connection_string == "InstrumentationKey=ours"
    assert "InstrumentationKey" not in repr(Settings.from_env(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection}
    ))


def test_settings_declared_secret_are_masked_in_logs() -> None:
    from tes_core.telemetry.redact import redact

    value = "UseDevelopmentStorage=true;Extra=opaque-value-42"
    Settings.from_env({"TES_STORAGE_CONNECTION_STRING": value})
    assert redact(f"storage is {value}.") == "storage is ***."


def test_a_secret_containing_a_shorter_one_is_masked_whole() -> None:
    from tes_core.telemetry.redact import redact, register_secret

    register_secret("short-secret-1")
    register_secret("prefix;short-secret-1;suffix-2")
    assert redact("x prefix;short-secret-1;suffix-2 y") == "x *** y"


def test_without_secret_references_no_resolver_is_looked_up(monkeypatch) -> None:
    from tes_core import secret_references

    def no_lookups(**_: object) -> None:
        raise AssertionError("entry points were searched")

    monkeypatch.setattr(secret_references, "entry_points", no_lookups)
    settings = Settings.from_env({"TES_CONTACT_URL": "mailto:@someone", "TES_SERVICE_NAME": "@x"})
    assert settings.contact_url == "mailto:@someone"


def test_resolved_secret_references_replace_the_values_and_are_masked() -> None:
    from tes_core.secret_references import resolve_secret_references
    from tes_core.telemetry.redact import redact

    secret = "resolved-Secret-4f1c9e"
    seen: list[dict[str, str]] = []

    def resolver(references):
        seen.append(dict(references))
        return {"TES_CONTACT_URL": secret, "TES_NOT_ASKED": "ignored"}

    environ = {"TES_CONTACT_URL": "@Test.Vault(a)", "TES_SERVICE_NAME": "plain", "HOME": "/h"}
    resolved = resolve_secret_references(environ, [resolver])
    assert resolved == {**environ, "TES_CONTACT_URL": secret}
    assert seen == [{"TES_CONTACT_URL": "@Test.Vault(a)"}]
    assert redact(f"contact {secret}") == "contact ***"


def test_a_key_vault_reference_without_tes_azure_says_what_to_install() -> None:
    from tes_core.secret_references import resolve_secret_references

    with pytest.raises(ConfigError) as caught:
        resolve_secret_references(
            {"TES_DATABASE_URL": "@Microsoft.KeyVault(VaultName=v;SecretName=db)"}, []
        )
    assert str(caught.value) == (
        "TES_DATABASE_URL holds a secret reference (@Microsoft.KeyVault) that no installed "
        "plugin resolves: pip install tes-azure"
    )


@pytest.mark.parametrize(("raw", "seconds"), [
    ("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 14 * 86400),
    ("1d12h", 129600), ("0.5s", 0.5), (" 3D ", 3 * 86400), ("", None),
])
def test_retention_is_a_duration_or_forever(raw: str, seconds: float | None) -> None:
    assert Settings.from_env({"TES_RETENTION": raw}).retention == seconds
    assert Settings().retention is None  # unset: forever


@pytest.mark.parametrize("raw", ["30", "thirty days", "0d", "5y", "d", "1h-2m", "-1h"])
def test_a_malformed_retention_stops_start_up_saying_how_to_write_it(raw, tmp_path) -> None:
    with pytest.raises(ConfigError, match="TES_RETENTION=.* write a number with a unit"):
        Settings.from_env({"TES_RETENTION": raw})
    if raw == "30":  # through the real command: one line, no traceback
        env = {k: v for k, v in os.environ.items() if not k.startswith("TES_")}
        result = subprocess.run(
            [sys.executable, "-m", "tes_core.cli", "serve", "--port", "0",
             "--data-dir", str(tmp_path)],
            env={**env, "TES_RETENTION": raw}, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            "tes-server: configuration error: TES_RETENTION='30' is not a duration above 0: "
            "write a number with a unit, e.g. 30d, 12h, 90m, 45s or 1d12h (leave it empty "
            "to keep finished tasks forever)"
        ], result.stderr


def test_plugin_settings_named_as_secrets_are_masked_in_logs() -> None:
    from tes_core.telemetry.redact import redact

    Settings.from_env(
        {
            "TES_ACME_ACCOUNT_KEY": "acme-account-key-7c1d",
            "TES_ACME_REGISTRY_PASSWORD": "hunter2-but-longer",
            "TES_ACME_API_TOKEN": "tok-0a9b8c7d6e",
            "TES_ACME_SSH_KEY": "/etc/acme/id_ed25519",
            "TES_ACME_POOL_NAME": "shared-pool-name",
        }
    )
    line = "acme-account-key-7c1d hunter2-but-longer tok-0a9b8c7d6e"
    assert redact(line) == "*** *** ***"
    kept = "/etc/acme/id_ed25519 shared-pool-name"
    assert redact(kept) == kept, "a file path and ordinary settings stay readable"
