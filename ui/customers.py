"""Customers with their profiles (channel, payment terms, backorder policy,
ship-to): search, one customer with its recent orders, and a new customer."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from api import schemas as s
from api.customers import customer_view, load_customer, new_customer
from api.services import Services
from persistence.queries import OrderFilter
from ui.base import current_user, now_ms, page

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
TERMS = ("prepaid", "net_15", "net_30", "net_60", "net_90")
POLICIES = ("backorder", "ship_complete", "cancel_remainder", "all_or_nothing")


class CustomerController(Controller):
    path = "/ui/customers"

    @get("/")
    async def customers(self, request: Request, services: NamedDependency[Services],
                        q: Annotated[str, Parameter(max_length=128, pattern=r"^[^\x00-\x1f]*$")] = "",
                        limit: Annotated[int, Parameter(ge=25, le=250)] = 50,
                        offset: Annotated[int, Parameter(ge=0, le=10**9)] = 0) -> Template:
        docs, total = await services.records.customers(q.strip() or None, limit=limit, offset=offset)
        return page(request, "customers.html", title="Customers", customers=[customer_view(d) for d in docs],
                    total=total, q=q, limit=limit, offset=offset, terms=TERMS, policies=POLICIES)

    @get("/{customer_id:str}")
    async def customer(self, request: Request, customer_id: Annotated[str, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
                       services: NamedDependency[Services]) -> Template:
        doc = await load_customer(services, customer_id)
        if doc is None:
            return page(request, "error.html", title="No such customer", status_code=404,
                        message=f"There is no customer {customer_id}.")
        orders, total = await services.reader.list(OrderFilter(customer_id=customer_id), limit=25, offset=0)
        return page(request, "customer.html", title=doc.get("company") or doc["name"], c=customer_view(doc),
                    orders=orders, total=total)

    @post("/", status_code=303)
    async def create(self, request: Request, data: Form, services: NamedDependency[Services]) -> Response | Template:
        user = current_user(request)
        ship_to = {k: (data.get(f"ship_{k}") or "").strip() for k in ("name", "company", "address1", "city", "zip",
                                                                       "country_code")}
        raw = {
            "name": (data.get("name") or "").strip(), "email": (data.get("email") or "").strip() or None,
            "phone": (data.get("phone") or "").strip() or None, "company": (data.get("company") or "").strip() or None,
            "account_number": (data.get("account_number") or "").strip() or None,
            "profiles": [{"channel": "wholesale", "payment_terms": data.get("payment_terms") or None,
                          "backorder_policy": data.get("backorder_policy") or None,
                          "ship_to": {k: v for k, v in ship_to.items() if v} or None}],
        }
        try:
            body = msgspec.convert(raw, s.CustomerBody)
        except msgspec.ValidationError as exc:
            docs, total = await services.records.customers(None, limit=50, offset=0)
            return page(request, "customers.html", title="Customers", status_code=400,
                        customers=[customer_view(d) for d in docs], total=total, q="", limit=50, offset=0,
                        terms=TERMS, policies=POLICIES, error=f"Not created: {exc}")
        command = new_customer(body, now_ms())

        async def build():
            return command

        key = (data.get("idempotency_key") or "")[:64] or None
        result = await services.operations.run_keyed(user.actor, f"{user.actor}\nPOST\n/ui/customers", key,
                                                     msgspec.to_builtins(body), build)
        cid = msgspec.json.decode(result.data["doc"])["id"]
        return Redirect(f"/ui/customers/{cid}", status_code=303)
