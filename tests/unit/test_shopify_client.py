"""The Shopify client's throttling, retries and error translation, with the
transport as the seam (httpx.MockTransport) and a clock and sleep of its own."""

from __future__ import annotations

import httpx
import pytest

from workers.shopify_client import (
    ShopifyClient,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyUnauthorized,
    ShopifyUnavailable,
)


def status(available: float, maximum: float = 1000, restore: float = 50) -> dict:
    return {"cost": {"requestedQueryCost": 10, "actualQueryCost": 10,
                     "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available,
                                        "restoreRate": restore}}}


class Clock:
    def __init__(self):
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 3))
        self.t += s


def client(responses, clock: Clock | None = None) -> tuple[ShopifyClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    answers = iter(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = clock or Clock()
    c = ShopifyClient(api_url="https://shop.example", access_token="tok", api_version="2026-04",
                      transport=httpx.MockTransport(handle), sleep=clock.sleep, clock=clock.now)
    return c, seen


def test_sends_the_token_to_the_versioned_endpoint_and_returns_data():
    c, seen = client([httpx.Response(200, json={"data": {"shop": {"id": "1"}}, "extensions": status(990)})])
    assert c.execute("{ shop { id } }", cost=1) == {"shop": {"id": "1"}}
    assert str(seen[0].url) == "https://shop.example/admin/api/2026-04/graphql.json"
    assert seen[0].headers["X-Shopify-Access-Token"] == "tok"
    assert c.bucket.available == 990


def test_waits_for_the_bucket_before_a_call_it_cannot_afford():
    clock = Clock()
    c, _ = client([httpx.Response(200, json={"data": {}, "extensions": status(20)}),
                   httpx.Response(200, json={"data": {}, "extensions": status(0)})], clock)
    c.execute("{ a }", cost=10)
    c.execute("{ b }", cost=520)            # 20 available, 50/s: wait 10 s first
    assert clock.slept == [10.0]


def test_throttled_answers_and_429s_are_waited_out_and_retried():
    clock = Clock()
    throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                 "extensions": status(5, restore=10)}
    c, seen = client([httpx.Response(200, json=throttled),
                      httpx.Response(429, headers={"Retry-After": "2.0"}, json={"errors": "slow down"}),
                      httpx.Response(200, json={"data": {"ok": True}, "extensions": status(900)})], clock)
    assert c.execute("{ ok }", cost=25) == {"ok": True}
    assert len(seen) == 3
    assert clock.slept == [2.0, 2.0]        # (25 - 5) / 10 s for the bucket, then Retry-After
    assert (c.stats.throttled, c.stats.rate_limited) == (1, 1)


def test_transient_failures_back_off_then_give_up_as_unavailable():
    clock = Clock()
    c, seen = client([httpx.ConnectError("refused"), httpx.Response(502),
                      httpx.Response(200, json={"data": {"x": 1}})], clock)
    assert c.execute("{ x }", cost=1) == {"x": 1}
    assert clock.slept == [0.2, 0.4]
    c, _ = client([httpx.ReadTimeout("slow")] * 8, Clock())
    with pytest.raises(ShopifyUnavailable):
        c.execute("{ x }", cost=1)


@pytest.mark.parametrize("code", [401, 403])
def test_a_refused_token_is_unauthorized_and_not_retried(code):
    c, seen = client([httpx.Response(code, json={"errors": "Invalid API key or access token"})])
    with pytest.raises(ShopifyUnauthorized):
        c.execute("{ x }", cost=1)
    assert len(seen) == 1


def test_graphql_errors_and_other_statuses_are_errors_not_retried():
    c, seen = client([httpx.Response(200, json={"errors": [{"message": "Field 'nope' doesn't exist",
                                                          "extensions": {"code": "undefinedField"}}]})])
    with pytest.raises(ShopifyGraphQLError) as info:
        c.execute("{ nope }", cost=1)
    assert info.value.errors[0]["extensions"]["code"] == "undefinedField" and len(seen) == 1
    c, _ = client([httpx.Response(404, json={"errors": "Not Found"})])
    with pytest.raises(ShopifyError):
        c.execute("{ x }", cost=1)
