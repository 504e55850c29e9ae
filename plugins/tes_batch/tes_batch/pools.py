"""The shared pools: their Batch definition (image, container configuration, the start
task that installs the runner, the autoscale formula) and the job that feeds each."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from azure.batch import models

from .ids import auto_pool_prefix
from .registry import PASSWORD_FILE, PASSWORD_VARIABLE
from .settings import BatchSettings
from .sizing import Choice

RUNNER_DIR = "$AZ_BATCH_NODE_SHARED_DIR/tes-runner"
"""Where the start task installs the runner on each node (a virtualenv)."""

_PASSWORD_DIR = PASSWORD_FILE.rsplit("/", 1)[0]
START_COMMAND = (
    "/bin/bash -c 'set -e; if [ -n \"$" + PASSWORD_VARIABLE + "\" ]; then (umask 077; "
    "mkdir -p \"" + _PASSWORD_DIR + "\"; printf \"%s\" \"$" + PASSWORD_VARIABLE + "\" > \""
    + PASSWORD_FILE + "\"); fi; python3 -m venv \"" + RUNNER_DIR + "\"; \""
    + RUNNER_DIR + "/bin/pip\" install --quiet --disable-pip-version-check "
    "$TES_RUNNER_INSTALL'"
)
"""The start task: the private registry's password, when there is one, written where only
the node's admin user reads it (:data:`~tes_batch.registry.PASSWORD_FILE`), then a
virtualenv with the runner, from the pip arguments of ``TES_BATCH_RUNNER_INSTALL`` (both
environment settings, so no quoting reaches a shell)."""


def autoscale_formula(low_priority: bool, max_nodes: int) -> str:
    """Grow with the pending tasks (one task per node), shrink to zero when none wait."""
    dedicated, spot = ("0", "$target") if low_priority else ("$target", "0")
    return (
        "$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);\n"
        "$pending = $samples < 70 ? max(0, $PendingTasks.GetSample(1)) : "
        "max($PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 5)));\n"
        f"$target = min({max_nodes}, $pending);\n"
        f"$TargetDedicatedNodes = {dedicated};\n"
        f"$TargetLowPriorityNodes = {spot};\n"
        "$NodeDeallocationOption = taskcompletion;"
    )


def container_key(conf: BatchSettings) -> str:
    """What of the container configuration and mounts tells pools apart (the registry's
    server and login name or identity, the shared share's URL; never a password or key)."""
    key: dict[str, object] = {"type": "dockerCompatible", "runtime": conf.runtime}
    if conf.registry:
        key["registry"] = conf.registry.key()
    if conf.shared_global:
        key["shared_global"] = conf.shared_global.key()
    return json.dumps(key, sort_keys=True)


def container_configuration(conf: BatchSettings) -> models.BatchContainerConfiguration:
    """Docker on the nodes, logged in to the private registry when one is configured."""
    return models.BatchContainerConfiguration(
        type="dockerCompatible",
        container_registries=[conf.registry.reference()] if conf.registry else None)


def image(choice: Choice, conf: BatchSettings) -> tuple[models.BatchVmImageReference, str]:
    """The marketplace image and node agent SKU of ``choice``'s nodes: the GPU image
    (``TES_BATCH_GPU_IMAGE``: NVIDIA drivers and container toolkit) for a size with GPUs."""
    gpu = choice.size.gpus > 0
    publisher, offer, sku, *version = (conf.gpu_image if gpu else conf.node_image).split(":")
    return (models.BatchVmImageReference(publisher=publisher, offer=offer, sku=sku,
                                         version=version[0] if version else "latest"),
            conf.gpu_node_agent_sku if gpu else conf.node_agent_sku)


def _pool_fields(choice: Choice, conf: BatchSettings) -> dict[str, Any]:
    """What a shared pool and an auto-pool have in common: size, image, containers,
    mounts, one task per node, the start task that installs the runner."""
    reference, agent = image(choice, conf)
    return dict(
        vm_size=choice.size.name,
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=reference,
            node_agent_sku_id=agent,
            container_configuration=container_configuration(conf),
        ),
        mount_configuration=[conf.shared_global.mount()] if conf.shared_global else None,
        task_slots_per_node=1,
        start_task=models.BatchStartTask(
            command_line=START_COMMAND,
            environment_settings=[models.EnvironmentSetting(
                name="TES_RUNNER_INSTALL", value=conf.runner_install),
                *(conf.registry.start_environment() if conf.registry else ())],
            user_identity=admin(),
            max_task_retry_count=2,
            wait_for_success=True,
        ),
        metadata=[models.BatchMetadataItem(name="tes-vm-low-priority",
                                           value=str(choice.low_priority).lower())],
    )


def pool_spec(pool: str, choice: Choice, conf: BatchSettings) -> models.BatchPoolCreateOptions:
    """The shared Batch pool of ``choice`` (created on demand, autoscaled)."""
    return models.BatchPoolCreateOptions(
        id=pool,
        enable_auto_scale=True,
        auto_scale_formula=autoscale_formula(choice.low_priority, conf.max_nodes),
        auto_scale_evaluation_interval=timedelta(minutes=5),
        **_pool_fields(choice, conf),
    )


def auto_pool_job_spec(job: str, tes_id: str, choice: Choice,
                       conf: BatchSettings) -> models.BatchJobCreateOptions:
    """The job of one attempt in ``per-task`` mode: its own pool of one node, made by Batch
    when the job is added and deleted when the job ends (``poolLifetimeOption: job``,
    ``keepAlive: false``); the display name is the TES id (the sweep reads it)."""
    one = 1 if choice.low_priority else 0
    return models.BatchJobCreateOptions(
        id=job,
        display_name=tes_id,
        pool_info=models.BatchPoolInfo(auto_pool_specification=models.BatchAutoPoolSpecification(
            auto_pool_id_prefix=auto_pool_prefix(conf.pool_prefix),
            pool_lifetime_option="job",
            keep_alive=False,
            pool=models.BatchPoolSpecification(
                target_dedicated_nodes=1 - one, target_low_priority_nodes=one,
                **_pool_fields(choice, conf)),
        )),
        all_tasks_complete_mode="noaction",
    )


def job_spec(pool: str, job: str) -> models.BatchJobCreateOptions:
    """The pool's long-lived job (never completes by itself)."""
    return models.BatchJobCreateOptions(
        id=job,
        pool_info=models.BatchPoolInfo(pool_id=pool),
        all_tasks_complete_mode="noaction",
    )


def admin() -> models.UserIdentity:
    """The pool-wide admin auto-user: the runner drives the node's Docker."""
    return models.UserIdentity(auto_user=models.AutoUserSpecification(
        scope="pool", elevation_level="admin"))
