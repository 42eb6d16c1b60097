"""What the notification tests share: a wholesale customer with its own key,
an endpoint subscribed through the API, and waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Settings for stacks whose webhooks go to local receivers: loopback allowed,
#: retries quick, a delivery timeout well below the slow receiver's 10 s.
FAST_RETRIES = dict(webhooks_allow_private=True, webhook_retry_base_ms=200, webhook_retry_cap_ms=1000,
                    webhook_timeout_ms=2000)


async def wholesale_customer(stack, name: str, **profile) -> tuple[dict, dict]:
    """A customer with a wholesale profile, and a wholesale key for it:
    (customer, auth headers of its key)."""
    r = await stack.post("/v1/customers", {"name": name, "email": f"buyer@{name.lower()}.example",
                                           "profiles": [{"channel": "wholesale", "payment_terms": "net_30",
                                                         "ship_to": {"company": name, "city": "Springfield"},
                                                         **profile}]})
    assert r.status_code == 201, r.text
    customer = r.json()
    r = await stack.post("/v1/api-keys", {"role": "wholesale", "customer_id": customer["id"]})
    assert r.status_code == 201, r.text
    return customer, {"Authorization": f"Bearer {r.json()['key']}"}


async def subscribe(stack, url: str, headers: dict | None = None, **body) -> dict:
    r = await stack.post("/v1/webhook-endpoints", {"url": url, **body}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def eventually(check: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    """Waits until ``check()`` holds (polling), or fails after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
