"""Resolution machinery: the request context, the (type, field) registry, the default resolver.

One default resolver serves everything: a registered function for (type, field)
when there is one, else the dict key or the snake_case attribute of the record.
Fields the emulator does not model resolve to null (or a neutral value when the
schema forbids null) and are listed in the shop's `unsupported_fields` log, so a
test notices when the app starts reading something the emulator makes up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    GraphQLScalarType,
)

from emulator.ids import parse_gid
from emulator.logs import UnsupportedField
from emulator.model import Record
from emulator.schema import AdminSchema
from emulator.state import Shop


@dataclass
class RequestContext:
    shop: Shop
    admin: AdminSchema
    version: str
    variables: dict[str, Any]
    search: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)
    replayed: bool = False


Resolver = Callable[..., Any]
RESOLVERS: dict[tuple[str, str], Resolver] = {}


def resolves(type_name: str, *field_names: str) -> Callable[[Resolver], Resolver]:
    def register(fn: Resolver) -> Resolver:
        for name in field_names:
            RESOLVERS[(type_name, name)] = fn
        return fn

    return register


# -- default resolution --------------------------------------------------------------

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def graphql_datetime(moment: datetime) -> str:
    # The Admin API answers in UTC with a Z suffix.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def out(value: Any) -> Any:
    if isinstance(value, datetime):
        return graphql_datetime(value)
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    return value


def default_resolver(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    fn = RESOLVERS.get((info.parent_type.name, info.field_name))
    if fn is not None:
        return fn(source, info, **args)
    name = info.field_name
    if isinstance(source, dict):
        if name in source:
            return out(source[name])
        return unsupported(info)
    if name == "id" and hasattr(source, "gid"):
        return source.gid
    if name == "legacyResourceId" and hasattr(source, "id"):
        return str(source.id)
    attr = _snake(name)
    if hasattr(source, attr):
        return out(getattr(source, attr))
    return unsupported(info)


def unsupported(info: GraphQLResolveInfo) -> Any:
    ctx: RequestContext = info.context
    key = (info.parent_type.name, info.field_name)
    log = ctx.shop.unsupported_fields
    if not any((u.type_name, u.field_name) == key for u in log):
        log.append(UnsupportedField(time=ctx.shop.clock(), type_name=key[0], field_name=key[1]))
    return_type = info.return_type
    if not isinstance(return_type, GraphQLNonNull):
        return None
    inner = return_type.of_type
    if isinstance(inner, GraphQLList):
        return []
    if isinstance(inner, GraphQLEnumType):
        return next(iter(inner.values))
    if isinstance(inner, GraphQLScalarType):
        return {"Boolean": False, "Int": 0, "Float": 0.0}.get(inner.name, "")
    return None


def type_resolver(value: Any, info: GraphQLResolveInfo, abstract_type: Any) -> str | None:
    if isinstance(value, Record):
        return value.GRAPHQL_TYPE
    if isinstance(value, dict):
        return value.get("__typename")
    return None


def context_of(info: GraphQLResolveInfo) -> RequestContext:
    return info.context


def shop_of(info: GraphQLResolveInfo) -> Shop:
    return info.context.shop


# -- money ---------------------------------------------------------------------------


def money_bag(amount: Decimal, currency: str) -> dict[str, Any]:
    # MoneyV2.amount is a Decimal rendered like "10.0" or "89.99".
    text = format(amount.normalize(), "f")
    if "." not in text:
        text += ".0"
    m = {"amount": text, "currencyCode": currency}
    return {"shopMoney": m, "presentmentMoney": dict(m)}


# -- node lookup ---------------------------------------------------------------------


def lookup(shop: Shop, global_id: str) -> Any:
    parsed = parse_gid(global_id)
    if parsed is None:
        raise GraphQLError(
            f"Invalid global id '{global_id}'",
            extensions={"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
        )
    tables: dict[str, dict[int, Any]] = {
        "Location": shop.locations,
        "Product": shop.products,
        "ProductVariant": shop.variants,
        "InventoryItem": shop.inventory_items,
        "InventoryLevel": shop.levels,
        "Order": shop.orders,
        "LineItem": shop.line_items,
        "FulfillmentOrder": shop.fulfillment_orders,
        "FulfillmentOrderLineItem": shop.fulfillment_order_line_items,
        "Fulfillment": shop.fulfillments,
        "InventoryAdjustmentGroup": shop.adjustment_groups,
    }
    table = tables.get(parsed.type_name)
    return table.get(parsed.id) if table is not None else None


def typed(shop: Shop, global_id: str | None, type_name: str) -> Any:
    if global_id is None:
        return None
    found = lookup(shop, global_id)
    is_wanted = isinstance(found, Record) and type_name == found.GRAPHQL_TYPE
    return found if is_wanted else None
