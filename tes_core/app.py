"""``create_app()``: the Flask application factory."""

from __future__ import annotations

import atexit
import logging
from importlib.resources import files
from pathlib import Path

import flask
from flask import Flask, redirect
from flask_migrate import Migrate

from . import API_PREFIX
from .api import register_api
from .api.auth import enable_auth
from .api.cors import enable_cors
from .api.events import StreamLimits, stream_limit
from .api.observe import observe_requests
from .api.routing import SegmentConverter, serve_alias
from .config import Settings
from .core import Core, build_core
from .dashboard import enable_dashboard
from .plugins import load_plugins
from .telemetry.exporters import start_exporters
from .telemetry.logs import configure_logging

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    start_worker: bool | None = None,
    sole_writer: bool = False,
) -> Flask:
    """Build the app and its core from ``settings`` (default: the environment).

    ``start_worker``: run the Dramatiq workers inside this process. The default
    does so in the embedded mode (no ``TES_BROKER_URL``), where nothing else
    would; with Redis, workers are separate ``tes-server worker`` processes.
    ``sole_writer``: no other process changes task states (see :func:`build_core`).
    """
    settings = settings or Settings.from_env()
    configure_logging()
    hooks = load_plugins(settings)
    start_exporters(hooks, settings)  # before Flask(): instrumentation may patch the class
    # Looked up now, not at import: OpenTelemetry's instrumentation replaces ``flask.Flask``.
    app = flask.Flask("tes_core")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    core = build_core(settings, hooks=hooks, sole_writer=sole_writer)
    app.extensions["tes"] = core
    Migrate(app, core.db, directory=str(migrations_dir()), render_as_batch=True)
    observe_requests(app)  # first: 401s and errors get a request id too
    if settings.auth_enabled:
        enable_auth(app, API_PREFIX, settings)
    enable_cors(app, API_PREFIX, settings.cors_origins)
    # Route templates stay plain (``<task_id>``) for metrics and trace names.
    app.url_map.converters["default"] = SegmentConverter
    app.extensions["tes_events_limits"] = StreamLimits(
        stream_limit(settings.events_max_clients, settings.http_threads)
    )
    register_api(app)
    serve_alias(app, API_PREFIX)  # outermost: every layer sees the canonical path

    if settings.dashboard:
        enable_dashboard(app, settings)
    else:

        @app.get("/")
        def index():  # type: ignore[no-untyped-def]
            return redirect(f"{API_PREFIX}/ui/")

    if start_worker if start_worker is not None else not settings.broker_url:
        core.start_worker()
        atexit.register(core.close)
    return app


def core_of(app: Flask) -> Core:
    """The :class:`~tes_core.core.Core` behind an app made by :func:`create_app`."""
    return app.extensions["tes"]


def migrations_dir() -> Path:
    """Where the Alembic revisions live: ``migrations/`` at the repository root, which
    is installed as the package ``tes_core.migrations``."""
    return Path(str(files("tes_core.migrations")))
