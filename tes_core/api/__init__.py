"""The HTTP API: one blueprint per resource under ``/ga4gh/tes/v1``; health and
metrics at the root."""

from __future__ import annotations

from flask import Flask

from .. import API_PREFIX
from .docs import blueprint as docs_blueprint
from .errors import register_error_handlers
from .events import blueprint as events_blueprint
from .health import blueprint as health_blueprint
from .metrics import blueprint as metrics_blueprint
from .provision import blueprint as provision_blueprint
from .service_info import blueprint as service_info_blueprint
from .tasks import blueprint as tasks_blueprint


def register_api(app: Flask) -> None:
    """Mount every blueprint and the JSON error handlers."""
    app.register_blueprint(tasks_blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(events_blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(service_info_blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(provision_blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(docs_blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(health_blueprint)
    app.register_blueprint(metrics_blueprint)
    register_error_handlers(app)
