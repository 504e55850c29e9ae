"""Transfer settings: parallelism, retries and the node-local content cache.

Read from ``TES_FT_*`` environment variables by :meth:`TransferConfig.from_env` (the command
line and the container image); a program embedding the library (the TES server's local
backend) builds a :class:`TransferConfig` from its own settings instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import TransferError
from .policy import AccessPolicy

#: Default bound of the content cache: 20 GiB.
DEFAULT_CACHE_MAX_BYTES = 20 * 1024**3


@dataclass(frozen=True)
class TransferConfig:
    """How files move. Field ``foo`` is read from ``TES_FT_FOO`` by :meth:`from_env`."""

    parallel: int = 8
    """Files transferred at once (the bounded pool)."""
    chunk_concurrency: int = 8
    """Chunks of one large file transferred at once (Azure blocks, ranged reads)."""
    attempts: int = 4
    """Tries per file on transient errors (dropped connection, timeout, 429, 5xx)."""
    backoff: float = 0.5
    """Seconds before the second try; doubled for every further one."""
    cache_dir: Path | None = None
    """Node-local content cache folder; ``None`` (empty variable) means no cache."""
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    """Bound of the content cache; least recently used entries go first."""
    policy: AccessPolicy = field(default_factory=AccessPolicy.from_env)
    """Which local folders and network hosts transfers may reach; read from
    ``TES_FT_ALLOWED_LOCAL_DIRS`` and ``TES_FT_ALLOWED_HOSTS`` (see :mod:`.policy`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TransferConfig:
        """Settings from ``TES_FT_PARALLEL``, ``TES_FT_CACHE_DIR``, ...; defaults otherwise."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "policy":
                values["policy"] = AccessPolicy.from_env(environ)
                continue
            name = f"TES_FT_{f.name.upper()}"
            raw = environ.get(name)
            if raw is None:
                continue
            values[f.name] = _parse(name, raw.strip(), f.name)
        return replace(cls(), **values)

    def __post_init__(self) -> None:
        for name in ("parallel", "chunk_concurrency", "attempts"):
            if getattr(self, name) < 1:
                raise TransferError(f"{name} must be at least 1")


def _parse(name: str, raw: str, field_name: str) -> object:
    try:
        if field_name == "cache_dir":
            return Path(raw).expanduser() if raw else None
        if field_name == "backoff":
            return float(raw)
        return int(raw)
    except ValueError:
        raise TransferError(f"{name}={raw!r} is not a valid number") from None
