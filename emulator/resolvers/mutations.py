"""Mutations, with `@idempotent(key:)` honoured on every one of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLResolveInfo

from emulator import fulfillment as fulfillment_ops
from emulator import inventory as inventory_ops
from emulator.idempotency import fingerprint
from emulator.resolvers.core import RESOLVERS, Resolver, context_of, shop_of
from emulator.versions import idempotency_key


def _idempotent(
    field_name: str, run: Callable[[GraphQLResolveInfo, dict[str, Any]], Any]
) -> Resolver:
    """Honour @idempotent(key:): a repeat returns the first payload, applying nothing."""

    def resolver(_: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        ctx = context_of(info)
        key = idempotency_key(info.field_nodes[0], ctx.variables)
        if key is None:
            return run(info, args)
        ctx.idempotency_keys.append(key)
        remembered = ctx.shop.idempotency.get(key)
        if remembered is not None:
            if remembered.fingerprint != fingerprint(field_name, args):
                return {
                    "userErrors": [
                        {
                            "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                            "field": None,
                            "message": "The same idempotency key cannot be used with"
                            " different operation parameters.",
                        }
                    ]
                }
            ctx.replayed = True
            return remembered.payload
        payload = run(info, args)
        ctx.shop.idempotency.remember(key, field_name, args, payload)
        return payload

    return resolver


def _set_quantities(info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    ctx = context_of(info)
    key = idempotency_key(info.field_nodes[0], ctx.variables)
    return inventory_ops.set_quantities(ctx.shop, args["input"], ctx.version, key)


def _adjust_quantities(info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    ctx = context_of(info)
    return inventory_ops.adjust_quantities(ctx.shop, args["input"], ctx.version)


def _set_on_hand(info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    ctx = context_of(info)
    return inventory_ops.set_on_hand_quantities(ctx.shop, args["input"], ctx.version)


def _fulfillment_create(info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
    return fulfillment_ops.create_fulfillment(
        shop_of(info), args["fulfillment"], args.get("message")
    )


RESOLVERS[("Mutation", "inventorySetQuantities")] = _idempotent(
    "inventorySetQuantities", _set_quantities
)
RESOLVERS[("Mutation", "inventoryAdjustQuantities")] = _idempotent(
    "inventoryAdjustQuantities", _adjust_quantities
)
RESOLVERS[("Mutation", "inventorySetOnHandQuantities")] = _idempotent(
    "inventorySetOnHandQuantities", _set_on_hand
)
RESOLVERS[("Mutation", "fulfillmentCreate")] = _idempotent("fulfillmentCreate", _fulfillment_create)
