"""Prices per hour from the Azure retail prices API (``TES_BATCH_PRICES_URL``), cached,
with the size table's price when the API does not answer or lists no such size.

One ``GET <url>?$filter=serviceName eq 'Virtual Machines' and armRegionName eq '<region>'
and armSkuName eq '<size>' and priceType eq 'Consumption'`` per size and region, following
``NextPageLink``; Linux rows only (no ``Windows`` in ``productName``), the ``Low Priority``
row (else ``Spot``) for low-priority nodes, the row without either for dedicated nodes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from .sizing import Choice

log = logging.getLogger(__name__)

DEFAULT_URL = "https://prices.azure.com/api/retail/prices"
MAX_PAGES = 5
"""Pages followed per size (a size and region have a few dozen rows)."""
RETRY_AFTER_FAILURE = 600.0
"""Seconds the table's price is used after the API failed, before it is asked again."""


class RetailPrices:
    """Prices of the retail prices API, per (VM size, low priority), cached for ``ttl``."""

    def __init__(self, url: str, region: str, ttl: float = 86400.0, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.region = region.lower()
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[bool, float] | None]] = {}
        self._session = requests.Session()

    def price(self, choice: Choice) -> float:
        """The node's price per hour: the API's, else the size table's."""
        found = self._prices(choice.size.name)
        if found and choice.low_priority in found:
            return found[choice.low_priority]
        return choice.price

    def metadata(self, choice: Choice) -> dict[str, str]:
        """``choice.metadata()`` with the API's price when it has one."""
        return {**choice.metadata(), "vm_price_per_hour_usd": f"{self.price(choice):g}"}

    def _prices(self, size: str) -> dict[bool, float] | None:
        key = size.lower()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] > now:
                return cached[1]
        try:
            found: dict[bool, float] | None = self._fetch(size)
            until = now + self.ttl
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("retail prices API %s: %s; using the size table's price of %s for "
                        "%.0f s", self.url, exc, size, RETRY_AFTER_FAILURE)
            found, until = None, now + RETRY_AFTER_FAILURE
        with self._lock:
            self._cache[key] = (until, found)
        return found

    def _fetch(self, size: str) -> dict[bool, float]:
        query = (f"serviceName eq 'Virtual Machines' and armRegionName eq '{self.region}' "
                 f"and armSkuName eq '{size}' and priceType eq 'Consumption'")
        url: str | None = self.url
        params: dict[str, str] | None = {"$filter": query}
        rows: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if not url:
                break
            answer = self._session.get(url, params=params, timeout=self.timeout)
            answer.raise_for_status()
            page = answer.json()
            rows.extend(page.get("Items") or ())
            url, params = page.get("NextPageLink"), None
        return linux_prices(rows)


def linux_prices(rows: list[dict[str, Any]]) -> dict[bool, float]:
    """``{low_priority: price per hour}`` from the API's rows of one size."""
    dedicated: list[float] = []
    low: list[float] = []
    spot: list[float] = []
    for row in rows:
        if "windows" in str(row.get("productName", "")).lower():
            continue
        if row.get("unitOfMeasure") != "1 Hour" or row.get("type") != "Consumption":
            continue
        sku = str(row.get("skuName", ""))
        price = float(row["retailPrice"])
        if sku.endswith(" Low Priority"):
            low.append(price)
        elif sku.endswith(" Spot"):
            spot.append(price)
        else:
            dedicated.append(price)
    found: dict[bool, float] = {}
    if dedicated:
        found[False] = min(dedicated)
    if low or spot:
        found[True] = min(low or spot)
    return found


def region_of(account_url: str) -> str:
    """``westeurope`` from ``https://<account>.westeurope.batch.azure.com``; empty when the
    endpoint does not say."""
    host = account_url.split("://", 1)[-1].split(":", 1)[0].split("/", 1)[0]
    parts = host.split(".")
    return parts[1] if len(parts) > 3 and parts[2] == "batch" else ""
