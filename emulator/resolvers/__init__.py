"""Field resolvers for the part of the Admin API onhand uses (see `core` for how they combine)."""

from emulator.resolvers import catalogue, mutations, orders, query_root  # noqa: F401 - registration
from emulator.resolvers.core import RequestContext, default_resolver, type_resolver

__all__ = ["RequestContext", "default_resolver", "type_resolver"]
