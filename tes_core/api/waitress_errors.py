"""waitress's own error answers in the API's JSON error shape.

waitress refuses some requests before the app sees them: a body over its
``max_request_body_size`` (413, as soon as the headers announce it or, chunked, as
soon as that many bytes arrived), headers too large (431), a malformed request
(400). It answers those in plain text; these classes make the answer
``{"msg": ..., "status_code": ...}``, as every other error of the API.
"""

from __future__ import annotations

import json
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask


class JsonErrorTask(ErrorTask):
    """An error answer of waitress, as JSON."""

    too_large_message = "the request body is larger than this server accepts"

    def execute(self) -> None:
        """Write the error response (and close the connection, as waitress does)."""
        error = self.request.error
        if error.code == 413:
            message = self.too_large_message
        else:
            message = f"{error.reason}: {error.body}".strip()
        body = json.dumps({"msg": message, "status_code": error.code}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def serve_json_errors(server: Any, max_body_bytes: int) -> None:
    """Make ``server`` (what ``waitress.create_server`` returned) answer its own errors
    in JSON; a 413 names ``max_body_bytes``, the limit the app enforces."""
    task_class = type("TesErrorTask", (JsonErrorTask,), {
        "too_large_message": f"the request body is larger than this server accepts "
                             f"({max_body_bytes} bytes)",
    })
    channel_class = type("TesChannel", (HTTPChannel,), {"error_task_class": task_class})
    servers = [server] if hasattr(server, "channel_class") else [
        item for item in server.map.values() if hasattr(item, "channel_class")
    ]
    for item in servers:
        item.channel_class = channel_class
