"""Where the client finds its server and token: flags, then ``TES_URL``/``TES_TOKEN``, then
a config file (``--config``, ``$TES_CONFIG`` or ``~/.config/tes/config.toml``)::

    url = "http://tes.example.org:8000"
    token = "eyJ..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .http import UsageError

DEFAULT_URL = "http://127.0.0.1:8000"


def default_config_path() -> Path:
    """``$TES_CONFIG``, else ``$XDG_CONFIG_HOME/tes/config.toml`` (``~/.config``)."""
    if os.environ.get("TES_CONFIG"):
        return Path(os.environ["TES_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "tes" / "config.toml"


@dataclass(frozen=True)
class Connection:
    """The server and the token to call it with."""

    url: str
    token: str


def resolve(url: str | None, token: str | None, config: str | None) -> Connection:
    """Flags win over the environment, which wins over the config file."""
    path = Path(config) if config else default_config_path()
    values: dict[str, object] = {}
    if path.is_file():
        try:
            values = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"config file {path}: {exc}") from None
    elif config:
        raise UsageError(f"config file {path} does not exist")
    return Connection(
        url=url or os.environ.get("TES_URL") or str(values.get("url") or DEFAULT_URL),
        token=token or os.environ.get("TES_TOKEN") or str(values.get("token") or ""),
    )
