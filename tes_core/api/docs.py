"""The OpenAPI document this server implements (built by :mod:`.spec`), and a Swagger UI
page to explore it.

The Swagger UI files come from the ``swagger-ui-bundle`` package, so the
explorer works without internet access.
"""

from __future__ import annotations

import functools

from flask import Blueprint, Response, abort, send_from_directory, url_for

from .responses import json_response
from .spec import served_document, served_yaml

blueprint = Blueprint("docs", __name__)

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
def _swagger_dir() -> str:
    import swagger_ui_bundle

    return str(swagger_ui_bundle.swagger_ui_path)


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI document as JSON."""
    return json_response(served_document())


@blueprint.get("/openapi.yaml")
def openapi_yaml() -> Response:
    """The same document as YAML."""
    return Response(served_yaml(), mimetype="application/yaml")


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
