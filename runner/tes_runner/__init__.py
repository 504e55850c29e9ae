"""tes-runner: runs one GA4GH TES task on the machine it is on.

Stages the inputs, runs the executors in order in a container runtime (Docker, podman,
bubblewrap, Apptainer/Singularity), uploads the outputs, and tells an
:class:`~tes_runner.events.Events` object what happened. The tes-core server's local
backend uses it in-process; ``tes-runner run TASK_DIR`` runs it on a cluster node.
It imports neither Flask, SQLAlchemy, Dramatiq nor tes_core.
"""

from .events import FINAL_STATES, Events, Update
from .run import Resume, TaskRunner, container_name, machine_cpus
from .workspace import PlantedLink, Workspace, owner_key

__all__ = [
    "FINAL_STATES",
    "Events",
    "PlantedLink",
    "Resume",
    "TaskRunner",
    "Update",
    "Workspace",
    "container_name",
    "machine_cpus",
    "owner_key",
]
