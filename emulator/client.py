"""A small synchronous client for the control API and the Admin GraphQL endpoint."""

from __future__ import annotations

from typing import Any

import httpx

from emulator.config import DEFAULT_API_VERSION


class EmulatorError(Exception):
    """A control call answered outside 2xx."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class EmulatorClient:
    def __init__(
        self, base_url: str, access_token: str | None = None, timeout_s: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, f"/_emulator{path}", json=body)
        payload = response.json() if response.content else None
        if response.status_code >= 300:
            raise EmulatorError(response.status_code, payload)
        return payload

    # -- Admin GraphQL ----------------------------------------------------------------

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        version: str = DEFAULT_API_VERSION,
        operation_name: str | None = None,
        access_token: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation_name is not None:
            body["operationName"] = operation_name
        token = access_token if access_token is not None else self.access_token
        headers = {"X-Shopify-Access-Token": token} if token is not None else {}
        return self._http.post(f"/admin/api/{version}/graphql.json", json=body, headers=headers)

    # -- shop -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def seed_products(self, products: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", "/products", products)["variants"]

    def add_location(self, name: str) -> dict[str, Any]:
        return self._call("POST", "/locations", {"name": name})

    def set_inventory(
        self, sku: str, available: int, location: str | None = None
    ) -> dict[str, Any]:
        return self._call(
            "POST", "/inventory", {"sku": sku, "available": available, "location": location}
        )

    def inventory(self, sku: str) -> dict[str, Any]:
        return self.state()["inventory"][sku]

    # -- storefront and admin actions -------------------------------------------------

    def purchase(
        self, lines: list[dict[str, Any]], *, test: bool = False, email: str | None = None
    ) -> dict[str, Any]:
        return self._call(
            "POST", "/storefront/orders", {"lines": lines, "test": test, "email": email}
        )

    def cancel(
        self, order_id: int, *, restock: bool = True, reason: str = "customer"
    ) -> dict[str, Any]:
        return self._call(
            "POST", f"/orders/{order_id}/cancel", {"restock": restock, "reason": reason}
        )

    def refund(
        self, order_id: int, lines: list[dict[str, Any]], note: str | None = None
    ) -> dict[str, Any]:
        return self._call("POST", f"/orders/{order_id}/refunds", {"lines": lines, "note": note})

    def uninstall(self) -> dict[str, Any]:
        return self._call("POST", "/app/uninstall")

    # -- webhooks ---------------------------------------------------------------------

    def webhooks(self) -> dict[str, Any]:
        return self._call("GET", "/webhooks")

    def webhook_mode(self, mode: str, delay_ms: int = 0) -> dict[str, Any]:
        return self._call("POST", "/webhooks/mode", {"mode": mode, "delay_ms": delay_ms})

    def webhook_config(self, **settings: Any) -> dict[str, Any]:
        """url=, retry_schedule_s=, timeout_s=, api_version="""
        return self._call("POST", "/webhooks/config", settings)

    def flush(self, **options: Any) -> dict[str, Any]:
        """Options: shuffle, duplicates=(min, max), concurrency, spread_s, topics, order_ids,
        seed, wait."""
        return self._call("POST", "/webhooks/flush", options)

    def drain(self, timeout_s: float = 10.0) -> dict[str, Any]:
        return self._call("POST", "/webhooks/drain", {"timeout_s": timeout_s})

    def send_webhook(self, topic: str, **options: Any) -> dict[str, Any]:
        """Options: body | raw_body, sign ("valid", "bad", "none"), shop_domain, api_version,
        order_id, url."""
        return self._call("POST", "/webhooks/send", {"topic": topic, **options})

    # -- rate limits ------------------------------------------------------------------

    def throttle_next(self, count: int, retry_after_s: float = 2.0) -> dict[str, Any]:
        return self._call("POST", "/throttle", {"next_429": count, "retry_after_s": retry_after_s})

    def bucket(self, **settings: Any) -> dict[str, Any]:
        """maximum_available=, restore_rate=, currently_available=, single_query_max="""
        return self._call("POST", "/bucket", settings)
