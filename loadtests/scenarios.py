"""The four Locust scenarios: their data (made through the API, the same way
for both engines), the Locust run (a subprocess, headless), and the checks
after it (loadtests/invariants.py).

Every scenario works on SKUs of its own (random names), so the checks see
only what that scenario did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from redis import Redis

from loadtests import invariants
from loadtests.stack import ADMIN_KEY, Service, wait_drained

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
#: Longest wait for the outbox to drain after a scenario, seconds.
DRAIN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is (full run and the CI smoke)."""

    flash_units: int
    flash_orders: int
    flash_users: int
    webhook_units: int
    webhook_orders: int
    webhook_users: int
    catalogue: int
    catalogue_on_hand: int
    dtc_reserve: int
    wholesale_users: int
    dtc_users: int
    wholesale_s: int
    read_users: int
    read_s: int


FULL = Sizes(flash_units=300, flash_orders=5000, flash_users=200, webhook_units=200, webhook_orders=1500,
             webhook_users=32, catalogue=400, catalogue_on_hand=3000, dtc_reserve=100, wholesale_users=4,
             dtc_users=20, wholesale_s=60, read_users=32, read_s=30)
QUICK = Sizes(flash_units=40, flash_orders=400, flash_users=150, webhook_units=10, webhook_orders=60,
              webhook_users=6, catalogue=60, catalogue_on_hand=400, dtc_reserve=20, wholesale_users=2,
              dtc_users=4, wholesale_s=6, read_users=6, read_s=4)


@dataclass
class Outcome:
    """One scenario on one engine."""

    scenario: str
    engine: str
    seconds: float = 0.0
    record: dict = field(default_factory=dict)
    locust_cpu_s: float = 0.0
    emulator_cpu_s: float = 0.0
    invariants: invariants.Invariants | None = None
    drain_s: float | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    #: The webhook burst's figures (its deliveries are not Locust requests).
    burst: dict | None = None

    @property
    def failed_checks(self) -> int:
        return sum(self.record.get("failed_checks", {}).values())

    @property
    def server_errors(self) -> int:
        return int(self.record.get("server_errors", 0))

    @property
    def ok(self) -> bool:
        return self.skipped is not None or (
            self.failed_checks == 0 and self.server_errors == 0
            and (self.invariants is None or self.invariants.ok))

    def series(self, prefix: str = "") -> tuple[list[int], list[int], list[float], list[float]]:
        """Per second: (t, requests, p50 ms, p99 ms) over requests whose name starts with prefix."""
        ts = self.record.get("timeseries", {})
        if not ts:
            return [], [], [], []
        start = min(int(k) for k in ts)
        t, n, p50, p99 = [], [], [], []
        for k, names in sorted(ts.items(), key=lambda kv: int(kv[0])):
            lat = [x for name, v in names.items() if name.startswith(prefix) for x in v[2]]
            if not lat:
                continue
            t.append(int(k) - start)
            n.append(len(lat))
            p50.append(float(np.percentile(lat, 50)))
            p99.append(float(np.percentile(lat, 99)))
        return t, n, p50, p99

    def summary(self, prefix: str = "") -> dict:
        """Requests, rate over the time requests were in flight, latency percentiles (ms);
        for the webhook burst, its deliveries."""
        if self.burst is not None:
            return self.burst
        ts = self.record.get("timeseries", {})
        lat = [x for names in ts.values() for name, v in names.items() if name.startswith(prefix) for x in v[2]]
        secs = [int(k) for k, names in ts.items() if any(n.startswith(prefix) for n in names)]
        if not lat:
            return {"requests": 0, "rate": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
        spans = [v for name, v in self.record.get("spans", {}).items() if name.startswith(prefix)]
        # from the first request's start to the last one's end (whole-second
        # buckets would be 20% off on a four-second flash sale)
        span = (max(v[1] for v in spans) - min(v[0] for v in spans) if spans
                else max(secs) - min(secs) + 1)
        return {"requests": len(lat), "rate": len(lat) / max(span, 1e-3),
                "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                "p99": float(np.percentile(lat, 99))}


# ---------------------------------------------------------------- setup through the API


class Setup:
    """Data made through the HTTP API with the admin key."""

    def __init__(self, api_url: str):
        self.client = httpx.Client(base_url=api_url, timeout=60,
                                   headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    def close(self) -> None:
        self.client.close()

    def _ok(self, r: httpx.Response, *codes: int) -> dict:
        if r.status_code not in codes:
            raise RuntimeError(f"setup: {r.request.method} {r.request.url.path} answered "
                               f"{r.status_code}: {r.text[:300]}")
        return r.json()

    def skus(self, names: list[str], dtc_reserve: int = 0) -> None:
        for sku in names:
            self._ok(self.client.put(f"/v1/skus/{sku}", json={"name": sku, "dtc_reserve": dtc_reserve}), 200)

    def receive(self, quantities: dict[str, int]) -> None:
        items = list(quantities.items())
        for i in range(0, len(items), 1000):
            lines = [{"sku": s, "quantity": q} for s, q in items[i:i + 1000]]
            self._ok(self.client.post("/v1/inventory/receipts",
                                      json={"reference": f"ASN-{uuid.uuid4().hex[:12]}", "lines": lines}), 201)

    def wholesale_account(self, name: str) -> dict:
        customer = self._ok(self.client.post("/v1/customers", json={
            "name": name, "profiles": [{"channel": "wholesale", "payment_terms": "net_30"}]}), 201)
        key = self._ok(self.client.post("/v1/api-keys", json={
            "role": "wholesale", "customer_id": customer["id"], "name": f"{name} ERP"}), 201)
        return {"key": key["key"], "customer_id": customer["id"]}


def new_skus(prefix: str, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i:04d}" for i in range(n)]


# ---------------------------------------------------------------- Locust


def run_locust(plan: dict, classes: list[str], users: int, run_time_s: int, workdir: Path,
               name: str) -> tuple[dict, float, float]:
    """Runs Locust headless; returns (record, wall seconds, Locust's CPU seconds)."""
    plan_path = workdir / f"{name}.plan.json"
    out_path = workdir / f"{name}.out.json"
    plan_path.write_text(json.dumps(plan))
    out_path.unlink(missing_ok=True)
    env = {**os.environ, "ONHAND_LOAD_PLAN": str(plan_path), "ONHAND_LOAD_OUT": str(out_path)}
    args = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
            "-r", str(users), "-t", f"{run_time_s}s", "--only-summary", "--loglevel", "ERROR",
            "--stop-timeout", "10", *classes]
    start = time.monotonic()
    with open(workdir / f"{name}.locust.log", "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)  # rusage: Locust's own CPU
        proc.returncode = 0
    seconds = time.monotonic() - start
    if not out_path.exists():
        tail = (workdir / f"{name}.locust.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Locust wrote no results for {name}:\n{tail}")
    return json.loads(out_path.read_text()), seconds, usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- the scenarios


def _finish(outcome: Outcome, service: Service, redis: Redis, received: dict[str, int],
            shopify: dict | None = None) -> Outcome:
    rec = outcome.record
    accepted = {oid: o for oid, o in rec.get("orders", {}).items()}
    if service.engine == "onhand":
        drained, waited = wait_drained(redis, service.keys, DRAIN_TIMEOUT_S)
        outcome.drain_s = waited
        if not drained:
            outcome.notes.append(f"the outbox had not drained {waited:.0f} s after the load stopped")
        outcome.invariants = invariants.check_onhand(
            outcome.scenario, redis, service.keys, service.database_url, service.url, ADMIN_KEY,
            received, accepted, rec.get("duplicate_ids", []), shopify)
    else:
        outcome.invariants = invariants.check_baseline(
            outcome.scenario, service.database_url, service.url, ADMIN_KEY, received, accepted,
            rec.get("duplicate_ids", []), shopify)
    return outcome


def flash_sale(service: Service, redis: Redis, sizes: Sizes, workdir: Path) -> Outcome:
    """Thousands of one-unit DTC orders racing for one hot SKU with a few
    hundred units: exactly that many succeed, the rest are 409
    insufficient-stock, nothing oversells."""
    setup = Setup(service.url)
    try:
        [hot] = new_skus("flash", 1)
        setup.skus([hot])
        setup.receive({hot: sizes.flash_units})
    finally:
        setup.close()
    plan = {"host": service.url, "admin_key": ADMIN_KEY, "hot_sku": hot, "orders": sizes.flash_orders}
    outcome = Outcome("flash", service.engine)
    outcome.record, outcome.seconds, outcome.locust_cpu_s = run_locust(
        plan, ["FlashSaleBuyer"], sizes.flash_users, 600, workdir, f"flash-{service.engine}")
    sold = len(outcome.record.get("orders", {}))
    want = min(sizes.flash_units, sizes.flash_orders)
    if sold != want:
        outcome.record.setdefault("failed_checks", {})["units sold != units on hand"] = 1
        outcome.notes.append(f"{sold} orders accepted, expected exactly {want}")
    outcome.notes.append(f"{sold} orders accepted for {sizes.flash_units} units; "
                         f"{sizes.flash_orders - sold} refused")
    return _finish(outcome, service, redis, {hot: sizes.flash_units})


def wholesale_mix(service: Service, redis: Redis, sizes: Sizes, workdir: Path) -> tuple[Outcome, dict]:
    """Wholesale API clients (big POs, Idempotency-Key, replays) mixed with
    DTC traffic on one catalogue. Returns the outcome and the plan the read
    scenario reuses (catalogue and orders)."""
    skus = new_skus("ws", sizes.catalogue)
    setup = Setup(service.url)
    try:
        setup.skus(skus, dtc_reserve=sizes.dtc_reserve)
        setup.receive({s: sizes.catalogue_on_hand for s in skus})
        accounts = [setup.wholesale_account(f"Retailer {i} {uuid.uuid4().hex[:4]}")
                    for i in range(sizes.wholesale_users)]
    finally:
        setup.close()
    plan = {"host": service.url, "admin_key": ADMIN_KEY, "skus": skus, "wholesale_accounts": accounts,
            "wholesale_users": sizes.wholesale_users, "replay_share": 0.1}
    outcome = Outcome("wholesale", service.engine)
    outcome.record, outcome.seconds, outcome.locust_cpu_s = run_locust(
        plan, ["WholesaleBuyer", "DtcShopper"], sizes.wholesale_users + sizes.dtc_users, sizes.wholesale_s,
        workdir, f"wholesale-{service.engine}")
    orders = outcome.record.get("orders", {})
    ws = [o for o in orders.values() if o["kind"] == "wholesale"]
    units = sum(l[1] for o in ws for l in o["lines"])
    backordered = sum(l[3] for o in ws for l in o["lines"])
    outcome.notes.append(f"{len(ws)} wholesale orders ({units} units, {backordered} backordered), "
                         f"{len(orders) - len(ws)} DTC orders accepted; "
                         f"{outcome.record.get('notes', {}).get('replays_identical', 0)} idempotent replays "
                         "answered identically")
    _finish(outcome, service, redis, {s: sizes.catalogue_on_hand for s in skus})
    known = [[oid, o["lines"]] for oid, o in list(orders.items())[:500]]
    return outcome, {"skus": skus, "orders_known": known}


def read_mix(service: Service, redis: Redis, sizes: Sizes, workdir: Path, data: dict) -> Outcome:
    """Inventory and order lookups on the wholesale scenario's catalogue and orders."""
    outcome = Outcome("reads", service.engine)
    if not data.get("orders_known"):
        outcome.skipped = "no orders to read (the wholesale scenario accepted none)"
        return outcome
    plan = {"host": service.url, "admin_key": ADMIN_KEY, **data}
    outcome.record, outcome.seconds, outcome.locust_cpu_s = run_locust(
        plan, ["Reader"], sizes.read_users, sizes.read_s, workdir, f"reads-{service.engine}")
    return outcome
