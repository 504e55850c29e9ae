"""Logging the container engine in to a private registry before it pulls an image.

``task.json``'s ``registry`` names one registry and how to log in to it:

- ``{"server": "myacr.azurecr.io", "username": "u", "password_file": "/path"}``: the
  password is read from that file on the node (the Batch pool's start task writes it
  there), never from ``task.json``;
- ``{"server": "myacr.azurecr.io", "identity": "/subscriptions/.../userAssignedIdentities/x"}``:
  an Azure Container Registry reached with a managed identity of the node: an Azure AD
  token from the instance metadata service (IMDS), exchanged at the registry's
  ``/oauth2/exchange`` for an ACR refresh token, which logs in as user
  :data:`ACR_TOKEN_USER` (what ``az acr login --expose-token`` does).

Only an image whose registry host is that server makes a login, once per run, right
before its pull (an image already on the node pulls nothing and logs in to nothing).
The secret reaches the engine on its standard input (``login --password-stdin``), never
on a command line; no token or password is logged or put in a message.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import image_registry
from .runtimes.base import ContainerError, ContainerRuntime

log = logging.getLogger(__name__)

ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
"""The user name ACR takes with a refresh token as the password."""
IMDS_URL = "http://169.254.169.254/metadata/identity/oauth2/token"
"""Azure's instance metadata service, token endpoint; ``IMDS_ENDPOINT`` (the variable
azure-identity reads) replaces its scheme and host."""
IMDS_API_VERSION = "2018-02-01"
ARM_RESOURCE = "https://management.azure.com/"
"""The audience ACR's token exchange accepts (as ``az acr login`` asks for)."""
HTTP_TIMEOUT = 20.0
"""Seconds each IMDS or token-exchange request may take."""
MAX_ANSWER = 1 << 20
"""Most bytes read of an IMDS or exchange answer."""


class RegistryLoginError(ContainerError):
    """A login failed; the message names the registry, never the secret (the task ends
    SYSTEM_ERROR with it)."""


@dataclass(frozen=True)
class Registry:
    """One private registry of ``task.json`` and how to log in to it."""

    server: str
    username: str = ""
    password_file: Path | None = None
    identity: str = ""
    """ARM resource id of the node's user-assigned managed identity (instead of a user
    name and password file)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any],
                     expand: Callable[[str, str], Path]) -> Registry:
        """The registry of ``task.json``'s ``registry`` object; ``expand(value, field)``
        turns the password file's text into a path. Raises :class:`ValueError` naming
        the wrong field."""
        unknown = sorted(set(data) - {"server", "username", "password_file", "identity"})
        if unknown:
            raise ValueError(f"registry.{unknown[0]} is not a registry field")
        server = data.get("server")
        if not isinstance(server, str) or not server or "/" in server or server != server.strip():
            raise ValueError("registry.server must be a registry host name[:port]")
        values = {k: data.get(k) for k in ("username", "password_file", "identity")}
        if any(v is not None and not isinstance(v, str) for v in values.values()):
            raise ValueError("registry.username, password_file and identity must be strings")
        if values["identity"]:
            if values["username"] or values["password_file"]:
                raise ValueError("registry.identity excludes username and password_file")
            return cls(server=server, identity=values["identity"])
        if not values["username"] or not values["password_file"]:
            raise ValueError("registry needs username and password_file, or identity")
        return cls(server=server, username=values["username"],
                   password_file=expand(values["password_file"], "registry.password_file"))


@dataclass
class RegistryLogin:
    """Logs ``runtime`` in to ``registry`` before the first pull of one of its images.

    ``imds_url`` and ``exchange_url`` (default ``https://<server>/oauth2/exchange``) are
    where the managed identity's tokens come from.
    """

    registry: Registry
    imds_url: str = field(default_factory=lambda: default_imds_url())
    exchange_url: str = ""
    timeout: float = HTTP_TIMEOUT
    done: bool = False

    def before_pull(self, image: str, runtime: ContainerRuntime) -> list[str]:
        """Log in if ``image`` comes from the registry and this run has not yet; lines for
        the task's system logs. Raises :class:`RegistryLoginError`."""
        if self.done or image_registry(image) != self.registry.server.lower():
            return []
        username, secret = self.credentials()
        runtime.login(self.registry.server, username, secret)
        self.done = True
        how = "managed identity" if self.registry.identity else f"user {username}"
        log.info("logged %s in to registry %s (%s)", runtime.name, self.registry.server, how)
        return [f"{runtime.name}: logged in to registry {self.registry.server} ({how})"]

    def credentials(self) -> tuple[str, str]:
        """User name and secret to log in with: the password file's content, or an ACR
        refresh token for the managed identity."""
        reg = self.registry
        if not reg.identity:
            try:
                password = reg.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise RegistryLoginError(
                    f"cannot log in to registry {reg.server}: its password file "
                    f"{reg.password_file} cannot be read ({type(exc).__name__}: "
                    f"{getattr(exc, 'strerror', None) or exc}); the pool's start task writes "
                    "it") from None
            if not password:
                raise RegistryLoginError(f"cannot log in to registry {reg.server}: its "
                                         f"password file {reg.password_file} is empty")
            return reg.username, password
        return ACR_TOKEN_USER, self._refresh_token(self._aad_token())

    def _aad_token(self) -> str:
        query = urllib.parse.urlencode({"api-version": IMDS_API_VERSION,
                                        "resource": ARM_RESOURCE,
                                        "msi_res_id": self.registry.identity})
        answer = self._ask(f"{self.imds_url}?{query}", None, {"Metadata": "true"},
                           f"the instance metadata service (managed identity "
                           f"{self.registry.identity})")
        return self._field(answer, "access_token", "the instance metadata service")

    def _refresh_token(self, aad_token: str) -> str:
        server = self.registry.server
        url = self.exchange_url or f"https://{server}/oauth2/exchange"
        body = urllib.parse.urlencode({"grant_type": "access_token", "service": server,
                                       "access_token": aad_token}).encode()
        answer = self._ask(url, body, {"Content-Type": "application/x-www-form-urlencoded"},
                           f"{url} (ACR token exchange)", secret=aad_token)
        return self._field(answer, "refresh_token", f"{url} (ACR token exchange)")

    def _ask(self, url: str, body: bytes | None, headers: dict[str, str], what: str,
             secret: str = "") -> Any:
        """The JSON answer of a GET of ``url`` (a POST of ``body``); a
        :class:`RegistryLoginError` naming ``what`` (never ``secret``, the token the request
        carries) when it fails."""
        import urllib.error  # only a node that logs in with an identity needs them
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            """A redirect is an error: a token is never sent on to another address."""

            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        prefix = f"cannot log in to registry {self.registry.server}: {what}"
        request = urllib.request.Request(url, data=body, headers=headers,
                                         method="POST" if body is not None else "GET")
        handlers: list[Any] = [NoRedirect()]
        if body is None:  # IMDS: a link-local address no proxy may stand in for
            handlers.append(urllib.request.ProxyHandler({}))
        try:
            with urllib.request.build_opener(*handlers).open(
                    request, timeout=self.timeout) as response:
                data = response.read(MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc, secret)
            raise RegistryLoginError(f"{prefix} answered HTTP {exc.code}{detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise RegistryLoginError(
                    f"{prefix} did not answer within {self.timeout:g} s") from None
            raise RegistryLoginError(f"{prefix} could not be reached: {reason}") from None
        try:
            return json.loads(data)
        except ValueError:
            raise RegistryLoginError(f"{prefix} answered something other than JSON") from None

    def _field(self, answer: Any, name: str, what: str) -> str:
        value = answer.get(name) if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryLoginError(f"cannot log in to registry {self.registry.server}: "
                                     f"{what} gave no {name}")
        return value


def default_imds_url() -> str:
    """The IMDS token endpoint: :data:`IMDS_URL`, on ``IMDS_ENDPOINT``'s host when set."""
    endpoint = os.environ.get("IMDS_ENDPOINT", "").rstrip("/")
    return f"{endpoint}/metadata/identity/oauth2/token" if endpoint else IMDS_URL


def _error_detail(exc: Any, secret: str = "") -> str:
    """The error's own words from an IMDS or ACR error body (``error_description``,
    ``errors[0].message``), at most 300 characters, ``secret`` masked, or nothing."""
    try:
        body = json.loads(exc.read(65536) or b"null")
    except (ValueError, OSError):
        return ""
    text = ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = str(errors[0].get("message") or "")
        text = text or str(body.get("error_description") or body.get("error") or "")
    if secret:
        text = text.replace(secret, "***")
    return f": {text[:300]}" if text else ""
