"""Finding, loading and calling plugins.

Built-in plugins register exactly like outside ones. Outside plugins come from
the ``tes`` entry-point group; one that fails to import is logged and skipped,
unless it is the one providing the configured backend. :class:`Hooks` wraps
``pm.hook`` so the rest of the code never touches pluggy directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .backends.base import Backend, BackendContext
from .config import ConfigError, Settings
from .submitter import Submitter

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


def load_plugins(settings: Settings) -> Hooks:
    """Create the plugin manager: specs, built-ins, then entry points not disabled."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    distributions: dict[str, tuple[str, str]] = {}
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
        try:
            plugin = entry_point.load()
        except Exception as exc:
            if entry_point.name == settings.backend:
                raise PluginError(
                    f"the plugin {entry_point.name!r} ({entry_point.value}) provides the "
                    f"configured backend TES_BACKEND={settings.backend!r} but failed to "
                    f"import: {exc!r}. Reinstall it or choose another backend."
                ) from exc
            log.warning(
                "skipping plugin %r (%s): it failed to import: %r",
                entry_point.name,
                entry_point.value,
                exc,
            )
            continue
        if pm.is_registered(plugin):
            continue
        pm.register(plugin, name=entry_point.name)
        if entry_point.dist is not None:
            distributions[entry_point.name] = (entry_point.dist.name, entry_point.dist.version)
    return Hooks(pm, distributions)


def _entry_points() -> Iterable[EntryPoint]:
    return entry_points(group=hookspecs.PROJECT_NAME)


class Hooks:
    """Typed calls into the plugins; one method per hook."""

    def __init__(
        self, pm: pluggy.PluginManager, distributions: dict[str, tuple[str, str]] | None = None
    ) -> None:
        self.pm = pm
        self.distributions = distributions or {}

    def backend_classes(self) -> dict[str, type[Backend]]:
        """Every registered backend class by name; duplicate names are an error."""
        found: dict[str, type[Backend]] = {}

        def register(name: str, backend_class: type[Backend]) -> None:
            if name in found and found[name] is not backend_class:
                raise PluginError(
                    f"two plugins register a backend called {name!r}: "
                    f"{found[name].__module__} and {backend_class.__module__}; "
                    "disable one with TES_DISABLED_PLUGINS"
                )
            found[name] = backend_class

        self.pm.hook.tes_register_backends(register=register)
        return found

    def create_backend(self, context: BackendContext) -> Backend:
        """Build the backend named by ``TES_BACKEND``; a clear error if it is not installed."""
        name = context.settings.backend
        classes = self.backend_classes()
        if name not in classes:
            known = ", ".join(sorted(classes)) or "none"
            raise ConfigError(
                f"TES_BACKEND={name!r} is not provided by any installed plugin "
                f"(available: {known}). Install the plugin, e.g. pip install tes-{name}."
            )
        return classes[name](context)

    def detect_submitter(self, task: dict[str, Any]) -> Submitter | None:
        """Ask the detectors which workflow engine sent ``task``."""
        return self.pm.hook.tes_detect_submitter(task=task)

    def rewrite_url(
        self,
        url: str,
        direction: str,
        task: dict[str, Any],
        submitter: Submitter | None,
        backend: Backend,
    ) -> str | None:
        """The first plugin's replacement for ``url``, or ``None``."""
        return self.pm.hook.tes_rewrite_url(
            url=url, direction=direction, task=task, submitter=submitter, backend=backend
        )

    def inject_inputs(
        self, task: dict[str, Any], submitter: Submitter | None, backend: Backend
    ) -> list[dict[str, Any]]:
        """All plugins' extra inputs, concatenated."""
        results = self.pm.hook.tes_inject_inputs(task=task, submitter=submitter, backend=backend)
        return [item for result in results if result for item in result]

    def task_state_changed(self, task_id: str, old_state: str, new_state: str) -> None:
        """Tell observers about a committed state change; their errors are logged, not raised."""
        if not self._has_impls("tes_task_state_changed"):
            return
        try:
            self.pm.hook.tes_task_state_changed(
                task_id=task_id, old_state=old_state, new_state=new_state
            )
        except Exception:
            log.exception("a tes_task_state_changed hook failed for task %s", task_id)

    def has_submitter_hooks(self) -> bool:
        """Whether any plugin adapts submitted tasks (lets create skip the work when none)."""
        return any(
            self._has_impls(name)
            for name in ("tes_detect_submitter", "tes_rewrite_url", "tes_inject_inputs")
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
                )
            )
        return infos


def _core_version() -> str:
    from . import __version__

    return __version__
