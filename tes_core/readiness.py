"""Whether this process can do its work: the database and the broker answer, and, where
this process runs tasks, its backend can run them."""

from __future__ import annotations

import threading
from typing import Any

from .telemetry.redact import redact

BROKER_TIMEOUT = 2.0


def check_readiness(core: Any) -> dict[str, str]:
    """``{"database" | "broker" | "backend": reason}`` for each part that does not work.

    The backend is asked only in a process that runs tasks (``core.worker.running``):
    an API process's readiness does not depend on the workers' machines.
    """
    problems: dict[str, str] = {}
    if core.worker.running:
        try:
            reason = core.backend.unready_reason()
        except Exception as exc:
            reason = _reason(exc)
        if reason:
            problems["backend"] = redact(reason)
    try:
        core.db.point_read("SELECT 1", ())
    except Exception as exc:
        problems["database"] = _reason(exc)
    try:
        _ping_broker(core)
    except Exception as exc:
        problems["broker"] = _reason(exc)
    return problems


def describe_problems(problems: dict[str, str]) -> dict[str, Any]:
    """The body of a 503 from ``/readyz``: one message naming what does not work, and each
    part's reason under ``errors``."""
    backend = problems.get("backend")
    unreachable = " and ".join(f"the {name}" for name in problems if name != "backend")
    what = [f"{unreachable} cannot be reached"] if unreachable else []
    what += [f"the backend cannot run tasks: {backend}"] if backend else []
    return {"msg": f"not ready: {'; '.join(what)}", "status_code": 503,
            "errors": {name: [reason] for name, reason in problems.items()}}


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _ping_broker(core: Any) -> None:
    url = core.settings.broker_url
    if not url:
        return  # in-memory broker: it is this process
    # A client of our own with timeouts: the broker's has none, and a probe must not hang.
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            import redis

            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
            )
    client.ping()


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    lines = str(cause).strip().splitlines() or [""]
    return redact(f"{type(cause).__name__}: {lines[0][:200]}")
