"""The ``batch`` backend: each TES task attempt is one Azure Batch task running
``tes-runner`` in a shared, autoscaled pool (see README.md for the design).

This first version reads and checks the settings; submitting is not built yet, so a task
given to it ends in SYSTEM_ERROR saying so.
"""

from __future__ import annotations

import logging

from tes_core.backends.base import Backend, BackendContext, BackendError, TaskRecord

from .settings import BatchSettings

log = logging.getLogger(__name__)


class BatchBackend(Backend):
    """Runs each task attempt as one Azure Batch task (``tes-runner run``)."""

    name = "batch"
    runs_in_worker = False

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.conf = BatchSettings.from_settings(self.settings)

    def describe(self) -> str | None:
        """The Batch account's endpoint and how requests are signed."""
        how = "shared key" if self.conf.shared_key else "Azure AD (DefaultAzureCredential)"
        return f"Azure Batch at {self.conf.account_url} ({how})"

    def submit(self, task: TaskRecord) -> str | None:
        """Not built yet: the task ends in SYSTEM_ERROR saying so."""
        raise BackendError("the batch backend cannot submit tasks yet in this version")

    def cancel(self, task: TaskRecord) -> bool:
        """Nothing was made on Batch for the task: it is gone."""
        return True
