"""SharedKey verification as the Batch REST API documents it ("Authenticate requests to
the Azure Batch service"): HMAC-SHA256 with the account key over the verb, eleven standard
headers, the ``ocp-*`` headers and the canonical resource (account, path, query)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

STANDARD = ("content-encoding", "content-language", "content-length", "content-md5",
            "content-type", "date", "if-modified-since", "if-match", "if-none-match",
            "if-unmodified-since", "range")


def string_to_sign(method: str, target: str, headers: Mapping[str, str], account: str) -> str:
    """The canonical string of a request (``target``: the raw path and query)."""
    lowered = {k.lower(): v for k, v in headers.items() if v}
    if method not in ("GET", "HEAD") and "content-length" not in lowered:
        lowered["content-length"] = "0"
    lines = [method] + [lowered.get(name, "") for name in STANDARD]
    text = "\n".join(lines) + "\n"
    for name in sorted(k for k in lowered if k.startswith("ocp-")):
        text += f"{name}:{lowered[name]}\n"
    parts = urlsplit(target)
    text += f"/{account}{parts.path}"
    query = parse_qs(parts.query)
    for name in sorted(query):
        if query[name][0]:
            text += f"\n{name}:{query[name][0]}"
    return text


def verify(method: str, target: str, headers: Mapping[str, str], account: str,
           key: str) -> str | None:
    """``None`` when the Authorization header is a valid SharedKey signature, else why not."""
    given = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    if not given.startswith(f"SharedKey {account}:"):
        return "no SharedKey authorization for this account"
    if "ocp-date" not in {k.lower() for k in headers} and "date" not in {
            k.lower() for k in headers}:
        return "the request has no ocp-date"
    digest = hmac.new(base64.b64decode(key),
                      string_to_sign(method, target, headers, account).encode(),
                      hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    if not hmac.compare_digest(given.split(":", 1)[1], expected):
        return "the signature does not match"
    return None
