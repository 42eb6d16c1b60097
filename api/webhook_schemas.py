"""Bodies of the webhook endpoint routes (msgspec Structs; requests reject
unknown fields, like every body in api/schemas.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from api.schemas import Body, Id, View

EventType = Literal["order.created", "order.backorder_filled", "order.shipped", "order.cancelled",
                    "return.received", "invoice.created"]
Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20]+$",
                          description="http(s) URL of a public address (docs/notifications.md: server-side "
                                      "request forgery rules)")]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=6)]
Description = Annotated[str, Meta(max_length=255)]
#: RFC 3339 date-time with its offset.
INSTANT = (r"^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)"
           r"(\.\d{1,9})?([Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")
Instant = Annotated[str, Meta(max_length=40, pattern=INSTANT, extra_json_schema={"format": "date-time"})]


class WebhookEndpointBody(Body, kw_only=True):
    url: Url
    #: The event types sent (default: all of them).
    event_types: EventTypes | None = None
    enabled: bool = True
    description: Description | None = None
    #: Admin keys: the customer whose events go here (none: every event of the
    #: merchant). Wholesale keys: their own customer, whether given or not.
    customer_id: Id | None = None


class WebhookEndpointPatch(Body, kw_only=True):
    url: Url | None = None
    event_types: EventTypes | None = None
    enabled: bool | None = None
    description: Description | None = None


class ReplayBody(Body, kw_only=True):
    """One event (``event_id``), or the events that happened in
    [``since``, ``until``) (RFC 3339; ``until`` default: now)."""

    event_id: Annotated[str, Meta(pattern=r"^evt_[0-9a-f]{32}$")] | None = None
    since: Instant | None = None
    until: Instant | None = None


class WebhookEndpointView(View, kw_only=True):
    id: str
    url: str
    customer_id: str | None = None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = None
    description: str | None = None
    created_at: str
    updated_at: str


class WebhookEndpointCreated(WebhookEndpointView, kw_only=True):
    #: The signing secret (Standard Webhooks, ``whsec_...``): shown in this response only.
    secret: str


class WebhookEndpointList(View, kw_only=True):
    items: list[WebhookEndpointView]
    total: int


class DeliveryView(View, kw_only=True):
    id: int
    event_id: str
    event_type: str
    order_id: str | None = None
    #: pending | delivered | dead
    status: str
    attempts: int
    replays: int
    last_status_code: int | None = None
    last_error: str | None = None
    last_latency_ms: int | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    created_at: str


class DeliveryList(View, kw_only=True):
    items: list[DeliveryView]
    total: int


class ReplayResult(View, kw_only=True):
    #: How many events were queued again.
    queued: int
    event_ids: list[str]
