"""QueryRoot: the entry points onhand reads through."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from emulator.ids import gid
from emulator.model import Order
from emulator.resolvers.core import lookup, resolves, shop_of, typed
from emulator.resolvers.paging import connection, search
from emulator.state import Shop


@resolves("QueryRoot", "node")
def _node(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return lookup(shop_of(info), id)


@resolves("QueryRoot", "nodes")
def _nodes(_: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[Any]:
    return [lookup(shop_of(info), i) for i in ids]


@resolves("QueryRoot", "shop")
def _shop_root(_: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    shop = shop_of(info)
    domain = shop.config.shop
    return {
        "__typename": "Shop",
        "id": gid("Shop", 91_740_864_812),
        "name": shop.config.shop_name,
        "myshopifyDomain": domain,
        "url": f"https://{domain}",
        "email": f"owner@{domain}",
        "contactEmail": f"owner@{domain}",
        "currencyCode": shop.config.currency,
        "ianaTimezone": shop.config.timezone,
        "timezoneAbbreviation": shop.now().astimezone(shop.tz).tzname(),
        "primaryDomain": {"host": domain, "url": f"https://{domain}", "sslEnabled": True},
    }


@resolves("QueryRoot", "location")
def _location(_: Any, info: GraphQLResolveInfo, id: str | None = None) -> Any:
    shop = shop_of(info)
    return shop.primary_location if id is None else typed(shop, id, "Location")


@resolves("QueryRoot", "locations")
def _locations(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    predicate = search(info, args.get("query"), {"id", "name", "active"}, ("name",))
    rows = [
        loc
        for loc in shop.locations.values()
        if (loc.is_active or args.get("includeInactive"))
        and predicate({"id": loc.id, "name": loc.name, "active": str(loc.is_active).lower()})
    ]
    key = args.get("sortKey") or "NAME"
    rows.sort(key=(lambda loc: loc.name.lower()) if key == "NAME" else (lambda loc: loc.id))
    return connection(rows, **args)


def _variant_fields(shop: Shop, v: Any) -> dict[str, Any]:
    product = shop.products[v.product_id]
    return {
        "id": v.id,
        "sku": v.sku,
        "title": v.title,
        "product_id": product.id,
        "product_title": product.title,
        "inventory_item_id": v.inventory_item_id,
        "inventory_quantity": sum(lv.available for lv in shop.levels_of(v.inventory_item_id)),
        "inventory_policy": v.inventory_policy.lower(),
        "vendor": product.vendor,
    }


@resolves("QueryRoot", "productVariants")
def _product_variants(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    known = {
        "id",
        "sku",
        "title",
        "product_id",
        "product_title",
        "inventory_item_id",
        "inventory_quantity",
        "inventory_policy",
        "vendor",
    }
    predicate = search(info, args.get("query"), known, ("sku", "title", "product_title"))
    rows = [v for v in shop.variants.values() if predicate(_variant_fields(shop, v))]
    rows.sort(key=lambda v: v.id)
    return connection(rows, **args)


@resolves("QueryRoot", "productVariant")
def _product_variant(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "ProductVariant")


@resolves("QueryRoot", "products")
def _products(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    predicate = search(info, args.get("query"), {"id", "title", "vendor", "sku"}, ("title",))

    def fields(p: Any) -> dict[str, Any]:
        skus = [v.sku for v in shop.variants.values() if v.product_id == p.id]
        return {"id": p.id, "title": p.title, "vendor": p.vendor, "sku": skus}

    rows = sorted((p for p in shop.products.values() if predicate(fields(p))), key=lambda p: p.id)
    return connection(rows, **args)


@resolves("QueryRoot", "product")
def _product(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "Product")


@resolves("QueryRoot", "inventoryItems")
def _inventory_items(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    predicate = search(info, args.get("query"), {"id", "sku", "tracked"}, ("sku",))
    rows = [
        item
        for item in shop.inventory_items.values()
        if predicate({"id": item.id, "sku": item.sku, "tracked": str(item.tracked).lower()})
    ]
    rows.sort(key=lambda i: i.id)
    return connection(rows, **args)


@resolves("QueryRoot", "inventoryItem")
def _inventory_item(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "InventoryItem")


@resolves("QueryRoot", "inventoryLevel")
def _inventory_level_root(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "InventoryLevel")


@resolves("QueryRoot", "order")
def _order(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "Order")


@resolves("QueryRoot", "orders")
def _orders(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    known = {
        "id",
        "name",
        "sku",
        "test",
        "status",
        "email",
        "financial_status",
        "fulfillment_status",
    }
    predicate = search(info, args.get("query"), known, ("name", "email"))

    def fields(o: Order) -> dict[str, Any]:
        return {
            "id": o.id,
            "name": o.name,
            "sku": [li.sku for li in o.line_items],
            "test": str(o.test).lower(),
            "status": "cancelled" if o.cancelled_at else ("closed" if o.closed_at else "open"),
            "email": o.email,
            "financial_status": o.financial_status,
            "fulfillment_status": o.fulfillment_status or "unshipped",
        }

    rows = [o for o in shop.orders.values() if predicate(fields(o))]
    rows.sort(key=lambda o: (o.created_at, o.id))
    return connection(rows, **args)


@resolves("QueryRoot", "fulfillmentOrder")
def _fulfillment_order(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "FulfillmentOrder")


@resolves("QueryRoot", "fulfillmentOrders")
def _fulfillment_orders(_: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    shop = shop_of(info)
    rows = [
        fo
        for fo in shop.fulfillment_orders.values()
        if args.get("includeClosed") or fo.status not in ("CLOSED", "CANCELLED")
    ]
    return connection(sorted(rows, key=lambda fo: fo.id), **args)


@resolves("QueryRoot", "fulfillment")
def _fulfillment(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return typed(shop_of(info), id, "Fulfillment")
