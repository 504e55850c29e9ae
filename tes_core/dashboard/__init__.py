"""The web dashboard: plain HTML, CSS and JavaScript files shipped in the package.

``/`` serves the page; ``/dashboard/<file>`` its assets; ``/dashboard/config.json``
tells the page where the API is and whether it needs a token. Everything it shows
comes from the API itself, with the caller's bearer token, so it sees exactly what
the API lets that user see. Every response carries a strict Content-Security-Policy:
scripts and styles only from this server's own files (no inline script, no ``eval``),
no frames, no plugins, and connections only to this server.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, jsonify, send_from_directory

from .. import API_PREFIX
from ..config import Settings

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def content_security_policy(connect: str = "") -> str:
    """What the dashboard's pages may load and run: only this server's own files; they
    may also call ``connect`` (the identity provider's origin, for signing in)."""
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'" + (f" {connect}" if connect else ""),
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def oidc_client(settings: Settings) -> dict[str, str] | None:
    """What the page needs to sign users in at the identity provider, or ``None`` when
    it asks for a pasted token (authentication off, or no client id configured)."""
    if not (settings.auth_enabled and settings.dashboard_oidc_client_id):
        return None
    return {"issuer": settings.auth_issuer.rstrip("/"),
            "client_id": settings.dashboard_oidc_client_id,
            "scope": settings.dashboard_oidc_scope}

ASSET_MAX_AGE = 300
"""Seconds a browser may keep an asset without asking again (the files change only
with an upgrade)."""


@functools.cache
def static_dir() -> Path:
    """The folder holding the dashboard's files inside the installed package."""
    return Path(str(files("tes_core.dashboard") / "static"))


@functools.cache
def asset_names() -> frozenset[str]:
    """The files the dashboard may serve (nothing else under its folder, ever)."""
    return frozenset(p.name for p in static_dir().iterdir() if p.is_file())


def enable_dashboard(app: Flask, settings: Settings) -> None:
    """Serve the dashboard at ``/`` and its files under ``/dashboard/``."""
    blueprint = Blueprint("dashboard", __name__)
    oidc = oidc_client(settings)
    issuer = urlsplit(oidc["issuer"]) if oidc else None
    headers = {"Content-Security-Policy": content_security_policy(
        f"{issuer.scheme}://{issuer.netloc}" if issuer else ""), **SECURITY_HEADERS}
    page_config = {"api": API_PREFIX, "auth": settings.auth_enabled,
                   **({"oidc": oidc} if oidc else {})}

    @blueprint.get("/")
    def page() -> Response:
        """The dashboard's one HTML page (it routes between its views itself)."""
        return send_from_directory(static_dir(), "index.html", max_age=0)

    @blueprint.get("/dashboard/config.json")
    def config() -> Response:
        """Where the API is, whether the page must send a bearer token, and where it may
        get one (``oidc``: issuer, client id, scope)."""
        return jsonify(page_config)

    @blueprint.get("/dashboard/<name>")
    def asset(name: str) -> Response:
        """One of the dashboard's files; 404 for any other name."""
        if name not in asset_names() or name == "index.html":
            abort(404)
        return send_from_directory(static_dir(), name, max_age=ASSET_MAX_AGE)

    @blueprint.after_request
    def secure(response: Response) -> Response:
        for header, value in headers.items():
            response.headers[header] = value
        return response

    app.register_blueprint(blueprint)
