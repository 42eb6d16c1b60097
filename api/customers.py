"""Customers, each with one or more profiles (channel, payment terms, policy)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from api import schemas as s
from api.auth import STAFF, Principal, requires
from api.docs import responses
from api.problems import NOT_FOUND, ApiProblem
from api.services import Services
from api.views import rfc3339
from engine.commands import PutRecord

IdPath = Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


async def load_customer(services: NamedDependency[Services], customer_id: str) -> dict[str, Any] | None:
    """A customer record from Redis (written through; the order path needs it)."""
    raw = await services.redis.hget(f"{services.store.keys.prefix}:d:customer:{customer_id}", "doc")
    return msgspec.json.decode(raw) if raw else None


def customer_view(doc: dict[str, Any]) -> s.CustomerView:
    return s.CustomerView(
        id=doc["id"], name=doc["name"], email=doc.get("email"), phone=doc.get("phone"),
        profiles=[s.ProfileView(id=p["id"], channel=p["channel"], payment_terms=p.get("payment_terms"),
                                backorder_policy=p.get("backorder_policy"),
                                shopify_customer_id=p.get("shopify_customer_id"),
                                ship_to=p.get("ship_to"), edi=p.get("edi"), email=p.get("email"),
                                email_notifications=p.get("email_notifications") or [])
                  for p in doc.get("profiles") or []],
        created_at=rfc3339(doc.get("created_at_ms")),
        company=doc.get("company"), account_number=doc.get("account_number"),
    )


def new_customer(data: s.CustomerBody, now_ms: int) -> PutRecord:
    """The command that creates a customer (the API's and the staff UI's)."""
    cid = "cus_" + uuid.uuid4().hex[:16]
    doc = {
        "id": cid, "name": data.name, "email": data.email, "phone": data.phone,
        "profiles": [
            {"id": "prf_" + uuid.uuid4().hex[:16], **msgspec.to_builtins(p)}
            for p in data.profiles
        ],
        "created_at_ms": now_ms,
    }
    if data.company is not None:
        doc["company"] = data.company
    if data.account_number is not None:
        doc["account_number"] = data.account_number
    return PutRecord(kind="customer", id=cid, doc=msgspec.json.encode(doc).decode())


def visible(principal: Principal, customer_id: str) -> bool:
    return not principal.is_wholesale or principal.customer_id == customer_id


class CustomerController(Controller):
    tags = ["customers"]

    @post("/v1/customers", guards=[requires(*STAFF)], status_code=201,
          responses=responses(400, 401, 403, 409, 413, 422, 429, 503), summary="Create a customer")
    async def create(self, data: JSONBody[s.CustomerBody], request: Request, services: NamedDependency[Services]) -> s.CustomerView:
        data = await s.strict_body(request, s.CustomerBody)
        async def build():
            return new_customer(data, int(time.time() * 1000))

        result = await services.operations.run(request.scope, request.user, data, build)
        return customer_view(msgspec.json.decode(result.data["doc"]))

    @get("/v1/customers/{customer_id:str}",
         responses=responses(400, 401, 404, 429, 503), summary="A customer with its profiles")
    async def get_one(self, customer_id: IdPath, request: Request, services: NamedDependency[Services]) -> s.CustomerView:
        doc = await load_customer(services, customer_id) if visible(request.user, customer_id) else None
        if doc is None:
            raise ApiProblem(NOT_FOUND, "no such customer")
        return customer_view(doc)

    @get("/v1/customers", guards=[requires(*STAFF)], responses=responses(400, 401, 403, 429, 503),
         summary="Search customers by name, email or phone (newest first; q matches a part of "
                 "any of them, ignoring case; % and _ are plain characters)")
    async def search(self, services: NamedDependency[Services],
                     q: Annotated[str | None, Parameter(max_length=255, pattern=r"^[^\x00-\x1f]*$")] = None,
                     limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
                     offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> s.CustomerList:
        docs, total = await services.records.customers(q, limit=limit, offset=offset)
        return s.CustomerList(items=[customer_view(d) for d in docs], total=total)
