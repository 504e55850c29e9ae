"""Secret references in ``TES_*`` settings, resolved once at start-up by plugins.

A ``TES_*`` variable may hold, instead of a value, a reference to a secret kept
elsewhere, written ``@<Provider.Kind>(...)``, e.g. Azure App Service's
``@Microsoft.KeyVault(SecretUri=...)``. The core knows no secret store: it finds
the values written as references and hands them to the resolvers plugins declare
in the entry-point group ``tes.secrets``. A resolver is a callable taking
``{variable: reference}`` and returning ``{variable: secret}`` for the references
it understands; it raises :class:`~tes_core.config.ConfigError` naming the
variable (never the value) when one cannot be read. Entry points are only looked
up when a reference is present, so a start-up without one costs nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points

from .telemetry.redact import register_secret

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tes.secrets"
"""Where plugins declare their secret resolvers."""

Resolver = Callable[[Mapping[str, str]], Mapping[str, str]]

_REFERENCE = re.compile(r"^\s*@(?P<kind>[A-Za-z]\w*(?:\.[A-Za-z]\w*)+)\(")

KNOWN_PROVIDERS = {"Microsoft.KeyVault": "tes-azure"}
"""The distribution to install for each kind of reference we know of, for the error."""


def reference_kind(value: str) -> str | None:
    """``Microsoft.KeyVault`` for ``@Microsoft.KeyVault(...)``; ``None`` for a plain value."""
    match = _REFERENCE.match(value)
    return match["kind"] if match else None


def resolve_secret_references(
    environ: Mapping[str, str], resolvers: Iterable[Resolver] | None = None
) -> Mapping[str, str]:
    """``environ`` with every ``TES_*`` secret reference replaced by its secret.

    Returns ``environ`` itself when it holds no reference. Each resolved secret is
    masked in every later log line. Raises :class:`~tes_core.config.ConfigError`
    naming the variables whose references no installed plugin resolves.
    """
    wanted = {
        name: value for name, value in environ.items()
        if name.startswith("TES_") and reference_kind(value)
    }
    if not wanted:
        return environ
    from .config import ConfigError

    resolved: dict[str, str] = {}
    for resolve in _installed_resolvers() if resolvers is None else resolvers:
        pending = {name: value for name, value in wanted.items() if name not in resolved}
        if not pending:
            break
        for name, secret in resolve(pending).items():
            if name in pending:
                resolved[name] = secret
                register_secret(secret)
    missing = sorted(set(wanted) - set(resolved))
    if missing:
        kinds = sorted({reference_kind(wanted[name]) or "" for name in missing})
        install = sorted({KNOWN_PROVIDERS[kind] for kind in kinds if kind in KNOWN_PROVIDERS})
        held = "holds a secret reference" if len(missing) == 1 else "hold secret references"
        raise ConfigError(
            f"{', '.join(missing)} {held} (@{', @'.join(kinds)}) that no installed plugin "
            "resolves: "
            + (f"pip install {' '.join(install)}" if install else
               f"install a plugin with a '{ENTRY_POINT_GROUP}' entry point for them")
        )
    return {**environ, **resolved}


def _installed_resolvers() -> list[Resolver]:
    found: list[Resolver] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found.append(entry_point.load())
        except Exception as exc:
            log.warning("skipping secret resolver %r (%s): it failed to load: %r",
                        entry_point.name, entry_point.value, exc)
    return found
