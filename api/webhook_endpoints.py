"""Outbound webhook endpoints: where a customer's systems (or, merchant-wide,
the merchant's ERP) receive signed events about their orders.

Admin keys manage every endpoint and may create merchant-wide ones (no
customer: every event of the merchant); wholesale keys manage only their own
customer's (another customer's endpoint is a 404, like orders). The state
lives in PostgreSQL only: nothing here is on the order path. The signing
secret is shown once, in the answer to the creation (and in its replay under
the same Idempotency-Key); docs/notifications.md says how it is kept.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from api import schemas as s
from api import webhook_schemas as w
from api.auth import Principal, Role, requires
from api.customers import load_customer
from api.docs import responses
from api.operations import fingerprint, idempotency_key, operation_id
from api.problems import CONFLICT, KEY_REUSED, NOT_FOUND, VALIDATION, ApiProblem
from api.services import Services
from engine.errors import NotReady
from notifications.addresses import UrlRefused, check_url
from notifications.events import EVENT_TYPES
from notifications.signing import new_secret
from persistence import endpoints as q

IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
_encode = msgspec.json.Encoder()


def _at(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def endpoint_view(row: Any) -> w.WebhookEndpointView:
    return w.WebhookEndpointView(id=row.id, url=row.url, customer_id=row.customer_id,
                                 event_types=list(row.event_types), enabled=row.enabled,
                                 disabled_reason=row.disabled_reason, description=row.description,
                                 created_at=_at(row.created_at), updated_at=_at(row.updated_at))


def delivery_view(row: Any) -> w.DeliveryView:
    return w.DeliveryView(
        id=row.id, event_id=row.event_id, event_type=row.event_type, order_id=row.order_id,
        status=row.status, attempts=row.attempts, replays=row.replays,
        last_status_code=row.last_status_code, last_error=row.last_error,
        last_latency_ms=row.last_latency_ms, last_attempt_at=_at(row.last_attempt_at),
        next_attempt_at=_at(row.next_attempt_at) if row.status == "pending" else None,
        delivered_at=_at(row.delivered_at), created_at=_at(row.created_at))


def _scope(services: Services, principal: Principal) -> q.Scope:
    return q.Scope(services.store.keys.merchant, principal.customer_id if principal.is_wholesale else None)


def _pg(services: Services):
    if services.pg is None:
        raise NotReady("PostgreSQL is not configured")
    return services.pg


def _types(given: list[str] | None) -> list[str]:
    """The subscribed types, in the catalogue's order (default: all)."""
    wanted = set(given or EVENT_TYPES)
    return [t for t in EVENT_TYPES if t in wanted]


async def _checked_url(services: Services, url: str) -> str:
    try:
        await check_url(url, allow_private=services.settings.webhooks_allow_private)
    except UrlRefused as exc:
        raise ApiProblem(VALIDATION, f"url: {exc}", errors=[{"field": "url", "message": str(exc)}]) from exc
    return url


def _instant(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (the body's pattern checked its form). A leap
    second reads as :59, and a day past the month's end rolls over (the
    31st of February is the 3rd of March), so every well-formed value is a
    point in time."""
    if value is None:
        return None
    m = re.match(w.INSTANT, value)
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    offset = timedelta(0) if zone.upper() == "Z" else \
        (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    start = datetime(int(year) or 1, int(month), 1, int(hour), int(minute), min(int(second), 59), micro,
                     tzinfo=timezone(offset))
    return start + timedelta(days=int(day) - 1)


class _Idempotent:
    """Idempotency-Key for a route whose change is a PostgreSQL transaction:
    the outcome is stored in that transaction (http_idempotency), and a
    retry with the same key and body gets it back; another body is 422."""

    def __init__(self, services: Services, request: Request, principal: Principal, body: Any):
        key = idempotency_key(request.scope)
        self.merchant = services.store.keys.merchant
        self.ttl_s = services.settings.idempotency_ttl_s
        self.op_id = operation_id(principal, request.scope, key) if key else None
        self.fp = fingerprint(body)

    async def replay(self, conn) -> Response | None:
        if self.op_id is None:
            return None
        stored = await q.idempotent_outcome(conn, self.merchant, self.op_id)
        if stored is None:
            return None
        if stored.fingerprint != self.fp:
            raise ApiProblem(KEY_REUSED, "this Idempotency-Key was used with another body")
        return Response(stored.body.encode(), status_code=stored.status_code, media_type="application/json")

    async def keep(self, conn, status: int, view: Any) -> None:
        if self.op_id is not None:
            await q.store_outcome(conn, self.merchant, self.op_id, self.fp, status,
                                  _encode.encode(view).decode(), self.ttl_s)


class WebhookEndpointController(Controller):
    tags = ["webhook endpoints"]
    guards = [requires(Role.ADMIN, Role.WHOLESALE)]

    @post("/v1/webhook-endpoints", status_code=201,
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Subscribe a URL to events; the signing secret is shown in this response only")
    async def create(self, data: JSONBody[w.WebhookEndpointBody], request: Request,
                     services: NamedDependency[Services]) -> w.WebhookEndpointCreated:
        data = await s.strict_body(request, w.WebhookEndpointBody)
        principal: Principal = request.user
        if principal.is_wholesale:
            if data.customer_id not in (None, principal.customer_id):
                raise ApiProblem(NOT_FOUND, "no such customer",
                                 errors=[{"field": "customer_id", "message": "no such customer"}])
            customer_id = principal.customer_id
        else:
            customer_id = data.customer_id
            if customer_id is not None and await load_customer(services, customer_id) is None:
                raise ApiProblem(NOT_FOUND, "no such customer",
                                 errors=[{"field": "customer_id", "message": "no such customer"}])
        url = await _checked_url(services, data.url)
        idem = _Idempotent(services, request, principal, data)
        merchant = services.store.keys.merchant
        async with _pg(services).begin() as conn:
            if (stored := await idem.replay(conn)) is not None:
                return stored
            if await q.count_in_scope(conn, merchant, customer_id) >= q.MAX_ENDPOINTS_PER_SCOPE:
                raise ApiProblem(CONFLICT, f"at most {q.MAX_ENDPOINTS_PER_SCOPE} endpoints per customer",
                                 reason="too_many_endpoints")
            now = datetime.now(UTC)
            row = await q.create(conn, {
                "id": "we_" + uuid.uuid4().hex[:16],
                "merchant_id": merchant, "customer_id": customer_id, "url": url,
                "event_types": _types(data.event_types), "description": data.description,
                "secret": new_secret(), "enabled": data.enabled,
                "disabled_reason": None if data.enabled else "api",
                "disabled_at": None if data.enabled else now,
                "created_by": principal.key_id, "created_at": now, "updated_at": now})
            view = w.WebhookEndpointCreated(secret=row.secret, **msgspec.structs.asdict(endpoint_view(row)))
            await idem.keep(conn, 201, view)
        return view

    @get("/v1/webhook-endpoints", responses=responses(400, 401, 403, 429, 503),
         summary="Endpoints (a wholesale key: its customer's), newest first, without secrets")
    async def list_endpoints(self, request: Request, services: NamedDependency[Services],
                             limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
                             offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> w.WebhookEndpointList:
        async with _pg(services).connect() as conn:
            rows, total = await q.list_endpoints(conn, _scope(services, request.user), limit, offset)
        return w.WebhookEndpointList(items=[endpoint_view(r) for r in rows], total=total)

    @get("/v1/webhook-endpoints/{endpoint_id:str}", responses=responses(400, 401, 403, 404, 429, 503),
         summary="An endpoint (without its secret)")
    async def get_one(self, endpoint_id: IdPath, request: Request,
                      services: NamedDependency[Services]) -> w.WebhookEndpointView:
        async with _pg(services).connect() as conn:
            row = await q.get(conn, _scope(services, request.user), endpoint_id)
        if row is None:
            raise ApiProblem(NOT_FOUND, "no such webhook endpoint")
        return endpoint_view(row)

    @patch("/v1/webhook-endpoints/{endpoint_id:str}",
           responses=responses(400, 401, 403, 404, 413, 429, 503),
           summary="Change the URL or the event types; enable or disable (enabling resumes paused deliveries)")
    async def change(self, endpoint_id: IdPath, data: JSONBody[w.WebhookEndpointPatch], request: Request,
                     services: NamedDependency[Services]) -> w.WebhookEndpointView:
        data = await s.strict_body(request, w.WebhookEndpointPatch)
        values: dict[str, Any] = {}
        if data.url is not None:
            values["url"] = await _checked_url(services, data.url)
        if data.event_types is not None:
            values["event_types"] = _types(data.event_types)
        if data.enabled is not None:
            values["enabled"] = data.enabled
        if data.description is not None:
            values["description"] = data.description
        async with _pg(services).begin() as conn:
            row = await q.change(conn, _scope(services, request.user), endpoint_id, values)
        if row is None:
            raise ApiProblem(NOT_FOUND, "no such webhook endpoint")
        return endpoint_view(row)

    @delete("/v1/webhook-endpoints/{endpoint_id:str}", status_code=204,
            responses=responses(400, 401, 403, 404, 429, 503),
            summary="Delete an endpoint and its delivery log (dead-letter records are kept)")
    async def remove(self, endpoint_id: IdPath, request: Request, services: NamedDependency[Services]) -> None:
        async with _pg(services).begin() as conn:
            if not await q.remove(conn, _scope(services, request.user), endpoint_id):
                raise ApiProblem(NOT_FOUND, "no such webhook endpoint")

    @get("/v1/webhook-endpoints/{endpoint_id:str}/deliveries",
         responses=responses(400, 401, 403, 404, 429, 503),
         summary="The endpoint's delivery log, newest first: status, attempts, last answer and latency")
    async def deliveries(self, endpoint_id: IdPath, request: Request, services: NamedDependency[Services],
                         status: Annotated[str | None, Parameter(pattern="^(pending|delivered|dead)$")] = None,
                         limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
                         offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> w.DeliveryList:
        async with _pg(services).connect() as conn:
            if await q.get(conn, _scope(services, request.user), endpoint_id) is None:
                raise ApiProblem(NOT_FOUND, "no such webhook endpoint")
            rows, total = await q.deliveries(conn, endpoint_id, status=status, limit=limit, offset=offset)
        return w.DeliveryList(items=[delivery_view(r) for r in rows], total=total)

    @post("/v1/webhook-endpoints/{endpoint_id:str}/replay", status_code=202,
          responses=responses(400, 401, 403, 404, 413, 422, 429, 503),
          summary="Send events again: one event, or every event of a time range (at most 10,000 per call)")
    async def replay(self, endpoint_id: IdPath, data: JSONBody[w.ReplayBody], request: Request,
                     services: NamedDependency[Services]) -> w.ReplayResult:
        data = await s.strict_body(request, w.ReplayBody)
        since, until = _instant(data.since), _instant(data.until)
        if (data.event_id is None) == (since is None):
            raise ApiProblem(VALIDATION, "give either event_id or since (with an optional until)",
                             errors=[{"field": "event_id", "message": "event_id or since, not both or neither"}])
        if until is not None and since is None:
            raise ApiProblem(VALIDATION, "until goes with since",
                             errors=[{"field": "until", "message": "until without since"}])
        scope = _scope(services, request.user)
        idem = _Idempotent(services, request, request.user, data)
        async with _pg(services).begin() as conn:
            if (stored := await idem.replay(conn)) is not None:
                return stored
            if await q.get(conn, scope, endpoint_id) is None:
                raise ApiProblem(NOT_FOUND, "no such webhook endpoint")
            ids = await q.replay(conn, scope.merchant, endpoint_id, event_id=data.event_id,
                                 since=since, until=until)
            if data.event_id is not None and not ids:
                raise ApiProblem(NOT_FOUND, "no such event for this endpoint",
                                 errors=[{"field": "event_id", "message": "not found in the endpoint's scope"}])
            view = w.ReplayResult(queued=len(ids), event_ids=ids[:1000])
            await idem.keep(conn, 202, view)
        return view
