"""A local stand-in for Azure Key Vault's secrets REST API, served over HTTPS.

Key Vault cannot run here, so this follows its documented contract for what the
server uses: ``GET /secrets/{name}/{version}?api-version=...`` answering the
``SecretBundle`` JSON, ``PUT /secrets/{name}`` (SetSecret, for provisioning), a 401
bearer challenge (``WWW-Authenticate: Bearer authorization=..., resource=...``) to
requests without a valid token, and
``{"error": {"code": "SecretNotFound", ...}}`` with 404 for unknown secrets.
The real ``SecretClient`` talks to it with a self-signed certificate it trusts.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.jsonhttp import JsonHandler, LocalServer

TENANT = "72f988bf-0000-0000-0000-000000000000"
TOKEN = "fake-access-token-" + uuid.uuid4().hex


class StaticCredential:
    """An azure-core ``TokenCredential`` handing out one token (no Entra ID here);
    it records the scopes it was asked for."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_kwargs: Any) -> Any:
        """azure-core's ``TokenCredential.get_token``."""
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost``/``127.0.0.1`` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "vault.crt", folder / "vault.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_file, key_file


class FakeKeyVault:
    """Secrets by name, each a list of (version, value), newest last."""

    def __init__(self, folder: Path) -> None:
        self.secrets: dict[str, list[tuple[str, str]]] = {}
        self.requests: list[tuple[str, str | None]] = []
        vault = self

        class Handler(JsonHandler):
            def refused(self) -> bool:
                """Answer 400 without an API version, 401 (a challenge) without the token."""
                vault.requests.append((self.path, self.headers.get("Authorization")))
                if not parse_qs(urlsplit(self.path).query).get("api-version"):
                    self.reply(400, {"error": {"code": "MissingApiVersionParameter",
                                               "message": "The api-version is missing."}})
                    return True
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.reply(401, {"error": {"code": "Unauthorized",
                                               "message": "AKV10000: Request is missing a "
                                               "Bearer or PoP token."}},
                               {"WWW-Authenticate": f'Bearer authorization="https://login.'
                                f'microsoftonline.com/{TENANT}", resource="https://vault.'
                                'azure.net"'})
                    return True
                return False

            def do_PUT(self) -> None:  # noqa: N802 - http.server's name
                """SetSecret: ``PUT /secrets/{name}`` with ``{"value", "tags"}``."""
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.refused():
                    return
                parts = [p for p in urlsplit(self.path).path.split("/") if p]
                if len(parts) != 2 or parts[0] != "secrets":
                    self.reply(404, {"error": {"code": "NotFound", "message": "no such path"}})
                    return
                version = vault.set(parts[1], json.loads(body)["value"])
                self.reply(200, {"id": f"{vault.url}/secrets/{parts[1]}/{version}",
                                 "attributes": {"enabled": True, "created": 1700000000,
                                                "updated": 1700000000,
                                                "recoveryLevel": "Recoverable+Purgeable"},
                                 "tags": json.loads(body).get("tags") or {}})

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                split = urlsplit(self.path)
                if self.refused():
                    return
                parts = [p for p in split.path.split("/") if p]
                if len(parts) not in (2, 3) or parts[0] != "secrets":
                    self.reply(404, {"error": {"code": "NotFound", "message": "no such path"}})
                    return
                versions = vault.secrets.get(parts[1], [])
                wanted = parts[2] if len(parts) == 3 else None
                found = [v for v in versions if wanted in (None, v[0])]
                if not found:
                    self.reply(404, {"error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {parts[1]} was not found in this "
                                   "key vault. If you recently deleted this secret you may be "
                                   "able to recover it using the correct recovery command.",
                    }})
                    return
                version, value = found[-1]
                self.reply(200, {
                    "value": value,
                    "id": f"{vault.url}/secrets/{parts[1]}/{version}",
                    "attributes": {"enabled": True, "created": 1700000000,
                                   "updated": 1700000000,
                                   "recoveryLevel": "Recoverable+Purgeable"},
                    "tags": {},
                })

        self.cert_file, key_file = self_signed_certificate(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        self.http = LocalServer(Handler, tls=context)
        self.url = f"https://localhost:{self.http.port}"

    def set(self, name: str, value: str) -> str:
        """Store a new version of ``name``; its version id."""
        version = uuid.uuid4().hex
        self.secrets.setdefault(name, []).append((version, value))
        return version

    def client_options(self) -> dict[str, Any]:
        """What a ``SecretClient`` needs to talk to this vault: trust its certificate, and
        accept a challenge resource (vault.azure.net) that is not this host's domain."""
        return {"connection_verify": str(self.cert_file), "verify_challenge_resource": False}

    def close(self) -> None:
        """Stop serving."""
        self.http.close()
