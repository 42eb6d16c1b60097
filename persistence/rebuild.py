"""Rebuild Redis from PostgreSQL when Redis came back without its state.

Every script refuses ("not ready", API 503) while the epoch key is missing.
The rebuild runs under a lock, writes everything the order path reads -
API keys, customers, SKUs with their counters, open orders and orders changed
within the retention, the per-SKU reservation and waiting queues, receipt
references, idempotency and webhook records, the Shopify sync's state,
write-ahead records and recent sales (docs/shopify.md, "After a rebuild"),
the acceptance sequence above PostgreSQL's highest, the SSCC serial counter
above PostgreSQL's highest serial plus a gap - marks every SKU dirty
for channel sync, and writes the epoch last. This is the one writer of pool
state besides the Lua scripts: nothing can change stock while the epoch is
missing, so there is no race.

What a lost Redis disk loses is what the outbox had not yet delivered: if the
epoch alone is gone but the outbox still holds entries, they are drained into
PostgreSQL first.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from redis import Redis
from sqlalchemy import Engine, func, select

from engine.keys import Keys
from persistence.apply import SHOPIFY_APP_STATE
from persistence.models import (ApiKey, Customer, IdempotencyRecord, Order, OrderLine, Receipt,
                                ShopifyPending, ShopifySyncState, ShopifySyncWal, Sku, State,
                                User, WebhookReceipt)

log = logging.getLogger("onhand.rebuild")

#: Lock on the rebuild, milliseconds (renewed while it runs).
LOCK_TTL_MS = 60_000
#: Commands per pipeline round trip.
PIPELINE = 2000
_encode = msgspec.json.Encoder()


@dataclass
class RebuildReport:
    skus: int = 0
    orders: int = 0
    open_lines: int = 0
    customers: int = 0
    api_keys: int = 0
    idempotency_records: int = 0
    webhook_records: int = 0
    shopify_pending: int = 0
    #: Shopify sync: SKU states, write-ahead records to replay, sales held back
    shopify_sync_states: int = 0
    shopify_sync_wal: int = 0
    shopify_held_sales: int = 0
    drained_first: int = 0
    seconds: float = 0.0
    users: int = 0
    warnings: list[str] = field(default_factory=list)


class RebuildBusy(Exception):
    """Raised when another process holds the rebuild lock."""


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class Rebuilder:
    def __init__(self, redis: Redis, engine: Engine, keys: Keys, *,
                 closed_order_retention_ms: int = 24 * 3600 * 1000,
                 progress: Callable[[str, int, int], None] | None = None):
        self.redis = redis
        self.engine = engine
        self.keys = keys
        self.retention_ms = closed_order_retention_ms
        self.progress = progress or (lambda stage, done, total: None)
        self.lock_key = f"{keys.prefix}:rebuild:lock"
        self.token = uuid.uuid4().hex

    def needed(self) -> bool:
        return not self.redis.exists(self.keys.epoch)

    def run(self, *, force: bool = False) -> RebuildReport:
        """Rebuilds when the epoch is missing (or always, with force)."""
        if not self.redis.set(self.lock_key, self.token, nx=True, px=LOCK_TTL_MS):
            raise RebuildBusy("another process is rebuilding")
        try:
            if not force and not self.needed():
                return RebuildReport()
            return self._rebuild()
        finally:
            if self.redis.get(self.lock_key) == self.token.encode():
                self.redis.delete(self.lock_key)

    def _renew(self) -> None:
        self.redis.pexpire(self.lock_key, LOCK_TTL_MS)

    def _rebuild(self) -> RebuildReport:
        started = time.monotonic()
        report = RebuildReport()
        self.redis.delete(self.keys.epoch)
        report.drained_first = self._drain_leftover_outbox()
        self._clear()
        now_ms = int(time.time() * 1000)
        with self.engine.connect() as conn:
            self._records(conn, report, now_ms)
            self._skus_and_orders(conn, report, now_ms)
            self._idempotency(conn, report, now_ms)
            self._receipts(conn)
            self._shopify(conn, report, now_ms)
            self._shopify_sync(conn, report, now_ms)
        from workers.outbox import ensure_group

        ensure_group(self.redis, self.keys)
        # the epoch last: scripts accept work only once everything is in place
        self.redis.set(self.keys.epoch, f"{now_ms}-{uuid.uuid4().hex[:8]}")
        report.seconds = time.monotonic() - started
        log.info("rebuilt Redis from PostgreSQL in %.1f s: %s", report.seconds, report)
        return report

    def _drain_leftover_outbox(self) -> int:
        if not self.redis.exists(self.keys.outbox) or not self.redis.xlen(self.keys.outbox):
            return 0
        from workers.outbox import Drainer

        total = 0
        drainer = Drainer(self.redis, self.engine, self.keys, slot=999,
                          closed_order_retention_ms=self.retention_ms)
        while self.redis.xlen(self.keys.outbox):
            report = drainer.run_for(5.0)
            if report.postgres_down:
                raise RuntimeError("PostgreSQL is unreachable; cannot rebuild")
            total += report.applied
            self._renew()
            self.progress("draining the outbox first", total, total + self.redis.xlen(self.keys.outbox))
            if not report.got_slot:
                time.sleep(0.5)
        return total

    def _clear(self) -> None:
        """Removes what is left of the merchant's state (a half-finished rebuild)."""
        # the deployment's merchant registry sits with the home merchant's keys: not pool state
        keep = {self.lock_key.encode(), f"{self.keys.prefix}:stats".encode(),
                f"{self.keys.prefix}:merchants".encode()}
        batch = []
        for key in self.redis.scan_iter(match=self.keys.pattern(), count=2000):
            if key not in keep:
                batch.append(key)
            if len(batch) >= PIPELINE:
                self.redis.unlink(*batch)
                batch = []
        if batch:
            self.redis.unlink(*batch)

    def _flush(self, pipe, count: list[int]) -> None:
        count[0] += 1
        if count[0] % PIPELINE == 0:
            pipe.execute()
            self._renew()

    def _records(self, conn, report: RebuildReport, now_ms: int) -> None:
        pipe = self.redis.pipeline(transaction=False)
        n = [0]
        m = self.keys.merchant
        for cid, doc, version in conn.execute(select(Customer.id, Customer.doc, Customer.version)
                                              .where(Customer.merchant_id == m)):
            pipe.hset(f"{self.keys.prefix}:d:customer:{cid}",
                      mapping={"doc": _encode.encode(doc), "v": version})
            report.customers += 1
            self._flush(pipe, n)
        # staff users of the web UI (ui/users.py): logging in needs only Redis
        for uid, doc, version in conn.execute(select(User.id, User.doc, User.version)
                                              .where(User.merchant_id == m)):
            pipe.hset(f"{self.keys.prefix}:d:user:{uid}", mapping={"doc": _encode.encode(doc), "v": version})
            report.users += 1
            self._flush(pipe, n)
        for kid, doc, version in conn.execute(select(ApiKey.id, ApiKey.doc, ApiKey.version)
                                              .where(ApiKey.merchant_id == m)):
            if doc is None:
                pipe.hset(f"{self.keys.prefix}:d:api_key:{kid}:gone", "v", version)
            else:
                pipe.hset(f"{self.keys.prefix}:d:api_key:{kid}", mapping={"doc": _encode.encode(doc), "v": version})
                report.api_keys += 1
            self._flush(pipe, n)
        pipe.execute()

    def _skus_and_orders(self, conn, report: RebuildReport, now_ms: int) -> None:
        k = self.keys
        cutoff = datetime.fromtimestamp((now_ms - self.retention_ms) / 1000, tz=UTC)
        # open orders and orders changed within the retention
        open_ids = select(OrderLine.order_id).where(
            OrderLine.merchant_id == k.merchant,
            (OrderLine.reserved + OrderLine.backordered + OrderLine.exception) > 0)
        orders = conn.execute(
            select(Order).where(Order.merchant_id == k.merchant,
                                Order.id.in_(open_ids) | (Order.updated_at >= cutoff)).order_by(Order.seq)
        ).all()
        ids = [o.id for o in orders]
        lines: dict[str, list] = defaultdict(list)
        for i in range(0, len(ids), 5000):
            for line in conn.execute(select(OrderLine).where(OrderLine.merchant_id == k.merchant,
                                                             OrderLine.order_id.in_(ids[i:i + 5000]))
                                     .order_by(OrderLine.order_id, OrderLine.idx)):
                lines[line.order_id].append(line)
        sums: dict[tuple[str, str], int] = defaultdict(int)
        pipe = self.redis.pipeline(transaction=False)
        n = [0]
        max_seq = 0
        for done, o in enumerate(orders, 1):
            max_seq = max(max_seq, o.seq)
            rows = []
            open_units = 0
            for line in lines[o.id]:
                rows.append([line.sku or "", line.quantity, line.reserved, line.backordered, line.exception,
                             line.shipped, line.cancelled, line.returned, line.exception_reason or "",
                             1 if line.pooled else 0])
                open_units += line.reserved + line.backordered + line.exception
                if line.pooled:
                    member = f"{o.id}#{line.idx}"
                    ch = "w" if o.channel == "wholesale" else "d"
                    if line.reserved:
                        pipe.zadd(k.reservations(line.sku), {member: o.seq})
                        sums[(line.sku, "r" + ch)] += line.reserved
                        self._flush(pipe, n)
                    if line.backordered + line.exception:
                        key = k.waiting_wholesale(line.sku) if ch == "w" else k.waiting_dtc(line.sku)
                        pipe.zadd(key, {member: o.seq})
                        sums[(line.sku, "b" + ch)] += line.backordered
                        sums[(line.sku, "ex")] += line.exception
                        self._flush(pipe, n)
                    if line.reserved + line.backordered + line.exception:
                        report.open_lines += 1
            pipe.hset(k.order(o.id), mapping={
                "d": _encode.encode(o.header), "n": o.seq, "c": o.channel, "p": o.backorder_policy,
                "L": _encode.encode(rows), "S": _encode.encode(o.shipments or []),
                "R": _encode.encode(o.returns or []), "v": o.version, "u": _ms(o.updated_at),
            })
            if open_units == 0:
                left = self.retention_ms - (now_ms - _ms(o.updated_at))
                pipe.pexpire(k.order(o.id), max(left, 1000))
            report.orders += 1
            self._flush(pipe, n)
            if done % 10_000 == 0:
                self.progress("orders", done, len(orders))
        pipe.execute()
        self.progress("orders", len(orders), len(orders))

        from persistence.apply import highest_sequence

        max_seq = max(max_seq, highest_sequence(conn, k.merchant))
        self.redis.set(k.seq, max_seq)
        from persistence.shipping import SSCC_REBUILD_GAP, highest_serial

        # SSCC serials: above every one PostgreSQL has, and above those a lost
        # Redis may have handed out in the window it loses (the gap)
        self.redis.set(k.sscc, highest_serial(conn, k.merchant) + SSCC_REBUILD_GAP)

        skus = conn.execute(select(Sku).where(Sku.merchant_id == k.merchant)).all()
        for done, sku in enumerate(skus, 1):
            counters = {
                "rd": sums[(sku.sku, "rd")], "rw": sums[(sku.sku, "rw")],
                "bd": sums[(sku.sku, "bd")], "bw": sums[(sku.sku, "bw")], "ex": sums[(sku.sku, "ex")],
            }
            stored = {"rd": sku.reserved_dtc, "rw": sku.reserved_wholesale, "bd": sku.backordered_dtc,
                      "bw": sku.backordered_wholesale, "ex": sku.exception}
            if counters != stored:
                report.warnings.append(f"SKU {sku.sku}: stored counters {stored} differ from its open "
                                       f"lines {counters}; using the lines")
            if sku.on_hand < counters["rd"] + counters["rw"]:
                report.warnings.append(f"SKU {sku.sku}: on hand {sku.on_hand} below reserved")
            pipe.hset(k.sku(sku.sku), mapping={
                "oh": sku.on_hand, **counters, "fence": sku.dtc_reserve, "v": sku.version,
                "m": _encode.encode(sku.details or {}),
            })
            created = sku.created_at or sku.updated_at
            pipe.zadd(k.skus, {sku.sku: _ms(created) if created else 0})
            pipe.sadd(k.dirty, sku.sku)
            report.skus += 1
            self._flush(pipe, n)
            if done % 10_000 == 0:
                self.progress("skus", done, len(skus))
        pipe.execute()
        self.progress("skus", len(skus), len(skus))

    def _idempotency(self, conn, report: RebuildReport, now_ms: int) -> None:
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        pipe = self.redis.pipeline(transaction=False)
        n = [0]
        m = self.keys.merchant
        rows = conn.execute(select(IdempotencyRecord).where(IdempotencyRecord.merchant_id == m,
                                                            IdempotencyRecord.expires_at > now,
                                                            IdempotencyRecord.result != ""))
        for rec in rows:
            key = self.keys.idempotency(rec.op_id)
            record = {"f": rec.fingerprint, "r": rec.result}
            if rec.extra_fills:
                record.update(x=rec.extra_fills, n=rec.extra_n)
            pipe.hset(key, mapping=record)
            pipe.pexpire(key, max(1, _ms(rec.expires_at) - now_ms))
            report.idempotency_records += 1
            self._flush(pipe, n)
        hooks = conn.execute(select(WebhookReceipt).where(WebhookReceipt.merchant_id == m,
                                                          WebhookReceipt.expires_at > now))
        for hook in hooks:
            key = f"{self.keys.prefix}:wh:{hook.dedupe_key}"
            pipe.set(key, hook.result or "{}", px=max(1, _ms(hook.expires_at) - now_ms))
            report.webhook_records += 1
            self._flush(pipe, n)
        pipe.execute()

    def _shopify(self, conn, report: RebuildReport, now_ms: int) -> None:
        """Shopify cancels and refunds still waiting for their order (those whose
        order PostgreSQL has were applied by the script that accepted it), in
        arrival order; and the app's uninstalled state."""
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        m = self.keys.merchant
        seen = select(Order.shopify_order_id).where(Order.merchant_id == m, Order.shopify_order_id.is_not(None))
        rows = conn.execute(
            select(ShopifyPending).where(ShopifyPending.merchant_id == m, ShopifyPending.expires_at > now,
                                         ShopifyPending.shopify_order_id.not_in(seen))
            .order_by(ShopifyPending.received_at, ShopifyPending.key)).all()
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            key = f"{self.keys.prefix}:shp:pend:{row.shopify_order_id}"
            pipe.rpush(key, _encode.encode(row.action))
            pipe.pexpire(key, max(1, _ms(row.expires_at) - now_ms))
            report.shopify_pending += 1
        app = conn.scalar(select(State.value).where(State.merchant_id == m, State.key == SHOPIFY_APP_STATE))
        if app and msgspec.json.decode(app).get("installed") is False:
            pipe.set(f"{self.keys.prefix}:shopify:app", "uninstalled")
        pipe.execute()

    def _shopify_sync(self, conn, report: RebuildReport, now_ms: int) -> None:
        """The available sync's state as PostgreSQL has it (docs/shopify.md,
        "After a rebuild"): per SKU the count (owed = balance - pushed, seen =
        0: the balance is owed + pushed - seen) and the settle of its newest
        commit; the write-ahead records of writes whose commit PostgreSQL
        lacks (the sync replays them first, with their idempotency key); and
        Shopify sales received within SALE_HOLD_MS, held back as if their 200
        had never been sent (Shopify may not have read it)."""
        from api.webhooks import SALE_HOLD_MS

        p = self.keys.prefix
        pipe = self.redis.pipeline(transaction=False)
        n = [0]
        t = ShopifySyncState
        m = self.keys.merchant
        rows = conn.execute(select(t.sku, t.pushed, t.balance, t.gen, t.lineage, t.settle, t.pushed_at).where(
            t.merchant_id == m, t.pushed.is_not(None), t.sku.in_(select(Sku.sku).where(Sku.merchant_id == m))))
        for row in rows:
            fields = {"p": row.pushed, "o": row.balance - row.pushed, "w": 0, "g": row.gen,
                      "l": row.lineage}
            if row.pushed_at is not None:
                fields["pt"] = _ms(row.pushed_at)
            if row.settle and row.settle.get("u") is not None:
                st = row.settle
                fields.update(b=int(st["u"]), bq=1 if st.get("q") else 0, bs=int(st.get("s") or 0),
                              bg=int(st.get("g") or 0))
                if st.get("m"):
                    fields["bm"] = st["m"]
            pipe.hset(f"{p}:sy:{row.sku}", mapping=fields)
            report.shopify_sync_states += 1
            self._flush(pipe, n)
        for key, record in conn.execute(select(ShopifySyncWal.key, ShopifySyncWal.record)
                                        .where(ShopifySyncWal.merchant_id == m)
                                        .order_by(ShopifySyncWal.created_at, ShopifySyncWal.key)):
            pipe.hset(f"{p}:sync:wal", key, _encode.encode({**record, "restored": True}))
            report.shopify_sync_wal += 1
            self._flush(pipe, n)
        since = datetime.fromtimestamp((now_ms - SALE_HOLD_MS) / 1000, tz=UTC)
        received = (select(WebhookReceipt.shopify_order_id.label("sid"),
                           func.min(WebhookReceipt.received_at).label("at"))
                    .where(WebhookReceipt.merchant_id == m, WebhookReceipt.topic == "orders/create",
                           WebhookReceipt.received_at > since,
                           WebhookReceipt.shopify_order_id.is_not(None))
                    .group_by(WebhookReceipt.shopify_order_id).subquery())
        sold = conn.execute(
            select(received.c.sid, received.c.at, OrderLine.sku, func.sum(OrderLine.quantity))
            .join(Order, (Order.merchant_id == m) & (Order.shopify_order_id == received.c.sid))
            .join(OrderLine, (OrderLine.merchant_id == m) & (OrderLine.order_id == Order.id))
            .where(OrderLine.sku.is_not(None), OrderLine.sku != "")
            .group_by(received.c.sid, received.c.at, OrderLine.sku))
        for sid, at, sku, units in sold:
            until = _ms(at) + SALE_HOLD_MS
            pipe.zadd(f"{p}:syr:{sku}", {f"{sid}:{int(units)}": until})
            pipe.pexpire(f"{p}:syr:{sku}", max(1, until - now_ms) + 60_000)
            report.shopify_held_sales += 1
            self._flush(pipe, n)
        pipe.execute()

    def _receipts(self, conn) -> None:
        refs = conn.execute(select(Receipt.reference, Receipt.id).where(
            Receipt.merchant_id == self.keys.merchant, Receipt.reference.is_not(None))).all()
        for i in range(0, len(refs), PIPELINE):
            chunk = refs[i:i + PIPELINE]
            self.redis.hset(self.keys.receipt_refs, mapping={ref: rid for ref, rid in chunk})


def rebuild_where_needed(redis: Redis, engine: Engine, home: str, *,
                         closed_order_retention_ms: int = 24 * 3600 * 1000,
                         progress: Callable[[str, int, int], None] | None = None,
                         ) -> list[tuple[str, RebuildReport]]:
    """Every merchant of the deployment whose Redis state is gone (no epoch)
    is rebuilt from PostgreSQL, and the merchant registry restored when it is
    missing. Returns (merchant, report) for each merchant rebuilt."""
    from persistence import merchants

    with engine.connect() as conn:
        every = merchants.ids(conn, home)
        if len(every) > 1 and not redis.exists(merchants.registry_key(home)):
            log.info("the merchant registry is gone from Redis: restored %d merchants from PostgreSQL",
                     merchants.restore_registry(conn, redis, home))
    done = []  # (the registry is not pool state: a rebuild of the home merchant keeps it)
    for merchant in every:
        rebuilder = Rebuilder(redis, engine, Keys(merchant), closed_order_retention_ms=closed_order_retention_ms,
                              progress=progress)
        if rebuilder.needed():
            log.info("Redis holds no state for merchant %s: rebuilding it from PostgreSQL", merchant)
            done.append((merchant, rebuilder.run()))
    return done
