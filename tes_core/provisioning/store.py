"""The ``provisions`` table: one row per provisioning request, read and written here only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from ..db import Database, rfc3339, utcnow
from ..models import provisions

QUEUED, RUNNING, COMPLETE, ERROR = "QUEUED", "RUNNING", "COMPLETE", "ERROR"
UNFINISHED = (QUEUED, RUNNING)


@dataclass
class ProvisionRecord:
    """One stored request."""

    id: str
    provider: str
    state: str
    request: dict[str, Any]
    progress: dict[str, Any]
    error: str | None
    created: str | None
    updated: str | None


def insert_request(
    db: Database, request_id: str, provider: str, request: dict[str, Any], owner: str | None
) -> None:
    """Store a new request as ``QUEUED``."""
    now = utcnow()
    with db.write() as conn:
        conn.execute(insert(provisions).values(
            id=request_id, provider=provider, state=QUEUED, request=json.dumps(request),
            progress="{}", error=None, created_at=now, updated_at=now, owner=owner,
        ))


def load_request(db: Database, request_id: str) -> ProvisionRecord | None:
    """The stored request ``request_id``, or ``None``."""
    with db.read() as conn:
        row = conn.execute(select(provisions).where(provisions.c.id == request_id)).first()
    if row is None:
        return None
    return ProvisionRecord(
        id=row.id, provider=row.provider, state=row.state, request=json.loads(row.request),
        progress=json.loads(row.progress), error=row.error,
        created=rfc3339(row.created_at), updated=rfc3339(row.updated_at),
    )


def save_progress(
    db: Database, request_id: str, state: str, progress: dict[str, Any],
    error: str | None = None,
) -> None:
    """Record a step's outcome: the new state, the provisioner's progress, the error."""
    with db.write() as conn:
        conn.execute(update(provisions).where(provisions.c.id == request_id).values(
            state=state, progress=json.dumps(progress), error=error, updated_at=utcnow(),
        ))


def unfinished(db: Database) -> list[tuple[str, str, datetime]]:
    """``(id, state, updated_at)`` of the requests still ``QUEUED`` or ``RUNNING`` (a
    handful at most: they are an admin's)."""
    with db.read() as conn:
        rows = conn.execute(
            select(provisions.c.id, provisions.c.state, provisions.c.updated_at)
            .where(provisions.c.state.in_(UNFINISHED))
        ).all()
    return [(row.id, row.state, row.updated_at) for row in rows]
