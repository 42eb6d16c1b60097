"""The Admin GraphQL endpoint: auth, validation against the real schema, onhand's read queries."""

from __future__ import annotations

import httpx

LOOKUP = """
query Lookup($query: String!) {
  locations(first: 5) { nodes { id name } }
  productVariants(first: 50, query: $query) { nodes { id sku inventoryItem { id } } }
}
"""

LEVELS = """
query Levels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      sku
      inventoryLevel(locationId: $locationId) {
        id
        quantities(names: ["available", "on_hand"]) { name quantity }
      }
    }
  }
}
"""


def test_wrong_token_gets_shopify_401_body(emu):
    response = httpx.post(
        emu.graphql_url(),
        json={"query": "{ shop { name } }"},
        headers={"X-Shopify-Access-Token": "nope"},
    )
    assert response.status_code == 401
    assert response.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    missing = httpx.post(emu.graphql_url(), json={"query": "{ shop { name } }"})
    assert missing.status_code == 401


def test_invalid_field_is_refused_and_logged(emu, graphql):
    body = graphql(emu, "query Broken { shop { name nmae } }")
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == "Field 'nmae' doesn't exist on type 'Shop'"
    assert error["extensions"]["code"] == "undefinedField"
    assert error["locations"] == [{"line": 1, "column": 28}]
    assert "cost" in body["extensions"]
    [failure] = emu.client.state()["validation_failures"]
    assert failure["stage"] == "validate"
    assert failure["operation_name"] == "Broken"
    assert failure["errors"][0]["extensions"]["code"] == "undefinedField"


def test_unknown_argument_and_bad_literal_get_graphql_ruby_codes(emu, graphql):
    body = graphql(emu, '{ order(id: "gid://shopify/Order/1", foo: 1) { id } }')
    assert body["errors"][0]["extensions"]["code"] == "argumentNotAccepted"
    body = graphql(emu, '{ locations(first: "ten") { nodes { id } } }')
    assert body["errors"][0]["extensions"]["code"] == "argumentLiteralsIncompatible"
    body = graphql(emu, "{ locations(first: 1) { nodes { id }")
    assert body["errors"][0]["extensions"]["code"] == "PARSE_ERROR"
    assert len(emu.client.state()["validation_failures"]) == 3


def test_variables_are_coerced_against_the_schema(emu, graphql):
    body = graphql(emu, "query($n: Int!) { locations(first: $n) { nodes { id } } }", {"n": "five"})
    assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert emu.client.state()["validation_failures"][0]["stage"] == "variables"


def test_locations_and_sku_search(emu, graphql):
    emu.client.seed_products(
        [
            {"sku": "MUG-RED", "available": 3},
            {"sku": "MUG BLUE", "available": 4},
            {"sku": "CAP", "available": 5},
            {"sku": "", "available": 1, "title": "No SKU"},
        ]
    )
    body = graphql(emu, LOOKUP, {"query": 'sku:MUG-RED OR sku:"MUG BLUE"'})
    assert "errors" not in body
    assert [n["name"] for n in body["data"]["locations"]["nodes"]] == ["Shop location"]
    variants = body["data"]["productVariants"]["nodes"]
    assert sorted(v["sku"] for v in variants) == ["MUG BLUE", "MUG-RED"]
    assert all(
        v["inventoryItem"]["id"].startswith("gid://shopify/InventoryItem/") for v in variants
    )

    body = graphql(emu, LOOKUP, {"query": "sku:MUG*"})
    assert len(body["data"]["productVariants"]["nodes"]) == 2
    body = graphql(emu, LOOKUP, {"query": "-sku:CAP"})
    assert len(body["data"]["productVariants"]["nodes"]) == 3
    body = graphql(emu, LOOKUP, {"query": "colour:red"})
    assert body["extensions"]["search"][0]["warnings"][0]["field"] == "colour"


def test_inventory_levels_through_nodes_and_inventory_item(emu, graphql):
    [variant] = emu.client.seed_products([{"sku": "MUG", "available": 7}])
    location = emu.client.state()["locations"][0]["admin_graphql_api_id"]
    body = graphql(emu, LEVELS, {"ids": [variant["inventory_item_gid"]], "locationId": location})
    [node] = body["data"]["nodes"]
    assert node["sku"] == "MUG"
    assert node["inventoryLevel"]["id"].startswith("gid://shopify/InventoryLevel/")
    assert node["inventoryLevel"]["quantities"] == [
        {"name": "available", "quantity": 7},
        {"name": "on_hand", "quantity": 7},
    ]
    body = graphql(
        emu,
        "query($id: ID!) { inventoryItem(id: $id) { sku tracked variant { sku inventoryPolicy } } }"
        "",
        {"id": variant["inventory_item_gid"]},
    )
    assert body["data"]["inventoryItem"] == {
        "sku": "MUG",
        "tracked": True,
        "variant": {"sku": "MUG", "inventoryPolicy": "DENY"},
    }
    body = graphql(emu, '{ inventoryItems(first: 5, query: "sku:MUG") { nodes { sku } } }')
    assert body["data"]["inventoryItems"]["nodes"] == [{"sku": "MUG"}]
    body = graphql(emu, "query($id: ID) { location(id: $id) { name } }", {"id": location})
    assert body["data"]["location"] == {"name": "Shop location"}


def test_pagination_cursors(emu, graphql):
    emu.client.seed_products([{"sku": f"SKU-{i}", "available": i} for i in range(5)])
    query = """query($after: String) {
      productVariants(first: 2, after: $after) { nodes { sku } pageInfo { hasNextPage endCursor } }
    }"""
    seen, after = [], None
    while True:
        page = graphql(emu, query, {"after": after})["data"]["productVariants"]
        seen += [n["sku"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"SKU-{i}" for i in range(5)]
    body = graphql(emu, "{ productVariants { nodes { sku } } }")
    assert body["errors"][0]["message"] == "you must provide one of first or last"


def test_unknown_version_is_404_and_response_names_the_version(emu):
    response = emu.client.graphql("{ shop { name } }", version="2026-05")
    assert response.status_code == 404
    response = emu.client.graphql("{ shop { name } }", version="2026-01")
    assert response.headers["x-shopify-api-version"] == "2026-01"
