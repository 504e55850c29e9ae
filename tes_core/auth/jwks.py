"""The issuer's signing keys (JWKS), discovered, cached and refreshed.

The JWKS address is given (``TES_AUTH_JWKS_URL``) or read from the issuer's
OpenID configuration (``<issuer>/.well-known/openid-configuration``, whose
``issuer`` must be the configured one, as OpenID Connect Discovery 1.0 §4.3
asks). Keys are kept for ``TES_AUTH_JWKS_CACHE_SECONDS``; a token naming an
unknown key id fetches them again (key rotation), at most once per
``TES_AUTH_JWKS_MIN_REFRESH`` seconds so forged key ids cannot hammer the issuer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

from ..errors import ServiceUnavailable

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
MAX_DOCUMENT_BYTES = 1 << 20
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
"""The JWK ``kty`` each algorithm family needs."""


NO_KEYS = ("cannot check bearer tokens: the identity provider's signing keys cannot be "
           "fetched right now; retry in a moment")


class UnknownKey(LookupError):
    """No signing key fits the token's ``kid`` and ``alg``; the message says why."""


def fetch_json(url: str) -> Any:
    """GET a JSON document (bounded in time and size)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


@dataclass(frozen=True)
class SigningKey:
    """One public key of the JWKS, with the JWK fields that say what it may check."""

    jwk: jwt.PyJWK
    kty: str
    alg: str | None


class JwksKeys:
    """Signing keys of one issuer, by key id."""

    def __init__(
        self, issuer: str, jwks_url: str = "", *, cache_seconds: float = 3600.0,
        min_refresh: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.cache_seconds = cache_seconds
        self.min_refresh = min_refresh
        self._keys: dict[str | None, SigningKey] = {}
        self._expires = float("-inf")
        self._next_fetch = float("-inf")
        self._lock = threading.Lock()

    def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key to check a token signed with ``alg`` by key ``kid``.

        Raises :class:`UnknownKey` when no key fits, and
        :class:`~tes_core.errors.ServiceUnavailable` when the keys were never fetched
        because the issuer cannot be reached.
        """
        key = self._keys.get(kid)
        if key is None or time.monotonic() >= self._expires:
            with self._lock:
                now = time.monotonic()
                if now >= self._next_fetch and (now >= self._expires or kid not in self._keys):
                    self._refresh(now)
                key = self._keys.get(kid)
                if not self._keys:  # never fetched, and the last try was too recent
                    raise ServiceUnavailable(NO_KEYS)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # a JWKS of one key, a token without kid
        if key is None:
            raise UnknownKey(f"no signing key with kid {kid!r} at the issuer")
        if key.alg and key.alg != alg:
            raise UnknownKey(f"key {kid!r} is for {key.alg}, not {alg}")
        if key.kty != KEY_TYPES.get(alg[:2]):
            raise UnknownKey(f"key {kid!r} is not a {alg} key")
        return key.jwk

    def _refresh(self, now: float) -> None:
        self._next_fetch = now + self.min_refresh
        try:
            url = self.jwks_url or self._discover()
            keys = _parse_jwks(fetch_json(url))
        except Exception as exc:
            # Keys fetched earlier stay in use: a short outage of the issuer should
            # not stop the tokens it signed from working.
            log.warning("could not fetch the signing keys of %s: %s", self.issuer, exc)
            if not self._keys:
                raise ServiceUnavailable(NO_KEYS) from None
            return
        self._keys = keys
        self._expires = now + self.cache_seconds
        log.info("fetched %d signing key(s) of %s", len(keys), self.issuer)

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        config = fetch_json(url)
        if config.get("issuer") != self.issuer:
            raise ValueError(f"{url} names issuer {config.get('issuer')!r}, not {self.issuer!r}")
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise ValueError(f"{url} has no jwks_uri")
        self.jwks_url = jwks_uri
        return jwks_uri


def _parse_jwks(document: Any) -> dict[str | None, SigningKey]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS is not a JSON object with a 'keys' list")
    keys: dict[str | None, SigningKey] = {}
    for item in document["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        if item.get("kty") not in {"RSA", "EC"} or "d" in item:
            continue  # only public asymmetric keys can sign tokens we accept
        try:
            keys[item.get("kid")] = SigningKey(jwt.PyJWK(item), item["kty"], item.get("alg"))
        except jwt.PyJWTError as exc:
            log.warning("skipping JWKS key %r: %s", item.get("kid"), exc)
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys
