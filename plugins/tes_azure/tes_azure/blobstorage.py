"""One Azure Blob storage account the server signs for, for plugins that point task URLs
at it.

Built from an account-key or SAS connection string (``TES_STORAGE_CONNECTION_STRING`` or
``TES_STORAGE_CONNECTION_STRING_<NAME>``; Azurite's in the tests) or an account URL
(``TES_STORAGE_ACCOUNT_URL``: azure-identity's ``DefaultAzureCredential`` then signs
user-delegation SAS tokens, one cached delegation key per account).
:mod:`tes_azure.accounts` holds the server's several accounts and picks the one a URL
names. SAS tokens are signed by :mod:`tes_azure.sas`; the Azure SDK is imported only
when blobs are listed or a user-delegation key is fetched. Each account has the members
of :class:`tes_core.blobstore.BlobStore`.
Never log what this module returns: its URLs carry SAS tokens.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from tes_core.blobstore import MAX_SAS_LIFETIME, STORAGE_SETTINGS
from tes_core.config import ConfigError, Settings

from .sas import blob_sas, blob_signer

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, UserDelegationKey

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the past a SAS starts, so a node whose clock is behind can use it at once."""

DELEGATION_KEY_LIFETIME = timedelta(days=1)
"""How long a fetched user-delegation key is asked to live (Azure allows up to 7 days)."""


# Calls run inside API requests: a few quick retries, not the SDK's default of 10 retries
# from 15 s apart, so an unreachable storage fails a request in seconds, not minutes.
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "initial_backoff": 0.3,
    "increment_base": 1,
    "connection_timeout": 5,
    "read_timeout": 30,
}

_MAX_CONTAINER_TOKENS = 1024
"""Container tokens kept for one window at most (a window lasts a second)."""

# Azurite's documented development account, used by "UseDevelopmentStorage=true".
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_DEV_URL = "http://127.0.0.1:10000/devstoreaccount1"


@dataclass(frozen=True)
class _Credentials:
    account_key: str | None = None
    sas_token: str | None = None
    connection_string: str | None = None


class BlobStorage:
    """One storage account: blob URLs, SAS-signed URLs, listing, and recognising its URLs."""

    def __init__(
        self,
        account_name: str,
        account_url: str,
        *,
        account_key: str | None = None,
        sas_token: str | None = None,
        connection_string: str | None = None,
        credential: Any = None,
        setting: str = STORAGE_SETTINGS[0],
    ) -> None:
        self.account_name = account_name
        self.setting = setting
        """The variable that configured this account, for messages."""
        self.account_url = account_url.rstrip("/")
        self._secrets = _Credentials(account_key, sas_token.lstrip("?") if sas_token else None,
                                     connection_string)
        self._credential = credential
        self._lock = threading.Lock()
        self._client: BlobServiceClient | None = None
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_expiry: datetime | None = None
        self._last_window: tuple[int, timedelta, tuple[datetime, datetime]] | None = None
        self._container_tokens: tuple[tuple[datetime, datetime] | None, dict[
            tuple[str, str], str]] = (None, {})
        """A SAS window and the container tokens signed for it, by container and permission."""
        parts = urlsplit(self.account_url)
        self._origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        self._base_path = parts.path.rstrip("/") + "/"

    def __repr__(self) -> str:
        mode = ("account key" if self._secrets.account_key else
                "SAS" if self._secrets.sas_token else "Azure AD")
        return f"BlobStorage({self.account_url!r}, {mode})"

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStorage | None:
        """The server's default account (see :class:`tes_azure.accounts.StorageAccounts`),
        or ``None`` when no storage setting is set.

        Raises :class:`ConfigError` naming the variable when a value cannot be used.
        """
        from .accounts import StorageAccounts

        accounts = StorageAccounts.from_settings(settings)
        return accounts.default if accounts is not None else None

    @classmethod
    def from_connection_string(
        cls, connection_string: str, setting: str = STORAGE_SETTINGS[0]
    ) -> BlobStorage:
        """Parse an Azure Storage connection string (account key or SAS; Azurite's too);
        errors name ``setting``, the variable it came from."""
        values: dict[str, str] = {}
        for part in connection_string.strip().split(";"):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(
                    f"{setting} is not a connection string "
                    "(expected key=value pairs separated by ';')"
                )
            values[key.strip().lower()] = value.strip()
        if values.get("usedevelopmentstorage", "").lower() == "true":
            return cls(_DEV_ACCOUNT, _DEV_URL, account_key=_DEV_KEY,
                       connection_string=connection_string, setting=setting)
        endpoint = values.get("blobendpoint", "").rstrip("/")
        name = values.get("accountname") or _account_from_endpoint(endpoint)
        if not name:
            raise ConfigError(f"{setting} needs AccountName or BlobEndpoint")
        if not endpoint:
            protocol = values.get("defaultendpointsprotocol", "https")
            suffix = values.get("endpointsuffix", "core.windows.net")
            endpoint = f"{protocol}://{name}.blob.{suffix}"
        key, sas = values.get("accountkey"), values.get("sharedaccesssignature")
        if not key and not sas:
            raise ConfigError(
                f"{setting} needs AccountKey or SharedAccessSignature "
                f"(or put the account's URL in {STORAGE_SETTINGS[1]} to sign with Azure AD)"
            )
        return cls(name, endpoint, account_key=key, sas_token=sas,
                   connection_string=connection_string, setting=setting)

    @classmethod
    def from_account_url(
        cls, account_url: str, credential: Any = None, setting: str = STORAGE_SETTINGS[1]
    ) -> BlobStorage:
        """Storage reached with ``credential`` (default: ``DefaultAzureCredential``, one
        shared by every account), signing user-delegation SAS tokens."""
        parts = urlsplit(account_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{setting}={account_url!r} is not an http(s) URL such as "
                "https://<account>.blob.core.windows.net"
            )
        name = _account_from_endpoint(account_url.rstrip("/"))
        if not name:
            raise ConfigError(f"{setting}={account_url!r}: no account name in it")
        return cls(name, account_url, credential=credential, setting=setting)

    # -- URLs -----------------------------------------------------------------

    def blob_url(self, container: str, blob: str) -> str:
        """The blob's URL, without a SAS."""
        return f"{self.account_url}/{_quoted(container)}/{_quoted(blob)}"

    def sas_url(self, container: str, blob: str, *, write: bool, lifetime: timedelta) -> str:
        """The blob's URL with a SAS valid for ``lifetime``: read (``r``), or for an
        output ``write`` (``rcwa``: create, write, append, and read it back).

        With a SAS connection string the configured SAS is used as it is.
        """
        return self._signed(self.blob_url(container, blob), container, blob,
                            "rcwa" if write else "r", lifetime)

    def sas_urls(self, *, write: bool, lifetime: timedelta) -> Callable[[str, str], str]:
        """``url(container, blob)``: :meth:`sas_url` for the blobs of one task, with one
        window for all; signed with the account key, what their tokens share is built once
        (with a SAS or Azure AD, each is :meth:`sas_url`)."""
        if not self._secrets.account_key or self._secrets.sas_token:
            return lambda container, blob: self.sas_url(container, blob, write=write,
                                                        lifetime=lifetime)
        start, expiry = self._window(lifetime)
        token = blob_signer(self.account_name, "rcwa" if write else "r", start, expiry,
                            self._secrets.account_key)
        blob_url = self.blob_url

        def url(container: str, blob: str) -> str:
            return f"{blob_url(container, blob)}?{token(container, blob)}"

        return url

    def container_sas_url(self, container: str, *, write: bool, lifetime: timedelta) -> str:
        """The container's URL with a SAS valid for ``lifetime``: read and list
        (``rl``), plus create, write and append with ``write`` (``rcwal``)."""
        return self._signed(f"{self.account_url}/{quote(container)}", container, None,
                            "rcwal" if write else "rl", lifetime)

    def folder_sas_url(
        self, container: str, prefix: str, *, write: bool, lifetime: timedelta
    ) -> str:
        """A folder's URL (``prefix`` in ``container``) with a container SAS, for inputs and
        outputs whose files are reached by appending their names to the URL (DIRECTORY
        items, wildcard outputs): a blob SAS would be valid for one blob only."""
        token = self._token(container, None, "rcwal" if write else "rl", lifetime)
        url = self.blob_url(container, prefix)
        return f"{url}?{token}" if token else url

    def parse_url(self, url: str) -> tuple[str, str] | None:
        """``(container, blob)`` when ``url`` is on this account (any SAS ignored), else
        ``None``. ``blob`` is ``""`` for the container itself."""
        parts = urlsplit(url)
        if f"{parts.scheme.lower()}://{parts.netloc.lower()}" != self._origin:
            return None
        if not parts.path.startswith(self._base_path):
            return None
        container, _, blob = parts.path[len(self._base_path):].partition("/")
        if not container:
            return None
        return unquote(container), unquote(blob)

    def parse_account_path(self, path: str) -> tuple[str, str] | None:
        """``(container, blob)`` for ``/<account>/<container>/<blob>`` naming this
        account (the form Cromwell and Nextflow use for Azure), else ``None``."""
        if not path.startswith("/"):
            return None
        account, _, rest = path[1:].partition("/")
        container, _, blob = rest.partition("/")
        if account != self.account_name or not container or not blob:
            return None
        return container, blob

    # -- listing --------------------------------------------------------------

    def list_blobs(self, container: str, prefix: str) -> list[str]:
        """Names of the blobs in ``container`` that start with ``prefix`` (none if the
        container does not exist)."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self._service_client().get_container_client(container)
        try:
            return [blob.name for blob in client.list_blobs(name_starts_with=prefix or None)]
        except ResourceNotFoundError:
            return []

    # -- internals ------------------------------------------------------------

    def _signed(
        self, url: str, container: str, blob: str | None, permission: str, lifetime: timedelta
    ) -> str:
        """``url`` with a SAS for ``blob`` (the container when ``None``); with a SAS
        connection string, the configured SAS as it is."""
        return f"{url}?{self._token(container, blob, permission, lifetime)}"

    def _token(
        self, container: str, blob: str | None, permission: str, lifetime: timedelta
    ) -> str:
        """A SAS for ``blob`` (the container when ``None``) issued now for ``lifetime``, or
        the configured SAS. A container's token is signed once per window: every folder of
        a task in that container, and of the tasks created in the same second, shares it."""
        if self._secrets.sas_token:
            return self._secrets.sas_token
        start, expiry = self._window(lifetime)
        if blob is not None:
            return blob_sas(self.account_name, container, blob, permission=permission,
                            start=start, expiry=expiry, **self._signer(expiry))
        window, tokens = self._container_tokens
        if window != (start, expiry):
            # A new window: the old one's tokens are never asked for again.
            tokens = {}
            self._container_tokens = ((start, expiry), tokens)
        token = tokens.get((container, permission))
        if token is None:
            token = blob_sas(self.account_name, container, None, permission=permission,
                             start=start, expiry=expiry, **self._signer(expiry))
            if len(tokens) < _MAX_CONTAINER_TOKENS:
                tokens[(container, permission)] = token
        return token

    def _window(self, lifetime: timedelta) -> tuple[datetime, datetime]:
        """The validity of a SAS issued now for ``lifetime``; the same for every token of
        the same second (SAS times are to the second), so worked out once per second."""
        second = int(time.time())
        cached = self._last_window
        if cached is not None and cached[0] == second and cached[1] == lifetime:
            return cached[2]
        now = datetime.fromtimestamp(second, UTC)
        window = (now - CLOCK_SKEW, now + lifetime)
        self._last_window = (second, lifetime, window)
        return window

    def _service_client(self) -> BlobServiceClient:
        with self._lock:
            if self._client is None:
                from azure.storage.blob import BlobServiceClient

                if self._secrets.connection_string:
                    self._client = BlobServiceClient.from_connection_string(
                        self._secrets.connection_string, **_CLIENT_OPTIONS
                    )
                else:
                    self._client = BlobServiceClient(
                        self.account_url, credential=self._credential or _default_credential(),
                        **_CLIENT_OPTIONS,
                    )
            return self._client

    def _signer(self, expiry: datetime) -> dict[str, Any]:
        if self._secrets.account_key:
            return {"account_key": self._secrets.account_key}
        return {"user_delegation_key": self._user_delegation_key(expiry)}

    def _user_delegation_key(self, needed_until: datetime) -> UserDelegationKey:
        """A cached user-delegation key valid until ``needed_until``; renewed before expiry."""
        with self._lock:
            key, key_expiry = self._delegation_key, self._delegation_expiry
        if key is not None and key_expiry is not None and key_expiry >= needed_until:
            return key
        now = datetime.now(UTC)
        wanted = min(max(needed_until - now + timedelta(hours=1), DELEGATION_KEY_LIFETIME),
                     MAX_SAS_LIFETIME)
        start, expiry = now - CLOCK_SKEW, now + wanted
        key = self._service_client().get_user_delegation_key(start, expiry)
        with self._lock:
            self._delegation_key, self._delegation_expiry = key, expiry
        return key


class TaskSigners:
    """Blob SAS URLs for the files of one task: ``sas_url(account, ...)`` through one
    :meth:`BlobStorage.sas_urls` per account, permission and lifetime, made on first use
    (an account without ``sas_urls`` signs each with its ``sas_url``). Make one per task."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, bool, timedelta], Callable[[str, str], str]] = {}

    def sas_url(
        self, account: Any, container: str, blob: str, *, write: bool, lifetime: timedelta
    ) -> str:
        """What ``account.sas_url(container, blob, write=..., lifetime=...)`` answers."""
        key = (account, write, lifetime)
        signer = self._made.get(key)
        if signer is None:
            many = getattr(account, "sas_urls", None)
            signer = (many(write=write, lifetime=lifetime) if many is not None else
                      functools.partial(account.sas_url, write=write, lifetime=lifetime))
            self._made[key] = signer
        return signer(container, blob)


_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")
"""The characters ``quote`` leaves as they are."""


def _quoted(text: str) -> str:
    """``quote(text)``, without its work for the usual name that needs none."""
    return text if _PLAIN.fullmatch(text) else quote(text)


def _account_from_endpoint(endpoint: str) -> str:
    """The account of ``https://<account>.blob.<suffix>`` or of a path-style endpoint
    (Azurite: ``http://127.0.0.1:10000/<account>``)."""
    parts = urlsplit(endpoint)
    path = parts.path.strip("/")
    if path:
        return path.split("/", 1)[0]
    host = parts.hostname or ""
    return host.split(".", 1)[0] if ".blob." in host else ""


@functools.cache
def _default_credential() -> Any:
    """One ``DefaultAzureCredential`` for every account of this process (one token cache)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
