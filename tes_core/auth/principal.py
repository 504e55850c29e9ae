"""Who made a request: the owner stamped on the tasks they create, and their rights."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """A task's owner: the token's subject within its tenant (``""`` when none is named)."""

    subject: str
    tenant: str = ""


@dataclass(frozen=True)
class Principal:
    """The caller of one request, from a verified bearer token."""

    owner: Owner
    admin: bool = False
    """Admins list, read and cancel every task."""

    @property
    def scope(self) -> Owner | None:
        """Whose tasks this caller may see: their own, or ``None`` for all (an admin)."""
        return None if self.admin else self.owner
