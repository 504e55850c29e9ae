"""What a backend plugin implements to offer ``POST /provision`` (hook ``tes_provisioner``).

A provisioning request goes through three calls, all made by the core:

1. :meth:`Provisioner.start` in the API process validates the request (400 naming the
   field, 409 for a clash with what exists) and returns the request to store;
2. :meth:`Provisioner.step` in a worker, again and again, each call doing the next step
   not yet done and writing what it made into ``progress``, which the core stores after
   every call. A worker that dies mid-step leaves ``progress`` as it was before that
   step, and another worker calls ``step`` again: every step must be idempotent;
3. :meth:`Provisioner.describe` whenever ``GET /provision/{id}`` asks, for the report.

Nothing a provisioner stores or reports may hold a secret: the request, ``progress`` and
the report are stored in the database and shown to admins as they are.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class ProvisioningFailed(Exception):
    """A step that cannot succeed: the request ends in ``ERROR`` naming ``step`` and ``reason``.

    :param step: the step's name, e.g. ``"storage account"``.
    :param reason: why, as a user can act on it (never a secret).
    """

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@runtime_checkable
class Provisioner(Protocol):
    """The object ``tes_provisioner`` returns."""

    name: str
    """What it provisions for, shown in reports, e.g. the backend's name ``"batch"``."""

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Check a new request and return it normalised, to be stored.

        Raise :class:`tes_core.errors.BadRequest` naming the field (``field=``) for a
        missing or invalid value, :class:`tes_core.errors.Conflict` when the request
        clashes with resources that exist (say, a resource group in another region).
        May make quick read-only calls to the cloud; must not create anything.
        """
        ...

    def step(self, request: dict[str, Any], progress: dict[str, Any]) -> bool:
        """Do the next step not yet done and record its outcome in ``progress`` (in place).

        :param request: what :meth:`start` returned.
        :param progress: what earlier calls recorded (``{}`` at first), JSON only.
        :return: ``True`` once every step is done (nothing was left to do).
        :raises ProvisioningFailed: a step that cannot succeed; other exceptions end the
            request in ``ERROR`` too, with their message.
        """
        ...

    def describe(self, request: dict[str, Any], progress: dict[str, Any]) -> dict[str, Any]:
        """The report for ``GET /provision/{id}``: JSON, no secret (names, states, the
        settings the server then needs as references, never values)."""
        ...
