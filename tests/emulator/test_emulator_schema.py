"""The emulator validates against the real Admin schema, built once per process."""

from __future__ import annotations

import hashlib

from graphql import parse, validate

from emulator import EmulatorServer
from emulator import schema as admin_schema
from emulator.schema import BUNDLED_SDL, BUNDLED_SHA256, load_schema

# The four operations schema/README.md lists as validating against the 2026-01 SDL.
README_OPERATIONS = {
    "inventorySetQuantities": """
        mutation SetStock($input: InventorySetQuantitiesInput!) {
          inventorySetQuantities(input: $input)
            @idempotent(key: "0b4a4b3e-5f7c-4a43-9f59-6d0b0e9d4c11") {
            inventoryAdjustmentGroup { createdAt reason changes { name delta quantityAfterChange } }
            userErrors { code field message }
          }
        }""",
    "fulfillmentCreate": """
        mutation Ship($fulfillment: FulfillmentInput!, $message: String) {
          fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
            fulfillment { id status trackingInfo { number company url } }
            userErrors { field message }
          }
        }""",
    "order": """
        query Order($id: ID!) {
          order(id: $id) {
            id
            fulfillmentOrders(first: 10) {
              nodes {
                id status
                lineItems(first: 50) { nodes { id remainingQuantity totalQuantity } }
              }
            }
            lineItems(first: 50) { nodes { id sku quantity variant { inventoryItem { id } } } }
          }
        }""",
    "productVariants": """
        query Variants($query: String!, $locationId: ID!) {
          productVariants(first: 50, query: $query) {
            nodes {
              id sku
              inventoryItem {
                id
                inventoryLevel(locationId: $locationId) {
                  id
                  quantities(names: ["available", "on_hand"]) { name quantity }
                }
              }
            }
          }
        }""",
}


def test_bundled_schema_is_the_fixture_byte_for_byte(fixtures_dir):
    original = (fixtures_dir / "schema" / "admin-2026-01.graphql").read_bytes()
    assert BUNDLED_SDL.read_bytes() == original
    assert hashlib.sha256(original).hexdigest() == BUNDLED_SHA256


def test_schema_builds_once_per_process(emulator_server):
    first = load_schema()
    builds = admin_schema.build_count()
    assert builds >= 1
    with EmulatorServer() as second:
        assert second.client.graphql("{ shop { name } }").status_code == 200
    assert load_schema() is first
    assert load_schema(BUNDLED_SDL) is first
    assert admin_schema.build_count() == builds
    assert first.sha256 == BUNDLED_SHA256
    assert len(first.schema.type_map) > 2900
    print(f"\nschema build took {first.build_seconds:.2f}s")


def test_version_rules_come_from_the_sdl():
    rules = load_schema()
    for name in (
        "inventorySetQuantities",
        "inventoryAdjustQuantities",
        "inventoryMoveQuantities",
        "inventorySetOnHandQuantities",
        "refundCreate",
    ):
        assert rules.idempotency_required[name] == "2026-04"
    assert "fulfillmentCreate" not in rules.idempotency_required
    assert rules.removed_fields[("InventoryQuantityInput", "compareQuantity")] == "2026-04"
    assert (
        rules.removed_fields[("InventorySetQuantitiesInput", "ignoreCompareQuantity")] == "2026-04"
    )


def test_readme_operations_validate_with_zero_errors():
    schema = load_schema().schema
    for name, operation in README_OPERATIONS.items():
        assert validate(schema, parse(operation)) == [], name


def test_readme_operations_pass_the_http_endpoint(emu, graphql):
    for name, operation in README_OPERATIONS.items():
        body = graphql(emu, operation, _variables_for(name))
        assert "errors" not in body, (name, body)
    assert emu.client.state()["validation_failures"] == []


def _variables_for(name: str) -> dict:
    location = "gid://shopify/Location/1"
    return {
        "inventorySetQuantities": {
            "input": {
                "name": "available",
                "reason": "correction",
                "quantities": [
                    {
                        "inventoryItemId": "gid://shopify/InventoryItem/1",
                        "locationId": location,
                        "quantity": 1,
                        "changeFromQuantity": None,
                    }
                ],
            }
        },
        "fulfillmentCreate": {
            "fulfillment": {
                "lineItemsByFulfillmentOrder": [
                    {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1"}
                ]
            }
        },
        "order": {"id": "gid://shopify/Order/1"},
        "productVariants": {"query": "sku:A OR sku:B", "locationId": location},
    }[name]
