"""One TES task attempt as one Batch task: ``tes-runner run`` on the runner's
``task.json``, delivered inline as an environment setting (Batch caps command lines at
8,191 characters; the environment carries the document whatever its size, up to Batch's
request limit) and written to the task's working directory by a fixed command line."""

from __future__ import annotations

import json
from typing import Any

from azure.batch import models

from .pools import RUNNER_DIR, admin

TASK_DIR = "tes"
"""The runner's task folder, under the Batch task's working directory."""
STATUS_PATH = f"wd/{TASK_DIR}/status.json"
"""The runner's status file, as the Batch file API names it."""
TASK_JSON_VARIABLE = "TES_TASK_JSON"

COMMAND = (
    "/bin/bash -c 'set -e; d=\"$AZ_BATCH_TASK_WORKING_DIR/" + TASK_DIR + "\"; "
    "mkdir -p \"$d\"; printf \"%s\" \"$" + TASK_JSON_VARIABLE + "\" > \"$d/task.json\"; "
    "exec \"" + RUNNER_DIR + "/bin/tes-runner\" run \"$d\"'"
)
"""The same for every task: nothing a task author writes reaches the command line."""


def task_spec(batch_task: str, tes_id: str,
              task_file: dict[str, Any]) -> models.BatchTaskCreateOptions:
    """The Batch task of one attempt, its display name the TES id (the sweep reads it);
    Batch's own retries are off (the backend makes a new attempt when a node is
    preempted)."""
    return models.BatchTaskCreateOptions(
        id=batch_task,
        display_name=tes_id,
        command_line=COMMAND,
        environment_settings=[models.EnvironmentSetting(
            name=TASK_JSON_VARIABLE,
            value=json.dumps(task_file, separators=(",", ":"), sort_keys=True))],
        user_identity=admin(),
        constraints=models.BatchTaskConstraints(max_task_retry_count=0),
        required_slots=1,
    )
