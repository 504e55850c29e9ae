"""Our SAS signer against the Azure SDK's: the same token, field for field, for every
shape we issue (blob and container; account key and user-delegation key). Azurite's
acceptance of the tokens is checked in test_blobstorage.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import azure.storage.blob._shared_access_signature as sdk_sas
import pytest
from azure.storage.blob import UserDelegationKey, generate_blob_sas, generate_container_sas

from tes_azure.sas import SAS_VERSION, blob_sas, blob_signer

KEY = base64.b64encode(bytes(range(64))).decode()
START = datetime(2026, 11, 25, 18, 0, 7, tzinfo=UTC)
EXPIRY = START + timedelta(hours=48)
NAMES = ["a.txt", "dir/hello world.txt", "ünï/cödé.bin", "odd/#?&=+%;,'.txt", "x" * 300]


@pytest.fixture(autouse=True)
def sdk_at_our_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign with the SDK at our service version (a newer SDK may default to a newer one)."""
    monkeypatch.setattr(sdk_sas, "X_MS_VERSION", SAS_VERSION)


def delegation_key(delegated_tenant: str | None = None) -> UserDelegationKey:
    key = UserDelegationKey()
    key.signed_oid = "00000000-0000-0000-0000-00000000000a"
    key.signed_tid = "11111111-2222-3333-4444-555555555555"
    key.signed_start = "2026-11-25T17:55:00Z"
    key.signed_expiry = "2026-11-27T18:00:00Z"
    key.signed_service = "b"
    key.signed_version = SAS_VERSION
    key.signed_delegated_user_tid = delegated_tenant
    key.value = base64.b64encode(b"delegated key material, 32 bytes").decode()
    return key


@pytest.mark.parametrize("blob", NAMES)
@pytest.mark.parametrize("permission", ["r", "rcwa"])
def test_blob_tokens_equal_the_sdks_with_an_account_key(blob: str, permission: str) -> None:
    theirs = generate_blob_sas("acct", "cont", blob, permission=permission, start=START,
                               expiry=EXPIRY, account_key=KEY)
    ours = blob_sas("acct", "cont", blob, permission=permission, start=START, expiry=EXPIRY,
                    account_key=KEY)
    assert ours == theirs


@pytest.mark.parametrize("permission", ["r", "rcwa"])
def test_a_blob_signer_signs_as_blob_sas(permission: str) -> None:
    """One signer for many blobs (a task's files) gives each the token of ``blob_sas``."""
    token = blob_signer("acct", permission, START, EXPIRY, KEY)
    for container in ("cont", "other"):
        for blob in NAMES:
            assert token(container, blob) == blob_sas(
                "acct", container, blob, permission=permission, start=START, expiry=EXPIRY,
                account_key=KEY)


@pytest.mark.parametrize("permission", ["rl", "rcwal"])
def test_container_tokens_equal_the_sdks(permission: str) -> None:
    theirs = generate_container_sas("acct", "my-container", permission=permission,
                                    start=START, expiry=EXPIRY, account_key=KEY)
    ours = blob_sas("acct", "my-container", None, permission=permission, start=START,
                    expiry=EXPIRY, account_key=KEY)
    assert ours == theirs


@pytest.mark.parametrize("delegated_tenant", [None, "99999999-0000-0000-0000-000000000000"])
@pytest.mark.parametrize("blob", [NAMES[1], None])
def test_user_delegation_tokens_equal_the_sdks(delegated_tenant: str | None,
                                               blob: str | None) -> None:
    key = delegation_key(delegated_tenant)
    if blob is None:
        theirs = generate_container_sas("acct", "cont", permission="rl", start=START,
                                        expiry=EXPIRY, user_delegation_key=key)
    else:
        theirs = generate_blob_sas("acct", "cont", blob, permission="r", start=START,
                                   expiry=EXPIRY, user_delegation_key=key)
    ours = blob_sas("acct", "cont", blob, permission="rl" if blob is None else "r",
                    start=START, expiry=EXPIRY, user_delegation_key=key)
    assert ours == theirs
    assert ("skdutid=" in ours) == (delegated_tenant is not None)


def test_times_in_other_zones_are_signed_as_utc() -> None:
    elsewhere = timezone(timedelta(hours=-5))
    ours = blob_sas("acct", "c", "b", permission="r", start=START.astimezone(elsewhere),
                    expiry=EXPIRY.astimezone(elsewhere), account_key=KEY)
    assert ours == blob_sas("acct", "c", "b", permission="r", start=START, expiry=EXPIRY,
                            account_key=KEY)
    assert "st=2026-11-25T18%3A00%3A07Z" in ours


def test_a_changed_field_changes_the_signature() -> None:
    base = blob_sas("acct", "c", "b", permission="r", start=START, expiry=EXPIRY,
                    account_key=KEY)
    for changed in (
        blob_sas("acct", "c", "b2", permission="r", start=START, expiry=EXPIRY, account_key=KEY),
        blob_sas("acct", "c", "b", permission="rw", start=START, expiry=EXPIRY, account_key=KEY),
        blob_sas("acct2", "c", "b", permission="r", start=START, expiry=EXPIRY, account_key=KEY),
    ):
        assert changed.rsplit("sig=", 1)[1] != base.rsplit("sig=", 1)[1]


def test_no_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="account key or a user-delegation key"):
        blob_sas("acct", "c", "b", permission="r", start=START, expiry=EXPIRY)
