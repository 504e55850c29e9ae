"""Which local folders and network hosts a transfer may reach: the storage access policy.

A task's author names the URLs its inputs come from and its outputs go to; the server
moves them with its own rights. :class:`AccessPolicy` keeps that from reaching the
server's host:

* **Local paths and ``file://``**: only beneath the allowed folders, compared on the
  real path (every symlink resolved, so a link cannot leave them); denied folders (the
  server's data, cache and task folders, the task's own root) win over allowed ones.
* **Network hosts** (``http(s)://``, ``ftp://``, S3 and Azure endpoints): every address a
  host name resolves to is checked; loopback, link-local, private, unique-local,
  unspecified, multicast and reserved addresses (also inside IPv4-mapped, 6to4 and NAT64
  IPv6 forms) are refused unless the operator allow-listed the host, its network or
  ``host:port``. The storages that open connections check each connection again and
  connect to the very address that was checked (``storage/netguard.py``).

One transfer uses one policy: :class:`tes_filetransfer.TransferConfig` carries it, and
:func:`using_policy` makes it current for the transfer's worker threads (a context
variable, so two transfers with different policies never see each other's).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from .errors import TransferError

T = TypeVar("T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev")
"""Denied even when an operator allows ``/``: process memory and environments, devices."""

DIRS_ENV = "TES_FT_ALLOWED_LOCAL_DIRS"
HOSTS_ENV = "TES_FT_ALLOWED_HOSTS"

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


class AccessDenied(TransferError):
    """A URL or connection the access policy refuses (never retried)."""


# -- network ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: a host name (``*.`` for a whole domain), an address or a
    CIDR network, with an optional port."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, entry: str, setting: str) -> HostRule:
        """``example.org``, ``*.corp.example``, ``10.0.0.0/8``, ``127.0.0.1:10000``,
        ``[::1]:8080``, ``::1``; raise :class:`TransferError` naming ``setting`` otherwise."""
        text = entry.strip().lower()
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), entry, setting)
        elif text.count(":") == 1:
            host, _, raw_port = text.partition(":")
            port = _port(raw_port, entry, setting)
        try:
            return cls(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            pass
        bare = host.removeprefix("*.").rstrip(".")
        if not bare or not all(_LABEL.fullmatch(part) for part in bare.split(".")):
            raise TransferError(
                f"{setting}: {entry!r} is not a host name, address or network: "
                "use e.g. example.org, *.example.org, 10.0.0.0/8 or 127.0.0.1:9000"
            )
        return cls(name=host.rstrip("."), port=port)

    def entry(self) -> str:
        """This rule as an allow-list entry that :meth:`parse` reads back."""
        if self.network is None:
            host = self.name or ""
        elif self.network.version == 6 and self.port is not None:
            host = f"[{self.network.with_prefixlen}]"
        else:
            host = self.network.with_prefixlen
        return host if self.port is None else f"{host}:{self.port}"

    def allows_name(self, host: str, port: int | None) -> bool:
        """True if this rule names ``host`` (lower-case, no trailing dot) and ``port``."""
        if self.name is None or (self.port is not None and self.port != port):
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name

    def allows_address(self, address: IPAddress, port: int | None) -> bool:
        """True if ``address`` is in this rule's network and ``port`` matches."""
        if self.network is None or (self.port is not None and self.port != port):
            return False
        return address.version == self.network.version and address in self.network


def _port(raw: str, entry: str, setting: str) -> int:
    if raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    raise TransferError(f"{setting}: {entry!r} has no valid port after ':'")


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, compatible, 6to4, NAT64)."""
    if address.version == 4:
        return []
    assert isinstance(address, ipaddress.IPv6Address)
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if any(address in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (``"loopback"``, ``"private"``, ...); None if it is."""
    for inner in embedded_ipv4(address):
        kind = address_kind(inner)
        if kind:
            return kind
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for kind, hit in checks:
        if hit:
            return kind
    return None if address.is_global else "non-public"


RESOLVE_TTL = 10.0
"""Seconds a host's addresses are reused: a task with 1,000 inputs on one storage account
asks DNS once, not 1,000 times. The addresses are checked on every use, and connections
go to exactly the addresses checked, so a short reuse opens no DNS-rebinding window."""

_resolved: dict[tuple[str, int | None], tuple[float, list[str]]] = {}


def _lookup(host: str, port: int | None) -> list[str]:
    """The addresses ``host`` resolves to (reused for :data:`RESOLVE_TTL` seconds).

    ``socket.gaierror`` (an OSError) goes to the caller as is: a connection error.
    """
    now = time.monotonic()
    known = _resolved.get((host, port))
    if known is not None and now - known[0] < RESOLVE_TTL:
        return known[1]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(_resolved) >= 4096:  # many hosts seen: start again rather than grow
        _resolved.clear()
    _resolved[(host, port)] = (now, addresses)
    return addresses


def _parse_address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True)
class NetworkPolicy:
    """The network half of an :class:`AccessPolicy` (hashable: clients are cached by it)."""

    rules: tuple[HostRule, ...] = ()
    setting: str = HOSTS_ENV
    """The setting that extends the allow-list, named in refusals."""

    def resolve(self, host: str, port: int | None) -> list[str]:
        """Every address ``host`` resolves to, each checked; connect only to these.

        Raises :class:`AccessDenied` (the same refusal whether or not anything listens
        there: nothing is connected to) if any address is not public and not allowed,
        :class:`socket.gaierror` if the name does not resolve.
        """
        host = host.strip("[]").rstrip(".").lower()
        if not host:
            raise AccessDenied("the URL names no host: give a host name")
        trusted = any(rule.allows_name(host, port) for rule in self.rules)
        addresses = _lookup(host, port)
        if not trusted:
            for text in addresses:
                self.check_address(_parse_address(text), port, host)
        return addresses

    def check_address(self, address: IPAddress, port: int | None, host: str) -> None:
        """Raise :class:`AccessDenied` unless ``address`` is public or allow-listed."""
        kind = address_kind(address)
        if kind is None:
            return
        candidates = [address, *embedded_ipv4(address)]
        if any(rule.allows_address(a, port) for rule in self.rules for a in candidates):
            return
        raise AccessDenied(
            f"host {host!r} is refused: it is (or resolves to) "
            f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address, which "
            f"tasks may not reach; an operator who trusts it can add it to {self.setting}"
        )


# -- local folders ---------------------------------------------------------------------


def _real(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def _within(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder + "/")


def default_local_dirs() -> tuple[str, ...]:
    """The single-user default: ``/tmp`` and the current directory.

    The current directory is left out when it is ``/`` or the home directory (too wide:
    SSH keys, cloud credentials).
    """
    found = ["/tmp"]
    try:
        cwd = os.getcwd()
    except OSError:
        return tuple(found)
    if cwd not in ("/", os.path.expanduser("~")):
        found.append(cwd)
    return tuple(found)


@dataclass(frozen=True)
class AccessPolicy:
    """What one transfer may reach: local folders and network hosts."""

    local_dirs: tuple[str, ...] = ()
    """Real paths of the folders local paths and ``file://`` URLs may name."""
    denied_dirs: tuple[str, ...] = ()
    """Real paths never reached, even inside an allowed folder."""
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    dirs_setting: str = DIRS_ENV
    """The setting that extends :attr:`local_dirs`, named in refusals."""

    @classmethod
    def build(
        cls,
        local_dirs: Iterable[str | Path],
        hosts: Iterable[str] = (),
        *,
        denied: Iterable[str | Path] = (),
        dirs_setting: str = DIRS_ENV,
        hosts_setting: str = HOSTS_ENV,
    ) -> AccessPolicy:
        """A policy from setting values; folders are resolved to real paths here."""
        rules = tuple(HostRule.parse(h, hosts_setting) for h in hosts if h.strip())
        dirs = []
        for folder in local_dirs:
            if not str(folder).strip():
                continue
            if not os.path.isabs(os.path.expanduser(str(folder).strip())):
                raise TransferError(f"{dirs_setting}: {str(folder)!r} is not an absolute path")
            dirs.append(_real(str(folder).strip()))
        return cls(
            local_dirs=tuple(dict.fromkeys(dirs)),
            denied_dirs=tuple(dict.fromkeys(_real(d) for d in denied if str(d))),
            network=NetworkPolicy(rules, hosts_setting),
            dirs_setting=dirs_setting,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AccessPolicy:
        """From ``TES_FT_ALLOWED_LOCAL_DIRS`` (unset: :func:`default_local_dirs`; empty:
        no local access) and ``TES_FT_ALLOWED_HOSTS`` (comma lists)."""
        environ = os.environ if environ is None else environ
        raw_dirs = environ.get(DIRS_ENV)
        dirs = default_local_dirs() if raw_dirs is None else raw_dirs.split(",")
        return cls.build(dirs, environ.get(HOSTS_ENV, "").split(","))

    def portable(self) -> dict[str, Any]:
        """This policy as JSON-able data, for a transfer that runs in another process or
        on another machine (a remote backend's job): :meth:`from_portable` reads it."""
        return {
            "local_dirs": list(self.local_dirs),
            "denied_dirs": list(self.denied_dirs),
            "hosts": [rule.entry() for rule in self.network.rules],
            "dirs_setting": self.dirs_setting,
            "hosts_setting": self.network.setting,
        }

    @classmethod
    def from_portable(cls, data: Mapping[str, Any]) -> AccessPolicy:
        """The policy :meth:`portable` wrote (folders resolved again where it runs)."""
        return cls.build(
            data.get("local_dirs") or (),
            data.get("hosts") or (),
            denied=data.get("denied_dirs") or (),
            dirs_setting=data.get("dirs_setting") or DIRS_ENV,
            hosts_setting=data.get("hosts_setting") or HOSTS_ENV,
        )

    def deny(self, *folders: str | Path) -> AccessPolicy:
        """This policy with ``folders`` denied too."""
        more = tuple(_real(f) for f in folders)
        return replace(self, denied_dirs=tuple(dict.fromkeys(self.denied_dirs + more)))

    # -- checks ---------------------------------------------------------------------

    def check_local(self, path: str | Path) -> str:
        """The real path of ``path`` if it may be read or written; else AccessDenied.

        For a path that does not exist yet (an output), the deepest existing folder is
        resolved and the rest appended: what will be created is what is checked.
        """
        real = _real(path)
        self.check_real(real, str(path))
        return real

    def check_real(self, real: str, shown: str) -> None:
        """Raise :class:`AccessDenied` unless the real path ``real`` may be used."""
        if any(_within(real, d) for d in PSEUDO_FILE_SYSTEMS):
            raise AccessDenied(
                f"{shown} is refused: /proc, /sys and /dev are never inputs or outputs"
            )
        if any(_within(real, d) for d in self.denied_dirs):
            raise AccessDenied(
                f"{shown} is refused: it is inside the server's own folders (its data, "
                "cache or task folders), which tasks may never read or write"
            )
        if not any(_within(real, d) for d in self.local_dirs):
            allowed = ", ".join(self.local_dirs) or "none"
            raise AccessDenied(
                f"{shown} is refused: local paths must be inside the folders the operator "
                f"allows ({self.dirs_setting}: {allowed}); add its folder to "
                f"{self.dirs_setting} or use a storage URL"
            )

    def is_denied(self, real: str) -> bool:
        """True if the real path ``real`` is inside a denied folder (walks skip those)."""
        return any(_within(real, d) for d in (*PSEUDO_FILE_SYSTEMS, *self.denied_dirs))

    def check_url(self, url: str) -> None:
        """Check ``url`` before any storage touches it: its local path, or the network
        endpoint(s) it reaches (after DNS resolution). Raises :class:`AccessDenied`."""
        from .storage.endpoints import network_endpoints  # storage imports this module
        from .urls import redact_url, url_scheme

        scheme = url_scheme(url)
        if scheme in ("", "file"):
            self.check_local(local_path(url))
            return
        for host, port in network_endpoints(url):
            try:
                self.network.resolve(host, port)
            except AccessDenied as exc:
                raise AccessDenied(f"{redact_url(url)}: {exc}") from None
            except (OSError, UnicodeError):
                pass  # does not resolve now: the storage reports it (and retries)


def local_path(url: str) -> Path:
    """Turn ``/x/y`` or ``file:///x/y`` (``file://localhost/x/y``) into a local path."""
    from .urls import redact_url, url_scheme

    if url_scheme(url) == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise TransferError(
                f"{redact_url(url)} names host {parts.netloc!r}: file:// URLs must be local "
                "(use file:///path)"
            )
        path = unquote(parts.path)
    else:
        path = url
    if not path.startswith("/"):
        raise TransferError(f"{redact_url(url)} is not an absolute path: start it with '/'")
    return Path(path)


# -- the policy of the running transfer ------------------------------------------------

_current: contextvars.ContextVar[AccessPolicy | None] = contextvars.ContextVar(
    "tes_filetransfer_policy", default=None
)


def current_policy() -> AccessPolicy:
    """The policy :func:`using_policy` made current; else the ``TES_FT_*`` one."""
    policy = _current.get()
    return policy if policy is not None else AccessPolicy.from_env()


@contextlib.contextmanager
def using_policy(policy: AccessPolicy) -> Iterator[AccessPolicy]:
    """Make ``policy`` current in this thread (context) for the block."""
    token = _current.set(policy)
    try:
        yield policy
    finally:
        _current.reset(token)


def bound(policy: AccessPolicy, job: Callable[[], T]) -> Callable[[], T]:
    """``job`` made to run under ``policy`` (for pool threads, which start without it)."""

    def run() -> T:
        with using_policy(policy):
            return job()

    return run
