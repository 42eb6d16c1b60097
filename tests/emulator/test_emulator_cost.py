"""Query cost, the leaky bucket and the edge 429 switch."""

from __future__ import annotations

import time

VARIANTS = "{ productVariants(first: 10) { nodes { id sku inventoryItem { id } } } }"


def test_costs_follow_shopify_rules(emu, graphql):
    emu.client.seed_products([{"sku": "A", "available": 1}, {"sku": "B", "available": 1}])
    body = graphql(emu, "{ shop { name } locations(first: 5) { nodes { id name } } }")
    cost = body["extensions"]["cost"]
    # shop: object 1; locations: 2 + 5 nodes x 1
    assert cost["requestedQueryCost"] == 1 + 2 + 5
    assert cost["actualQueryCost"] == 1 + 2 + 1
    body = graphql(emu, VARIANTS)
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 10 * 2
    assert cost["actualQueryCost"] == 2 + 2 * 2
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 1000.0
    assert status["restoreRate"] == 50.0
    assert 970 <= status["currentlyAvailable"] <= 1000


def test_bucket_throttles_without_executing_then_restores(emu, graphql):
    [variant] = emu.client.seed_products([{"sku": "A", "available": 5}])
    location = emu.client.state()["locations"][0]["admin_graphql_api_id"]
    emu.client.bucket(maximum_available=30, restore_rate=0, currently_available=0)
    mutation = """mutation($input: InventorySetQuantitiesInput!) {
        inventorySetQuantities(input: $input) @idempotent(key: "throttle-1") {
          userErrors { code }
        }
    }"""
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": variant["inventory_item_gid"],
                    "locationId": location,
                    "quantity": 1,
                    "changeFromQuantity": None,
                }
            ],
        }
    }
    body = graphql(emu, mutation, variables)
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ]
    assert "data" not in body
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 30.0
    assert emu.client.inventory("A")["available"] == 5
    assert emu.client.state()["call_log"][-1]["throttled"] is True

    emu.client.bucket(restore_rate=50)
    time.sleep(0.25)  # 50 points a second: the 10 points the mutation needs come back
    body = graphql(emu, mutation, variables)
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert emu.client.inventory("A")["available"] == 1


def test_single_query_max_cost(emu, graphql):
    query = """{ productVariants(first: 250) { nodes { inventoryItem {
        inventoryLevels(first: 10) { nodes { id } } } } } }"""
    body = graphql(emu, query)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] == 2 + 250 * (1 + 1 + 2 + 10)
    assert error["extensions"]["maxCost"] == 1000
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1000


def test_edge_429_switch(emu):
    emu.client.throttle_next(2, retry_after_s=1.5)
    for _ in range(2):
        response = emu.client.graphql("{ shop { name } }")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1.5"
    response = emu.client.graphql("{ shop { name } }")
    assert response.status_code == 200
    log = emu.client.state()["call_log"]
    assert [c["edge_limited"] for c in log] == [True, True, False]
