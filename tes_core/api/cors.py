"""CORS for browsers on other origins, off unless ``TES_CORS_ORIGINS`` names some.

A request with an ``Origin`` the settings allow gets ``Access-Control-Allow-Origin``;
a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) also gets the
allowed methods and the requested headers. With no origins configured (the default)
no CORS header is ever sent, so a web page on another site can neither read the
API's answers nor send it a JSON body (the browser's preflight is not granted).
Requests without ``Origin`` pay nothing.

:func:`refuse_cross_site` also stops the "simple" POSTs a page may send without a
preflight (a form, a bodiless ``fetch``): with authentication off (the default),
any page the operator visits could otherwise cancel tasks. Without authentication it
also refuses POSTs from pages under a DNS name other than ``localhost`` (DNS
rebinding) unless ``TES_CORS_ORIGINS`` lists them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

from ..errors import ApiError

ALLOWED_METHODS = "GET, POST, OPTIONS"
EXPOSED_HEADERS = "WWW-Authenticate, X-Request-ID, X-Output-Offset, X-Output-Next"
"""Response headers a browser app may read: why a token was refused, the request id, where
an executor output answer lies in its stream."""
PREFLIGHT_MAX_AGE = "86400"
_EXTENSION = "tes_cors"


class CrossSiteRefused(ApiError):
    """403: a browser on an origin CORS does not allow tried to change something."""

    status_code = 403


def enable_cors(app: Flask, prefix: str, origins: Iterable[str]) -> None:
    """Answer CORS for every path under ``prefix``, for ``origins`` (``*`` allows any);
    nothing at all when ``origins`` is empty."""
    allowed = frozenset(origins)
    any_origin = "*" in allowed
    app.extensions[_EXTENSION] = allowed
    if not allowed:
        return

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith(prefix):
            return response
        if not any_origin and origin not in allowed:
            return response
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if not any_origin:
            headers.add("Vary", "Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            wanted = request.headers.get("Access-Control-Request-Headers")
            if wanted:
                headers["Access-Control-Allow-Headers"] = wanted
            headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response


def refuse_cross_site() -> None:
    """403 for a request a browser sent from a page on another origin that CORS does not
    allow. Browsers say where a request comes from (``Sec-Fetch-Site``, or at least
    ``Origin`` on every POST); other clients send neither and pass."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = current_app.extensions.get(_EXTENSION, frozenset())
    if "*" in allowed or origin in allowed:
        return
    site = request.headers.get("Sec-Fetch-Site")
    page = urlsplit(origin)
    if site == "same-origin" or (site is None and page.netloc == request.host):
        # The API explorer served by this server. Without authentication, only under an
        # address or ``localhost``: a page under a DNS name may be an attacker's whose name
        # now resolves to this server (DNS rebinding), and the browser then calls it
        # "same origin". Tokens are not sent by a browser on its own, so with
        # authentication any name will do.
        if "tes_auth" in current_app.extensions or _not_rebindable(page.hostname or ""):
            return
        raise CrossSiteRefused(
            f"requests from web pages on Origin {origin} are not allowed without "
            "authentication: open the API explorer at this server's address or at "
            "localhost, or list the origin in the server's TES_CORS_ORIGINS setting",
            field="Origin",
        )
    raise CrossSiteRefused(
        f"requests from web pages on Origin {origin} are not allowed: the server's "
        "TES_CORS_ORIGINS setting lists the origins that may call this API",
        field="Origin",
    )


def _not_rebindable(hostname: str) -> bool:
    """Whether a page's host name cannot be pointed at this server by someone else's DNS:
    an IP address, or ``localhost`` (browsers resolve it, and ``*.localhost``, to
    loopback themselves)."""
    name = hostname.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
