"""A fake of the Azure retail prices API on loopback: answers ``GET /api/retail/prices``
with the documented page shape (``Items``, ``NextPageLink``, ``Count``) and records every
query it received."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PATH = "/api/retail/prices"


def row(sku: str, product: str, price: float, region: str = "westeurope",
        arm_sku: str = "Standard_D2s_v3") -> dict[str, Any]:
    """One price row as the API lists it (the fields this backend reads, and a few more)."""
    return {"currencyCode": "USD", "retailPrice": price, "unitPrice": price,
            "armRegionName": region, "location": "EU West", "armSkuName": arm_sku,
            "productName": product, "skuName": sku, "serviceName": "Virtual Machines",
            "unitOfMeasure": "1 Hour", "type": "Consumption", "isPrimaryMeterRegion": True}


class FakePrices:
    """Serves ``pages`` (lists of rows) one after the other, linked by ``NextPageLink``."""

    def __init__(self) -> None:
        self.pages: list[list[dict[str, Any]]] = []
        self.status = 200
        self.queries: list[dict[str, list[str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """What ``TES_BATCH_PRICES_URL`` is set to."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def start(self) -> FakePrices:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def answer(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any] | None]:
        """The status and page for one request."""
        self.queries.append(query)
        if self.status != 200:
            return self.status, None
        index = int(query.get("page", ["0"])[0])
        page = self.pages[index] if index < len(self.pages) else []
        following = (f"{self.url}?page={index + 1}" if index + 1 < len(self.pages) else None)
        return 200, {"BillingCurrency": "USD", "CustomerEntityId": "Default",
                     "CustomerEntityType": "Retail", "Items": page,
                     "NextPageLink": following, "Count": len(page)}


def _handler(fake: FakePrices) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            if parts.path != PATH:
                self.send_error(404)
                return
            status, page = fake.answer(parse_qs(parts.query))
            body = json.dumps(page or {"Error": "fault"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
