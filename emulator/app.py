"""The Litestar application: the Admin GraphQL endpoint plus the control API."""

from __future__ import annotations

from litestar import Litestar, Request, Response, post
from litestar.datastructures import State

from emulator.config import EmulatorConfig
from emulator.control import ControlController
from emulator.runtime import Emulator


@post("/admin/api/{version:str}/graphql.json", status_code=200)
async def admin_graphql(request: Request) -> Response:
    api = request.app.state.emulator.api
    body = await request.body()
    answer = await api.handle(
        request.path_params["version"],
        {k.lower(): v for k, v in request.headers.items()},
        body,
        request.headers.get("content-type", "application/json"),
    )
    return Response(
        content=answer.body,
        status_code=answer.status,
        media_type="application/json; charset=utf-8",
        headers=answer.headers,
    )


def create_app(config: EmulatorConfig | None = None, emulator: Emulator | None = None) -> Litestar:
    """Build the app for one shop; pass `emulator` to keep a handle on its state."""
    emu = emulator or Emulator(config or EmulatorConfig())

    async def start_delivery() -> None:
        await emu.dispatcher.start()

    async def stop_delivery() -> None:
        await emu.dispatcher.stop()

    return Litestar(
        route_handlers=[admin_graphql, ControlController],
        state=State({"emulator": emu}),
        on_startup=[start_delivery],
        on_shutdown=[stop_delivery],
        openapi_config=None,
        # Leave the host process's logging alone (tests start many of these).
        logging_config=None,
        debug=False,
    )
