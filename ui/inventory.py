"""The inventory screen: per SKU on hand, reserved by channel, the DTC
ring-fence, available, backordered, exception units and the last quantity
pushed to Shopify with its age; live (ui/live.py) through server-sent events."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage, Template

from api.services import Services
from persistence import queries
from ui.base import ui_state, page
from ui.live import read_counters

_SKU = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
PageSize = Annotated[int, Parameter(ge=25, le=250)]


class InventoryController(Controller):
    path = "/ui/inventory"

    @get("/")
    async def inventory(self, request: Request, services: NamedDependency[Services],
                        q: Annotated[str, Parameter(max_length=64, pattern=r"^[^\x00-\x1f]*$")] = "",
                        limit: PageSize = 50, offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> Template:
        store = services.store
        q = q.strip()
        if q:
            rows = await services.reader.pg_call(lambda conn: queries.search_skus(conn, services.store.keys.merchant, q, limit))
            skus = [r[0] for r in rows]
            if _SKU.match(q) and q not in skus and (await store.inventory([q]))[0] is not None:
                skus.insert(0, q)
            total = len(skus)
        else:
            skus = [m.decode() for m in await store.redis.zrevrange(store.keys.skus, offset, offset + limit - 1)]
            total = await store.redis.zcard(store.keys.skus)
        names = {i.sku: i.details.get("name") for i in await store.inventory(skus) if i}
        numbers = await read_counters(store, skus)
        items = [{"sku": s, "name": names.get(s), **numbers[s]} for s in skus if numbers.get(s)]
        return page(request, "inventory.html", title="Inventory", items=items, q=q, limit=limit,
                    offset=offset, total=total, sku_list=msgspec.json.encode([i["sku"] for i in items]).decode())

    @get("/stream")
    async def stream(self, request: Request, services: NamedDependency[Services]) -> ServerSentEvent:
        """Server-sent events for the SKUs given (``?sku=A&sku=B``, at most
        250): ``counters`` with the SKUs that changed, ``heartbeat`` each second."""
        skus = [s for s in dict.fromkeys(request.query_params.getall("sku", [])) if _SKU.match(s)][:250]
        live = ui_state(request).for_services(services).live

        async def events():
            async for event in live.stream(skus):
                yield ServerSentEventMessage(event=event["type"], data=msgspec.json.encode(event).decode())

        return ServerSentEvent(events(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
