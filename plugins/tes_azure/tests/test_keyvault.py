"""Key Vault references in TES_* settings: the real SecretClient against a local vault
that follows the Key Vault REST API over HTTPS (tests/fake_keyvault.py), and a real
vault when credentials are given. Settings.from_env finds tes-azure's resolver through
its ``tes.secrets`` entry point, as a server does."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from tes_core.config import ConfigError, Settings
from tests.fake_keyvault import TOKEN, FakeKeyVault, StaticCredential
from tests.servers import server_env

from tes_azure import keyvault
from tes_azure.keyvault import BadReference, SecretReference, parse_reference


@pytest.fixture
def vault(tmp_path) -> Iterator[FakeKeyVault]:
    fake = FakeKeyVault(tmp_path)
    yield fake
    fake.close()


@pytest.fixture
def credential(monkeypatch, vault) -> StaticCredential:
    """DefaultAzureCredential replaced by a static token (no Entra ID here), and every
    SecretClient told to trust the local vault's certificate."""
    made = StaticCredential()
    monkeypatch.setattr(keyvault, "default_credential", lambda: made)
    monkeypatch.setattr(keyvault, "CLIENT_OPTIONS", vault.client_options())
    return made


def ref(vault: FakeKeyVault, name: str, version: str = "") -> str:
    return f"@Microsoft.KeyVault(SecretUri={vault.url}/secrets/{name}/{version})"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/db-url/)",
         SecretReference("https://myvault.vault.azure.net", "db-url")),
        ("@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/db-url/"
         "ec96f02080254f109c51a1f14cdb1931)",
         SecretReference("https://myvault.vault.azure.net", "db-url",
                         "ec96f02080254f109c51a1f14cdb1931")),
        ("@Microsoft.KeyVault(SecretUri=https://v.vault.usgovcloudapi.net/secrets/x)",
         SecretReference("https://v.vault.usgovcloudapi.net", "x")),
        ("@Microsoft.KeyVault(VaultName=myvault;SecretName=db-url)",
         SecretReference("https://myvault.vault.azure.net", "db-url")),
        (" @Microsoft.KeyVault(VaultName=myvault; SecretName=db-url; SecretVersion=abc123) ",
         SecretReference("https://myvault.vault.azure.net", "db-url", "abc123")),
    ],
)
def test_both_app_service_syntaxes_parse(text, expected) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "@Microsoft.KeyVault(SecretUri=http://myvault.vault.azure.net/secrets/x)",
        "@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/keys/x)",
        "@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/bad_name)",
        "@Microsoft.KeyVault(VaultName=myvault)",
        "@Microsoft.KeyVault(VaultName=my.vault;SecretName=x)",
        "@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/x",
        "@Microsoft.KeyVault(nonsense)",
    ],
)
def test_malformed_references_are_refused(text) -> None:
    with pytest.raises(BadReference):
        parse_reference(text)
    with pytest.raises(ConfigError, match="TES_CONTACT_URL is not a valid Key Vault reference"):
        Settings.from_env({"TES_CONTACT_URL": text})


def test_references_resolve_through_the_real_secret_client(vault, credential) -> None:
    old = vault.set("db-url", "postgresql+psycopg://tes:old@db/tes")
    vault.set("db-url", "postgresql+psycopg://tes:n3w@db/tes")
    vault.set("storage", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k==")
    vault.set("cromwell", "cromwell-7")
    vault.set("refs", "DefaultEndpointsProtocol=https;AccountName=refs;AccountKey=r==")
    settings = Settings.from_env({
        "TES_DATABASE_URL": ref(vault, "db-url"),
        "TES_STORAGE_CONNECTION_STRING": ref(vault, "storage"),
        "TES_STORAGE_CONNECTION_STRING_REFS": ref(vault, "refs"),  # one more account
        "TES_CONTACT_URL": ref(vault, "db-url", old),  # a pinned version
        "TES_CROMWELL_CONTAINER": ref(vault, "cromwell"),  # a plugin's setting
        "TES_WORKER_THREADS": "3",  # plain values still work
    })
    assert settings.database_url == "postgresql+psycopg://tes:n3w@db/tes"
    assert settings.contact_url == "postgresql+psycopg://tes:old@db/tes"
    assert settings.storage_connection_string.endswith("AccountKey=k==")
    assert settings.storage_connection_strings == {
        "TES_STORAGE_CONNECTION_STRING_REFS":
            "DefaultEndpointsProtocol=https;AccountName=refs;AccountKey=r==",
    }
    assert settings.plugin_setting("cromwell_container") == "cromwell-7"
    assert settings.worker_threads == 3
    # The documented flow: an unauthenticated request, the bearer challenge, then the token
    # for the scope the challenge named.
    assert vault.requests[0][1] is None
    assert all(auth == f"Bearer {TOKEN}" for _, auth in vault.requests[1:])
    assert set(credential.scopes) == {"https://vault.azure.net/.default"}
    assert all("api-version=" in path for path, _ in vault.requests)


def test_resolved_secrets_are_masked_in_every_log_line(vault, credential, caplog) -> None:
    import logging

    from tes_core.telemetry.logs import install_log_context

    install_log_context()
    plain = f"opaque-{uuid.uuid4().hex[:12]}"  # no pattern could recognise it
    vault.set("opaque", plain)
    settings = Settings.from_env({"TES_CONTACT_URL": ref(vault, "opaque")})
    assert settings.contact_url == plain
    with caplog.at_level(logging.INFO, logger="tes_core.test"):
        logging.getLogger("tes_core.test").info("contact is %s, really %s", plain, plain)
    assert plain not in caplog.text and "contact is ***, really ***" in caplog.text


def test_a_secret_that_cannot_be_read_fails_naming_the_setting_not_the_values(
    vault, credential
) -> None:
    vault.set("present", "s3cr3t-value")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({
            "TES_DATABASE_URL": ref(vault, "present"),
            "TES_STORAGE_CONNECTION_STRING": ref(vault, "missing"),
        })
    message = str(caught.value)
    assert message.startswith("TES_STORAGE_CONNECTION_STRING: could not read secret 'missing'")
    assert "ResourceNotFoundError" in message
    assert "s3cr3t-value" not in message


def test_without_references_nothing_of_azure_is_imported() -> None:
    code = (
        "import sys; from tes_core.config import Settings;"
        "Settings.from_env({'TES_CONTACT_URL': 'https://x', 'TES_AUTH_ENABLED': '1'});"
        "print(sorted(m for m in sys.modules if m.startswith(('azure', 'jwt'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_server_refuses_to_start_when_a_reference_fails(tmp_path) -> None:
    env = server_env(
        tmp_path,
        TES_CONTACT_URL="@Microsoft.KeyVault(SecretUri=https://127.0.0.1:9/secrets/contact)",
        # Only the environment credential (unconfigured here): no managed-identity probe
        # leaves this machine.
        AZURE_TOKEN_CREDENTIALS="EnvironmentCredential",
    )
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "tes_core.cli", "serve", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "configuration error: TES_CONTACT_URL: could not read secret 'contact'" in (
        result.stderr
    )


REAL_SECRET_URI = os.environ.get("TES_TEST_KEYVAULT_SECRET_URI", "")


@pytest.mark.skipif(
    not (REAL_SECRET_URI and os.environ.get("AZURE_CLIENT_ID")),
    reason="set TES_TEST_KEYVAULT_SECRET_URI and AZURE_CLIENT_ID/AZURE_TENANT_ID/"
           "AZURE_CLIENT_SECRET (or another DefaultAzureCredential source) to use a real vault",
)
def test_a_real_vault() -> None:
    expected = os.environ.get("TES_TEST_KEYVAULT_SECRET_VALUE")
    settings = Settings.from_env(
        {"TES_CONTACT_URL": f"@Microsoft.KeyVault(SecretUri={REAL_SECRET_URI})"}
    )
    assert settings.contact_url and not keyvault.is_reference(settings.contact_url)
    if expected is not None:
        assert settings.contact_url == expected
