"""A JSON response whose body is already encoded (msgspec, by the handler),
sent with two ASGI messages and nothing else: Litestar's Response builds
its headers, cookies and media type per request (about 10% of an order's
CPU for a body it would send unchanged). The route keeps its annotation
(``Response[SomeView]``) for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response
from litestar.types import Receive, Scope, Send

_JSON = b"application/json"


class EncodedJson(Response):
    __slots__ = ()

    def __init__(self, body: bytes, status_code: int = 200, *,
                 background: Callable[[], Awaitable[Any]] | None = None) -> None:
        # Response's own fields, set as its __init__ would for this case
        self.content = body
        self.status_code = status_code
        self.media_type = "application/json"
        self.encoding = "utf-8"
        self.headers = {}
        self.cookies = []
        self.background = background  # run once the body is sent (Litestar's BackgroundTask fits)
        self.response_type_encoders = None

    def to_asgi_response(self, app: Any, request: Any, **_: Any) -> "_Sender":  # type: ignore[override]
        return _Sender(self.status_code, self.content, self.background)


class _Sender:
    __slots__ = ("status", "body", "background")

    def __init__(self, status: int, body: bytes, background) -> None:
        self.status = status
        self.body = body
        self.background = background

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", _JSON), (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
        if self.background is not None:
            await self.background()
