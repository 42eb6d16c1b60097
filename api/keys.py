"""API keys: created by admins (shown once, stored hashed), listed, revoked."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter

from api import schemas as s
from api.auth import ENV_ADMIN_ID, KeyRecord, KeyRequestError, Role, issue_key, requires
from api.docs import responses
from api.operations import now_ms
from api.problems import FORBIDDEN, NOT_FOUND, VALIDATION, ApiProblem
from api.services import Services
from api.views import rfc3339
from engine.commands import Op, PutRecord
from engine.errors import NotFound

KeyPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def key_view(record: KeyRecord) -> s.ApiKeyView:
    return s.ApiKeyView(id=record.id, role=record.role, customer_id=record.customer_id,
                        name=record.name, created_at=rfc3339(record.created_at_ms))


class ApiKeyController(Controller):
    tags = ["api keys"]
    guards = [requires(Role.ADMIN)]

    @post("/v1/api-keys", status_code=201, responses=responses(400, 401, 403, 404, 413, 429, 503),
          summary="Create a key; the key is shown in this response only (never replayed)")
    async def create(self, data: JSONBody[s.ApiKeyBody], request: Request,
                     services: NamedDependency[Services]) -> s.ApiKeyCreated:
        data = await s.strict_body(request, s.ApiKeyBody)
        try:
            record, key = await issue_key(services.store, data.role, data.customer_id, data.name, now_ms())
        except KeyRequestError as exc:
            kind = NOT_FOUND if exc.not_found else VALIDATION
            raise ApiProblem(kind, str(exc), errors=[{"field": exc.field, "message": str(exc)}]) from exc
        view = key_view(record)
        return s.ApiKeyCreated(key=key, **msgspec.structs.asdict(view))

    @get("/v1/api-keys", responses=responses(400, 401, 403, 429, 503),
         summary="Keys not revoked, without secrets, newest first")
    async def list_keys(self, services: NamedDependency[Services],
                        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
                        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> s.ApiKeyList:
        docs, total = await services.records.api_keys(limit=limit, offset=offset)
        return s.ApiKeyList(items=[key_view(msgspec.convert(d, KeyRecord)) for d in docs], total=total)

    @delete("/v1/api-keys/{key_id:str}", status_code=204, responses=responses(400, 401, 403, 404, 429, 503),
            summary="Revoke a key at once")
    async def revoke(self, key_id: KeyPath, request: Request, services: NamedDependency[Services]) -> None:
        if key_id == ENV_ADMIN_ID:
            raise ApiProblem(FORBIDDEN, "the ONHAND_ADMIN_KEY key cannot be revoked through the API")
        try:
            await services.store.run(PutRecord(kind="api_key", id=key_id, doc=None),
                                     Op(op_id=f"revoke-{key_id}-{now_ms()}", now_ms=now_ms(),
                                        actor=f"key:{request.user.key_id}"))
        except NotFound as exc:
            raise ApiProblem(NOT_FOUND, "no such key") from exc
