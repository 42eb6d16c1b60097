"""Model-based test: the real Lua scripts on a real Redis against the plain
Python reference model in tests/model/pool.py.

Hypothesis drives random sequences of every operation (reserve under each
policy with the ring-fence, cancel, ship, count, adjust, receive, return,
repeats of an operation id, reuse of an id with another body, malformed
commands) and after every step checks that Redis and the model agree and that
the pool's invariants hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import defaultdict

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from redis.asyncio import Redis

from engine.commands import (
    AdjustStock,
    CancelLine,
    CancelOrder,
    Command,
    CountStock,
    Op,
    OrderLineRequest,
    PlaceOrder,
    PutSku,
    ReceiveStock,
    ReturnLineRequest,
    ReturnUnits,
    ShipOrder,
    SkuQty,
)
from engine.errors import (
    Conflict,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidCommand,
    NotFound,
)
from engine.model import as_list, order_from_snapshot
from engine.store import Store
from tests.conftest import drop_merchant
from tests.model.pool import Pool, Refused
from tests.servers import new_merchant

SKUS = ["A", "B", "C"]
POLICIES = ["backorder", "ship_complete", "cancel_remainder", "all_or_nothing", "accept"]
REFS = ["R1", "R2", "R3", "R4"]
NOW = 1_800_000_000_000


def outcome_of(exc: Exception) -> str:
    return {
        InsufficientStock: "insufficient_stock",
        Conflict: "conflict",
        NotFound: "not_found",
        InvalidCommand: "invalid",
        IdempotencyKeyReused: "idempotency_key_reused",
    }.get(type(exc), repr(exc))


class PoolMachine(RuleBasedStateMachine):
    redis_url: str = ""
    fill_limit: int = 1000

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.redis = Redis.from_url(self.redis_url)
        self.store = Store(self.redis, new_merchant(), fill_limit=self.fill_limit)
        self.runner.run(self.store.start())
        self.runner.run(self.redis.set(self.store.keys.epoch, "test"))
        self.model = Pool()
        self.accepted = 0  # operations the model accepted: one outbox event each
        self.stored: list[tuple[Op, Command, dict | str]] = []  # replayable outcomes
        self.clock = NOW

    def teardown(self) -> None:
        self.runner.run(drop_merchant(self.redis, self.store))
        self.runner.run(self.redis.aclose())
        self.runner.close()

    # ------------------------------------------------------------ driving

    def _op(self, idempotent: bool, cmd: Command) -> Op:
        self.clock += 1000
        if not idempotent:
            return Op(op_id=uuid.uuid4().hex, now_ms=self.clock, actor="model")
        fp = hashlib.sha256(msgspec.json.encode(cmd.payload())).hexdigest()
        return Op(op_id=uuid.uuid4().hex, now_ms=self.clock, actor="model",
                  fingerprint=fp, idempotency_ttl_ms=3_600_000)

    def _run(self, cmd: Command, model_call, idempotent: bool):
        """Runs the command on both sides; checks they agree on the outcome and
        on the fills (per SKU, in order)."""
        op = self._op(idempotent, cmd)
        expected = None
        try:
            model_result = model_call()
            expected = "ok"
        except Refused as refused:
            expected = refused.code
            model_result = refused
        try:
            result = self.runner.run(self.store.run(cmd, op))
            got = "ok"
        except Exception as exc:  # noqa: BLE001 - compared below
            got = outcome_of(exc)
            result = None
        assert got == expected, f"{cmd!r}: redis {got}, model {expected}"
        if got == "ok":
            self.accepted += 1
            fills = [(f["sku"], f["order_id"], f["line"], f["units"])
                     for f in result.fills + result.later_fills]
            assert _per_sku(fills) == _per_sku(self.model.fills), (fills, self.model.fills)
        if idempotent and got in ("ok", "insufficient_stock", "conflict"):
            self.stored.append((op, cmd, result.data if result else got))
        return result, model_result

    # ------------------------------------------------------------ rules

    @initialize()
    def create_skus(self) -> None:
        for sku in SKUS:
            self._run(PutSku(sku=sku), lambda s=sku: self.model.put_sku(s, None), False)

    @rule(sku=st.sampled_from(SKUS), fence=st.integers(0, 6), idem=st.booleans())
    def set_ring_fence(self, sku, fence, idem):
        self._run(PutSku(sku=sku, dtc_reserve=fence),
                  lambda: self.model.put_sku(sku, fence), idem)

    @rule(
        target=orders,
        channel=st.sampled_from(["dtc", "wholesale"]),
        policy=st.sampled_from(POLICIES),
        lines=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=4),
        idem=st.booleans(),
    )
    def reserve(self, channel, policy, lines, idem):
        if policy == "accept" and channel == "wholesale":
            policy = "backorder"
        oid = "o" + uuid.uuid4().hex[:10]
        cmd = PlaceOrder(order_id=oid, channel=channel, policy=policy,
                         lines=tuple(OrderLineRequest(sku=s, qty=q) for s, q in lines))
        result, _ = self._run(cmd, lambda: self.model.reserve(oid, channel, policy, lines), idem)
        return multiple(oid) if result is not None else multiple()

    @rule(sku=st.sampled_from(SKUS), qty=st.integers(1, 12),
          ref=st.one_of(st.none(), st.sampled_from(REFS)), idem=st.booleans())
    def receive(self, sku, qty, ref, idem):
        cmd = ReceiveStock(receipt_id="r" + uuid.uuid4().hex[:8], reference=ref,
                           lines=(SkuQty(sku=sku, qty=qty),))
        self._run(cmd, lambda: self.model.receive(ref, [(sku, qty)]), idem)

    @rule(oid=orders, data=st.data(), idem=st.booleans())
    def cancel(self, oid, data, idem):
        order = self.model.orders[oid]
        if data.draw(st.booleans(), label="whole"):
            cmd, want = CancelOrder(order_id=oid), None
        else:
            sku = data.draw(st.sampled_from([line.sku for line in order.lines] + ["C"]), label="sku")
            qty = data.draw(st.integers(1, 4), label="qty")
            cmd, want = CancelOrder(order_id=oid, lines=(CancelLine(sku=sku, qty=qty),)), [(sku, qty)]
        self._run(cmd, lambda: self.model.cancel(oid, want), idem)

    @rule(oid=orders, data=st.data(), idem=st.booleans())
    def ship(self, oid, data, idem):
        order = self.model.orders[oid]
        sku = data.draw(st.sampled_from([line.sku for line in order.lines]), label="sku")
        qty = data.draw(st.integers(1, 4), label="qty")
        cmd = ShipOrder(order_id=oid, shipment={"id": "s" + uuid.uuid4().hex[:8], "method": "parcel"},
                        lines=(SkuQty(sku=sku, qty=qty),))
        self._run(cmd, lambda: self.model.ship(oid, [(sku, qty)]), idem)

    @rule(sku=st.sampled_from(SKUS), on_hand=st.integers(0, 14),
          stale=st.sampled_from([None, 0, 1]), idem=st.booleans())
    def count(self, sku, on_hand, stale, idem):
        expected = None if stale is None else self.model.skus[sku].oh + stale
        cmd = CountStock(sku=sku, on_hand=on_hand, expected_on_hand=expected)
        self._run(cmd, lambda: self.model.count(sku, on_hand, expected), idem)

    @rule(sku=st.sampled_from(SKUS), delta=st.integers(-6, 6).filter(bool), idem=st.booleans())
    def adjust(self, sku, delta, idem):
        cmd = AdjustStock(sku=sku, delta=delta, reason="damage" if delta < 0 else "found")
        self._run(cmd, lambda: self.model.adjust(sku, delta), idem)

    @rule(oid=orders, data=st.data(), idem=st.booleans())
    def return_units(self, oid, data, idem):
        order = self.model.orders[oid]
        sku = data.draw(st.sampled_from([line.sku for line in order.lines]), label="sku")
        qty = data.draw(st.integers(1, 3), label="qty")
        restock = data.draw(st.booleans(), label="restock")
        cmd = ReturnUnits(return_id="ret" + uuid.uuid4().hex[:8], order_id=oid,
                          lines=(ReturnLineRequest(sku=sku, qty=qty, restock=restock),))
        self._run(cmd, lambda: self.model.return_units(oid, [(sku, qty, restock)]), idem)

    @precondition(lambda self: self.stored)
    @rule(data=st.data())
    def repeat_operation(self, data):
        """The same operation id and body again: the first result, no change."""
        op, cmd, first = data.draw(st.sampled_from(self.stored), label="earlier")
        before = self._state()
        try:
            result = self.runner.run(self.store.run(cmd, op))
            assert result.replayed
            assert result.data == first
        except Exception as exc:  # noqa: BLE001
            assert outcome_of(exc) == first
        assert self._state() == before

    @precondition(lambda self: self.stored)
    @rule(data=st.data())
    def reuse_operation_id(self, data):
        """The same operation id with another body: refused, no change."""
        op, _, _ = data.draw(st.sampled_from(self.stored), label="earlier")
        other = ReceiveStock(receipt_id="rx" + uuid.uuid4().hex[:6], lines=(SkuQty(sku="A", qty=1),))
        other_op = Op(op_id=op.op_id, now_ms=op.now_ms, actor="model", fingerprint="another-body",
                      idempotency_ttl_ms=op.idempotency_ttl_ms)
        before = self._state()
        with pytest.raises(IdempotencyKeyReused):
            self.runner.run(self.store.run(other, other_op))
        assert self._state() == before

    # ------------------------------------------------------------ checks

    def _state(self):
        async def read():
            skus = {sku: await self.redis.hgetall(self.store.keys.sku(sku)) for sku in SKUS}
            orders = {}
            for oid in self.model.orders:
                orders[oid] = await self.redis.hgetall(self.store.keys.order(oid))
            return skus, orders, await self.redis.xlen(self.store.keys.outbox)
        return self.runner.run(read())

    @invariant()
    def redis_agrees_with_model(self):
        inventory = self.runner.run(self.store.inventory(SKUS))
        for sku, inv in zip(SKUS, inventory, strict=True):
            if sku not in self.model.skus:
                continue
            m = self.model.skus[sku]
            got = (inv.on_hand, inv.reserved_dtc, inv.reserved_wholesale, inv.backordered_dtc,
                   inv.backordered_wholesale, inv.exception, inv.dtc_reserve)
            assert got == (m.oh, m.rd, m.rw, m.bd, m.bw, m.ex, m.fence), (sku, got, m)
            assert inv.available >= 0
            assert inv.on_hand == inv.available + inv.reserved
        assert self.model.wholesale_fill_breaches == 0
        for oid, mo in self.model.orders.items():
            order = self.runner.run(self.store.order(oid))
            got = [(l.sku or "", l.quantity, l.reserved, l.backordered, l.exception, l.shipped,
                    l.cancelled, l.returned) for l in order.lines]
            want = [(l.sku, l.qty, l.res, l.bo, l.exc, l.ship, l.canc, l.ret) for l in mo.lines]
            assert got == want, (oid, got, want)

    @invariant()
    def counters_match_open_lines(self):
        """reserved / backordered / exception per SKU and channel are the sums of
        the open order lines, and the per-SKU queues hold exactly those lines."""
        sums = defaultdict(int)
        res_members, wait_members = defaultdict(set), defaultdict(set)
        for oid in self.model.orders:
            order = self.runner.run(self.store.order(oid))
            ch = order.channel.value
            for i, line in enumerate(order.lines):
                if not line.pooled:
                    continue
                sums[(line.sku, "res", ch)] += line.reserved
                sums[(line.sku, "bo", ch)] += line.backordered
                sums[(line.sku, "exc")] += line.exception
                if line.reserved:
                    res_members[line.sku].add(f"{oid}#{i}")
                if line.backordered + line.exception:
                    wait_members[(line.sku, ch)].add(f"{oid}#{i}")
        for sku, inv in zip(SKUS, self.runner.run(self.store.inventory(SKUS)), strict=True):
            assert inv.reserved_dtc == sums[(sku, "res", "dtc")]
            assert inv.reserved_wholesale == sums[(sku, "res", "wholesale")]
            assert inv.backordered_dtc == sums[(sku, "bo", "dtc")]
            assert inv.backordered_wholesale == sums[(sku, "bo", "wholesale")]
            assert inv.exception == sums[(sku, "exc")]
            keys = self.store.keys
            r = self.runner.run(self.redis.zrange(keys.reservations(sku), 0, -1))
            assert {m.decode() for m in r} == res_members[sku]
            wd = self.runner.run(self.redis.zrange(keys.waiting_dtc(sku), 0, -1))
            ww = self.runner.run(self.redis.zrange(keys.waiting_wholesale(sku), 0, -1))
            assert {m.decode() for m in wd} == wait_members[(sku, "dtc")]
            assert {m.decode() for m in ww} == wait_members[(sku, "wholesale")]

    @invariant()
    def outbox_has_one_event_per_accepted_operation(self):
        entries = self.runner.run(self.redis.xrange(self.store.keys.outbox))
        events = [msgspec.json.decode(fields[b"e"]) for _, fields in entries]
        own = [e for e in events if e["t"] != "stock.filled"]  # continuations of a fill
        assert len(own) == self.accepted
        assert len({e["op"] for e in own}) == len(own)
        # The ledger in the events adds up to the counters.
        totals = defaultdict(int)
        for e in events:
            for sku, _oid, _why, doh, drd, drw, dbd, dbw, dex, _units in as_list(e["ledger"]):
                for name, d in zip(("oh", "rd", "rw", "bd", "bw", "ex"), (doh, drd, drw, dbd, dbw, dex)):
                    totals[(sku, name)] += d
        for sku, m in self.model.skus.items():
            for name in ("oh", "rd", "rw", "bd", "bw", "ex"):
                assert totals[(sku, name)] == getattr(m, name), (sku, name)
        # Each event's order snapshots decode, and the newest matches Redis.
        newest = {}
        for e in events:
            for snap in as_list(e["orders"]):
                newest[snap["id"]] = order_from_snapshot(snap)
        for oid, order in newest.items():
            assert self.runner.run(self.store.order(oid)).version == order.version


def _per_sku(fills):
    by = defaultdict(list)
    for sku, oid, line, units in fills:
        by[sku].append((oid, line, units))
    return dict(by)


def _machine(redis_url: str, fill_limit: int):
    return type(f"PoolMachine{fill_limit}", (PoolMachine,),
                {"redis_url": redis_url, "fill_limit": fill_limit})


MODEL_SETTINGS = settings(max_examples=30, stateful_step_count=40, deadline=None,
                          suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("fill_limit", [1000, 2], ids=["one-call-fills", "fills-continue"])
def test_scripts_agree_with_the_model(redis_url, fill_limit):
    machine = _machine(redis_url, fill_limit)
    machine.TestCase.settings = MODEL_SETTINGS
    machine.TestCase().runTest()


@pytest.mark.soak
def test_scripts_agree_with_the_model_long(redis_url):
    machine = _machine(redis_url, 2)
    machine.TestCase.settings = settings(MODEL_SETTINGS, max_examples=1000, stateful_step_count=80)
    machine.TestCase().runTest()
