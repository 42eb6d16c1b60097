"""Returns from either channel: restocked units go back on hand (and fill
backorders), the others are written off."""

from __future__ import annotations

import uuid

from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar import Controller, Request, post

from api import schemas as s
from api.auth import STAFF, requires
from api.docs import responses
from api.orders import visible_order
from api.services import Services
from api.views import return_view
from engine.commands import ReturnLineRequest, ReturnUnits


async def return_command(services: Services, order, reason: str | None,
                         lines: tuple[ReturnLineRequest, ...]) -> ReturnUnits:
    """The command for a return of ``order`` (the API's and the staff UI's)."""
    if await services.store.order(order.id) is None:
        # an old, closed order: PostgreSQL has it, Redis let it go
        await services.store.load_closed_order(order, services.settings.closed_order_retention_s * 1000)
    return ReturnUnits(return_id="ret_" + uuid.uuid4().hex[:16], order_id=order.id, reason=reason,
                       lines=lines)


class ReturnController(Controller):
    tags = ["returns"]

    @post("/v1/returns", guards=[requires(*STAFF)], status_code=201,
          responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
          summary="Record a return; restocked units fill backorders")
    async def create(self, data: JSONBody[s.ReturnBody], request: Request, services: NamedDependency[Services]) -> s.ReturnView:
        data = await s.strict_body(request, s.ReturnBody)
        async def build() -> ReturnUnits:
            order = await visible_order(services, request.user, data.order_id)
            return await return_command(services, order, data.reason, tuple(
                ReturnLineRequest(sku=l.sku, qty=l.quantity, restock=l.restock) for l in data.lines))

        result = await services.operations.run(request.scope, request.user, data, build)
        return return_view(result.data["return"], result.fills + result.later_fills)
