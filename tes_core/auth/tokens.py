"""Checking OAuth 2.0 bearer tokens (JWTs) and turning them into a :class:`Principal`.

A token is accepted when its signature checks with the issuer's key named by its
``kid``, with an algorithm of ``TES_AUTH_ALGORITHMS`` (asymmetric only: ``none``
and HMAC, which would let the public key act as a shared secret, are refused
before any key is looked at); its ``iss`` is ``TES_AUTH_ISSUER``; its ``aud`` one
of ``TES_AUTH_AUDIENCE``; it has an ``exp`` in the future and no ``nbf`` in the
future, within ``TES_AUTH_LEEWAY`` seconds.

Checked tokens are remembered until they expire (at most ``VERIFIED_CACHE_SECONDS``),
so a client polling with the same token pays for the signature check once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import jwt

from ..config import ConfigError, Settings
from ..errors import ApiError, Unauthorized
from .jwks import JwksKeys, UnknownKey
from .principal import Owner, Principal

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
VERIFIED_CACHE_SECONDS = 300.0
VERIFIED_CACHE_ENTRIES = 10_000
REALM = "tes"


class BadRequestToken(ApiError):
    """400: the ``Authorization`` header is not a well-formed bearer credential."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message, field="Authorization")
        self.headers = {"WWW-Authenticate": challenge("invalid_request", message)}


def challenge(error: str | None = None, description: str | None = None) -> str:
    """A ``WWW-Authenticate`` value for the Bearer scheme (RFC 6750 §3)."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        # RFC 6750: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"' nor '\').
        safe = "".join(c for c in description if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
        parts.append(f'error_description="{safe}"')
    return "Bearer " + ", ".join(parts)


def invalid_token(reason: str) -> Unauthorized:
    """401 for a token that is expired, forged, or not for this server."""
    return Unauthorized(
        f"the bearer token is not valid: {reason}",
        challenge=challenge("invalid_token", reason),
    )


class TokenVerifier:
    """Checks bearer tokens against one issuer; built from the ``TES_AUTH_*`` settings."""

    def __init__(self, settings: Settings, keys: JwksKeys | None = None) -> None:
        if not settings.auth_issuer:
            raise ConfigError("TES_AUTH_ENABLED is on: set TES_AUTH_ISSUER to the token issuer")
        if not settings.auth_audience:
            raise ConfigError("TES_AUTH_ENABLED is on: set TES_AUTH_AUDIENCE (this API's "
                              "audience, e.g. its application id)")
        refused = [alg for alg in settings.auth_algorithms if alg not in ASYMMETRIC]
        if refused or not settings.auth_algorithms:
            raise ConfigError(
                f"TES_AUTH_ALGORITHMS: {', '.join(refused) or 'empty'} not accepted; "
                f"choose among {', '.join(sorted(ASYMMETRIC))}"
            )
        self.issuer = settings.auth_issuer
        self.audience = list(settings.auth_audience)
        self.algorithms = frozenset(settings.auth_algorithms)
        self.leeway = settings.auth_leeway
        self.owner_claim = settings.auth_owner_claim
        self.tenant_claim = settings.auth_tenant_claim
        self.admin_claim = settings.auth_admin_claim
        self.admin_role = settings.auth_admin_role
        self.keys = keys or JwksKeys(
            settings.auth_issuer, settings.auth_jwks_url,
            cache_seconds=settings.auth_jwks_cache_seconds,
            min_refresh=settings.auth_jwks_min_refresh,
        )
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by an ``Authorization`` header; raises a 401 (or 400) error."""
        if not authorization:
            raise Unauthorized("this API needs a bearer token (Authorization: Bearer <token>)",
                               challenge=challenge())
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized(f"this API takes bearer tokens, not '{scheme[:20]}' credentials",
                               challenge=challenge())
        token = token.strip()
        if not token or " " in token:
            raise BadRequestToken("the Authorization header must be 'Bearer <token>'")
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises :class:`Unauthorized` otherwise."""
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        principal, expires = self._check(token)
        with self._lock:
            if len(self._verified) >= VERIFIED_CACHE_ENTRIES:
                self._verified.pop(next(iter(self._verified)))  # the oldest entry
            self._verified[token] = (principal, expires)
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token("it is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise invalid_token(f"signature algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        try:
            key = self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        except UnknownKey as exc:
            raise invalid_token(str(exc)) from None
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise invalid_token("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise invalid_token("the token is not meant for this API (aud)") from None
        except jwt.InvalidIssuerError:
            raise invalid_token("the token comes from another issuer (iss)") from None
        except jwt.InvalidSignatureError:
            raise invalid_token("the signature does not match") from None
        except jwt.MissingRequiredClaimError as exc:
            raise invalid_token(f"the token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise invalid_token(f"it cannot be checked ({type(exc).__name__})") from None
        principal = self.principal(claims)
        expires = min(float(claims["exp"]) + self.leeway, time.time() + VERIFIED_CACHE_SECONDS)
        return principal, expires

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """Owner and admin right from the verified ``claims``."""
        subject = claims.get(self.owner_claim)
        if not isinstance(subject, str) or not subject:
            raise invalid_token(f"the token has no '{self.owner_claim}' claim naming its owner")
        tenant = claims.get(self.tenant_claim) or ""
        if not isinstance(tenant, str):
            raise invalid_token(f"the token's '{self.tenant_claim}' claim is not a string")
        return Principal(Owner(subject, tenant), admin=self._is_admin(claims))

    def _is_admin(self, claims: Mapping[str, Any]) -> bool:
        held = claims.get(self.admin_claim)
        if isinstance(held, str):
            held = held.split()
        return isinstance(held, list) and self.admin_role in held
