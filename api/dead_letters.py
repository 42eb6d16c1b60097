"""Dead letters (admin): outbox entries that kept failing on their way to
PostgreSQL. List them, replay one once its cause is fixed, or discard it with
a note (persistence/dead_letters.py)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from api import schemas as s
from api.auth import Role, requires
from api.docs import responses
from api.problems import CONFLICT, NOT_FOUND, ApiProblem
from api.services import Services
from api.views import rfc3339
from persistence import dead_letters
from persistence.apply import mark_synced_args

EventPath = Annotated[str, Parameter(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="outbox entry id")]


def dead_letter_view(row) -> s.DeadLetterView:
    return s.DeadLetterView(
        event_id=row.event_id, status=row.resolution or dead_letters.OPEN, error=row.error,
        failures=row.failures, created_at=rfc3339(row.created_at.timestamp() * 1000),
        resolved_at=rfc3339(row.resolved_at.timestamp() * 1000) if row.resolved_at else None,
        resolved_by=row.resolved_by, note=row.note, payload=row.payload)


def _problem(exc: dead_letters.DeadLetterError) -> ApiProblem:
    if exc.reason == "not_found":
        return ApiProblem(NOT_FOUND, exc.detail)
    return ApiProblem(CONFLICT, exc.detail, reason=exc.reason)


class DeadLetterController(Controller):
    tags = ["service"]
    guards = [requires(Role.ADMIN)]

    @get("/v1/dead-letters", responses=responses(400, 401, 403, 429, 503),
         summary="Outbox entries that kept failing, newest first")
    async def list_dead_letters(
        self, services: NamedDependency[Services],
        status: Annotated[str | None, Parameter(pattern="^(open|replayed|discarded)$")] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0,
    ) -> s.DeadLetterList:
        merchant = services.store.keys.merchant
        rows, total = await services.reader.pg_call(lambda conn: conn.run_sync(
            lambda sync: dead_letters.listing(sync, merchant, status=status, limit=limit, offset=offset)))
        return s.DeadLetterList(items=[dead_letter_view(r) for r in rows], total=total)

    @post("/v1/dead-letters/{event_id:str}/replay", status_code=200,
          responses=responses(400, 401, 403, 404, 409, 413, 429, 503),
          summary="Apply a dead letter again (after its cause was fixed); 409 when it fails again")
    async def replay(self, event_id: EventPath, request: Request, services: NamedDependency[Services],
                     data: JSONBody[s.DeadLetterReplayBody | None] = None) -> s.DeadLetterView:
        body = await s.strict_body(request, s.DeadLetterReplayBody, optional=True) or s.DeadLetterReplayBody()
        actor = f"key:{request.user.key_id}"
        merchant = services.store.keys.merchant
        try:
            row = await self._in_transaction(services, lambda conn: (
                dead_letters.replay(conn, merchant, event_id, actor=actor, note=body.note),
                dead_letter_view(dead_letters.row(conn, merchant, event_id))))
        except dead_letters.DeadLetterError as exc:
            raise _problem(exc) from exc
        replayed, view = row
        # PostgreSQL now has what the entry carried: reads need Redis less
        if args := mark_synced_args([replayed.entry], services.settings.closed_order_retention_s * 1000):
            await services.store.mark_synced(args)
        return view

    @post("/v1/dead-letters/{event_id:str}/discard", status_code=200,
          responses=responses(400, 401, 403, 404, 409, 413, 429, 503),
          summary="Resolve a dead letter without applying it (a note says why)")
    async def discard(self, event_id: EventPath, data: JSONBody[s.DiscardBody], request: Request,
                      services: NamedDependency[Services]) -> s.DeadLetterView:
        body = await s.strict_body(request, s.DiscardBody)
        actor = f"key:{request.user.key_id}"
        merchant = services.store.keys.merchant
        try:
            _, view = await self._in_transaction(services, lambda conn: (
                dead_letters.discard(conn, merchant, event_id, actor=actor, note=body.note),
                dead_letter_view(dead_letters.row(conn, merchant, event_id))))
        except dead_letters.DeadLetterError as exc:
            raise _problem(exc) from exc
        return view

    @staticmethod
    async def _in_transaction(services: Services, work):
        async def run(conn):
            async with conn.begin():
                return await conn.run_sync(work)

        return await services.reader.pg_call(run)

