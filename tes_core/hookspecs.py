"""Hook specifications of the ``tes`` plugin system.

Plugins implement these with ``@tes_core.hookimpl`` and are found through the
``tes`` entry-point group. Hooks are always called with keyword arguments; an
implementation may accept fewer arguments than the spec lists. Each hook has a
section in ``docs/plugin_hooks.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backends.base import Backend
    from .blobstore import BlobStore
    from .config import Settings
    from .provisioning.base import Provisioner
    from .submitter import Submitter

PROJECT_NAME = "tes"
"""The pluggy project name, which is also the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "tes_blob_storage",
    "tes_configure_telemetry",
    "tes_detect_submitter",
    "tes_inject_inputs",
    "tes_provisioner",
    "tes_register_backends",
    "tes_rewrite_url",
    "tes_task_state_changed",
    "tes_task_logged",
    "tes_url_rewriter",
]


# -- Compute backends ---------------------------------------------------------


@hookspec
def tes_register_backends(register: Callable[[str, type[Backend]], None]) -> None:
    """Register the compute backend classes this plugin provides.

    :param register: call ``register(name, BackendClass)`` once per backend.
        The ``TES_BACKEND`` setting, not registration order, picks the backend
        in use; two plugins registering the same name is a start-up error.

    Each plugin's implementation is called on its own: one that raises is
    logged and its backends skipped, unless it provides the configured backend.
    """


@hookspec(firstresult=True)
def tes_provisioner(settings: Settings) -> Provisioner | None:
    """Offer ``POST /provision``: create the cloud resources the configured backend needs.

    Called by the API process on every provisioning request and by the worker that runs
    one; build the object without network calls. Offer one only for the backend this
    plugin provides (``settings.backend``), so the endpoint answers 404 for the others.

    :param settings: the server's settings (``settings.backend`` is the configured one).
    :return: an object with the members of :class:`tes_core.provisioning.base.Provisioner`
        (``start``, ``step``, ``describe``), or ``None`` when this plugin offers no
        provisioning for the configured backend. Stops at the first non-``None`` result.
    """


# -- Submitters: recognising and adapting what workflow engines send ---------


@hookspec(firstresult=True)
def tes_detect_submitter(task: dict[str, Any], settings: Settings) -> Submitter | None:
    """Recognise the workflow engine that sent ``task``.

    :param task: the validated task document (not yet stored, no ``id``).
    :param settings: the server's settings; a plugin's own ``TES_*`` variables
        are in ``settings.plugin_setting(name, default)``.
    :return: a :class:`tes_core.submitter.Submitter` naming the engine, with
        its workflow id, workflow name and stage when known; ``None`` when the
        task is not this plugin's engine. Stops at the first non-``None``
        result.
    """


@hookspec(firstresult=True)
def tes_rewrite_url(
    url: str,
    direction: str,
    task: dict[str, Any],
    submitter: Submitter | None,
    backend: Backend,
    settings: Settings,
    storage: BlobStore | None,
) -> str | None:
    """Replace an input or output URL before the task is stored.

    Called once for every input ``url`` and output ``url`` of a new task.
    Raise :class:`tes_core.errors.SubmitterError` when the URL must be rewritten
    but cannot be (no storage configured, an unknown account): create fails with
    400 naming the field.

    :param url: the URL as submitted (or as injected by ``tes_inject_inputs``).
    :param direction: ``"input"`` or ``"output"``.
    :param task: the validated task document.
    :param submitter: what ``tes_detect_submitter`` found, or ``None``.
    :param backend: the backend that will run the task.
    :param settings: the server's settings (plugin settings included).
    :param storage: the server's blob storage (``TES_STORAGE_*``, built by
        ``tes_blob_storage``), or ``None`` when none is configured.
    :return: the URL to use instead, or ``None`` to leave it. Stops at the
        first non-``None`` result.
    """


@hookspec
def tes_url_rewriter(
    task: dict[str, Any],
    submitter: Submitter | None,
    backend: Backend,
    settings: Settings,
    storage: BlobStore | None,
) -> Callable[[str, str], str | None] | None:
    """A rewriter for the URLs of one new task: ``tes_rewrite_url`` with the work that is
    the same for every URL of the task done once.

    Called once per new task, after ``tes_inject_inputs``. The core then calls the
    returned ``rewrite(url, direction)`` for every input and output ``url`` of the task,
    in order (inputs first), writing each new URL back before the next call; it answers
    and raises as ``tes_rewrite_url`` does.

    A rewriter that also has ``check(url, direction) -> bool`` signs late: at create the
    core only calls ``check`` (``True``: the rewriter takes the URL, which is stored as
    sent; it raises ``SubmitterError`` for a URL it could never sign), and each time a
    backend gets the task it calls this hook again, on the stored document, and applies
    the rewriter to a copy the backend gets (see :mod:`tes_core.task_urls`).

    :param task: the validated task document (injected inputs included).
    :param submitter: what ``tes_detect_submitter`` found, or ``None``.
    :param backend: the backend that will run the task.
    :param settings: the server's settings (plugin settings included).
    :param storage: the server's blob storage, or ``None`` when none is configured.
    :return: ``rewrite(url, direction)``, or ``None`` when this plugin rewrites no URL of
        this task. Every plugin is asked; for each URL the rewriters answer first (the
        most recently registered first), then the ``tes_rewrite_url`` implementations;
        the first answer that is not ``None`` wins.
    """


@hookspec
def tes_inject_inputs(
    task: dict[str, Any],
    submitter: Submitter | None,
    backend: Backend,
    settings: Settings,
    storage: BlobStore | None,
) -> list[dict[str, Any]] | None:
    """Add inputs the submitter needs but did not list.

    May raise :class:`tes_core.errors.SubmitterError` (create fails with 400).

    :param task: the validated task document.
    :param submitter: what ``tes_detect_submitter`` found, or ``None``.
    :param backend: the backend that will run the task.
    :param settings: the server's settings (plugin settings included).
    :param storage: the server's blob storage, or ``None`` when none is configured.
    :return: TES input documents (``url``, ``path``, optional ``type``,
        ``name``) to append, or ``None``. The results of all plugins are
        concatenated; an input whose ``path`` the task already has is skipped.
    """


@hookspec(firstresult=True)
def tes_blob_storage(settings: Settings) -> BlobStore | None:
    """Build the server's blob storage, passed to the submitter hooks as ``storage``.

    Called once per API process, on the first create that runs the submitter
    hooks, and once at start-up when a ``TES_STORAGE_*`` variable is set, to check the
    settings (that object is dropped): build it without network calls. Build it from
    ``settings.storage_connection_string``,
    ``settings.storage_account_url`` and ``settings.storage_connection_strings``
    (``TES_STORAGE_*``) and return ``None`` when they configure nothing this plugin
    knows. Several accounts are one object whose :class:`~tes_core.blobstore.BlobStore`
    members answer for the default account (tes-azure's ``StorageAccounts``). Raise
    :class:`tes_core.config.ConfigError` naming the variable when a value cannot
    be used. When a ``TES_STORAGE_*`` variable is set and no plugin implements
    this hook, start-up fails saying what to install.

    :param settings: the server's settings.
    :return: an object with the members of :class:`tes_core.blobstore.BlobStore`,
        or ``None``. Stops at the first non-``None`` result.
    """


# -- Telemetry --------------------------------------------------------------------


@hookspec
def tes_configure_telemetry(settings: Settings) -> str | None:
    """Start exporting traces, logs or metrics to an outside service.

    Called at the start of every ``create_app()`` (API processes, ``tes-server
    serve``) and of ``tes-server worker``, before the Flask app is built, so
    instrumentation that patches Flask applies. A process may build more than one
    app (``tes-server serve`` builds one to run migrations first): start once and
    return the same name on later calls. Exporters must send in the background:
    never block or fail a request.

    :param settings: the server's settings.
    :return: a short name of what was started (for the start-up log), or ``None``
        when this plugin's exporter is not configured. Every plugin is called.
    """


# -- Task events ----------------------------------------------------------------


@hookspec
def tes_task_state_changed(task_id: str, old_state: str, new_state: str) -> None:
    """Observe a task's state change, after it is committed to the database.

    For notifications and metrics. Runs in whichever process made the change;
    keep it fast and do not raise (errors are logged and ignored).

    :param task_id: the task's id.
    :param old_state: the state it left.
    :param new_state: the state it entered.
    """


@hookspec
def tes_task_logged(
    task_id: str, system_logs: list[str], executors: list[dict[str, Any]]
) -> None:
    """Observe what was added to a task's logs, after it is committed to the database.

    For live log views (the core's ``GET /events`` journal is one). Runs in whichever
    process wrote the logs; keep it fast and do not raise (errors are logged and ignored).

    :param task_id: the task's id.
    :param system_logs: the ``system_logs`` lines just added (may be empty).
    :param executors: one entry per executor that just ended: ``{"index": int,
        "exit_code": int, "end_time": str}`` (may be empty).
    """
