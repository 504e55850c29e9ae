"""HTTP connections that go only where the access policy allows.

requests (and the Azure SDK, which runs on it) opens every connection through urllib3's
``HTTPConnection._new_conn``; the connection classes here resolve the host, check every
address with :meth:`NetworkPolicy.resolve` and connect to exactly those addresses: no
second DNS lookup, so no DNS-rebinding window. Each redirect hop opens its connection the
same way, so a redirect to a forbidden address is refused before any byte is sent to it.
TLS still verifies (and SNI names) the URL's host name. :func:`guarded_resolver` does
the same for aiohttp clients (s3fs): aiohttp connects only to the addresses it returns.
"""

from __future__ import annotations

import functools
import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from ..policy import NetworkPolicy


def _guarded_connection(base: type[HTTPConnection], network: NetworkPolicy) -> type:
    class GuardedConnection(base):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> socket.socket:
            original = self._dns_host
            addresses = network.resolve(original, self.port)
            error: Exception | None = None
            for address in addresses:
                self._dns_host = address
                try:
                    return super()._new_conn()
                except (NewConnectionError, ConnectTimeoutError) as exc:
                    error = exc
                finally:
                    self._dns_host = original
            assert error is not None
            raise error

    GuardedConnection.__name__ = f"Guarded{base.__name__}"
    return GuardedConnection


@functools.lru_cache(maxsize=64)
def pool_classes(network: NetworkPolicy) -> dict[str, type]:
    """urllib3 pool classes (by scheme) whose connections ``network`` checks."""
    http = type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {
        "ConnectionCls": _guarded_connection(HTTPConnection, network)})
    https = type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {
        "ConnectionCls": _guarded_connection(HTTPSConnection, network)})
    return {"http": http, "https": https}


def guarded_adapter(
    network: NetworkPolicy, base: type[HTTPAdapter] = HTTPAdapter, **kwargs: Any
) -> HTTPAdapter:
    """A requests adapter (``base``, e.g. the Azure SDK's) whose connections ``network``
    checks, proxies included (an operator allow-lists a private proxy)."""

    class GuardedAdapter(base):  # type: ignore[valid-type, misc]
        def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
            super().init_poolmanager(*args, **pool_kwargs)
            self.poolmanager.pool_classes_by_scheme = pool_classes(network)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            manager.pool_classes_by_scheme = pool_classes(network)
            return manager

    return GuardedAdapter(**kwargs)


def guarded_session(
    network: NetworkPolicy, base: type[HTTPAdapter] = HTTPAdapter, **kwargs: Any
) -> requests.Session:
    """A requests session whose every connection ``network`` checks."""
    session = requests.Session()
    adapter = guarded_adapter(network, base, **kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def guarded_resolver(network: NetworkPolicy) -> Any:
    """An aiohttp resolver returning only addresses ``network`` allows (raising
    :class:`~tes_filetransfer.policy.AccessDenied` otherwise)."""
    import asyncio

    from aiohttp.abc import AbstractResolver

    class GuardedResolver(AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[Any]:
            loop = asyncio.get_running_loop()
            addresses = await loop.run_in_executor(None, network.resolve, host, port)
            return [
                {"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}
                for address in addresses
            ]

        async def close(self) -> None:
            return None

    return GuardedResolver()
