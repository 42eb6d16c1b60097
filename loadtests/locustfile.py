"""Locust users for the benchmark's scenarios. Every response is checked,
not just its status: problem types, reserved counts, idempotent replays.

Run by loadtests/scenarios.py as ``locust -f loadtests/locustfile.py
--headless <UserClass ...>`` with two environment variables:
ONHAND_LOAD_PLAN (a JSON file: where to send, which key, which SKUs, how
many orders) and ONHAND_LOAD_OUT (where to write what happened: requests per
second and their latencies, check failures with examples, every 2xx order
with its lines as answered). Nothing here reads the plan except at import,
which is what a locustfile is for.

Scenarios and their users:
- flash:     FlashSaleBuyer - one-unit DTC orders racing for one hot SKU
             until the plan's number of orders has been sent;
- webhooks:  ShopifyShopper - buys on the Shopify emulator's storefront; the
             signed orders/create webhooks are then released in one burst
             (loadtests/webhooks.py);
- wholesale: WholesaleBuyer (5-200 lines, 50-5,000 units, Idempotency-Key,
             some replays) mixed with DtcShopper;
- reads:     Reader - inventory and order lookups.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from itertools import cycle

import gevent
from locust import FastHttpUser, between, constant, events, task
from locust.exception import StopUser


def _plan() -> dict:
    path = os.environ.get("ONHAND_LOAD_PLAN")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


PLAN: dict = _plan()
OUT = os.environ.get("ONHAND_LOAD_OUT", "")
ADMIN = {"Authorization": f"Bearer {PLAN.get('admin_key', '')}", "Content-Type": "application/json"}
PROBLEM_JSON = "application/problem+json"
#: Examples of failed checks kept per reason.
EXAMPLES_PER_REASON = 3


class Record:
    """What happened, written to ONHAND_LOAD_OUT when Locust quits."""

    def __init__(self) -> None:
        self.buckets: dict[int, dict[str, list]] = defaultdict(dict)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.failed: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.orders: dict[str, dict] = {}
        self.duplicate_ids: list[str] = []
        self.server_errors = 0
        self.notes: Counter = Counter()
        self.shopify_orders: dict[str, dict] = {}
        #: per request name: [first request's start, last request's end] (s)
        self.spans: dict[str, list[float]] = {}

    def request(self, name: str, ms: float, failed: bool) -> None:
        now = time.time()
        span = self.spans.setdefault(name, [now - ms / 1000, now])
        span[0], span[1] = min(span[0], now - ms / 1000), max(span[1], now)
        bucket = self.buckets[int(now)].setdefault(name, [0, 0, []])
        bucket[0] += 1
        bucket[1] += 1 if failed else 0
        bucket[2].append(round(ms, 2))

    def check(self, reason: str, detail: str) -> None:
        self.failed[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(detail[:500])

    def order(self, body: dict, kind: str) -> None:
        oid = body["id"]
        if oid in self.orders:
            self.duplicate_ids.append(oid)
        self.orders[oid] = {"kind": kind, "lines": [
            [l["sku"], l["quantity"], l["reserved"], l["backordered"], l["exception"]] for l in body["lines"]]}

    def dump(self, path: str) -> None:
        data = {
            "timeseries": {str(k): v for k, v in sorted(self.buckets.items())},
            "statuses": {k: dict(v) for k, v in self.statuses.items()},
            "failed_checks": dict(self.failed),
            "examples": dict(self.examples),
            "orders": self.orders,
            "duplicate_ids": self.duplicate_ids,
            "server_errors": self.server_errors,
            "notes": dict(self.notes),
            "shopify_orders": self.shopify_orders,
            "spans": self.spans,
        }
        with open(path, "w") as f:
            json.dump(data, f)


RECORD = Record()


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, response=None, **_):
    RECORD.request(name, response_time, exception is not None)
    if response is not None:
        status = getattr(response, "status_code", 0) or 0
        RECORD.statuses[name][str(status)] += 1
        if status >= 500:
            RECORD.server_errors += 1


@events.quitting.add_listener
def _on_quitting(environment, **_):
    if OUT:
        RECORD.dump(OUT)


class Quota:
    """A fixed number of iterations shared by every user of a scenario; the
    last user to stop ends the run."""

    def __init__(self, total: int):
        self.left = total
        self.live = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def started(self) -> None:
        self.live += 1

    def stopped(self, environment) -> None:
        self.live -= 1
        if self.live == 0 and self.left <= 0 and environment.runner is not None:
            gevent.spawn_later(0.2, environment.runner.quit)


QUOTA = Quota(int(PLAN.get("orders", 0)))


def _fail(resp, reason: str, detail: str = "") -> None:
    RECORD.check(reason, f"{resp.status_code} {detail} {resp.text[:300] if resp.text else ''}")
    resp.failure(f"{reason}: {detail}"[:200])


def _json(resp) -> dict | None:
    try:
        return resp.json()
    except Exception:  # noqa: BLE001 - a body that is not JSON is itself a failed check
        _fail(resp, "body is not JSON")
        return None


def _problem(resp, expected_type: str) -> dict | None:
    """Checks an RFC 9457 answer: media type, type, and status member."""
    if not (resp.headers.get("content-type") or "").startswith(PROBLEM_JSON):
        _fail(resp, "problem without application/problem+json", resp.headers.get("content-type") or "")
        return None
    body = _json(resp)
    if body is None:
        return None
    if body.get("type") != expected_type or body.get("status") != resp.status_code:
        _fail(resp, f"expected problem {expected_type}", str(body.get("type")))
        return None
    return body


def _check_order_lines(resp, body: dict, sent: list[tuple[str, int]], policy: str) -> bool:
    """Lines as sent (same SKUs, same quantities, same order); counters add
    up under the policy."""
    lines = body.get("lines") or []
    if [(l["sku"], l["quantity"]) for l in lines] != sent:
        _fail(resp, "lines differ from the request", json.dumps(lines)[:200])
        return False
    for l in lines:
        if l["shipped"] or l["cancelled"] or l["returned"] or l["exception"]:
            _fail(resp, "new order line with shipped/cancelled/returned/exception units", json.dumps(l))
            return False
        if l["reserved"] + l["backordered"] != l["quantity"]:
            _fail(resp, "reserved + backordered != quantity", json.dumps(l))
            return False
        if policy == "all_or_nothing" and l["reserved"] != l["quantity"]:
            _fail(resp, "all_or_nothing order not fully reserved", json.dumps(l))
            return False
    if body.get("backorder_policy") != policy:
        _fail(resp, "wrong backorder_policy", str(body.get("backorder_policy")))
        return False
    return True


def _check_refusal(resp, sent: list[tuple[str, int]]) -> None:
    """A 409 for an all_or_nothing order: insufficient-stock naming a line
    that really was short at that instant."""
    body = _problem(resp, "/problems/insufficient-stock")
    if body is None:
        return
    short = body.get("lines") or []
    asked = dict(sent)
    if not short or any(l["sku"] not in asked or l["requested"] != asked[l["sku"]] for l in short):
        _fail(resp, "insufficient-stock lines do not match the request", json.dumps(short)[:200])
    elif not any(l["available"] < l["requested"] for l in short):
        _fail(resp, "refused although every line was available", json.dumps(short)[:200])


def _post_order(user, name: str, body: dict, headers: dict, policy: str, kind: str,
                refusal_ok: bool) -> tuple[int, dict | None]:
    sent = [(l["sku"], l["quantity"]) for l in body["lines"]]
    with user.client.post("/v1/orders", data=json.dumps(body), headers=headers, name=name,
                          catch_response=True) as r:
        if r.status_code == 201:
            answer = _json(r)
            if answer is not None and _check_order_lines(r, answer, sent, policy):
                if body["channel"] != answer.get("channel"):
                    _fail(r, "wrong channel", str(answer.get("channel")))
                else:
                    RECORD.order(answer, kind)
                    return 201, answer
        elif r.status_code == 409 and refusal_ok:
            _check_refusal(r, sent)
            r.success()
        else:
            _fail(r, f"unexpected status {r.status_code}")
        return r.status_code, None


# ---------------------------------------------------------------- flash sale


class _QuotaUser(FastHttpUser):
    """A user that sends until the run's shared quota of requests is used up,
    without pause, then stops (the run ends when the last one has)."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        QUOTA.started()

    def on_stop(self) -> None:
        QUOTA.stopped(self.environment)

    def next_request(self) -> None:
        if not QUOTA.take():
            raise StopUser()


class FlashSaleBuyer(_QuotaUser):
    """Thousands of one-unit DTC orders racing for one hot SKU."""

    host = PLAN.get("host")

    @task
    def buy(self) -> None:
        self.next_request()
        body = {"channel": "dtc", "lines": [{"sku": PLAN["hot_sku"], "quantity": 1}]}
        _post_order(self, "flash: POST /v1/orders", body, ADMIN, "all_or_nothing", "dtc", refusal_ok=True)


# ---------------------------------------------------------------- wholesale mix

_ACCOUNTS = cycle(PLAN.get("wholesale_accounts") or [{}])


def _split(units: int, lines: int, rng: random.Random) -> list[int]:
    """``units`` over ``lines`` lines, each at least 1."""
    cuts = sorted(rng.sample(range(1, units), lines - 1)) if lines > 1 else []
    return [b - a for a, b in zip([0, *cuts], [*cuts, units])]


class WholesaleBuyer(FastHttpUser):
    """A wholesale API client: purchase orders of 5-200 lines and 50-5,000
    units with an Idempotency-Key; some are sent twice (a client retry),
    which must answer the same."""

    host = PLAN.get("host")
    fixed_count = int(PLAN.get("wholesale_users", 0))
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.account = next(_ACCOUNTS)
        self.rng = random.Random()
        self.headers = {"Authorization": f"Bearer {self.account.get('key')}",
                        "Content-Type": "application/json"}

    @task
    def purchase_order(self) -> None:
        skus = PLAN["skus"]
        nlines = self.rng.randint(5, min(200, len(skus)))
        units = max(self.rng.randint(50, 5000), nlines)
        picked = self.rng.sample(skus, nlines)
        body = {"channel": "wholesale", "po_number": f"PO-{uuid.uuid4().hex[:10]}",
                "lines": [{"sku": s, "quantity": q, "unit_price": "4.20"}
                          for s, q in zip(picked, _split(units, nlines, self.rng), strict=True)]}
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        _, answer = _post_order(self, "wholesale: POST /v1/orders", body, headers, "backorder",
                                     "wholesale", refusal_ok=False)
        if answer is not None and answer.get("customer_id") != self.account.get("customer_id"):
            RECORD.check("wholesale order not bound to the key's customer", answer["id"])
        if answer is not None and self.rng.random() < float(PLAN.get("replay_share", 0.1)):
            self._replay(body, headers, answer)

    def _replay(self, body: dict, headers: dict, first: dict) -> None:
        with self.client.post("/v1/orders", data=json.dumps(body), headers=headers,
                              name="wholesale: replay with the same Idempotency-Key",
                              catch_response=True) as r:
            if r.status_code != 201:
                _fail(r, "replay answered another status")
            elif _json(r) != first:
                _fail(r, "replay answered another body", first["id"])
            else:
                RECORD.notes["replays_identical"] += 1


class DtcShopper(FastHttpUser):
    """Storefront orders of 1-3 lines of 1-2 units, all or nothing."""

    host = PLAN.get("host")
    wait_time = between(0.05, 0.2)

    @task
    def buy(self) -> None:
        picked = random.sample(PLAN["skus"], random.randint(1, 3))
        body = {"channel": "dtc", "lines": [{"sku": s, "quantity": random.randint(1, 2)} for s in picked]}
        _post_order(self, "dtc: POST /v1/orders", body, ADMIN, "all_or_nothing", "dtc", refusal_ok=True)


# ---------------------------------------------------------------- reads


def _check_inventory(resp, item: dict, sku: str | None = None) -> bool:
    if sku is not None and item.get("sku") != sku:
        _fail(resp, "inventory for another SKU", str(item.get("sku")))
        return False
    available = item["on_hand"] - item["reserved"]
    if item["available"] != available or available < 0:
        _fail(resp, "available != on_hand - reserved, or negative", json.dumps(item)[:200])
        return False
    if item["available_to_wholesale"] != max(0, available - item["dtc_reserve"]):
        _fail(resp, "available_to_wholesale inconsistent", json.dumps(item)[:200])
        return False
    return True


class Reader(FastHttpUser):
    """Inventory and order lookups."""

    host = PLAN.get("host")
    wait_time = constant(0)

    @task(5)
    def inventory_one(self) -> None:
        sku = random.choice(PLAN["skus"])
        with self.client.get(f"/v1/inventory/{sku}", headers=ADMIN, name="read: GET /v1/inventory/{sku}",
                             catch_response=True) as r:
            if r.status_code != 200:
                _fail(r, f"unexpected status {r.status_code}")
            elif (body := _json(r)) is not None:
                _check_inventory(r, body, sku)

    @task(2)
    def inventory_many(self) -> None:
        skus = random.sample(PLAN["skus"], min(10, len(PLAN["skus"])))
        query = "&".join(f"sku={s}" for s in skus)
        with self.client.get(f"/v1/inventory?{query}", headers=ADMIN, name="read: GET /v1/inventory?sku=x10",
                             catch_response=True) as r:
            if r.status_code != 200:
                _fail(r, f"unexpected status {r.status_code}")
            elif (body := _json(r)) is not None:
                items = body.get("items") or []
                if sorted(i["sku"] for i in items) != sorted(skus):
                    _fail(r, "inventory list does not answer the SKUs asked")
                else:
                    all(_check_inventory(r, i) for i in items)

    @task(3)
    def order(self) -> None:
        oid, lines = random.choice(PLAN["orders_known"])
        with self.client.get(f"/v1/orders/{oid}", headers=ADMIN, name="read: GET /v1/orders/{id}",
                             catch_response=True) as r:
            if r.status_code != 200:
                _fail(r, f"unexpected status {r.status_code}")
            elif (body := _json(r)) is not None:
                got = [[l["sku"], l["quantity"], l["reserved"], l["backordered"], l["exception"]]
                       for l in body.get("lines") or []]
                if body.get("id") != oid or got != lines:
                    _fail(r, "order read differs from what its 201 answered", oid)


# ---------------------------------------------------------------- Shopify webhooks


class ShopifyShopper(_QuotaUser):
    """Buys on the emulated Shopify storefront: the sale happens there, as on
    Shopify, and its signed orders/create webhook waits in the emulator (hold
    mode) for the burst that loadtests/webhooks.py then releases."""

    host = PLAN.get("emulator_url")

    @task
    def buy(self) -> None:
        self.next_request()
        hot = random.random() < float(PLAN.get("hot_share", 0.5))
        sku = PLAN["hot_sku"] if hot else random.choice(PLAN["skus"])
        qty = random.choice((1, 1, 1, 2))
        with self.client.post("/_emulator/storefront/orders", json={"lines": [{"sku": sku, "quantity": qty}]},
                              name="emulator: storefront purchase", catch_response=True) as r:
            if r.status_code != 201:
                _fail(r, "storefront purchase failed")
                return
            body = _json(r)
            if body is None:
                return
            if not any(w.get("topic") == "orders/create" for w in body.get("webhooks") or []):
                _fail(r, "the purchase queued no orders/create webhook")
        RECORD.shopify_orders[str(body["order"]["id"])] = {"sku": sku, "quantity": qty}
