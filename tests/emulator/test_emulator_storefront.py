"""Storefront purchases, cancels, refunds and fulfillment, as the shop sees them."""

from __future__ import annotations

import pytest

from emulator import EmulatorError

ORDER = """
query($id: ID!) {
  order(id: $id) {
    id name
    lineItems(first: 10) { nodes { id sku quantity } }
    fulfillmentOrders(first: 5) {
      nodes {
        id status
        lineItems(first: 10) { nodes { id remainingQuantity totalQuantity lineItem { id sku } } }
      }
    }
    fulfillments { id status trackingInfo { number company url } }
  }
}
"""

FULFILL = """
mutation($fulfillment: FulfillmentInput!, $message: String) {
  fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
    fulfillment { id status trackingInfo { number company url } }
    userErrors { field message }
  }
}
"""


def test_purchase_refused_when_short_under_deny(emu):
    emu.client.seed_products([{"sku": "MUG", "available": 2}, {"sku": "CAP", "available": 9}])
    emu.client.webhook_mode("hold")
    with pytest.raises(EmulatorError) as refused:
        emu.client.purchase([{"sku": "CAP", "quantity": 1}, {"sku": "MUG", "quantity": 3}])
    assert refused.value.status == 409
    assert refused.value.body["detail"][0]["sku"] == "MUG"
    state = emu.client.state()
    assert state["inventory"]["MUG"]["available"] == 2
    assert state["inventory"]["CAP"]["available"] == 9
    assert state["orders"] == [] and state["webhooks"] == []


def test_purchase_allowed_when_policy_continue(emu):
    emu.client.seed_products([{"sku": "PREORDER", "available": 1, "inventory_policy": "CONTINUE"}])
    emu.client.webhook_mode("hold")
    emu.client.purchase([{"sku": "PREORDER", "quantity": 3}])
    inventory = emu.client.inventory("PREORDER")
    assert (inventory["available"], inventory["on_hand"], inventory["committed"]) == (-2, 1, 3)


def test_purchase_lowers_available_at_once_and_queues_orders_create(emu, graphql):
    [mug] = emu.client.seed_products([{"sku": "MUG", "available": 5, "price": "12.50"}])
    emu.client.webhook_mode("hold")
    placed = emu.client.purchase([{"variant_id": mug["variant_id"], "quantity": 2}], test=True)
    order = placed["order"]
    assert order["name"] == "#1001"
    assert order["admin_graphql_api_id"] == f"gid://shopify/Order/{order['id']}"
    assert [w["topic"] for w in placed["webhooks"]] == ["orders/create"]
    inventory = emu.client.inventory("MUG")
    assert (inventory["available"], inventory["on_hand"], inventory["committed"]) == (3, 5, 2)
    [queued] = emu.client.webhooks()["webhooks"]
    assert queued["status"] == "queued"
    assert queued["body"]["line_items"][0]["sku"] == "MUG"

    body = graphql(emu, ORDER, {"id": order["admin_graphql_api_id"]})
    data = body["data"]["order"]
    assert data["lineItems"]["nodes"][0]["sku"] == "MUG"
    [fo] = data["fulfillmentOrders"]["nodes"]
    assert fo["status"] == "OPEN"
    assert fo["lineItems"]["nodes"][0]["remainingQuantity"] == 2
    assert data["fulfillments"] == []


def test_fulfillment_create_reduces_remaining_and_records_tracking(emu, graphql):
    emu.client.seed_products([{"sku": "MUG", "available": 5}])
    emu.client.webhook_mode("hold")
    order = emu.client.purchase([{"sku": "MUG", "quantity": 3}])["order"]
    fo = order["fulfillment_orders"][0]
    line = fo["line_items"][0]

    def ship(quantity: int, number: str) -> dict:
        variables = {
            "fulfillment": {
                "lineItemsByFulfillmentOrder": [
                    {
                        "fulfillmentOrderId": fo["admin_graphql_api_id"],
                        "fulfillmentOrderLineItems": [
                            {"id": line["admin_graphql_api_id"], "quantity": quantity}
                        ],
                    }
                ],
                "trackingInfo": {
                    "number": number,
                    "company": "UPS",
                    "url": f"https://ups.example/{number}",
                },
                "notifyCustomer": False,
            },
            "message": "shipped by onhand",
        }
        return graphql(emu, FULFILL, variables)["data"]["fulfillmentCreate"]

    too_many = ship(4, "1Z0")
    assert too_many["fulfillment"] is None
    assert (
        too_many["userErrors"][0]["message"]
        == "Invalid fulfillment order line item quantity requested."
    )

    first = ship(2, "1Z1")
    assert first["userErrors"] == []
    assert first["fulfillment"]["status"] == "SUCCESS"
    assert first["fulfillment"]["trackingInfo"] == [
        {"number": "1Z1", "company": "UPS", "url": "https://ups.example/1Z1"}
    ]
    data = graphql(emu, ORDER, {"id": order["admin_graphql_api_id"]})["data"]["order"]
    assert data["fulfillmentOrders"]["nodes"][0]["status"] == "IN_PROGRESS"
    assert data["fulfillmentOrders"]["nodes"][0]["lineItems"]["nodes"][0]["remainingQuantity"] == 1

    assert ship(1, "1Z2")["userErrors"] == []
    data = graphql(emu, ORDER, {"id": order["admin_graphql_api_id"]})["data"]["order"]
    assert data["fulfillmentOrders"]["nodes"][0]["status"] == "CLOSED"
    assert [f["trackingInfo"][0]["number"] for f in data["fulfillments"]] == ["1Z1", "1Z2"]
    state = emu.client.state()
    assert [f["tracking"][0]["number"] for f in state["fulfillments"]] == ["1Z1", "1Z2"]
    assert state["fulfillments"][0]["message"] == "shipped by onhand"
    inventory = state["inventory"]["MUG"]
    assert (inventory["available"], inventory["on_hand"], inventory["committed"]) == (2, 2, 0)
    assert ship(1, "1Z3")["userErrors"][0]["message"].startswith("Fulfillment order")


def test_cancel_with_restock_raises_available(emu):
    emu.client.seed_products([{"sku": "MUG", "available": 5}])
    emu.client.webhook_mode("hold")
    order = emu.client.purchase([{"sku": "MUG", "quantity": 2}])["order"]
    cancelled = emu.client.cancel(order["id"], restock=True, reason="customer")
    assert [w["topic"] for w in cancelled["webhooks"]] == ["orders/cancelled", "refunds/create"]
    inventory = emu.client.inventory("MUG")
    assert (inventory["available"], inventory["on_hand"], inventory["committed"]) == (5, 5, 0)
    assert cancelled["order"]["fulfillment_orders"][0]["status"] == "CANCELLED"
    with pytest.raises(EmulatorError):
        emu.client.cancel(order["id"])


def test_cancel_without_restock_keeps_available_down(emu):
    emu.client.seed_products([{"sku": "MUG", "available": 5}])
    emu.client.webhook_mode("hold")
    order = emu.client.purchase([{"sku": "MUG", "quantity": 2}])["order"]
    emu.client.cancel(order["id"], restock=False)
    inventory = emu.client.inventory("MUG")
    assert (inventory["available"], inventory["on_hand"]) == (3, 3)
    body = next(
        w["body"] for w in emu.client.webhooks()["webhooks"] if w["topic"] == "refunds/create"
    )
    assert body["refund_line_items"][0]["restock_type"] == "no_restock"


def test_refund_restock_types(emu, graphql):
    emu.client.seed_products([{"sku": "MUG", "available": 10}])
    emu.client.webhook_mode("hold")
    order = emu.client.purchase([{"sku": "MUG", "quantity": 4}])["order"]
    line_id = order["line_items"][0]["id"]
    fo = order["fulfillment_orders"][0]
    graphql(
        emu,
        FULFILL,
        {
            "fulfillment": {
                "lineItemsByFulfillmentOrder": [
                    {
                        "fulfillmentOrderId": fo["admin_graphql_api_id"],
                        "fulfillmentOrderLineItems": [
                            {"id": fo["line_items"][0]["admin_graphql_api_id"], "quantity": 2}
                        ],
                    }
                ]
            }
        },
    )
    assert emu.client.inventory("MUG")["available"] == 6
    emu.client.refund(
        order["id"], [{"line_item_id": line_id, "quantity": 1, "restock_type": "return"}]
    )
    assert emu.client.inventory("MUG")["available"] == 7
    emu.client.refund(
        order["id"], [{"line_item_id": line_id, "quantity": 1, "restock_type": "cancel"}]
    )
    assert emu.client.inventory("MUG")["available"] == 8
    emu.client.refund(
        order["id"], [{"line_item_id": line_id, "quantity": 1, "restock_type": "no_restock"}]
    )
    inventory = emu.client.inventory("MUG")
    assert (inventory["available"], inventory["on_hand"], inventory["committed"]) == (8, 8, 0)
    with pytest.raises(EmulatorError) as too_many:
        emu.client.refund(
            order["id"], [{"line_item_id": line_id, "quantity": 2, "restock_type": "return"}]
        )
    assert too_many.value.status == 422
    refunds = [
        w["body"] for w in emu.client.webhooks()["webhooks"] if w["topic"] == "refunds/create"
    ]
    assert [r["refund_line_items"][0]["restock_type"] for r in refunds] == [
        "return",
        "cancel",
        "no_restock",
    ]
