"""``/service-info``: who this server is and what its backend supports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request

from .. import TES_API_VERSION, __version__
from .responses import json_response
from .routing import LEGACY_MARK

blueprint = Blueprint("service_info", __name__)

STARTED_AT = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_service_info(core: Any) -> dict[str, Any]:
    """The ``tesServiceInfo`` document for this server's settings and backend."""
    settings = core.settings
    info: dict[str, Any] = {
        "id": settings.service_id,
        "name": settings.service_name,
        "type": {"group": "org.ga4gh", "artifact": "tes", "version": TES_API_VERSION},
        "description": f"GA4GH TES {TES_API_VERSION} server (tes-core), "
        f"running tasks on the '{core.backend.name}' backend",
        "organization": {"name": settings.organization_name, "url": settings.organization_url},
        "createdAt": STARTED_AT,
        "updatedAt": STARTED_AT,
        "version": __version__,
        "storage": list(settings.storage) or core.backend.storage(),
        "tesResources_backend_parameters": sorted(core.backend.backend_parameters),
    }
    for key, value in (
        ("contactUrl", settings.contact_url),
        ("documentationUrl", settings.documentation_url),
        ("environment", settings.environment),
    ):
        if value:
            info[key] = value
    return info


def legacy_service_info(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` as TES 0.3's service info (``name``, ``doc``, ``storage``), the only shape
    py-tes 0.4 reads (see api/routing.py)."""
    return {"name": info["name"], "doc": info["description"], "storage": info["storage"]}


@blueprint.get("/service-info")
def service_info() -> Response:
    """``tesServiceInfo`` (TES 0.3's shape when asked at py-tes 0.4's path)."""
    core = current_app.extensions["tes"]
    info = build_service_info(core)
    if request.environ.get(LEGACY_MARK):
        info = legacy_service_info(info)
    return json_response(info)
