"""What the emulator records for tests to read back: API calls, refusals and stock writes."""

from __future__ import annotations

from typing import Any

import msgspec


class CallRecord(msgspec.Struct, kw_only=True):
    time: float
    api_version: str
    operation_name: str | None
    operation_type: str | None
    root_fields: list[str]
    status_code: int
    requested_cost: int | None
    actual_cost: int | None
    throttled: bool = False
    # Answered 429 by the edge switch before reaching GraphQL.
    edge_limited: bool = False
    validation_errors: list[str] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)
    idempotency_keys: list[str] = msgspec.field(default_factory=list)
    replayed: bool = False


class ValidationFailure(msgspec.Struct, kw_only=True):
    time: float
    api_version: str
    # parse | validate | variables | version_rules
    stage: str
    operation_name: str | None
    query: str
    variables: Any
    errors: list[dict[str, Any]]


class SetLogEntry(msgspec.Struct, kw_only=True):
    """One accepted change of `inventorySetQuantities`."""

    time: float
    sku: str
    inventory_item_id: str
    location_id: str
    name: str
    quantity: int
    available_before: int
    on_hand_before: int
    change_from_quantity: int | None
    # sold - restocked, both counted over webhooks not yet answered 2xx (see ledger.py)
    undelivered_sales: int
    undelivered_sold: int
    undelivered_restocked: int
    reason: str
    reference_document_uri: str | None
    idempotency_key: str | None
    api_version: str


class UnsupportedField(msgspec.Struct, kw_only=True):
    time: float
    type_name: str
    field_name: str
