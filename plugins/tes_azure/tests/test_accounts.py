"""Several storage accounts: which settings make them, and which one a URL or path names.

SAS tokens here are signed locally with account keys (or a stand-in delegation key);
``plugins/tes_nextflow/tests/test_e2e_accounts.py`` has Azurite check them for real.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from tes_core.config import ConfigError, Settings
from tests.azurite import DelegatingService

from tes_azure.accounts import StorageAccounts
from tes_azure.blobstorage import BlobStorage

HOUR = timedelta(hours=1)
KEY_A, KEY_B = "a2V5LWE=", "a2V5LWI="
AZURITE = "UseDevelopmentStorage=true"
AZURITE_URL = "http://127.0.0.1:10000/devstoreaccount1"


def cs(name: str, key: str = KEY_A) -> str:
    return f"DefaultEndpointsProtocol=https;AccountName={name};AccountKey={key}"


def accounts(**variables: str) -> StorageAccounts:
    built = StorageAccounts.from_settings(Settings.from_env(variables))
    assert built is not None
    return built


def signed_with(url: str, key: str, account: str) -> bool:
    """Whether the SAS of ``url`` (on ``<account>.blob.core.windows.net``) is the one that
    ``key`` signs."""
    from datetime import datetime

    from tes_azure.sas import blob_sas

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    container, _, blob = unquote(parts.path).lstrip("/").partition("/")
    start, expiry = (datetime.strptime(query[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("st", "se"))
    expected = blob_sas(account, container, blob, permission=query["sp"], start=start,
                        expiry=expiry, account_key=key)
    return parse_qs(expected)["sig"] == [query["sig"]]


# -- settings ---------------------------------------------------------------------


def test_todays_single_account_settings_are_unchanged() -> None:
    assert StorageAccounts.from_settings(Settings.from_env({})) is None
    one = accounts(TES_STORAGE_CONNECTION_STRING=cs("alpha"))
    assert one.names == ("alpha",)
    assert one.account_name == "alpha" and one.default.setting == "TES_STORAGE_CONNECTION_STRING"
    url = accounts(TES_STORAGE_ACCOUNT_URL="https://alpha.blob.core.windows.net/")
    assert (url.account_name, url.account_url) == ("alpha", "https://alpha.blob.core.windows.net")


def test_accounts_in_order_the_default_first() -> None:
    found = accounts(
        TES_STORAGE_CONNECTION_STRING_ZREFS=cs("zrefs"),
        TES_STORAGE_CONNECTION_STRING_BEDS=cs("beds"),
        TES_STORAGE_ACCOUNT_URL="https://mi1.blob.core.windows.net, https://mi2.blob.core.windows.net",
        TES_STORAGE_CONNECTION_STRING=cs("work"),
    )
    assert found.names == ("work", "mi1", "mi2", "beds", "zrefs")
    assert found.default.account_name == "work"
    assert [a.setting for a in found.accounts] == [  # type: ignore[attr-defined]
        "TES_STORAGE_CONNECTION_STRING", "TES_STORAGE_ACCOUNT_URL", "TES_STORAGE_ACCOUNT_URL",
        "TES_STORAGE_CONNECTION_STRING_BEDS", "TES_STORAGE_CONNECTION_STRING_ZREFS",
    ]
    only_more = accounts(TES_STORAGE_CONNECTION_STRING_REFS=cs("refs"))
    assert only_more.default.account_name == "refs"


def test_an_account_named_twice_is_refused_naming_both_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        accounts(TES_STORAGE_CONNECTION_STRING=cs("alpha"),
                 TES_STORAGE_CONNECTION_STRING_AGAIN=cs("alpha", KEY_B))
    assert str(caught.value) == (
        "storage account 'alpha' is configured twice, by TES_STORAGE_CONNECTION_STRING and "
        "TES_STORAGE_CONNECTION_STRING_AGAIN: keep one of them"
    )
    assert KEY_B not in str(caught.value)


def test_the_connection_string_wins_over_the_same_accounts_url_as_before() -> None:
    found = accounts(TES_STORAGE_CONNECTION_STRING=cs("alpha"),
                     TES_STORAGE_ACCOUNT_URL="https://alpha.blob.core.windows.net")
    assert found.names == ("alpha",)
    assert found.default.setting == "TES_STORAGE_CONNECTION_STRING"


def test_a_bad_entry_names_its_own_variable() -> None:
    with pytest.raises(ConfigError, match="^TES_STORAGE_CONNECTION_STRING_REFS needs AccountKey"):
        accounts(TES_STORAGE_CONNECTION_STRING=cs("alpha"),
                 TES_STORAGE_CONNECTION_STRING_REFS="AccountName=refs")
    with pytest.raises(ConfigError, match="TES_STORAGE_ACCOUNT_URL='mi2.blob"):
        accounts(TES_STORAGE_ACCOUNT_URL="https://mi1.blob.core.windows.net,mi2.blob")


def test_the_plugin_hook_builds_every_account() -> None:
    from tes_core.blobstore import BlobStore
    from tes_core.plugins import load_plugins

    settings = Settings.from_env({"TES_STORAGE_CONNECTION_STRING": AZURITE,
                                  "TES_STORAGE_CONNECTION_STRING_REFS": cs("refs")})
    storage = load_plugins(settings).blob_storage(settings)
    assert isinstance(storage, StorageAccounts)
    assert isinstance(storage, BlobStore), "as a BlobStore, it is the default account"
    assert storage.names == ("devstoreaccount1", "refs")
    assert storage.sas_url("c", "b", write=False, lifetime=HOUR).startswith(f"{AZURITE_URL}/c/b?")


# -- choosing the account ---------------------------------------------------------


@pytest.fixture
def two() -> StorageAccounts:
    return accounts(TES_STORAGE_CONNECTION_STRING=AZURITE,
                    TES_STORAGE_CONNECTION_STRING_REFS=cs("refs", KEY_B))


def test_a_url_is_signed_by_the_account_it_is_on(two: StorageAccounts) -> None:
    found = two.find_url("https://refs.blob.core.windows.net/genomes/hg38/a%20b.fa")
    assert found is not None and found.account is two.account("refs")
    assert (found.container, found.blob) == ("genomes", "hg38/a b.fa")
    signed = found.account.sas_url(found.container, found.blob, write=False, lifetime=HOUR)
    assert signed_with(signed, KEY_B, "refs")
    here = two.find_url(f"{AZURITE_URL}/work/x.txt")
    assert here is not None and here.account is two.default
    assert two.find_url("https://other.blob.core.windows.net/c/x") is None
    assert two.find_url("http://127.0.0.1:10000/refs/c/x") is None, "refs is on Azure here"


def test_an_account_path_names_its_account(two: StorageAccounts) -> None:
    found = two.find_account_path("/refs/genomes/hg38.fa")
    assert found is not None and found.account.account_name == "refs"
    assert (found.container, found.blob) == ("genomes", "hg38.fa")
    default = two.find_account_path("/devstoreaccount1/work/x")
    assert default is not None and default.account is two.default
    assert two.find_account_path("/other/c/x") is None
    assert two.find_account_path("/refs/only-a-container") is None
    assert two.find_account_path("relative/refs/c/x") is None


@pytest.mark.parametrize(
    ("url", "name", "endpoint"),
    [
        ("https://refs.blob.core.windows.net/c/x", "refs", "https://refs.blob.core.windows.net"),
        ("https://REFS.blob.core.chinacloudapi.cn/c/x", "refs",
         "https://refs.blob.core.chinacloudapi.cn"),
        ("http://127.0.0.1:10000/refs/c/x", "refs", "http://127.0.0.1:10000/refs"),
        ("http://localhost:10000/acct/c/x", "acct", "http://localhost:10000/acct"),
        ("http://[::1]:10000/acct/c", "acct", "http://[::1]:10000/acct"),
    ],
)
def test_the_account_a_url_names(two: StorageAccounts, url: str, name: str,
                                 endpoint: str) -> None:
    named = two.named_by(url)
    assert named is not None and (named.name, named.endpoint) == (name, endpoint)


@pytest.mark.parametrize(
    "url", ["https://example.org/data/x", "s3://bucket/x", "/refs/c/x", "http://127.0.0.1:1/"]
)
def test_urls_that_name_no_account(two: StorageAccounts, url: str) -> None:
    assert two.named_by(url) is None


def test_an_account_at_another_endpoint_is_told_apart(two: StorageAccounts) -> None:
    moved = two.elsewhere("https://devstoreaccount1.blob.core.windows.net/work/x")
    assert moved is not None and moved.endpoint == "https://devstoreaccount1.blob.core.windows.net"
    assert two.refusal(moved.name, moved.endpoint) == (
        "storage account 'devstoreaccount1' at https://devstoreaccount1.blob.core.windows.net, "
        "but this server's account 'devstoreaccount1' is at "
        f"{AZURITE_URL} (TES_STORAGE_CONNECTION_STRING): write the URL at {AZURITE_URL}, "
        "or point TES_STORAGE_CONNECTION_STRING at "
        "https://devstoreaccount1.blob.core.windows.net"
    )
    reverse = two.elsewhere("http://127.0.0.1:10000/refs/c/x")
    assert reverse is not None and reverse.endpoint == "http://127.0.0.1:10000/refs"
    assert "TES_STORAGE_CONNECTION_STRING_REFS" in two.refusal(reverse.name, reverse.endpoint)
    assert two.elsewhere(f"{AZURITE_URL}/work/x") is None, "its own endpoint"
    assert two.elsewhere("https://other.blob.core.windows.net/c/x") is None, "not an account"


def test_an_unknown_account_says_which_ones_the_server_signs_for(two: StorageAccounts) -> None:
    assert two.refusal("other") == (
        "storage account 'other', which this server cannot sign for (it signs for "
        "'devstoreaccount1' (TES_STORAGE_CONNECTION_STRING), 'refs' "
        "(TES_STORAGE_CONNECTION_STRING_REFS)): add its connection string as "
        "TES_STORAGE_CONNECTION_STRING_<NAME> or its URL to TES_STORAGE_ACCOUNT_URL"
    )


def test_a_plain_blob_store_is_one_account() -> None:
    single = BlobStorage.from_connection_string(cs("alpha"))
    wrapped = StorageAccounts.of(single)
    assert wrapped is not None and wrapped.accounts == (single,)
    assert StorageAccounts.of(wrapped) is wrapped
    assert StorageAccounts.of(None) is None


def test_managed_identity_accounts_each_sign_with_their_own_delegation_key() -> None:
    found = accounts(
        TES_STORAGE_ACCOUNT_URL="https://mi1.blob.core.windows.net,https://mi2.blob.core.windows.net"
    )
    services = {}
    for account in found.accounts:
        services[account.account_name] = account._client = DelegatingService()  # type: ignore[attr-defined]
    first = found.account("mi1")
    second = found.account("mi2")
    assert first is not None and second is not None
    for _ in range(2):
        url_1 = first.sas_url("c", "a", write=False, lifetime=HOUR)
        url_2 = second.sas_url("c", "a", write=True, lifetime=HOUR)
    assert [len(s.calls) for s in services.values()] == [1, 1], "one cached key per account"
    assert url_1.startswith("https://mi1.blob.core.windows.net/c/a?")
    assert url_2.startswith("https://mi2.blob.core.windows.net/c/a?")
    assert "skoid=" in url_1 and "skoid=" in url_2
