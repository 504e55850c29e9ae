"""Bearer tokens on the task endpoints: who is calling (``current_principal``).

With ``TES_AUTH_ENABLED`` every request under the API prefix needs a valid token,
except the public documents: service-info, the OpenAPI document and its
explorer, and CORS preflights (browsers send no credentials on those).
``/healthz``, ``/readyz`` and ``/metrics`` live outside the prefix.
"""

from __future__ import annotations

from flask import Flask, g, request

from ..auth.principal import Principal
from ..config import ConfigError, Settings

PUBLIC_PATHS = ("/service-info", "/openapi.json", "/openapi.yaml")
PUBLIC_PREFIXES = ("/ui",)
QUERY_TOKEN_PATHS = ("/events",)
"""Paths that also accept the token as ``?access_token=`` (for browsers' EventSource)."""


def enable_auth(app: Flask, prefix: str, settings: Settings) -> None:
    """Require a bearer token on ``prefix`` except its public documents."""
    try:
        from ..auth.tokens import TokenVerifier  # PyJWT only when auth is on
    except ImportError as exc:
        raise ConfigError(
            f"TES_AUTH_ENABLED is on but {exc.name} is missing: pip install 'tes-core[auth]'"
        ) from None
    verifier = TokenVerifier(settings)
    app.extensions["tes_auth"] = verifier
    public = frozenset(prefix + path for path in PUBLIC_PATHS)
    public_prefixes = tuple(prefix + path for path in PUBLIC_PREFIXES)
    query_token_paths = frozenset(prefix + path for path in QUERY_TOKEN_PATHS)

    @app.before_request
    def authenticate() -> None:
        path = request.path
        if (
            not path.startswith(prefix)
            or path in public
            or path.startswith(public_prefixes)
            or request.method == "OPTIONS"
        ):
            return
        header = request.headers.get("Authorization")
        if header is None and path in query_token_paths:
            # EventSource cannot send headers: the events stream takes the token as a
            # parameter too. Never logged (no access log; see README, Task events).
            token = request.args.get("access_token")
            header = f"Bearer {token}" if token else None
        g.tes_principal = verifier.authenticate(header)


def current_principal() -> Principal | None:
    """The caller of this request, or ``None`` when authentication is off."""
    return g.get("tes_principal")
