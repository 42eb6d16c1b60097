"""Concurrency: many clients racing for few units never oversell, conserve
every unit, and are refused only when the stock really was short.

Given 5,000 units over 50 SKUs and 64 concurrent clients sending 20,000 single-
and multi-line orders (quantities 1-3, SKUs overlapping across orders, lines
of one order naming the same SKU twice), while a stock keeper receives goods
and cancels orders so that stock stays low but not zero:
- at every point of the serial order (the outbox) available >= 0;
- on hand is exactly what was received, reserved exactly what open lines hold;
- each refusal is justified: at some point of the serial order between the
  call's start and end, a SKU it asked for had less than it asked;
- each accepted order took exactly min(asked, what was free just before it).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field

import msgspec
import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from engine.commands import CancelOrder, Op, OrderLineRequest, PlaceOrder, PutSku, ReceiveStock, SkuQty
from engine.errors import Conflict, InsufficientStock
from engine.model import as_list
from engine.store import Store
from tests.conftest import drop_merchant
from tests.servers import new_merchant

SKU_COUNT = 50
UNITS = 5_000
CLIENTS = 64


@dataclass
class Call:
    start: float
    end: float = 0.0
    demand: dict[str, int] = field(default_factory=dict)
    channel: str = "dtc"
    policy: str = "all_or_nothing"
    order_id: str = ""
    event: str | None = None
    refused: bool = False
    reported: list = field(default_factory=list)


def _op(n: int) -> Op:
    return Op(op_id=uuid.uuid4().hex, now_ms=1_800_000_000_000 + n, actor="load")


async def _scenario(redis_url: str, orders: int) -> None:
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=CLIENTS + 4))
    try:
        await scenario(Store(redis, new_merchant()), orders)
    finally:
        await redis.aclose()


async def scenario(store: Store, orders: int, clients: int = CLIENTS) -> None:
    """The race for one merchant's store (tests/cluster runs it for 20 merchants at once)."""
    redis = store.redis
    await store.start()
    await redis.set(store.keys.epoch, "test")
    skus = [f"SKU-{i:03d}" for i in range(SKU_COUNT)]
    fences = {sku: (5 if i % 5 == 0 else 0) for i, sku in enumerate(skus)}
    try:
        for sku in skus:
            await store.run(PutSku(sku=sku, dtc_reserve=fences[sku]), _op(0))
        await store.run(ReceiveStock(receipt_id="initial", lines=tuple(
            SkuQty(sku=s, qty=max(500, UNITS * orders // 20_000) // SKU_COUNT) for s in skus)), _op(0))

        calls: list[Call] = []
        accepted: list[str] = []
        rng = random.Random(20_000)
        todo = iter(range(orders))
        done = asyncio.Event()

        async def client(cid: int) -> None:
            local = random.Random(cid)
            for n in todo:
                nlines = local.choice([1, 1, 1, 2, 3, 5])
                lines = [(local.choice(skus[:20] if local.random() < 0.7 else skus), local.randint(1, 3))
                         for _ in range(nlines)]
                if nlines > 1 and local.random() < 0.2:
                    lines.append((lines[0][0], local.randint(1, 3)))  # same SKU twice
                channel = "wholesale" if local.random() < 0.3 else "dtc"
                policy = local.choice(["all_or_nothing", "all_or_nothing", "backorder", "cancel_remainder"])
                call = Call(start=time.monotonic(), channel=channel, policy=policy,
                            order_id=f"o{n}")
                for sku, q in lines:
                    call.demand[sku] = call.demand.get(sku, 0) + q
                cmd = PlaceOrder(order_id=call.order_id, channel=channel, policy=policy,
                                 lines=tuple(OrderLineRequest(sku=s, qty=q) for s, q in lines))
                try:
                    result = await store.run(cmd, _op(n))
                    call.event = result.event_id
                    accepted.append(call.order_id)
                except InsufficientStock as exc:
                    call.refused = True
                    call.reported = exc.lines
                call.end = time.monotonic()
                calls.append(call)

        async def stock_keeper() -> None:
            """Receives goods when the pool runs low, cancels random orders."""
            n = 0
            while not done.is_set():
                n += 1
                inv = await store.inventory(skus)
                low = [i.sku for i in inv if i.available < 3]
                if len(low) > SKU_COUNT // 2:
                    await store.run(ReceiveStock(receipt_id=f"r{n}", lines=tuple(
                        SkuQty(sku=s, qty=rng.randint(5, 30)) for s in low)), _op(n))
                if accepted:
                    try:
                        await store.run(CancelOrder(order_id=rng.choice(accepted)), _op(n))
                    except Conflict:
                        pass  # already cancelled
                await asyncio.sleep(0.005)

        keeper = asyncio.create_task(stock_keeper())
        await asyncio.gather(*(client(c) for c in range(clients)))
        done.set()
        await keeper
        await _check(redis, store, skus, fences, calls, orders)
    finally:
        await drop_merchant(redis, store)


async def _check(redis: Redis, store: Store, skus, fences, calls: list[Call], orders: int) -> None:
    entries = await redis.xrange(store.keys.outbox)
    position = {eid.decode(): i for i, (eid, _) in enumerate(entries)}
    events = [msgspec.json.decode(f[b"e"]) for _, f in entries]

    # Replay the serial order: available per SKU after each event.
    counters = defaultdict(lambda: [0, 0, 0])  # on hand, reserved dtc, reserved wholesale
    history: dict[str, tuple[list[int], list[int]]] = {s: ([-1], [0]) for s in skus}
    received = defaultdict(int)
    for k, e in enumerate(events):
        touched = set()
        for sku, _o, why, doh, drd, drw, *_ in as_list(e["ledger"]):
            c = counters[sku]
            c[0] += doh
            c[1] += drd
            c[2] += drw
            if why == "receipt":
                received[sku] += doh
            touched.add(sku)
        for sku in touched:
            c = counters[sku]
            avail = c[0] - c[1] - c[2]
            assert avail >= 0, f"oversold {sku} at event {k}"
            history[sku][0].append(k)
            history[sku][1].append(avail)

    def available_at(sku: str, k: int) -> int:
        """Available after event k (k = -1: before any)."""
        positions, values = history[sku]
        return values[bisect_right(positions, k) - 1]

    def free(sku: str, k: int, channel: str) -> int:
        a = available_at(sku, k)
        return max(0, a - fences[sku]) if channel == "wholesale" else a

    # Wall-clock windows -> windows of the serial order.
    done_at = sorted((c.end, position[c.event]) for c in calls if c.event)
    started_at = sorted((c.start, position[c.event]) for c in calls if c.event)
    ends = [t for t, _ in done_at]
    starts = [t for t, _ in started_at]
    prefix_max = []
    for _, p in done_at:
        prefix_max.append(max(p, prefix_max[-1] if prefix_max else -1))
    suffix_min = [0] * len(started_at)
    for i in range(len(started_at) - 1, -1, -1):
        p = started_at[i][1]
        suffix_min[i] = min(p, suffix_min[i + 1] if i + 1 < len(started_at) else len(events))

    refusals = 0
    for call in calls:
        if not call.refused:
            continue
        refusals += 1
        i = bisect_left(ends, call.start) - 1
        lo = prefix_max[i] if i >= 0 else -1  # it ran after these
        j = bisect_right(starts, call.end)
        hi = suffix_min[j] if j < len(starts) else len(events)  # and before these
        justified = any(
            free(sku, k, call.channel) < need
            for sku, need in call.demand.items()
            for k in range(lo, hi)
        )
        assert justified, f"unjustified refusal of {call.order_id}: {call.demand} in [{lo}, {hi})"
        for line in call.reported:
            assert line.requested == call.demand[line.sku] and line.available < line.requested

    # Accepted orders took exactly min(asked, free just before them).
    partial = 0
    for k, e in enumerate(events):
        if e["t"] != "order.accepted":
            continue
        took = defaultdict(int)
        for sku, _o, why, _doh, drd, drw, *_ in as_list(e["ledger"]):
            took[sku] += drd + drw
        snap = as_list(e["orders"])[0]
        asked = defaultdict(int)
        for row in snap["L"]:
            asked[row[0]] += row[1]
        for sku, need in asked.items():
            expect = min(need, free(sku, k - 1, snap["c"]))
            assert took[sku] == expect, (snap["id"], sku, need, took[sku], expect)
            partial += took[sku] < need
    enough = min(100, orders // 50)
    assert refusals > enough and partial > enough, "the scenario must be short of stock often"

    # Exact conservation in the final state.
    inventory = await store.inventory(skus)
    reserved_by_lines = defaultdict(int)
    async for key in redis.scan_iter(match=store.keys.order("*"), count=1000):
        row = msgspec.json.decode(await redis.hget(key, "L"))
        for line in row:
            reserved_by_lines[line[0]] += line[2]
    for inv in inventory:
        assert inv.available >= 0
        assert inv.on_hand == received[inv.sku]  # nothing shipped in this scenario
        assert inv.reserved == reserved_by_lines[inv.sku]
        assert inv.on_hand == inv.available + inv.reserved


@pytest.mark.parametrize("orders", [20_000])
def test_concurrent_reservations_never_oversell(redis_url, orders):
    asyncio.run(_scenario(redis_url, orders))


@pytest.mark.soak
def test_concurrent_reservations_never_oversell_long(redis_url):
    asyncio.run(_scenario(redis_url, 200_000))
