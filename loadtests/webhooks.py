"""The Shopify webhook burst: Locust shoppers buy on the emulator's
storefront (a subprocess; the sale happens there, as on Shopify) while its
webhooks are held, then the emulator releases every signed orders/create
delivery at once, shuffled, some twice, 64 in flight, to onhand's
``POST /webhooks/shopify`` (API.md, Shopify webhooks).

The endpoint is checked first with an unsigned request: a 404 means this
build has no webhook endpoint, and the scenario is skipped with that reason.
Then one real purchase is delivered; an engine whose endpoint cannot take it
(the baseline, if the endpoint needs more of the Store than the baseline
offers) is skipped with the status it answered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from redis import Redis

from loadtests.scenarios import Outcome, Setup, Sizes, _finish, new_skus, run_locust
from loadtests.stack import SHOPIFY_SECRET, SHOPIFY_SHOP, Service, cpu_seconds, free_port
from onhand.embedded import _child_setup

#: How long the emulator may take to start (it builds the GraphQL schema), seconds.
EMULATOR_START_S = 60.0
#: Deliveries the emulator has in flight at once during the burst.
BURST_CONCURRENCY = 64


class Emulator:
    """`python -m emulator` on a free port, signing with the bench's secret."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        with open(self.workdir / "emulator.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "emulator", "--port", str(self.port), "--shop", SHOPIFY_SHOP,
                 "--api-secret", SHOPIFY_SECRET],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                preexec_fn=_child_setup(os.getpid(), None, None, signal.SIGTERM))  # noqa: PLW1509

    def wait_ready(self) -> None:
        deadline = time.monotonic() + EMULATOR_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited; see {self.workdir / 'emulator.log'}")
            try:
                if httpx.get(self.url + "/_emulator/webhooks", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the emulator did not start in time")

    def cpu_seconds(self) -> float:
        return cpu_seconds([self.process.pid]) if self.process else 0.0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def call(self, path: str, body=None, timeout_s: float = 60.0) -> dict:
        r = httpx.post(self.url + path, json=body if body is not None else {}, timeout=timeout_s)
        if r.status_code >= 300:
            raise RuntimeError(f"emulator {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()


def endpoint_missing(api_url: str) -> bool:
    """True when POST /webhooks/shopify is not routed (404); an unsigned
    request to a real endpoint answers 401."""
    r = httpx.post(api_url + "/webhooks/shopify", content=b"{}",
                   headers={"content-type": "application/json"}, timeout=10)
    return r.status_code == 404


def webhook_burst(service: Service, redis: Redis, emulator: Emulator, sizes: Sizes, workdir: Path) -> Outcome:
    outcome = Outcome("webhooks", service.engine)
    if endpoint_missing(service.url):
        outcome.skipped = ("POST /webhooks/shopify answered 404: this build has no Shopify webhook "
                           "endpoint yet, so the webhook burst was not run")
        return outcome
    [hot] = new_skus("whk-hot", 1)
    skus = new_skus("whk", 50)
    stock = {hot: sizes.webhook_units, **{s: sizes.catalogue_on_hand for s in skus}}
    setup = Setup(service.url)
    try:
        setup.skus([hot, *skus])
        setup.receive(stock)
    finally:
        setup.close()
    emulator.call("/_emulator/reset")
    emulator.call("/_emulator/webhooks/config", {"url": service.url + "/webhooks/shopify",
                                                 "retry_schedule_s": [1.0, 2.0], "timeout_s": 5.0})
    emulator.call("/_emulator/webhooks/mode", {"mode": "hold"})
    # Shopify sells past its own stock when the variant continues selling:
    # those sales reach onhand as exception units (oversell exposure), never as oversell.
    emulator.call("/_emulator/products", [{"sku": s, "available": q, "inventory_policy": "CONTINUE"}
                                          for s, q in stock.items()])
    shopify: dict[str, dict] = {}
    probe = emulator.call("/_emulator/storefront/orders", {"lines": [{"sku": hot, "quantity": 1}]})
    shopify[str(probe["order"]["id"])] = {"sku": hot, "quantity": 1}
    sent = emulator.call("/_emulator/webhooks/flush", {"order_ids": [probe["order"]["id"]]})
    statuses = [o.get("status_code") for o in sent.get("outcomes", [])]
    if statuses != [200] and service.engine != "onhand":
        outcome.skipped = (f"the webhook endpoint answered {statuses} on the {service.engine} engine "
                           "(it needs parts of the onhand Store the baseline does not offer), so the "
                           "burst was not compared")
        return outcome
    if statuses != [200]:
        outcome.notes.append(f"the probe delivery answered {statuses}")
    plan = {"emulator_url": emulator.url, "hot_sku": hot, "skus": skus, "orders": sizes.webhook_orders,
            "hot_share": 0.5}
    outcome.record, outcome.seconds, outcome.locust_cpu_s = run_locust(
        plan, ["ShopifyShopper"], sizes.webhook_users, 600, workdir, f"webhooks-{service.engine}")
    shopify.update(outcome.record.get("shopify_orders", {}))
    _burst(outcome, emulator, service)
    # orders come from Shopify, not from 201s: the invariants match them by Shopify order id
    outcome.record["orders"] = {}
    hot_units = sum(o["quantity"] for o in shopify.values() if o["sku"] == hot)
    outcome.notes.append(f"{len(shopify)} Shopify orders ({hot_units} units of the hot SKU against "
                         f"{sizes.webhook_units} in stock) delivered in one burst of "
                         f"{outcome.burst['deliveries']} signed deliveries ({outcome.burst['duplicates']} "
                         f"duplicates), {BURST_CONCURRENCY} at a time, shuffled")
    return _finish(outcome, service, redis, stock, shopify)


def _burst(outcome: Outcome, emulator: Emulator, service: Service) -> None:
    """Releases every held orders/create delivery at once and records how
    onhand answered: each must be a 200 within Shopify's 5 s. The API's CPU
    per delivery is measured too: when the emulator (a Python HTTP client)
    is the busier of the two, it sets the pace, not the engine."""
    api = service.api_pids()
    api0 = cpu_seconds(api)
    cpu0 = emulator.cpu_seconds()
    start = time.monotonic()
    sent = emulator.call("/_emulator/webhooks/flush", {
        "topics": ["orders/create"], "concurrency": BURST_CONCURRENCY, "duplicates": [1, 2],
        "shuffle": True, "seed": 6, "wait": True}, timeout_s=600)
    seconds = time.monotonic() - start
    outcome.emulator_cpu_s = emulator.cpu_seconds() - cpu0
    api_cpu_s = cpu_seconds(api) - api0
    emulator.call("/_emulator/webhooks/drain", {"timeout_s": 30})  # retries of failed deliveries, if any
    results = sent.get("outcomes") or []
    latencies = [float(o.get("latency_ms") or 0) for o in results]
    statuses = Counter(str(o.get("status_code")) for o in results)
    failed = outcome.record.setdefault("failed_checks", {})
    examples = outcome.record.setdefault("examples", {})
    for o in results:
        if o.get("status_code") != 200:
            reason = f"webhook delivery answered {o.get('status_code')} ({o.get('error') or 'status'})"
            failed[reason] = failed.get(reason, 0) + 1
            examples.setdefault(reason, [f"{o.get('webhook_id')} copy {o.get('copy')}"])
        if (o.get("status_code") or 0) >= 500:
            outcome.record["server_errors"] = outcome.record.get("server_errors", 0) + 1
    outcome.record.setdefault("statuses", {})["webhook: orders/create delivery (burst)"] = dict(statuses)
    outcome.burst = {
        "deliveries": len(results), "seconds": seconds, "rate": len(results) / seconds if seconds else 0.0,
        "duplicates": sum(1 for o in results if (o.get("copy") or 1) > 1),
        "requests": len(results),
        **{f"p{p}": float(np.percentile(latencies, p)) if latencies else 0.0 for p in (50, 95, 99)},
        "max": max(latencies, default=0.0),
        "over_5s": sum(1 for x in latencies if x > 5000),
        "api_cpu_pct": 100 * api_cpu_s / seconds if seconds else 0.0,
        "emulator_cpu_pct": 100 * outcome.emulator_cpu_s / seconds if seconds else 0.0,
        "api_cpu_ms_per_delivery": 1000 * api_cpu_s / len(results) if results else 0.0,
    }
    if outcome.burst["emulator_cpu_pct"] > outcome.burst["api_cpu_pct"]:
        outcome.notes.append(
            f"the emulator was the busier process (a core at {outcome.burst['emulator_cpu_pct']:.0f}% against the "
            f"API's {outcome.burst['api_cpu_pct']:.0f}%): it set the burst's pace, so its rate and latencies are "
            "the generator's; the API's CPU per delivery is the engine's figure")
