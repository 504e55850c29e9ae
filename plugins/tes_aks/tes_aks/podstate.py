"""What a Pod's status says, in words a task's author can act on.

Shared by the coordinator (waiting for each Job) and the server (reading all pods of all
tasks in one list): image pull failures name the image, an unschedulable pod says what
the scheduler found missing, a killed container says it ran out of memory, an evicted
pod (a spot node taken back, a drained node) counts as preempted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PULL_FAILURES = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
    }
)
EVICTION_REASONS = frozenset(
    {"Evicted", "NodeLost", "Preempting", "NodeShutdown", "Terminated", "Shutdown"}
)
DISRUPTION = "DisruptionTarget"


@dataclass(frozen=True)
class PullFailure:
    """A container whose image cannot be pulled."""

    image: str
    reason: str
    message: str
    since: datetime | None

    def describe(self) -> str:
        """One line naming the image."""
        detail = f": {self.message}" if self.message else ""
        return f"image {self.image!r} cannot be pulled ({self.reason}){detail}"


def parse_time(value: Any) -> datetime | None:
    """An API time (``2026-12-03T06:00:00Z``) as an aware datetime; ``None`` if not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def created(obj: dict[str, Any]) -> datetime | None:
    """An object's creation time."""
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def pull_failure(pod: dict[str, Any]) -> PullFailure | None:
    """The first container of ``pod`` waiting for an image it cannot pull."""
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_FAILURES:
            return PullFailure(
                image=str(container.get("image") or "?"),
                reason=str(waiting["reason"]),
                message=str(waiting.get("message") or "")[:300],
                since=created(pod),
            )
    return None


def unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's message when ``pod`` cannot be placed (it names what is missing,
    e.g. ``0/3 nodes are available: 3 Insufficient nvidia.com/gpu``)."""
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or "no node fits it")[:500]
    return None


def evicted(pod: dict[str, Any]) -> str | None:
    """Why ``pod`` was taken off its node (eviction, node loss, preemption), or ``None``."""
    status = pod.get("status") or {}
    if status.get("reason") in EVICTION_REASONS:
        return f"{status['reason']}: {status.get('message') or ''}".strip(": ")
    for condition in status.get("conditions") or ():
        if condition.get("type") == DISRUPTION and condition.get("status") == "True":
            return f"{condition.get('reason')}: {condition.get('message') or ''}".strip(": ")
    return None


@dataclass(frozen=True)
class Termination:
    """How a pod's (single) container ended."""

    exit_code: int
    reason: str
    message: str
    started: datetime | None
    finished: datetime | None

    @property
    def oom_killed(self) -> bool:
        """Whether the kernel killed it for going over its memory limit."""
        return self.reason == "OOMKilled"


def _container_status(pod: dict[str, Any], name: str | None) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    for container in statuses:
        if name is None or container.get("name") == name:
            return dict(container)
    return {}


def terminated(pod: dict[str, Any], container: str | None = None) -> Termination | None:
    """How the pod's container named ``container`` (else its first) ended, ``None`` while
    it has not."""
    ended = (_container_status(pod, container).get("state") or {}).get("terminated")
    if not ended:
        return None
    return Termination(
        exit_code=int(ended.get("exitCode", 0) or 0),
        reason=str(ended.get("reason") or ""),
        message=str(ended.get("message") or "")[:500],
        started=parse_time(ended.get("startedAt")),
        finished=parse_time(ended.get("finishedAt")),
    )


def job_finished(job: dict[str, Any]) -> str | None:
    """``"Complete"`` or ``"Failed"`` once the Job says so, else ``None``."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    if status.get("succeeded"):
        return "Complete"
    if status.get("failed"):
        return "Failed"
    return None


START_FAILURES = frozenset(
    {"StartError", "ContainerCannotRun", "CreateContainerError", "RunContainerError"}
)


def cannot_start(pod: dict[str, Any], container: str, program: str) -> str | None:
    """The runtime's message when ``container`` could not start because its image has no
    ``program`` (containerd: ``StartError``, Docker: ``ContainerCannotRun``, CRI-O:
    ``CreateContainerError``), else ``None``."""
    state = _container_status(pod, container).get("state") or {}
    for phase in ("terminated", "waiting"):
        detail = state.get(phase) or {}
        message = str(detail.get("message") or "")
        if detail.get("reason") in START_FAILURES and program in message:
            return message[:300]
    return None
