"""Shipments of Shopify orders go back to Shopify as fulfillments with their
tracking: a DTC order shipped in two shipments becomes two fulfillments in the
emulator, each with its tracking number, company and URL; pushing again
creates nothing more; shipments of other orders are not pushed."""

from __future__ import annotations

from sqlalchemy import text

from tests.e2e.test_shopify_support import emulator, shopify_stack  # noqa: F401 - fixtures
from workers.fulfillment import FulfillmentPusher
from workers.shopify_client import ShopifyClient


def test_two_shipments_become_two_fulfillments_with_their_tracking(emulator, redis_url, database_url, broker_url):
    with shopify_stack(emulator, redis_url, database_url, broker_url=broker_url) as stack:
        shop = stack.emu.client
        shop.seed_products([{"sku": "MUG", "available": 10}, {"sku": "CAP", "available": 10}])
        stack.sku("MUG", 10)
        stack.sku("CAP", 10)
        placed = shop.purchase([{"sku": "MUG", "quantity": 3}, {"sku": "CAP", "quantity": 1}])["order"]
        order_id = f"shp_{placed['id']}"
        stack.wait(lambda: order_id in stack.shopify_orders(), message="the order to arrive")

        first = stack.api("POST", f"/v1/orders/{order_id}/shipments", {
            "lines": [{"sku": "MUG", "quantity": 2}], "method": "parcel", "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}, expect=201)
        second = stack.api("POST", f"/v1/orders/{order_id}/shipments", {
            "lines": [{"sku": "MUG", "quantity": 1}, {"sku": "CAP", "quantity": 1}],
            "method": "parcel", "carrier": "USPS", "tracking_number": "9400111899223100000000",
            "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223100000000"},
            expect=201)
        # a wholesale order's shipment is not Shopify's business
        buyer = stack.api("POST", "/v1/customers", {"name": "Shop", "profiles": [{"channel": "wholesale"}]},
                          expect=201)
        other = stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                                 "lines": [{"sku": "MUG", "quantity": 1}]}, expect=201)
        stack.api("POST", f"/v1/orders/{other['id']}/shipments",
                  {"lines": [{"sku": "MUG", "quantity": 1}], "method": "parcel", "tracking_number": "X1"},
                  expect=201)

        fulfillments = stack.wait(lambda: len(shop.state()["fulfillments"]) >= 2 and shop.state()["fulfillments"],
                                  message="two fulfillments")
        mug, cap = (li["id"] for li in placed["line_items"])
        assert [(f["tracking"], sorted((l["line_item_id"], l["quantity"]) for l in f["lines"]))
                for f in fulfillments] == [
            ([{"number": "1Z999AA10123456784", "company": "UPS",
               "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}], [(mug, 2)]),
            ([{"number": "9400111899223100000000", "company": "USPS",
               "url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223100000000"}],
             sorted([(mug, 1), (cap, 1)])),
        ]
        assert all(f["order_id"] == placed["id"] for f in fulfillments)
        order = shop.state()["orders"][0]
        assert order["fulfillment_status"] == "fulfilled"

        # pushing again (a worker that crashed before writing down what it did)
        # creates nothing: Shopify replays the first answer for the same key.
        # The stack's own pusher is stopped first: it would push the deleted
        # records again before this one runs, and this one would find nothing
        stack.stop_workers()
        with stack.pg.begin() as conn:
            pushed = dict(conn.execute(text("SELECT shipment_id, status FROM shopify_fulfillments")).all())
            assert pushed == {first["id"]: "pushed", second["id"]: "pushed"}
            conn.execute(text("DELETE FROM shopify_fulfillments"))
        client = ShopifyClient.from_settings(stack.settings)
        try:
            report = FulfillmentPusher(stack.redis, stack.pg, stack.keys, client).run()
        finally:
            client.close()
        assert report.pushed == 2 and report.failed == 0
        assert len(shop.state()["fulfillments"]) == 2
        assert shop.state()["validation_failures"] == []
