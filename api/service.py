"""Health, readiness and metrics."""

from __future__ import annotations

import hmac

import msgspec
from litestar.di import NamedDependency
from litestar import Controller, Request, Response, get
from redis import exceptions as redis_errors

from api import metrics
from api.auth import Role, unauthorized
from api.docs import responses
from api.problems import FORBIDDEN, NOT_READY, ApiProblem, not_ready_headers
from api.services import Services


class Health(msgspec.Struct):
    status: str


class ServiceController(Controller):
    tags = ["service"]

    @get("/healthz", opt={"public": True}, summary="The process is alive")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", opt={"public": True}, responses=responses(503),
         summary="Redis and the scripts are ready (the order path needs only Redis)")
    async def readyz(self, services: NamedDependency[Services]) -> Health:
        try:
            ready = await services.store.is_ready() and await services.store.scripts_loaded()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            ready = False
        if not ready:
            raise ApiProblem(NOT_READY, "Redis is not ready (starting, empty or being rebuilt)",
                             headers=not_ready_headers(2), retry_after_s=2)
        return Health(status="ready")

    @get("/metrics", opt={"public": True}, media_type="text/plain", responses=responses(401, 403),
         summary="Prometheus metrics (admin key or ONHAND_METRICS_TOKEN)")
    async def metrics_text(self, request: Request, services: NamedDependency[Services]) -> Response[bytes]:
        merchant = await _metrics_access(request, services)
        if merchant != services.merchant:
            services = await services.shared.for_merchant(merchant)
        body, content_type = await metrics.render(services.redis, services.store.keys)
        return Response(body, media_type=content_type)


async def _metrics_access(request: Request, services: NamedDependency[Services]) -> str:
    """Whose metrics the caller may read: the home merchant's with the
    metrics token, an admin key's own merchant's."""
    header = request.headers.get("authorization") or ""
    token = services.settings.metrics_token
    if token:
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return services.settings.merchant
    principal = await services.authenticator.authenticate(header or None)
    if principal is None:
        raise unauthorized()
    if principal.role is not Role.ADMIN:
        raise ApiProblem(FORBIDDEN, "metrics need the admin key or the metrics token")
    return principal.merchant
