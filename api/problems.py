"""RFC 9457 problem details: the table of API.md, in one place.

Every error the API answers goes through :func:`problem_response`; domain
errors are mapped in :data:`DOMAIN_ERRORS`, HTTP-level ones (validation, body
size, routing) in :func:`http_exception_handler`. Nothing else builds error
bodies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from engine.errors import (
    Conflict,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidCommand,
    NotFound,
    NotReady,
    OnhandError,
)
from engine.ordering import OrderRequestError

log = logging.getLogger("onhand.api")

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    type: str
    status: int
    title: str


VALIDATION = ProblemType("/problems/validation", 400, "The request is not valid")
UNAUTHORIZED = ProblemType("/problems/unauthorized", 401, "Missing or invalid API key")
FORBIDDEN = ProblemType("/problems/forbidden", 403, "This key's role may not do this")
NOT_FOUND = ProblemType("/problems/not-found", 404, "No such resource")
METHOD_NOT_ALLOWED = ProblemType("/problems/method-not-allowed", 405, "Method not allowed")
INSUFFICIENT_STOCK = ProblemType("/problems/insufficient-stock", 409, "Not enough stock")
CONFLICT = ProblemType("/problems/conflict", 409, "The resource's state forbids this")
IN_FLIGHT = ProblemType("/problems/idempotency-in-flight", 409,
                        "A request with this Idempotency-Key is still being processed")
KEY_REUSED = ProblemType("/problems/idempotency-key-reused", 422,
                         "This Idempotency-Key was used with another body")
TOO_LARGE = ProblemType("/problems/payload-too-large", 413, "The request body is too large")
RATE_LIMITED = ProblemType("/problems/rate-limited", 429, "Too many requests")
NOT_READY = ProblemType("/problems/not-ready", 503, "Not ready, retry shortly")
INTERNAL = ProblemType("/problems/internal", 500, "Internal error")

#: Every type the API can answer (the contract table plus routing and 500).
ALL = (VALIDATION, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED, INSUFFICIENT_STOCK,
       CONFLICT, IN_FLIGHT, KEY_REUSED, TOO_LARGE, RATE_LIMITED, NOT_READY, INTERNAL)


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details object (extension members alongside)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    lines: list[dict[str, Any]] | None = None
    reason: str | None = None
    retry_after_s: int | None = None


class ApiProblem(HTTPException):
    """Raised by the API's own code to answer a problem from the table."""

    def __init__(self, kind: ProblemType, detail: str, *, headers: dict[str, str] | None = None,
                 **extensions: Any):
        super().__init__(detail=detail, status_code=kind.status, headers=headers)
        self.kind = kind
        self.extensions = extensions


def problem_response(kind: ProblemType, detail: str, *, headers: dict[str, str] | None = None,
                     **extensions: Any) -> Response:
    body = {"type": kind.type, "title": kind.title, "status": kind.status, "detail": detail}
    body.update({k: v for k, v in extensions.items() if v is not None})
    return Response(body, status_code=kind.status, media_type=PROBLEM_JSON, headers=headers)


async def send_problem(send, problem: ApiProblem, extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Sends ``problem`` as the response with two ASGI messages (outside a
    route handler: the middleware's 401 and 429, the hot routes')."""
    kind = problem.kind
    body = msgspec.json.encode({"type": kind.type, "title": kind.title, "status": kind.status,
                                "detail": problem.detail,
                                **{k: v for k, v in problem.extensions.items() if v is not None}})
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items()),
               *extra_headers]
    await send({"type": "http.response.start", "status": kind.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def error_response(handlers: dict, request: Request, exc: Exception) -> Response:
    """The response the app's exception handlers (:func:`exception_handlers`)
    give ``exc``: the first handler along its class's MRO, as Litestar's
    exception middleware picks it (no handler here is keyed by status)."""
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    return handler(request, exc)


def not_ready_headers(retry_after_s: int) -> dict[str, str]:
    return {"Retry-After": str(retry_after_s)}


def domain_problem(exc: OnhandError) -> tuple[ProblemType, str, dict[str, Any], dict[str, str] | None]:
    """The problem for a domain error: (type, detail, extensions, headers)."""
    if isinstance(exc, InsufficientStock):
        lines = [{"sku": s.sku, "requested": s.requested, "available": s.available} for s in exc.lines]
        return INSUFFICIENT_STOCK, "not enough stock to reserve every line in full", {"lines": lines}, None
    if isinstance(exc, Conflict):
        ext = {"reason": exc.reason, **{k: v for k, v in exc.values.items() if not isinstance(v, dict)}}
        return CONFLICT, exc.detail, ext, None
    if isinstance(exc, NotFound):
        ext = {"errors": [{"kind": exc.kind, "id": i} for i in exc.ids]} if exc.ids else {}
        return NOT_FOUND, exc.detail, ext, None
    if isinstance(exc, InvalidCommand):
        return VALIDATION, exc.detail, {"errors": [{"field": exc.field, "message": exc.detail}]}, None
    if isinstance(exc, NotReady):
        return (NOT_READY, exc.detail, {"retry_after_s": exc.retry_after_s, "reason": exc.reason},
                not_ready_headers(exc.retry_after_s))
    if isinstance(exc, OrderRequestError):
        kind = {"validation": VALIDATION, "not_found": NOT_FOUND, "forbidden": FORBIDDEN}[exc.kind]
        return kind, exc.detail, {"errors": exc.errors or None}, None
    if isinstance(exc, IdempotencyKeyReused):
        return KEY_REUSED, str(exc) or KEY_REUSED.title, {}, None
    if isinstance(exc, IdempotencyInFlight):
        return IN_FLIGHT, str(exc) or IN_FLIGHT.title, {}, {"Retry-After": "1"}
    return INTERNAL, "unexpected domain error", {}, None


def domain_error_handler(_: Request, exc: OnhandError) -> Response:
    kind, detail, ext, headers = domain_problem(exc)
    return problem_response(kind, detail, headers=headers, **ext)


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ApiProblem):
        return problem_response(exc.kind, exc.detail, headers=exc.headers, **exc.extensions)
    status = exc.status_code
    if isinstance(exc, ValidationException) or status == 400:
        errors = _body_errors(request) or _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)[:1000]
        return problem_response(VALIDATION, detail, errors=errors)
    by_status = {401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND, 405: METHOD_NOT_ALLOWED,
                 413: TOO_LARGE, 429: RATE_LIMITED, 503: NOT_READY}
    kind = by_status.get(status)
    if kind is None:
        if status >= 500:
            log.exception("unhandled HTTP error on %s %s", request.method, request.url.path)
            return problem_response(INTERNAL, "internal error")
        return problem_response(ProblemType(f"/problems/http-{status}", status, exc.detail or "error"),
                                exc.detail or "error")
    detail = exc.detail if kind is not TOO_LARGE else "the request body exceeds the limit"
    return problem_response(kind, detail or kind.title, headers=exc.headers)


def _validation_errors(exc: HTTPException) -> list[dict[str, Any]]:
    extra = getattr(exc, "extra", None)
    out: list[dict[str, Any]] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                out.append({"field": str(item.get("key") or item.get("field") or "body"),
                            "message": str(item.get("message", ""))})
    elif isinstance(extra, dict):
        out.append({"field": str(extra.get("key", "body")), "message": str(extra.get("message", ""))})
    if not out:
        out.append({"field": "body", "message": exc.detail or "invalid request"})
    return out


def _body_errors(request: Request) -> list[dict[str, Any]]:
    """Every failing field of the request body, when Litestar refused it (its
    decoder stops at the first; the contract names each): the body Litestar
    read, checked field by field against the route's body type."""
    from litestar.utils.empty import value_or_default
    from litestar.utils.scope.state import ScopeState

    from api import schemas

    handler = request.scope.get("route_handler")
    param = handler.parsed_fn_signature.parameters.get("data") if handler is not None else None
    body = value_or_default(ScopeState.from_scope(request.scope).body, None)
    if param is None or not body:
        return []
    body_type = next((t for t in (param.annotation, *param.args)
                      if isinstance(t, type) and issubclass(t, schemas.Body)), None)
    if body_type is None:
        return []
    try:
        return schemas.field_errors(msgspec.json.decode(body), body_type)
    except msgspec.DecodeError:
        return []


def unavailable_handler(_: Request, exc: Exception) -> Response:
    """Redis or PostgreSQL unreachable outside the engine's own calls."""
    log.warning("backing store unavailable: %r", exc)
    return problem_response(NOT_READY, "a backing store is unavailable, retry shortly",
                            headers=not_ready_headers(2), retry_after_s=2)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(INTERNAL, "internal error")


def exception_handlers() -> dict:
    from redis import exceptions as redis_errors
    from sqlalchemy import exc as sa_errors

    return {
        OnhandError: domain_error_handler,
        HTTPException: http_exception_handler,
        redis_errors.ConnectionError: unavailable_handler,
        redis_errors.TimeoutError: unavailable_handler,
        sa_errors.OperationalError: unavailable_handler,
        sa_errors.InterfaceError: unavailable_handler,
        Exception: internal_error_handler,
    }
