"""Request ids carried by Dramatiq messages, so a worker's log lines about a task
name the API request that created or cancelled it."""

from __future__ import annotations

from contextvars import Token
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from .logs import NO_REQUEST, request_id

OPTION = "tes_request_id"


class RequestIdMiddleware(Middleware):
    """Stamps each message with the sender's request id; its handler logs under it."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token[str]] = {}

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        """Record the current request id in the message's options."""
        current = request_id.get()
        if current != NO_REQUEST:
            message.options[OPTION] = current

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Log under the request id the message carries (a fresh one per message if none)."""
        rid = message.options.get(OPTION) or f"msg-{message.message_id[:8]}"
        self._tokens[message.message_id] = request_id.set(rid)

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Back to no request id."""
        token = self._tokens.pop(message.message_id, None)
        if token is not None:
            request_id.reset(token)

    after_skip_message = after_process_message


def carry_request_ids(broker: dramatiq.Broker) -> dramatiq.Broker:
    """``broker`` with :class:`RequestIdMiddleware` added."""
    broker.add_middleware(RequestIdMiddleware())
    return broker
