"""inventorySetQuantities: compare-and-swap, all-or-nothing, and the 2026-04 rules."""

from __future__ import annotations

import pytest

SET = """
mutation Set($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) @idempotent(key: "%s") {
    inventoryAdjustmentGroup {
      createdAt reason
      changes { name delta quantityAfterChange item { id } location { id } }
    }
    userErrors { code field message }
  }
}
"""

SET_NO_KEY = """
mutation Set($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { reason }
    userErrors { code field message }
  }
}
"""


@pytest.fixture
def stock(emu):
    variants = emu.client.seed_products(
        [{"sku": "MUG", "available": 10}, {"sku": "CAP", "available": 4}]
    )
    location = emu.client.state()["locations"][0]["admin_graphql_api_id"]
    return {v["sku"]: v["inventory_item_gid"] for v in variants}, location


def _input(location, *rows, **extra):
    quantities = []
    for item, quantity, *cas in rows:
        row = {"inventoryItemId": item, "locationId": location, "quantity": quantity}
        if cas:
            row["changeFromQuantity"] = cas[0]
        quantities.append(row)
    return {
        "name": "available",
        "reason": "correction",
        "referenceDocumentUri": "gid://onhand/Sync/1",
        "quantities": quantities,
        **extra,
    }


def _available(emu, sku):
    return emu.client.inventory(sku)["available"]


def test_set_applies_and_moves_on_hand_with_available(emu, graphql, stock):
    items, location = stock
    body = graphql(emu, SET % "k-1", {"input": _input(location, (items["MUG"], 6, 10))})
    payload = body["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    changes = {c["name"]: c for c in payload["inventoryAdjustmentGroup"]["changes"]}
    assert changes["available"]["delta"] == -4
    assert changes["available"]["quantityAfterChange"] == 6
    assert changes["on_hand"]["quantityAfterChange"] == 6
    assert changes["available"]["item"]["id"] == items["MUG"]
    assert changes["available"]["location"]["id"] == location
    inventory = emu.client.inventory("MUG")
    assert (inventory["available"], inventory["on_hand"]) == (6, 6)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10


def test_stale_change_from_quantity_applies_nothing(emu, graphql, stock):
    items, location = stock
    body = graphql(
        emu, SET % "k-2", {"input": _input(location, (items["MUG"], 1, 10), (items["CAP"], 1, 3))}
    )
    payload = body["data"]["inventorySetQuantities"]
    assert payload["inventoryAdjustmentGroup"] is None
    [error] = payload["userErrors"]
    assert error["code"] == "CHANGE_FROM_QUANTITY_STALE"
    assert error["field"] == ["input", "quantities", "1", "changeFromQuantity"]
    assert (_available(emu, "MUG"), _available(emu, "CAP")) == (10, 4)
    assert emu.client.state()["set_log"] == []


def test_explicit_null_change_from_quantity_skips_the_compare(emu, graphql, stock):
    items, location = stock
    body = graphql(emu, SET % "k-3", {"input": _input(location, (items["MUG"], 2, None))})
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert _available(emu, "MUG") == 2


def test_missing_change_from_quantity_key_is_refused_in_variables(emu, graphql, stock):
    items, location = stock
    body = graphql(emu, SET % "k-4", {"input": _input(location, (items["MUG"], 2))})
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"
    assert (
        error["message"]
        == "InventoryQuantityInput must include the following argument: changeFromQuantity"
    )
    assert _available(emu, "MUG") == 10
    assert emu.client.state()["validation_failures"][0]["stage"] == "version_rules"


def test_missing_change_from_quantity_key_is_refused_inline(emu, graphql, stock):
    items, location = stock
    item = items["MUG"]
    inline = f"""mutation {{
      inventorySetQuantities(input: {{
        name: "available", reason: "correction",
        quantities: [{{inventoryItemId: "{item}", locationId: "{location}", quantity: 3}}]
      }}) @idempotent(key: "k-5") {{ userErrors {{ code }} }}
    }}"""
    body = graphql(emu, inline)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_FIELD_ARGUMENTS"
    with_null = inline.replace("quantity: 3}", "quantity: 3, changeFromQuantity: null}")
    body = graphql(emu, with_null)
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert _available(emu, "MUG") == 3


def test_missing_idempotent_directive_is_refused(emu, graphql, stock):
    items, location = stock
    body = graphql(emu, SET_NO_KEY, {"input": _input(location, (items["MUG"], 2, 10))})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "@idempotent directive is required" in error["message"]
    assert _available(emu, "MUG") == 10


def test_repeated_idempotency_key_returns_first_result_without_applying_again(emu, graphql, stock):
    items, location = stock
    variables = {"input": _input(location, (items["MUG"], 7, 10))}
    first = graphql(emu, SET % "same-key", variables)
    emu.client.set_inventory("MUG", 10)  # someone else moved stock back in between
    second = graphql(emu, SET % "same-key", variables)
    assert second["data"] == first["data"]
    assert _available(emu, "MUG") == 10
    assert len(emu.client.state()["set_log"]) == 1
    assert [c["replayed"] for c in emu.client.state()["call_log"]][-2:] == [False, True]

    other = graphql(emu, SET % "same-key", {"input": _input(location, (items["MUG"], 1, 10))})
    [error] = other["data"]["inventorySetQuantities"]["userErrors"]
    assert error["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"


def test_removed_fields_are_refused_on_2026_04_but_work_on_2026_01(emu, graphql, stock):
    items, location = stock
    old_style = {"input": {**_input(location, (items["MUG"], 5)), "ignoreCompareQuantity": True}}
    body = graphql(emu, SET % "k-6", old_style)
    assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert _available(emu, "MUG") == 10

    body = graphql(emu, SET_NO_KEY, old_style, version="2026-01")
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert _available(emu, "MUG") == 5

    inline = f"""mutation {{
      inventorySetQuantities(input: {{
        name: "available", reason: "correction",
        quantities: [{{inventoryItemId: "{items["MUG"]}", locationId: "{location}", quantity: 3,
                       changeFromQuantity: null, compareQuantity: 5}}]
      }}) @idempotent(key: "k-6b") {{ userErrors {{ code }} }}
    }}"""
    [error] = graphql(emu, inline)["errors"]
    assert error["extensions"]["code"] == "argumentNotAccepted"
    assert error["message"] == "InputObject 'InventoryQuantityInput' doesn't accept argument 'compareQuantity'"

    compare = {"input": {**_input(location, (items["MUG"], 4))}}
    compare["input"]["quantities"][0]["compareQuantity"] = 99
    body = graphql(emu, SET_NO_KEY, compare, version="2026-01")
    assert (
        body["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "COMPARE_QUANTITY_STALE"
    )
    body = graphql(
        emu, SET_NO_KEY, {"input": _input(location, (items["MUG"], 4))}, version="2026-01"
    )
    assert (
        body["data"]["inventorySetQuantities"]["userErrors"][0]["code"]
        == "COMPARE_QUANTITY_REQUIRED"
    )


def test_more_than_250_quantities_are_refused(emu, graphql, stock):
    items, location = stock
    rows = [(items["MUG"], 1, None)] * 251
    body = graphql(emu, SET % "k-7", {"input": _input(location, *rows)})
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert _available(emu, "MUG") == 10


def test_unknown_item_and_bad_reason_are_user_errors(emu, graphql, stock):
    _, location = stock
    variables = {"input": _input(location, ("gid://shopify/InventoryItem/1", 1, None))}
    variables["input"]["reason"] = "because"
    codes = {
        e["code"]
        for e in graphql(emu, SET % "k-8", variables)["data"]["inventorySetQuantities"][
            "userErrors"
        ]
    }
    assert codes == {"INVALID_REASON", "INVALID_INVENTORY_ITEM"}
