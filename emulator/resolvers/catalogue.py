"""Locations, products, variants, inventory items and levels, adjustment groups."""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from emulator.ids import gid, parse_gid
from emulator.model import QUANTITY_NAMES
from emulator.resolvers.core import resolves, shop_of, typed
from emulator.resolvers.paging import connection


@resolves("Location", "inventoryLevel")
def _location_level(loc: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    item = typed(shop_of(info), args["inventoryItemId"], "InventoryItem")
    return shop_of(info).level(item.id, loc.id) if item else None


@resolves("Location", "inventoryLevels")
def _location_levels(loc: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    rows = sorted(
        (lv for lv in shop_of(info).levels.values() if lv.location_id == loc.id),
        key=lambda lv: lv.id,
    )
    return connection(rows, **args)


@resolves("Location", "fulfillsOnlineOrders", "shipsInventory", "hasActiveInventory", "activatable")
def _true(*_: Any, **__: Any) -> bool:
    return True


@resolves(
    "Location",
    "isFulfillmentService",
    "hasUnfulfilledOrders",
    "deletable",
    "deactivatable",
    "addressVerified",
)
def _false(*_: Any, **__: Any) -> bool:
    return False


@resolves("ProductVariant", "inventoryItem")
def _variant_item(v: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).inventory_items[v.inventory_item_id]


@resolves("ProductVariant", "product")
def _variant_product(v: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).products[v.product_id]


@resolves("ProductVariant", "inventoryQuantity", "sellableOnlineQuantity")
def _variant_quantity(v: Any, info: GraphQLResolveInfo) -> int:
    return sum(lv.available for lv in shop_of(info).levels_of(v.inventory_item_id))


@resolves("ProductVariant", "availableForSale")
def _variant_for_sale(v: Any, info: GraphQLResolveInfo) -> bool:
    return v.inventory_policy == "CONTINUE" or _variant_quantity(v, info) > 0


@resolves("ProductVariant", "displayName")
def _variant_display_name(v: Any, info: GraphQLResolveInfo) -> str:
    return f"{shop_of(info).products[v.product_id].title} - {v.title}"


@resolves("Product", "variants")
def _product_variants_of(p: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    rows = sorted(
        (v for v in shop_of(info).variants.values() if v.product_id == p.id), key=lambda v: v.id
    )
    return connection(rows, **args)


@resolves("Product", "totalInventory")
def _product_total(p: Any, info: GraphQLResolveInfo) -> int:
    shop = shop_of(info)
    return sum(_variant_quantity(v, info) for v in shop.variants.values() if v.product_id == p.id)


@resolves("Product", "status")
def _product_status(*_: Any) -> str:
    return "ACTIVE"


@resolves("Product", "tracksInventory")
def _product_tracks(*_: Any) -> bool:
    return True


@resolves("Product", "handle")
def _product_handle(p: Any, _: GraphQLResolveInfo) -> str:
    return re.sub(r"[^a-z0-9]+", "-", p.title.lower()).strip("-")


@resolves("InventoryItem", "variant")
def _item_variant(item: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).variants[item.variant_id]


@resolves("InventoryItem", "variants")
def _item_variants(item: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    return connection([shop_of(info).variants[item.variant_id]], **args)


@resolves("InventoryItem", "inventoryLevel")
def _item_level(item: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    location = typed(shop_of(info), args["locationId"], "Location")
    return shop_of(info).level(item.id, location.id) if location else None


@resolves("InventoryItem", "inventoryLevels")
def _item_levels(item: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    return connection(sorted(shop_of(info).levels_of(item.id), key=lambda lv: lv.id), **args)


@resolves("InventoryItem", "duplicateSkuCount")
def _duplicate_skus(item: Any, info: GraphQLResolveInfo) -> int:
    if not item.sku:
        return 0
    return sum(
        1
        for other in shop_of(info).inventory_items.values()
        if other.sku == item.sku and other.id != item.id
    )


@resolves("InventoryItem", "locationsCount")
def _item_locations_count(item: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    return {"count": len(shop_of(info).levels_of(item.id)), "precision": "EXACT"}


@resolves("InventoryLevel", "item")
def _level_item(level: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).inventory_items[level.inventory_item_id]


@resolves("InventoryLevel", "location")
def _level_location(level: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).locations[level.location_id]


@resolves("InventoryLevel", "quantities")
def _level_quantities(
    level: Any, info: GraphQLResolveInfo, names: list[str]
) -> list[dict[str, Any]]:
    unknown = [n for n in names if n not in QUANTITY_NAMES]
    if unknown:
        raise GraphQLError(
            f"Invalid quantity name(s): {', '.join(unknown)}."
            f" Valid names are: {', '.join(QUANTITY_NAMES)}.",
            extensions={"code": "BAD_REQUEST"},
        )
    return [
        {
            "id": gid(
                "InventoryQuantity",
                level.id,
                f"inventory_item_id={level.inventory_item_id}&name={n}",
            ),
            "name": n,
            "quantity": level.quantity(n),
            "updatedAt": level.updated_at,
        }
        for n in names
    ]


@resolves("InventoryLevel", "canDeactivate")
def _level_can_deactivate(level: Any, _: GraphQLResolveInfo) -> bool:
    return level.committed == 0


@resolves("InventoryAdjustmentGroup", "changes")
def _group_changes(group: Any, info: GraphQLResolveInfo, **args: Any) -> list[Any]:
    items = _numeric_ids(args.get("inventoryItemIds"))
    locations = _numeric_ids(args.get("locationIds"))
    names = set(args.get("quantityNames") or [])
    return [
        c
        for c in group.changes
        if (not items or c.inventory_item_id in items)
        and (not locations or c.location_id in locations)
        and (not names or c.name in names)
    ]


def _numeric_ids(gids: list[str] | None) -> set[int]:
    return {parsed.id for g in gids or () if (parsed := parse_gid(g)) is not None}


@resolves("InventoryChange", "item")
def _change_item(change: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).inventory_items.get(change.inventory_item_id)


@resolves("InventoryChange", "location")
def _change_location(change: Any, info: GraphQLResolveInfo) -> Any:
    return shop_of(info).locations.get(change.location_id)


@resolves("InventoryAdjustmentGroup", "app", "staffMember")
def _none(*_: Any, **__: Any) -> None:
    return None
