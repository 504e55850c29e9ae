"""``/provision``: start creating what the configured backend needs, and follow it.

Admins only when tokens are on (everyone else gets 403); 404 when the configured
backend offers no provisioning. Not part of TES: a tes-core addition.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from flask.views import MethodView

from ..errors import Forbidden
from ..provisioning.service import Provisioning
from .auth import current_principal
from .body import read_json_body, require_json_type
from .cors import refuse_cross_site
from .responses import json_response

blueprint = Blueprint("provision", __name__)


def _admin_only() -> None:
    """403 unless authentication is off or the caller is an admin."""
    principal = current_principal()
    if principal is not None and not principal.admin:
        raise Forbidden("provisioning is for admins only (a token with the admin role)")


def _provisioning() -> Provisioning:
    return current_app.extensions["tes"].provisioning  # type: ignore[no-any-return]


class ProvisionList(MethodView):
    """``POST /provision``."""

    init_every_request = False

    def post(self) -> Response:
        """Check and store a request; ``202 {"id": ...}``, a worker runs it."""
        require_json_type()
        refuse_cross_site()
        _admin_only()
        provisioning = _provisioning()
        provisioning.provisioner()  # 404 before reading a body that no one can use
        request_id = provisioning.create(read_json_body(), current_principal())
        return json_response({"id": request_id}, 202)


class ProvisionItem(MethodView):
    """``GET /provision/{id}``."""

    init_every_request = False

    def get(self, request_id: str) -> Response:
        """The request's state, progress, what was made, and the error if any."""
        _admin_only()
        return json_response(_provisioning().report(request_id))


blueprint.add_url_rule("/provision", view_func=ProvisionList.as_view("provision_list"))
blueprint.add_url_rule("/provision/<request_id>",
                       view_func=ProvisionItem.as_view("provision_item"))
