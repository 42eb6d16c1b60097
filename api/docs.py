"""OpenAPI: every status a route can answer is documented with its problem
type, so the generated document at /schema/openapi.json is complete."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from api import problems
from api.problems import Problem

_BY_STATUS = {
    400: [problems.VALIDATION],
    401: [problems.UNAUTHORIZED],
    403: [problems.FORBIDDEN],
    404: [problems.NOT_FOUND],
    409: [problems.INSUFFICIENT_STOCK, problems.CONFLICT, problems.IN_FLIGHT],
    413: [problems.TOO_LARGE],
    422: [problems.KEY_REUSED],
    429: [problems.RATE_LIMITED],
    503: [problems.NOT_READY],
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    out = {}
    for status in statuses:
        kinds = _BY_STATUS[status]
        description = "; ".join(f"{k.type}: {k.title}" for k in kinds)
        out[status] = ResponseSpec(data_container=Problem, description=description,
                                   media_type=problems.PROBLEM_JSON)
    return out
