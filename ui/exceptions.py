"""What needs staff: DTC exception units (sold beyond stock) to resolve, the
Shopify sync's lag, the last reconcile's drift, the outbox backlog, and dead
letters (outbox entries PostgreSQL kept refusing) to replay or discard."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from api.services import Services
from engine.errors import NotReady
from persistence import dead_letters
from persistence.apply import mark_synced_args
from persistence.queries import OrderFilter
from ui.base import admin_guard, current_user, page

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
EventPath = Annotated[str, Parameter(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")]
#: Key where `onhand reconcile` leaves its last result (onhand/cli.py).
RECONCILE_KEY = "reconcile:last"
#: SKUs waiting longest for their Shopify push, shown.
LAG_ROWS = 20


async def sync_lag(services: Services) -> dict:
    redis, p = services.redis, services.store.keys.prefix
    waiting = await redis.hlen(f"{p}:dirtyat")
    rows: list[tuple[str, int]] = []
    if waiting and waiting <= 20_000:
        raw = await redis.hgetall(f"{p}:dirtyat")
        rows = sorted(((k.decode(), int(v)) for k, v in raw.items()), key=lambda r: r[1])[:LAG_ROWS]
    stats = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{p}:sync:stats")).items()}
    now = int(time.time() * 1000)
    return {"waiting": waiting, "oldest": [{"sku": s, "age_s": max(0, (now - at) // 1000)} for s, at in rows],
            "lag_ms": stats.get("lag_ms"), "last_push_age_s": (now - int(stats["last_push_ms"])) // 1000
            if stats.get("last_push_ms") else None}


class ExceptionsController(Controller):
    path = "/ui/exceptions"

    @get("/")
    async def exceptions(self, request: Request, services: NamedDependency[Services]) -> Template:
        orders, total = await services.reader.list(OrderFilter(status="exception"), limit=100, offset=0)
        units = [{"order": o, "lines": [(i, line) for i, line in enumerate(o.lines) if line.exception]}
                 for o in orders]
        raw = await services.redis.get(f"{services.store.keys.prefix}:{RECONCILE_KEY}")
        reconcile = msgspec.json.decode(raw) if raw else None
        try:
            letters, open_letters = await services.reader.pg_call(lambda conn: conn.run_sync(
                lambda sync: dead_letters.listing(sync, services.store.keys.merchant, status=dead_letters.OPEN, limit=50, offset=0)))
            pg_error = None
        except NotReady as exc:
            letters, open_letters, pg_error = [], 0, exc.detail
        return page(request, "exceptions.html", title="Exceptions", units=units, exception_orders=total,
                    lag=await sync_lag(services), reconcile=reconcile, letters=letters, open_letters=open_letters,
                    outbox=await services.redis.xlen(services.store.keys.outbox), pg_error=pg_error,
                    notice=request.query_params.get("done"))

    @post("/dead-letters/{event_id:str}/{action:str}", guards=[admin_guard], status_code=303)
    async def resolve(self, request: Request, event_id: EventPath,
                      action: Annotated[str, Parameter(pattern="^(replay|discard)$")], data: Form,
                      services: NamedDependency[Services]) -> Response:
        """Replay (apply again, once its cause is fixed) or discard with a note."""
        user = current_user(request)
        note = (data.get("note") or "").strip()[:2000] or None
        if action not in ("replay", "discard") or (action == "discard" and not note):
            return Redirect("/ui/exceptions?done=" + ("A discard needs a note saying why." if action == "discard"
                                                       else "Unknown action."), status_code=303)

        def work(conn):
            if action == "replay":
                return dead_letters.replay(conn, services.store.keys.merchant, event_id, actor=user.actor, note=note)
            dead_letters.discard(conn, services.store.keys.merchant, event_id, actor=user.actor, note=note)
            return None

        async def run(conn):
            async with conn.begin():
                return await conn.run_sync(work)

        try:
            replayed = await services.reader.pg_call(run)
        except dead_letters.DeadLetterError as exc:
            return Redirect(f"/ui/exceptions?done=Not done: {exc.detail}"[:500], status_code=303)
        if replayed is not None and (args := mark_synced_args([replayed.entry],
                                                              services.settings.closed_order_retention_s * 1000)):
            await services.store.mark_synced(args)
        return Redirect(f"/ui/exceptions?done=Dead letter {event_id} {action}ed.", status_code=303)
