"""Inventory mutations: set, adjust and set-on-hand quantities.

All or nothing: every quantity is checked first (item, location, compare-and-swap,
bounds) and nothing is written if any check fails. `available` and `on_hand` move
together: on_hand = available + committed, and `committed` only changes through
orders, so writing one shifts the other by the same delta, as on Shopify.
"""

from __future__ import annotations

from typing import Any

from emulator.ids import numeric_id
from emulator.logs import SetLogEntry
from emulator.model import InventoryAdjustmentGroup, InventoryChange, InventoryLevel
from emulator.state import Shop
from emulator.versions import CAS_VERSION, at_least

# shopify.dev "Manage inventory quantities and states": the reasons a change may carry.
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
SETTABLE_NAMES = ("available", "on_hand")
QUANTITY_LIMIT = 1_000_000_000


def _user_error(code: str, field: list[str], message: str) -> dict[str, Any]:
    return {"code": code, "field": field, "message": message}


def _resolve_level(
    shop: Shop, item_gid: str, location_gid: str, path: list[str], errors: list[dict[str, Any]]
) -> InventoryLevel | None:
    item_id = numeric_id(item_gid, "InventoryItem")
    if item_id is None or item_id not in shop.inventory_items:
        errors.append(
            _user_error(
                "INVALID_INVENTORY_ITEM",
                [*path, "inventoryItemId"],
                "The specified inventory item could not be found.",
            )
        )
        return None
    location_id = numeric_id(location_gid, "Location")
    if location_id is None or location_id not in shop.locations:
        errors.append(
            _user_error(
                "INVALID_LOCATION",
                [*path, "locationId"],
                "The specified location could not be found.",
            )
        )
        return None
    level = shop.level(item_id, location_id)
    if level is None:
        errors.append(
            _user_error(
                "ITEM_NOT_STOCKED_AT_LOCATION",
                [*path, "locationId"],
                "The specified inventory item is not stocked at the location.",
            )
        )
    return level


def _check_common(inp: dict[str, Any], errors: list[dict[str, Any]], name_code: str) -> None:
    if "name" in inp and inp["name"] not in SETTABLE_NAMES:
        errors.append(
            _user_error(
                name_code,
                ["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
            )
        )
    if inp.get("reason") not in REASONS:
        errors.append(
            _user_error("INVALID_REASON", ["input", "reason"], "The specified reason is invalid.")
        )
    uri = inp.get("referenceDocumentUri")
    if uri is not None and "://" not in uri:
        errors.append(
            _user_error(
                "INVALID_REFERENCE_DOCUMENT",
                ["input", "referenceDocumentUri"],
                "The specified reference document is invalid.",
            )
        )


def _compare_value(
    q: dict[str, Any],
    inp: dict[str, Any],
    version: str,
    path: list[str],
    errors: list[dict[str, Any]],
) -> tuple[bool, int | None, str]:
    """(compare?, expected value, error code if stale) for one quantity.

    From 2026-04 the key is always present (enforced before execution); an explicit
    null opts out. On 2026-01 the deprecated compareQuantity/ignoreCompareQuantity
    still work and one of the three must say what to do.
    """
    if "changeFromQuantity" in q:
        value = q["changeFromQuantity"]
        return value is not None, value, "CHANGE_FROM_QUANTITY_STALE"
    if at_least(version, CAS_VERSION):
        return False, None, ""
    if q.get("compareQuantity") is not None:
        return True, q["compareQuantity"], "COMPARE_QUANTITY_STALE"
    if inp.get("ignoreCompareQuantity"):
        return False, None, ""
    errors.append(
        _user_error(
            "COMPARE_QUANTITY_REQUIRED",
            [*path, "compareQuantity"],
            "The compareQuantity argument must be given to each quantity or ignored using"
            " ignoreCompareQuantity.",
        )
    )
    return False, None, ""


def _apply(level: InventoryLevel, name: str, delta: int, shop: Shop) -> None:
    # Writing available or on_hand shifts both: committed is untouched.
    level.available += delta
    level.updated_at = shop.now()


def _changes_for(level: InventoryLevel, name: str, delta: int) -> list[InventoryChange]:
    names = ("available", "on_hand") if name in SETTABLE_NAMES else (name,)
    return [
        InventoryChange(
            name=n,
            delta=delta,
            quantity_after_change=level.quantity(n),
            inventory_item_id=level.inventory_item_id,
            location_id=level.location_id,
        )
        for n in names
    ]


def _group(
    shop: Shop, inp: dict[str, Any], changes: list[InventoryChange]
) -> InventoryAdjustmentGroup:
    group = InventoryAdjustmentGroup(
        id=shop.ids.next("InventoryAdjustmentGroup"),
        reason=inp["reason"],
        reference_document_uri=inp.get("referenceDocumentUri"),
        changes=changes,
        created_at=shop.now(),
    )
    shop.adjustment_groups[group.id] = group
    return group


def set_quantities(
    shop: Shop, inp: dict[str, Any], version: str, idempotency_key: str | None
) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    _check_common(inp, errors, "INVALID_NAME")
    name = inp.get("name", "")
    plan: list[tuple[InventoryLevel, int, int | None]] = []
    seen: set[tuple[int, int]] = set()
    for i, q in enumerate(inp.get("quantities") or []):
        path = ["input", "quantities", str(i)]
        level = _resolve_level(shop, q["inventoryItemId"], q["locationId"], path, errors)
        compare, expected, stale_code = _compare_value(q, inp, version, path, errors)
        quantity = q["quantity"]
        if quantity > QUANTITY_LIMIT:
            errors.append(
                _user_error(
                    "INVALID_QUANTITY_TOO_HIGH",
                    [*path, "quantity"],
                    "The total quantity can't be higher than 1,000,000,000.",
                )
            )
        elif quantity < -QUANTITY_LIMIT:
            errors.append(
                _user_error(
                    "INVALID_QUANTITY_TOO_LOW",
                    [*path, "quantity"],
                    "The total quantity can't be lower than -1,000,000,000.",
                )
            )
        elif quantity < 0 and name == "on_hand":
            errors.append(
                _user_error(
                    "INVALID_QUANTITY_NEGATIVE",
                    [*path, "quantity"],
                    "The quantity can't be negative.",
                )
            )
        if level is None:
            continue
        key = (level.inventory_item_id, level.location_id)
        if key in seen:
            errors.append(
                _user_error(
                    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    path,
                    "The combination of inventoryItemId and locationId must be unique.",
                )
            )
            continue
        seen.add(key)
        if name in SETTABLE_NAMES and compare and expected != level.quantity(name):
            field = (
                "changeFromQuantity"
                if stale_code == "CHANGE_FROM_QUANTITY_STALE"
                else "compareQuantity"
            )
            errors.append(
                _user_error(
                    stale_code,
                    [*path, field],
                    f"The {field} value does not match persisted value.",
                )
            )
        plan.append((level, quantity, expected if compare else None))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}

    changes: list[InventoryChange] = []
    clock = shop.clock()
    for level, quantity, expected in plan:
        before_available, before_on_hand = level.available, level.on_hand
        delta = quantity - level.quantity(name)
        _apply(level, name, delta, shop)
        changes.extend(_changes_for(level, name, delta))
        key = (level.inventory_item_id, level.location_id)
        sold, restocked = shop.ledger.sold(key), shop.ledger.restocked(key)
        item = shop.inventory_items[level.inventory_item_id]
        shop.set_log.append(
            SetLogEntry(
                time=clock,
                sku=item.sku,
                inventory_item_id=item.gid,
                location_id=shop.locations[level.location_id].gid,
                name=name,
                quantity=quantity,
                available_before=before_available,
                on_hand_before=before_on_hand,
                change_from_quantity=expected,
                undelivered_sales=sold - restocked,
                undelivered_sold=sold,
                undelivered_restocked=restocked,
                reason=inp["reason"],
                reference_document_uri=inp.get("referenceDocumentUri"),
                idempotency_key=idempotency_key,
                api_version=version,
            )
        )
    return {"inventoryAdjustmentGroup": _group(shop, inp, changes), "userErrors": []}


def adjust_quantities(shop: Shop, inp: dict[str, Any], version: str) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    _check_common(inp, errors, "INVALID_QUANTITY_NAME")
    name = inp.get("name", "")
    plan: list[tuple[InventoryLevel, int]] = []
    for i, change in enumerate(inp.get("changes") or []):
        path = ["input", "changes", str(i)]
        level = _resolve_level(shop, change["inventoryItemId"], change["locationId"], path, errors)
        if level is None or name not in SETTABLE_NAMES:
            continue
        expected = change.get("changeFromQuantity")
        if expected is not None and expected != level.quantity(name):
            errors.append(
                _user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    [*path, "changeFromQuantity"],
                    "The changeFromQuantity value does not match persisted value.",
                )
            )
        plan.append((level, change["delta"]))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    changes: list[InventoryChange] = []
    for level, delta in plan:
        _apply(level, name, delta, shop)
        changes.extend(_changes_for(level, name, delta))
    return {"inventoryAdjustmentGroup": _group(shop, inp, changes), "userErrors": []}


def set_on_hand_quantities(shop: Shop, inp: dict[str, Any], version: str) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    _check_common(inp, errors, "INVALID_NAME")
    plan: list[tuple[InventoryLevel, int]] = []
    for i, q in enumerate(inp.get("setQuantities") or []):
        path = ["input", "setQuantities", str(i)]
        level = _resolve_level(shop, q["inventoryItemId"], q["locationId"], path, errors)
        if level is None:
            continue
        expected = q.get("changeFromQuantity")
        if expected is not None and expected != level.on_hand:
            errors.append(
                _user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    [*path, "changeFromQuantity"],
                    "The changeFromQuantity value does not match persisted value.",
                )
            )
        plan.append((level, q["quantity"] - level.on_hand))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    changes: list[InventoryChange] = []
    for level, delta in plan:
        _apply(level, "on_hand", delta, shop)
        changes.extend(_changes_for(level, "on_hand", delta))
    return {"inventoryAdjustmentGroup": _group(shop, inp, changes), "userErrors": []}
