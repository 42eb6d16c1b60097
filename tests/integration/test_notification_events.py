"""Customer-facing events come from the outbox apply, in its transaction:
applying the outbox twice, in any batch order, yields the same events and the
same queued deliveries; each change yields exactly the events it means."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime

import msgspec
from sqlalchemy import create_engine, insert, text

from engine.commands import (
    CancelOrder,
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
from notifications.events import EVENT_TYPES
from persistence.apply import OutboxEntry, apply_batch
from persistence.models import WebhookEndpoint
from persistence.notifications import emit
from tests.conftest import ready_store


def _op(n) -> Op:
    return Op(op_id=f"n-{n}-{time.monotonic_ns()}", now_ms=1_800_000_000_000 + n, actor="test")


async def _history(redis_url: str) -> tuple[str, list[OutboxEntry], dict]:
    """Orders of two customers under several policies, with fills, shipments,
    cancels, a return and a count that takes units back."""
    store = await ready_store(redis_url)
    rng = random.Random(3)
    expect: Counter = Counter()
    for sku in ("A", "B"):
        await store.run(PutSku(sku=sku), _op(0))
    await store.run(ReceiveStock(receipt_id="r0", lines=(SkuQty(sku="A", qty=6), SkuQty(sku="B", qty=6))), _op(1))
    orders = []
    for n in range(24):
        oid = f"o{n}"
        doc = msgspec.json.encode({"customer_id": f"c{n % 2}", "po_number": f"PO-{n}"}).decode()
        policy = "cancel_remainder" if n % 5 == 0 else "backorder"
        lines = tuple(OrderLineRequest(sku=s, qty=rng.randint(1, 3)) for s in rng.sample(["A", "B"], rng.randint(1, 2)))
        await store.run(PlaceOrder(order_id=oid, channel="wholesale", policy=policy, lines=lines, doc=doc), _op(n))
        orders.append(oid)
        expect["order.created"] += 1
        if n % 6 == 5:
            await store.run(ReceiveStock(receipt_id=f"r{n}", lines=(SkuQty(sku="A", qty=4),)), _op(n))
        if n % 7 == 6:
            await store.run(CancelOrder(order_id=orders[n - 2]), _op(n))
    for oid in orders[:6]:
        order = await store.order(oid)
        for line in order.lines:
            if line.reserved:
                await store.run(ShipOrder(order_id=oid, shipment={"id": f"s{oid}{line.sku}", "method": "parcel",
                                                                  "tracking_number": f"T{oid}"},
                                          lines=(SkuQty(sku=line.sku, qty=line.reserved),)), _op(90))
                expect["order.shipped"] += 1
    shipped_orders = [o for o in [await store.order(oid) for oid in orders[:6]] if any(l.shipped for l in o.lines)]
    shipped = shipped_orders[0].id
    line = next(l for l in shipped_orders[0].lines if l.shipped)
    await store.run(ReturnUnits(return_id="ret1", order_id=shipped,
                                lines=(ReturnLineRequest(sku=line.sku, qty=1, restock=True),)), _op(95))
    expect["return.received"] += 1
    # the newest reservation of B is a cancel_remainder order's: a count to 0 cancels it
    await store.run(ReceiveStock(receipt_id="rB", lines=(SkuQty(sku="B", qty=50),)), _op(96))
    await store.run(PlaceOrder(order_id="last", channel="wholesale", policy="cancel_remainder",
                               lines=(OrderLineRequest(sku="B", qty=2),),
                               doc=msgspec.json.encode({"customer_id": "c0", "po_number": "PO-L"}).decode()),
                    _op(97))
    expect["order.created"] += 1
    await store.run(CountStock(sku="B", on_hand=0), _op(98))
    raw = await store.redis.xrange(store.keys.outbox)
    merchant = store.keys.merchant
    await store.redis.aclose()
    return merchant, [OutboxEntry.from_stream(eid, f) for eid, f in raw], expect


def _events(engine) -> tuple[list, list]:
    with engine.connect() as conn:
        events = conn.execute(text(
            "select id, type, order_id, customer_id, po_number, entry_id, rank, payload "
            "from notification_events order by id")).all()
        deliveries = conn.execute(text(
            "select endpoint_id, event_id, event_type, order_id, entry_ms, entry_seq, rank, status "
            "from webhook_deliveries order by endpoint_id, event_id")).all()
    return events, deliveries


def _without_invoice_numbers(found):
    events, deliveries = found
    out = []
    for e in events:
        payload = e.payload
        if e.type == "invoice.created":
            payload = {**payload, "invoice": {k: v for k, v in payload["invoice"].items() if k != "number"}}
        out.append((*e[:-1], payload))
    return out, deliveries


def _endpoint(merchant: str, eid: str, customer: str | None, types: list[str]) -> dict:
    now = datetime.now(UTC)
    return {"id": eid, "merchant_id": merchant, "customer_id": customer, "url": "http://127.0.0.1:9/",
            "event_types": types, "secret": "whsec_dGVzdA==", "enabled": True, "created_by": "test",
            "created_at": now, "updated_at": now}


def test_events_and_deliveries_do_not_depend_on_batches_or_repeats(redis_url, database_url):
    merchant, entries, expect = asyncio.run(_history(redis_url))
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(insert(WebhookEndpoint), [
            _endpoint(merchant, "we_all", None, list(EVENT_TYPES)),
            _endpoint(merchant, "we_c0", "c0", ["order.created", "order.shipped"]),
            _endpoint("another", "we_other", None, list(EVENT_TYPES))])
    # Given the outbox applied once, in order
    with engine.begin() as conn:
        for i in range(0, len(entries), 9):
            apply_batch(conn, entries[i:i + 9], merchant=merchant)
    events, deliveries = _events(engine)

    # Then each change yields the events it means, each once
    kinds = Counter(e.type for e in events)
    for type_, n in expect.items():
        assert kinds[type_] == n, (type_, kinds)
    assert kinds["order.backorder_filled"] > 0 and kinds["order.cancelled"] > 0
    assert all(e.po_number == e.payload["order"]["po_number"] for e in events)
    # a count that took reserved units back from cancel_remainder orders cancels them
    assert any(e.payload.get("reason") == "stock_count" for e in events if e.type == "order.cancelled")
    # the merchant-wide endpoint gets every event, the customer's only its own
    # of the types it chose, the other merchant's endpoint nothing
    by_endpoint = Counter(d.endpoint_id for d in deliveries)
    assert by_endpoint["we_all"] == len(events)
    assert by_endpoint["we_c0"] == sum(1 for e in events if e.customer_id == "c0"
                                       and e.type in ("order.created", "order.shipped"))
    assert "we_other" not in by_endpoint

    # When the same entries are applied again, shuffled, in other batches, three times
    with engine.begin() as conn:
        conn.execute(text("truncate skus, orders, order_lines, inventory_ledger, shipments, returns, receipts, "
                          "applied_events, idempotency_records, notification_events, webhook_deliveries, "
                          "email_deliveries, invoices, edi_counters cascade"))
    rng = random.Random(8)
    for _ in range(3):
        shuffled = entries[:]
        rng.shuffle(shuffled)
        for i in range(0, len(shuffled), 4):
            with engine.begin() as conn:
                apply_batch(conn, shuffled[i:i + 4], merchant=merchant)
    # Then the events and deliveries are exactly the same (but for invoice
    # numbers: issue 12 numbers invoices in the order shipments reach PostgreSQL)
    assert _without_invoice_numbers(_events(engine)) == _without_invoice_numbers((events, deliveries))

    # and an event emitted by another apply step is idempotent too, and queued
    entry = entries[-1]
    with engine.begin() as conn:
        first = emit(conn, merchant, "invoice.created", "o1", "c1", "PO-1", {"invoice": {"id": "inv1"}}, entry.id)
        again = emit(conn, merchant, "invoice.created", "o1", "c1", "PO-1", {"invoice": {"id": "inv1"}}, entry.id)
    assert first == again
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from webhook_deliveries where event_id = :e"),
                            {"e": first}).scalar() == 1  # we_all only: c1 is not we_c0's customer
    engine.dispose()
