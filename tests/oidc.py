"""A real OpenID provider's public side for tests: its discovery document and JWKS
served over HTTP on localhost from a thread, and tokens signed with its keys; and the
authorization code flow with PKCE for a public client (a browser app), which signs in
:attr:`IdentityProvider.login_subject` at once, without a login form."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.jsonhttp import JsonHandler, LocalServer

AUDIENCE = "api://tes-test"
CORS = {"Access-Control-Allow-Origin": "*"}
"""What the provider answers a browser app's calls with (discovery, token)."""
TENANT = "11111111-2222-3333-4444-555555555555"


class IdentityProvider:
    """Issuer ``http://127.0.0.1:PORT/<tenant>/v2.0`` with an RSA and an EC signing key."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.algs: dict[str, str] = {}
        self.fetches = {"config": 0, "jwks": 0}
        self.down = False
        self.login_subject = "alice"
        """Who the authorization endpoint signs in."""
        self.codes: dict[str, dict[str, str]] = {}
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
                                     "authorization_endpoint": provider.authorize_url,
                                     "token_endpoint": provider.token_url,
                                     "id_token_signing_alg_values_supported": ["RS256", "ES256"]},
                               CORS)
                elif self.path == f"/{TENANT}/discovery/v2.0/keys":
                    provider.fetches["jwks"] += 1
                    self.reply(200, provider.jwks())
                elif self.path.startswith(urlsplit(provider.authorize_url).path + "?"):
                    self.authorize(parse_qs(urlsplit(self.path).query))
                else:
                    self.reply(404, {"error": "not_found"})

            def authorize(self, query: dict[str, list[str]]) -> None:
                """Sign ``login_subject`` in and send the browser back with a code."""
                ask = {key: values[0] for key, values in query.items()}
                if ask.get("code_challenge_method") != "S256" or "code_challenge" not in ask:
                    self.reply(400, {"error": "invalid_request"})
                    return
                code = uuid.uuid4().hex
                provider.codes[code] = {**ask, "sub": provider.login_subject}
                back = {"code": code, "state": ask.get("state", "")}
                self.send_response(302)
                self.send_header("Location", ask["redirect_uri"] + "?" + urlencode(back))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if self.path != urlsplit(provider.token_url).path:
                    self.reply(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                asked = provider.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if (asked is None or form.get("grant_type") != "authorization_code"
                        or challenge != asked["code_challenge"]
                        or form.get("redirect_uri") != asked["redirect_uri"]
                        or form.get("client_id") != asked["client_id"]):
                    self.reply(400, {"error": "invalid_grant"}, CORS)
                    return
                self.reply(200, {"access_token": provider.token(asked["sub"]),
                                 "token_type": "Bearer", "expires_in": 600}, CORS)

        self.http = LocalServer(Handler)
        self.base = f"http://127.0.0.1:{self.http.port}"
        self.issuer = f"{self.base}/{TENANT}/v2.0"
        self.jwks_url = f"{self.base}/{TENANT}/discovery/v2.0/keys"
        self.authorize_url = f"{self.base}/{TENANT}/oauth2/v2.0/authorize"
        self.token_url = f"{self.base}/{TENANT}/oauth2/v2.0/token"

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
