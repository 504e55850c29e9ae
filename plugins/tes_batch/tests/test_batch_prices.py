"""Prices from the retail prices API (a loopback fake of it): the exact query, paging,
the Linux dedicated / low-priority rows, the cache, and the table when it fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakeprices import FakePrices, row

from tes_batch.prices import RetailPrices, region_of
from tes_batch.settings import DEFAULT_VM_SIZES
from tes_batch.sizing import Choice

D2 = DEFAULT_VM_SIZES[0]  # Standard_D2s_v3: 0.096 dedicated, 0.0192 low priority


@pytest.fixture(scope="module")
def api() -> Iterator[FakePrices]:
    fake = FakePrices().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def prices(api: FakePrices) -> FakePrices:
    api.pages, api.status = [], 200
    api.queries.clear()
    return api


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_query_pages_linux_rows_and_the_cache(prices):
    prices.pages = [
        [row("D2s v3", "Virtual Machines DSv3 Series Windows", 0.188),
         row("D2s v3", "Virtual Machines DSv3 Series", 0.11)],
        [row("D2s v3 Spot", "Virtual Machines DSv3 Series", 0.013),
         row("D2s v3 Low Priority", "Virtual Machines DSv3 Series", 0.022),
         row("D2s v3 Low Priority", "Virtual Machines DSv3 Series Windows", 0.05)],
    ]
    clock = Clock()
    retail = RetailPrices(prices.url, "westeurope", ttl=60, clock=clock)
    assert retail.price(Choice(D2, False)) == 0.11
    assert retail.metadata(Choice(D2, True)) == {
        "vm_size": "Standard_D2s_v3", "vm_low_priority": "true",
        "vm_price_per_hour_usd": "0.022"}
    assert prices.queries == [
        {"$filter": ["serviceName eq 'Virtual Machines' and armRegionName eq 'westeurope' "
                     "and armSkuName eq 'Standard_D2s_v3' and priceType eq 'Consumption'"]},
        {"page": ["1"]}]  # one size asked once, both pages; the cache answered the rest
    clock.now += 61
    prices.pages = [[row("D2s v3", "Virtual Machines DSv3 Series", 0.12)]]
    assert retail.price(Choice(D2, False)) == 0.12  # asked again after the ttl
    assert retail.price(Choice(D2, True)) == D2.low_priority_price_per_hour_usd  # not listed
    assert len(prices.queries) == 3


def test_a_failing_or_unreachable_api_gives_the_table_price_and_is_not_asked_each_time(
        prices, caplog):
    prices.status = 503
    retail = RetailPrices(prices.url, "westeurope")
    assert retail.price(Choice(D2, False)) == D2.price_per_hour_usd
    assert retail.price(Choice(D2, True)) == D2.low_priority_price_per_hour_usd
    assert len(prices.queries) == 1
    assert "using the size table's price of Standard_D2s_v3" in caplog.text
    closed = RetailPrices("http://127.0.0.1:9/api/retail/prices", "westeurope", timeout=5)
    assert closed.price(Choice(D2, False)) == D2.price_per_hour_usd


def test_the_region_comes_from_the_account_endpoint():
    assert region_of("https://acct1.westeurope.batch.azure.com") == "westeurope"
    assert region_of("http://127.0.0.1:8080") == ""
