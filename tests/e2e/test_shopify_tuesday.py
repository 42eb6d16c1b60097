"""The Tuesday scenario through the emulator.

600 units; a wholesale order of 500 through the API; then 150 one-unit
storefront purchase attempts. With the sync running, Shopify shows 100 and
refuses the rest (a product that may not oversell): 100 sales, 100 DTC
reservations, no exception units, Shopify ends at 0. With the sync paused
before the wholesale order reaches Shopify (still showing 600), all 150 sell:
100 reservations and 50 exception units.
"""

from __future__ import annotations

from emulator import EmulatorError
from tests.e2e.test_shopify_support import emulator, shopify_stack  # noqa: F401 - fixtures


def _wholesale(stack, sku: str, qty: int) -> dict:
    buyer = stack.api("POST", "/v1/customers", {"name": "Corner Boutique", "profiles": [
        {"channel": "wholesale", "payment_terms": "net_30"}]}, expect=201)
    return stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                            "po_number": "PO-2PM-500",
                                            "lines": [{"sku": sku, "quantity": qty}]}, expect=201)


def _storefront(stack, sku: str, attempts: int) -> tuple[int, int]:
    sold = refused = 0
    for _ in range(attempts):
        try:
            stack.emu.client.purchase([{"sku": sku, "quantity": 1}])
            sold += 1
        except EmulatorError as exc:
            assert exc.status == 409 and exc.body["error"] == "insufficient_inventory", exc
            refused += 1
    return sold, refused


def _six_hundred_and_a_wholesale_order_of_500(stack) -> None:
    stack.emu.client.seed_products([{"sku": "TEE-BEST", "available": 600}])
    stack.sku("TEE-BEST", 600)
    _wholesale(stack, "TEE-BEST", 500)


def _delivered(stack, orders: int) -> tuple[int, int]:
    """Delivers the held webhooks; (units reserved, exception units) over the
    ``orders`` DTC orders they made."""
    stack.emu.client.drain(10)
    stack.wait(lambda: len(stack.shopify_orders()) == orders, message=f"{orders} DTC orders")
    lines = [line for oid in stack.shopify_orders() for line in stack.order(oid)["lines"]]
    return sum(l["reserved"] for l in lines), sum(l["exception"] for l in lines)


def test_tuesday_with_the_sync_running(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url) as stack:
        # Given 600 units on both sides and a wholesale order of 500 through the API
        _six_hundred_and_a_wholesale_order_of_500(stack)
        # Then the sync brings Shopify to 100
        stack.wait(lambda: stack.shop_available("TEE-BEST") == 100, message="Shopify at 100")

        # When 150 one-unit purchases are attempted on the storefront
        sold, refused = _storefront(stack, "TEE-BEST", 150)

        # Then Shopify sells 100 and refuses 50
        assert (sold, refused) == (100, 50)
        assert _delivered(stack, 100) == (100, 0)
        inv = stack.inventory("TEE-BEST")
        assert (inv["available"], inv["exception"], inv["reserved_by_channel"]) == (
            0, 0, {"dtc": 100, "wholesale": 500})
        stack.sync_settled()
        assert stack.shop_available("TEE-BEST") == 0
        # and every write the sync made was at most what onhand really had
        assert all(e["quantity"] <= 100 for e in stack.emu.client.state()["set_log"])


def test_tuesday_with_the_sync_paused_before_the_wholesale_order(emulator, redis_url, database_url):
    with shopify_stack(emulator, redis_url, database_url, shopify_sync_enabled=False) as stack:
        _six_hundred_and_a_wholesale_order_of_500(stack)
        assert stack.shop_available("TEE-BEST") == 600   # Shopify still shows 600

        sold, refused = _storefront(stack, "TEE-BEST", 150)

        assert (sold, refused) == (150, 0)
        assert _delivered(stack, 150) == (100, 50)
        inv = stack.inventory("TEE-BEST")
        assert (inv["available"], inv["exception"]) == (0, 50)
        assert stack.emu.client.state()["set_log"] == []
