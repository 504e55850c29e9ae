"""A real OpenID provider's public side for tests: its discovery document and JWKS
served over HTTP on localhost from a thread, and tokens signed with its keys."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.jsonhttp import JsonHandler, LocalServer

AUDIENCE = "api://tes-test"
TENANT = "11111111-2222-3333-4444-555555555555"


class IdentityProvider:
    """Issuer ``http://127.0.0.1:PORT/<tenant>/v2.0`` with an RSA and an EC signing key."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.algs: dict[str, str] = {}
        self.fetches = {"config": 0, "jwks": 0}
        self.down = False
        self.add_key("RS256")
        self.add_key("ES256")
        provider = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if provider.down:
                    self.reply(503, {"error": "temporarily_unavailable"})
                elif self.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                    provider.fetches["config"] += 1
                    self.reply(200, {"issuer": provider.issuer, "jwks_uri": provider.jwks_url,
                                     "id_token_signing_alg_values_supported": ["RS256", "ES256"]})
                elif self.path == f"/{TENANT}/discovery/v2.0/keys":
                    provider.fetches["jwks"] += 1
                    self.reply(200, provider.jwks())
                else:
                    self.reply(404, {"error": "not_found"})

        self.http = LocalServer(Handler)
        self.base = f"http://127.0.0.1:{self.http.port}"
        self.issuer = f"{self.base}/{TENANT}/v2.0"
        self.jwks_url = f"{self.base}/{TENANT}/discovery/v2.0/keys"

    def close(self) -> None:
        """Stop serving."""
        self.http.close()

    def add_key(self, alg: str) -> str:
        """A new signing key for ``alg`` (RS256 or ES256) in the JWKS; its kid."""
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg.startswith("RS") else ec.generate_private_key(ec.SECP256R1())
        )
        self.algs[kid] = alg
        return kid

    def kid(self, alg: str) -> str:
        """The newest key id for ``alg``."""
        return [kid for kid, a in self.algs.items() if a == alg][-1]

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document."""
        keys = []
        for kid, private in self.keys.items():
            algorithm = jwt.algorithms.get_default_algorithms()[self.algs[kid]]
            jwk = json.loads(algorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def public_pem(self, kid: str) -> bytes:
        """A key's public half as PEM (what an HMAC-confusion attacker would use)."""
        return self.keys[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self, subject: str = "alice", *, alg: str = "RS256", kid: str | None = None,
        tenant: str | None = TENANT, lifetime: float = 600, **claims: Any,
    ) -> str:
        """A token signed by this provider; ``claims`` override or add claims."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now,
            "exp": now + int(lifetime),
        }
        if tenant is not None:
            body["tid"] = tenant
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        kid = kid or self.kid(alg)
        return jwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid})

    def settings(self, **extra: str) -> dict[str, str]:
        """``TES_AUTH_*`` variables for a server trusting this provider."""
        return {
            "TES_AUTH_ENABLED": "true",
            "TES_AUTH_ISSUER": self.issuer,
            "TES_AUTH_AUDIENCE": AUDIENCE,
            **extra,
        }
