"""Finding, loading and calling plugins.

Built-in plugins register exactly like outside ones. Outside plugins come from
the ``tes`` entry-point group; one that fails to load (import, hook validation,
or its ``tes_register_backends``) is logged and skipped, unless it is the one
providing the configured backend. :class:`Hooks` wraps
``pm.hook`` so the rest of the code never touches pluggy directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .backends.base import Backend, BackendContext
from .blobstore import BlobStore, no_provider_error, storage_configured
from .config import ConfigError, Settings
from .provisioning.base import Provisioner
from .submitter import Submitter

DirectCall = tuple[Callable[..., Any], tuple[str, ...]]
"""A hook implementation's function and the names of its arguments, in order."""

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = ("tes_core.backends.local.plugin",)
"""Modules of the core registered as plugins, like pytest's default plugins."""


class PluginError(RuntimeError):
    """A plugin problem that stops start-up; the message says what to do."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, for ``tes-server plugins``."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: list[str]
    builtin: bool
    backends: list[str] | None = None
    """Backend names it registers (``None`` until ``backend_classes()`` has run)."""
    error: str | None = None
    """Why the plugin is not loaded (it failed to import or to register), else ``None``."""


def load_plugins(settings: Settings, *, require_backend: bool = True) -> Hooks:
    """Create the plugin manager: specs, built-ins, then entry points not disabled.

    A plugin that fails to import or to register is logged and skipped, unless
    its entry-point name is the configured backend (``TES_BACKEND``) and
    ``require_backend`` is set: then :class:`PluginError` says what went wrong.
    ``tes-server plugins`` passes ``require_backend=False`` to list broken plugins.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    distributions: dict[str, tuple[str, str]] = {}
    failed: dict[str, str] = {}
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        module = __import__(module_name, fromlist=["_"])
        pm.register(module, name=module_name)
    disabled = set(settings.disabled_plugins)
    for entry_point in _entry_points():
        if entry_point.name in disabled:
            log.info("plugin %r is disabled by TES_DISABLED_PLUGINS", entry_point.name)
            pm.set_blocked(entry_point.name)
            continue
        if entry_point.dist is not None:
            distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)
        try:
            plugin = entry_point.load()
            if pm.is_registered(plugin):
                continue
            # Raises (and registers nothing) when a hook implementation does not
            # match its spec, e.g. an argument this version of the core lacks.
            pm.register(plugin, name=entry_point.name)
        except Exception as exc:
            if require_backend and entry_point.name == settings.backend:
                raise PluginError(
                    f"the plugin {entry_point.name!r} ({entry_point.value}) provides the "
                    f"configured backend TES_BACKEND={settings.backend!r} but failed to "
                    f"load: {exc!r}. Reinstall it or choose another backend."
                ) from exc
            log.warning(
                "skipping plugin %r (%s): it failed to load: %r",
                entry_point.name,
                entry_point.value,
                exc,
            )
            failed[entry_point.name] = f"{type(exc).__name__}: {exc}"
    return Hooks(pm, distributions, failed)


def _entry_points() -> Iterable[EntryPoint]:
    return entry_points(group=hookspecs.PROJECT_NAME)


class Hooks:
    """Typed calls into the plugins; one method per hook."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        distributions: dict[str, tuple[str, str]] | None = None,
        failed: dict[str, str] | None = None,
    ) -> None:
        self.pm = pm
        self.distributions = distributions or {}
        self.failed = dict(failed or {})
        """Plugins that failed to load, by entry-point name, with the reason."""
        self.registered: dict[str, list[str]] | None = None
        """Backend names by plugin name, once :meth:`backend_classes` has run."""
        self._calls: dict[str, tuple[list[Any], list[DirectCall] | None]] = {}
        """:meth:`_direct_calls` by hook, with the implementations they were made from."""

    def backend_classes(self) -> dict[str, type[Backend]]:
        """Every registered backend class by name; duplicate names are an error.

        Each plugin's ``tes_register_backends`` is called on its own, so one that
        raises (say, its cloud SDK is missing and it imports it lazily) is logged,
        recorded in :attr:`failed` and skipped; :meth:`create_backend` reports it
        if it was the one configured.
        """
        found: dict[str, type[Backend]] = {}
        owner: dict[str, str] = {}
        self.registered = {}
        for impl in self.pm.hook.tes_register_backends.get_hookimpls():
            mine = _Registrations()
            try:
                impl.function(**({"register": mine} if "register" in impl.argnames else {}))
            except Exception as exc:
                log.warning(
                    "skipping the backends of plugin %r: tes_register_backends failed: %r",
                    impl.plugin_name,
                    exc,
                )
                self.failed[impl.plugin_name] = f"{type(exc).__name__}: {exc}"
                continue
            self.registered[impl.plugin_name] = [name for name, _ in mine]
            for name, backend_class in mine:
                if name in found and found[name] is not backend_class:
                    raise PluginError(
                        f"two plugins register a backend called {name!r}: "
                        f"{owner[name]!r} ({found[name].__module__}) and {impl.plugin_name!r} "
                        f"({backend_class.__module__}); uninstall one, or disable it by its "
                        "entry-point name with TES_DISABLED_PLUGINS"
                    )
                found[name] = backend_class
                owner[name] = impl.plugin_name
        return found

    def create_backend(self, context: BackendContext) -> Backend:
        """Build the backend named by ``TES_BACKEND``; a clear error if it is not installed."""
        name = context.settings.backend
        classes = self.backend_classes()
        if name not in classes:
            if name in self.failed:
                raise PluginError(
                    f"the plugin {name!r} provides the configured backend "
                    f"TES_BACKEND={name!r} but failed to load: {self.failed[name]}. "
                    "Reinstall it or choose another backend."
                )
            known = ", ".join(sorted(classes)) or "none"
            broken = "".join(
                f"; plugin {plugin!r} failed to load: {reason}"
                for plugin, reason in sorted(self.failed.items())
            )
            raise ConfigError(
                f"TES_BACKEND={name!r} is not provided by any installed plugin "
                f"(available: {known}{broken}). Install the plugin, e.g. pip install tes-{name}."
            )
        return classes[name](context)

    def detect_submitter(
        self, task: dict[str, Any], settings: Settings | None = None
    ) -> Submitter | None:
        """Ask the detectors which workflow engine sent ``task`` (the first answer wins).

        Every create asks every detector, so they are called directly (see
        :meth:`_direct_calls`), not through pluggy's per-call machinery."""
        settings = settings or Settings()
        calls = self._direct_calls("tes_detect_submitter")
        if calls is None:
            return self.pm.hook.tes_detect_submitter(task=task, settings=settings)
        return _first_result(calls, {"task": task, "settings": settings})

    def rewrite_url(
        self,
        url: str,
        direction: str,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
        settings: Settings | None = None,
        storage: BlobStore | None = None,
    ) -> str | None:
        """The first plugin's replacement for ``url``, or ``None``."""
        return self.pm.hook.tes_rewrite_url(
            url=url, direction=direction, task=task, submitter=submitter, backend=backend,
            settings=settings or backend.settings, storage=storage,
        )

    def url_rewriter(
        self,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
        settings: Settings | None = None,
        storage: BlobStore | None = None,
    ) -> Callable[[str, str], str | None] | None:
        """``rewrite(url, direction)`` for the URLs of one task; ``None`` when no plugin
        rewrites any of them.

        The plugins' ``tes_url_rewriter`` are asked once for the task; for each URL the
        rewriters they returned answer first, then the ``tes_rewrite_url`` implementations
        (the first answer that is not ``None`` wins). A single rewriter is returned as it
        is, so a task with dozens of URLs pays no dispatch per URL. The ``tes_rewrite_url``
        implementations are looked up once per task and called as pluggy calls them
        (keywords mapped to each one's arguments, the last registered first), without
        pluggy's per-call work; with a wrapper among them, every call goes through pluggy.
        """
        rewriters = self.url_rewriters(task, submitter, backend, settings, storage)
        if len(rewriters) <= 1:
            return rewriters[0] if rewriters else None

        def rewrite(url: str, direction: str) -> str | None:
            for rewriter in rewriters:
                result = rewriter(url, direction)
                if result is not None:
                    return result
            return None

        return rewrite

    def url_rewriters(
        self,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
        settings: Settings | None = None,
        storage: BlobStore | None = None,
    ) -> list[Callable[[str, str], str | None]]:
        """The rewriters of :meth:`url_rewriter` apart, in the order they answer: those the
        ``tes_url_rewriter`` implementations return, then the ``tes_rewrite_url``
        implementations as one. :mod:`tes_core.task_urls` applies them, each when it asks
        to be (at create, or whenever a backend gets the task)."""
        settings = settings or backend.settings
        rewriters = self._task_rewriters(task, submitter, backend, settings, storage)
        per_url = self._url_rewrite_calls(task, submitter, backend, settings, storage)
        if per_url is not None:
            rewriters.append(per_url)
        return rewriters

    def _task_rewriters(
        self,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
        settings: Settings,
        storage: BlobStore | None,
    ) -> list[Callable[[str, str], str | None]]:
        """The rewriters the plugins' ``tes_url_rewriter`` return for ``task``, newest first."""
        if not self._has_impls("tes_url_rewriter"):
            return []
        arguments = {"task": task, "submitter": submitter, "backend": backend,
                     "settings": settings, "storage": storage}
        calls = self._direct_calls("tes_url_rewriter")
        if calls is None:
            results = self.pm.hook.tes_url_rewriter(**arguments)
        else:
            results = [function(*[arguments[name] for name in names]) for function, names in calls]
        return [result for result in results if result is not None]

    def _url_rewrite_calls(
        self,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
        settings: Settings,
        storage: BlobStore | None,
    ) -> Callable[[str, str], str | None] | None:
        """The ``tes_rewrite_url`` implementations as one ``rewrite(url, direction)`` for
        ``task``, or ``None`` when there are none."""
        if not self._has_impls("tes_rewrite_url"):
            return None
        calls = self._direct_calls("tes_rewrite_url")
        if calls is None:
            return lambda url, direction: self.rewrite_url(
                url, direction, task, submitter, backend, settings, storage
            )
        arguments: dict[str, Any] = {
            "url": None, "direction": None, "task": task, "submitter": submitter,
            "backend": backend, "settings": settings, "storage": storage,
        }

        def rewrite(url: str, direction: str) -> str | None:
            arguments["url"], arguments["direction"] = url, direction
            return _first_result(calls, arguments)  # type: ignore[no-any-return]

        return rewrite

    def _direct_calls(self, hook_name: str) -> list[DirectCall] | None:
        """The implementations of ``hook_name`` in the order pluggy calls them (the last
        registered first), each with the names of its arguments, to be called without
        pluggy's per-call work; ``None`` when one is a wrapper or takes keyword-only
        arguments, which only pluggy calls right."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        made = self._calls.get(hook_name)
        if made is not None and made[0] == impls:  # the same objects: nothing registered since
            return made[1]
        calls = (None if any(impl.hookwrapper or impl.wrapper or impl.kwargnames
                             for impl in impls)
                 else [(impl.function, tuple(impl.argnames)) for impl in reversed(impls)])
        self._calls[hook_name] = (impls, calls)
        return calls

    def inject_inputs(
        self,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
        settings: Settings | None = None,
        storage: BlobStore | None = None,
    ) -> list[dict[str, Any]]:
        """All plugins' extra inputs, concatenated (called directly, as the detectors)."""
        arguments = {"task": task, "submitter": submitter, "backend": backend,
                     "settings": settings or backend.settings, "storage": storage}
        calls = self._direct_calls("tes_inject_inputs")
        if calls is None:
            results = self.pm.hook.tes_inject_inputs(**arguments)
        else:
            results = [function(*[arguments[name] for name in names]) for function, names in calls]
        return [item for result in results if result for item in result]

    def blob_storage(self, settings: Settings) -> BlobStore | None:
        """The server's blob storage built by a plugin, or ``None`` when none is configured.

        Raises :class:`ConfigError` when ``TES_STORAGE_*`` is set but no plugin built it.
        """
        storage = self.pm.hook.tes_blob_storage(settings=settings)
        variable = storage_configured(settings)
        if storage is None and variable:
            raise no_provider_error(variable)
        return storage

    def check_storage_provider(self, settings: Settings) -> None:
        """Fail start-up when ``TES_STORAGE_*`` is set and no plugin can build the storage,
        or the plugin finds a value it cannot use (it builds the storage once to see)."""
        variable = storage_configured(settings)
        if not variable:
            return
        if not self._has_impls("tes_blob_storage"):
            raise no_provider_error(variable)
        self.blob_storage(settings)

    def provisioner(self, settings: Settings) -> Provisioner | None:
        """The provisioner a plugin offers for the configured backend, or ``None``."""
        return self.pm.hook.tes_provisioner(settings=settings)  # type: ignore[no-any-return]

    def configure_telemetry(self, settings: Settings) -> list[str]:
        """Start the plugins' telemetry exporters; the names of those started."""
        return [name for name in self.pm.hook.tes_configure_telemetry(settings=settings) if name]

    def task_state_changed(self, task_id: str, old_state: str, new_state: str) -> None:
        """Tell observers about a committed state change; their errors are logged, not raised.

        Each plugin is called on its own (in pluggy's order, last registered
        first), so one that raises does not keep the others from hearing of it.
        """
        self._observe(
            "tes_task_state_changed",
            {"task_id": task_id, "old_state": old_state, "new_state": new_state},
        )

    def _observe(self, hook_name: str, arguments: dict[str, Any]) -> None:
        """Call every implementation of an observer hook on its own, logging its errors."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            try:
                impl.function(**{name: arguments[name] for name in impl.argnames})
            except Exception:
                log.exception(
                    "plugin %r: %s failed for task %s",
                    impl.plugin_name, hook_name, arguments["task_id"],
                )

    def task_logged(
        self, task_id: str, system_logs: list[str], executors: list[dict[str, Any]]
    ) -> None:
        """Tell observers about committed log lines and executor ends, like
        :meth:`task_state_changed` (errors logged, not raised)."""
        self._observe(
            "tes_task_logged",
            {"task_id": task_id, "system_logs": system_logs, "executors": executors},
        )

    def has_submitter_hooks(self) -> bool:
        """Whether any plugin adapts submitted tasks (lets create skip the work when none)."""
        return any(
            self._has_impls(name)
            for name in ("tes_detect_submitter", "tes_rewrite_url", "tes_url_rewriter",
                         "tes_inject_inputs")
        )

    def _has_impls(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def plugins(self) -> list[PluginInfo]:
        """What is loaded: names, versions and the hooks each implements."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(impl.name for impl in self.pm.get_hookcallers(plugin) or [])
            dist = self.distributions.get(name)
            builtin = name in BUILTIN_PLUGINS
            infos.append(
                PluginInfo(
                    name=name,
                    module=getattr(plugin, "__name__", type(plugin).__name__),
                    distribution=dist[0] if dist else ("tes-core" if builtin else None),
                    version=dist[1] if dist else (_core_version() if builtin else None),
                    hooks=hooks,
                    builtin=builtin,
                    backends=self._backends_of(name),
                    error=self.failed.get(name),
                )
            )
        for name, reason in sorted(self.failed.items()):
            if self.pm.get_plugin(name) is None:
                dist = self.distributions.get(name)
                infos.append(
                    PluginInfo(
                        name=name,
                        module="",
                        distribution=dist[0] if dist else None,
                        version=dist[1] if dist else None,
                        hooks=[],
                        builtin=False,
                        backends=self._backends_of(name),
                        error=reason,
                    )
                )
        return infos

    def _backends_of(self, plugin_name: str) -> list[str] | None:
        if self.registered is None:
            return None
        return sorted(self.registered.get(plugin_name, []))


class _Registrations(list[tuple[str, type[Backend]]]):
    """The ``register`` callable handed to one plugin's ``tes_register_backends``."""

    def __call__(self, name: str, backend_class: type[Backend]) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"a backend name must be a non-empty string, not {name!r}")
        if not (isinstance(backend_class, type) and issubclass(backend_class, Backend)):
            raise PluginError(
                f"backend {name!r}: {backend_class!r} is not a subclass of "
                "tes_core.backends.base.Backend"
            )
        self.append((name, backend_class))


def _core_version() -> str:
    from . import __version__

    return __version__


def _first_result(calls: list[DirectCall], arguments: dict[str, Any]) -> Any:
    """What pluggy returns for a ``firstresult`` hook: the first result that is not ``None``
    of ``calls`` (from :meth:`Hooks._direct_calls`) given ``arguments`` by name."""
    for function, names in calls:
        result = function(*[arguments[name] for name in names])
        if result is not None:
            return result
    return None
