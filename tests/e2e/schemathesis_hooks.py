"""Schemathesis hooks for tests/e2e/test_api_schema.py.

One rule of the contract cannot be written in OpenAPI: a receipt needs a
`reference` or an `Idempotency-Key` header (API.md). Generated receipts
without a reference get an Idempotency-Key, as a real client's would.

Nor can the webhook URL rules (docs/notifications.md: only global
addresses): generated endpoint URLs are replaced by a local one nothing
listens on, so the deliveries of this run never leave the machine.
"""

import uuid

import schemathesis


@schemathesis.hook
def map_case(ctx, case):
    if case.operation.path == "/v1/inventory/receipts" and case.method.upper() == "POST":
        body = case.body if isinstance(case.body, dict) else {}
        if not body.get("reference"):
            case.headers = {**(case.headers or {}), "Idempotency-Key": f"st-{uuid.uuid4().hex}"}
    if case.operation.path.startswith("/v1/webhook-endpoints") and isinstance(case.body, dict) \
            and "url" in case.body and case.method.upper() in ("POST", "PATCH"):
        case.body = {**case.body, "url": "http://127.0.0.1:9/schemathesis"}
    return case
