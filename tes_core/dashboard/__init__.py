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

from flask import Blueprint, Flask, Response, abort, jsonify, send_from_directory

from .. import API_PREFIX
from ..config import Settings

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
"""What the dashboard's pages may load and run: only this server's own files."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

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

    @blueprint.get("/")
    def page() -> Response:
        """The dashboard's one HTML page (it routes between its views itself)."""
        return send_from_directory(static_dir(), "index.html", max_age=0)

    @blueprint.get("/dashboard/config.json")
    def config() -> Response:
        """Where the API is, and whether the page must send a bearer token."""
        return jsonify({"api": API_PREFIX, "auth": settings.auth_enabled})

    @blueprint.get("/dashboard/<name>")
    def asset(name: str) -> Response:
        """One of the dashboard's files; 404 for any other name."""
        if name not in asset_names() or name == "index.html":
            abort(404)
        return send_from_directory(static_dir(), name, max_age=ASSET_MAX_AGE)

    @blueprint.after_request
    def secure(response: Response) -> Response:
        for header, value in SECURITY_HEADERS.items():
            response.headers[header] = value
        return response

    app.register_blueprint(blueprint)
