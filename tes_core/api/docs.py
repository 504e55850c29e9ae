"""The OpenAPI document this server implements, and a Swagger UI page to explore it.

The Swagger UI files come from the ``swagger-ui-bundle`` package, so the
explorer works without internet access.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

import yaml
from flask import Blueprint, Response, abort, send_from_directory, url_for

from .responses import json_response

blueprint = Blueprint("docs", __name__)

SPEC_FILE = "task_execution_service.openapi.yaml"

EXPLORER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>TES API explorer</title>
  <link rel="stylesheet" href="{css}">
</head>
<body>
  <div id="explorer"></div>
  <script src="{bundle}"></script>
  <script>
    window.addEventListener("load", function () {{
      SwaggerUIBundle({{ url: "{spec}", dom_id: "#explorer", deepLinking: true }});
    }});
  </script>
</body>
</html>
"""


@functools.cache
def spec_text() -> str:
    """The TES 1.1 OpenAPI document as shipped with the package (YAML)."""
    return files("tes_core.openapi").joinpath(SPEC_FILE).read_text(encoding="utf-8")


class _TextTimestamps(yaml.SafeLoader):
    """YAML without the implicit timestamp type: the spec's unquoted example times
    (``2020-10-02T10:00:00-05:00``) stay strings, which JSON can hold."""


_TextTimestamps.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@functools.cache
def spec_document() -> dict[str, Any]:
    """The OpenAPI document parsed."""
    return yaml.load(spec_text(), Loader=_TextTimestamps)  # a SafeLoader: no arbitrary objects


@functools.cache
def _swagger_dir() -> str:
    import swagger_ui_bundle

    return str(swagger_ui_bundle.swagger_ui_path)


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI document as JSON."""
    return json_response(spec_document())


@blueprint.get("/openapi.yaml")
def openapi_yaml() -> Response:
    """The OpenAPI document as YAML, as published by GA4GH."""
    return Response(spec_text(), mimetype="application/yaml")


@blueprint.get("/ui/")
def explorer() -> Response:
    """A Swagger UI page for trying the API from a browser."""
    page = EXPLORER_PAGE.format(
        css=url_for("docs.explorer_asset", name="swagger-ui.css"),
        bundle=url_for("docs.explorer_asset", name="swagger-ui-bundle.js"),
        spec=url_for("docs.openapi_json"),
    )
    return Response(page, mimetype="text/html")


@blueprint.get("/ui/<path:name>")
def explorer_asset(name: str) -> Response:
    """Swagger UI's static files."""
    if name not in {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"}:
        abort(404)
    return send_from_directory(_swagger_dir(), name, max_age=86400)
