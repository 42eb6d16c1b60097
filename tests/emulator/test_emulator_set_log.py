"""The set log: each accepted inventorySetQuantities change, with the sales the app missed."""

from __future__ import annotations

SET = """
mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) { userErrors { code } }
}
"""


def _set(emu, graphql, item, location, quantity, key):
    variables = {
        "key": key,
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": item,
                    "locationId": location,
                    "quantity": quantity,
                    "changeFromQuantity": None,
                }
            ],
        },
    }
    assert graphql(emu, SET, variables)["data"]["inventorySetQuantities"]["userErrors"] == []


def test_set_log_counts_undelivered_sales(emu, graphql, receiver):
    [mug] = emu.client.seed_products([{"sku": "MUG", "available": 10}])
    item = mug["inventory_item_gid"]
    location = emu.client.state()["locations"][0]["admin_graphql_api_id"]
    emu.client.webhook_mode("hold")

    first = emu.client.purchase([{"sku": "MUG", "quantity": 2}])["order"]
    emu.client.purchase([{"sku": "MUG", "quantity": 1}])
    _set(emu, graphql, item, location, 10, "set-1")

    cancelled_unheard = emu.client.purchase([{"sku": "MUG", "quantity": 4}])["order"]
    emu.client.flush(order_ids=[first["id"]])  # the app hears of the first sale only
    emu.client.cancel(cancelled_unheard["id"], restock=True)
    _set(emu, graphql, item, location, 10, "set-2")

    emu.client.flush()
    receiver.wait_for(5)
    _set(emu, graphql, item, location, 10, "set-3")

    log = emu.client.state()["set_log"]
    assert [e["sku"] for e in log] == ["MUG"] * 3
    assert log[0]["inventory_item_id"] == item and log[0]["location_id"] == location
    assert (log[0]["available_before"], log[0]["quantity"]) == (7, 10)
    assert (
        log[0]["undelivered_sold"],
        log[0]["undelivered_restocked"],
        log[0]["undelivered_sales"],
    ) == (3, 0, 3)
    # second order (1) and the cancelled one (4) unheard; its restock (4) unheard too
    assert (
        log[1]["undelivered_sold"],
        log[1]["undelivered_restocked"],
        log[1]["undelivered_sales"],
    ) == (5, 4, 1)
    assert (
        log[2]["undelivered_sold"],
        log[2]["undelivered_restocked"],
        log[2]["undelivered_sales"],
    ) == (0, 0, 0)
    assert log[1]["idempotency_key"] == "set-2"
    inventory = emu.client.inventory("MUG")
    assert inventory["undelivered_sales"] == 0


def test_failed_deliveries_stay_undelivered(emu, graphql, receiver):
    [mug] = emu.client.seed_products([{"sku": "MUG", "available": 10}])
    location = emu.client.state()["locations"][0]["admin_graphql_api_id"]
    receiver.default_status = 500
    emu.client.purchase([{"sku": "MUG", "quantity": 2}])
    emu.client.drain(5)
    _set(emu, graphql, mug["inventory_item_gid"], location, 9, "set-after-failure")
    assert emu.client.state()["set_log"][0]["undelivered_sales"] == 2
