"""Pushes onhand's available to Shopify (inventorySetQuantities), coalesced.

Every stock script marks the SKUs it touched dirty; one sync worker at a time
(a slot lock) takes up to 250 dirty SKUs per round, reads onhand's available
and the sync state in one script (lua/shopify_sync_read.lua), reads Shopify's
quantities in one query, and writes the ones that differ in one
``inventorySetQuantities`` with ``changeFromQuantity`` (compare-and-set) and
an ``@idempotent`` key. A thousand reservations of one SKU between two rounds
are one write.

Never handing back units Shopify sold that onhand has not seen
----------------------------------------------------------------
Shopify lowers its own available at each sale before the webhook reaches
onhand, and raises it at its own restocks. Per SKU the intake scripts keep,
atomically with the reservation:

- ``pushed``: Shopify's quantity right after our last accepted write;
- ``owed``: what Shopify had sold (net of restocks) that onhand had not yet
  heard of at that moment;
- ``seen``: what Shopify sold minus restocked, by webhooks onhand received
  since then (whenever the sale itself happened).

Reading Shopify's quantity ``now`` (then onhand's available and ``seen``
once more, so a webhook that landed meanwhile counts on both sides), what
Shopify has sold that onhand has not heard of is
``unseen = owed + (pushed - now) - seen``: the sales Shopify has
made since ``pushed`` show as ``pushed - now``, and each webhook received
since takes its units out, whether it was for a sale before the write (part
of ``owed``) or after it. The write is ``available - max(0, unseen)`` with
``changeFromQuantity: now``: if Shopify sold anything between the read and
the write, the compare fails and the round re-reads (a sale can never slip
between the two). Committing the write sets ``owed = unseen`` as of the
commit (lua/shopify_sync_commit.lua counts the webhooks that landed while the
write was in flight), so the bookkeeping stays exact however late or out of
order the webhooks come. ``unseen`` may be negative (a restock Shopify made
whose webhook has not come): the write then does not raise Shopify above
onhand's available, and the count stays exact, so it evens out when the
webhook lands.

A sale onhand has received is still held back, as if unseen, until Shopify
has surely read our 200 for it: until the 200 has been sent plus
``shopify_sale_ack_window_ms`` (api/webhooks.py), or at most
SALE_HOLD_MS if it never is. Until then Shopify itself counts the sale as
not delivered, and a write must not show it more than it knows onhand was
told. A SKU whose quantity on Shopify already lies between that cautious
value and the exact one is left alone (Shopify is not showing anything
onhand lacks) and checked again when the hold ends.

The sync state reaches PostgreSQL through the outbox (the intake's events
and lua/shopify_sync_commit.lua's ``shopify.synced``: each SKU's change of
``owed + pushed - seen``), and a rebuilt Redis gets it back
(persistence/rebuild.py), so a rebuild does not make SKUs start over.

The first push of a SKU that has no state (never pushed) cannot know what is
in flight: it takes nothing as in flight, never raises Shopify, and the SKU
then *settles* (decide()): no raise, and Shopify's shortfall against onhand
at the first push held back as if in flight, until a window of
FIRST_PUSH_SETTLE_MS passes in which Shopify did not move on its own; then
every sale before the window has landed (the one assumption: a webhook lands
within a window) and the count starts again from Shopify's quantity (a
rebase: the webhooks counted since the first push were for sales that
quantity already showed). A settle that finds no quiet window within
SETTLE_MAX_MS ends as it is (docs/shopify.md, "Limits").

A write Shopify may have applied without us hearing the answer (crash, lost
connection) is kept in a write-ahead record and replayed with the same
idempotency key before anything else: Shopify answers the first result, so
the commit happens exactly once. The record is also written to PostgreSQL
(``shopify_sync_wal``) before the write, and forgotten there when the
commit's event is applied: a Redis lost before that event reached
PostgreSQL gets the record back from the rebuild and replays it, so a write
is never lost from the count. While PostgreSQL cannot take the record, only
writes that lower Shopify are made (losing one of those only holds back
more); raises wait.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis import Redis
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import NotReady
from engine.keys import Keys
from engine.shopify import numeric_id
from workers.outbox import call_function
from workers.shopify_client import (
    ShopifyClient,
    ShopifyError,
    ShopifyUnauthorized,
    ShopifyUnavailable,
)

log = logging.getLogger("onhand.shopify.sync")

#: Most quantities in one inventorySetQuantities (Shopify's input array limit).
BATCH = 250
#: Idle poll of the dirty set, seconds.
POLL_S = 0.01
#: A round starts at least this long after the previous one started, seconds:
#: changes arriving meanwhile are coalesced into the next round's one write.
ROUND_INTERVAL_S = 0.25
#: Slot lock lifetime, milliseconds (renewed while the worker runs).
SLOT_TTL_MS = 10_000
#: Re-reads after a stale compare before the SKUs wait for the next round.
STALE_RETRIES = 5
#: A SKU is read from Shopify at least this often when it changes, seconds
#: (otherwise its quantity there is taken to be what onhand already knows,
#: which the compare-and-set proves; this catches edits made on Shopify).
VERIFY_EVERY_S = 60.0
#: Longest wait before a SKU whose sales are held back is looked at again,
#: milliseconds (the API releases a hold sooner, but a release racing the
#: push that scheduled the recheck must not leave the SKU waiting for long).
RECHECK_MAX_MS = 1000
#: How long a SKU Shopify does not know stays unlooked-up, milliseconds.
UNMAPPED_RETRY_MS = 600_000
#: Back-off after Shopify could not be reached, seconds.
UNAVAILABLE_BACKOFF_S = 1.0
#: A window of the settle after a SKU's first push, milliseconds: a webhook is
#: assumed to land within it (see decide()).
FIRST_PUSH_SETTLE_MS = 5_000
#: The longest a settle lasts (windows in which Shopify kept moving), ms.
SETTLE_MAX_MS = 60_000
#: After PostgreSQL refused a write-ahead record, raises wait this long, seconds.
WAL_PG_RETRY_S = 5.0

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()

SET_QUANTITIES = """
mutation SetAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""

LEVELS = """
query Available($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on InventoryLevel { id updatedAt quantities(names: ["available"]) { quantity } }
  }
}
"""

LEVELS_OF_ITEMS = """
query Levels($ids: [ID!]!, $location: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem { id sku inventoryLevel(locationId: $location) { id } }
  }
}
"""

VARIANTS_BY_SKU = """
query Variants($query: String!, $first: Int!, $location: ID!) {
  productVariants(first: $first, query: $query) {
    nodes { sku inventoryItem { id inventoryLevel(locationId: $location) { id } } }
  }
}
"""

PRIMARY_LOCATION = "query Location { location { id } }"


# ---------------------------------------------------------------- the rule


class SkuState(msgspec.Struct, kw_only=True):
    """One SKU as lua/shopify_sync_read.lua read it (at ``read_ms``)."""

    sku: str
    read_ms: int = 0
    available: int
    pushed: int | None = None
    owed: int = 0
    seen: int = 0
    gen: int = 0
    recent: int = 0
    recent_until: int | None = None
    #: While the SKU settles after its first push: when the current window ends, ms.
    settle_until: int | None = None
    #: Shopify has moved only by onhand's writes since the window began.
    settle_quiet: bool = False
    #: When the settle began, ms; and the gap held back while it lasts.
    settle_started: int = 0
    settle_gap: int = 0
    #: When Shopify's level last changed as the window began (its updatedAt).
    settle_mark: str | None = None
    dirty_at: int | None = None
    m: str | None = None


@dataclass(frozen=True)
class Decision:
    #: Shopify's quantity to write; None: leave Shopify as it is.
    quantity: int | None
    #: Units Shopify sold that onhand has not heard of (may be < 0: restocks).
    unseen: int
    #: The exact target and the cautious one (recent sales still held back).
    high: int
    low: int
    #: When to look again (the held-back sales are released), ms; or None.
    recheck_at_ms: int | None
    #: What the commit does with the settle: "start" (first push), "rebase",
    #: "restart", "end" (see lua/shopify_sync_commit.lua), or None.
    settle: str | None = None
    #: For "start" and "restart": when the (new) window ends, ms; for "start"
    #: the gap held back while settling.
    settle_until: int | None = None
    gap: int = 0
    #: While settling: look again when the window ends, ms; or None.
    settle_at_ms: int | None = None


def settle_ended(state: SkuState) -> bool:
    return state.settle_until is not None and state.read_ms >= state.settle_until


def decide(state: SkuState, now: int, mark: str | None = None) -> Decision:
    """What to write for one SKU whose Shopify quantity is ``now`` (its level
    last changed at ``mark``, when Shopify was read).

    A SKU with a state: ``unseen = owed + (pushed - now) - seen`` (module
    docstring). A first push (no state) has no count yet: it takes nothing
    as in flight, and the SKU settles (FIRST_PUSH_SETTLE_MS windows, at most
    SETTLE_MAX_MS): meanwhile Shopify is never raised above ``now``, and
    what Shopify lacked against onhand at the first push (the gap) is held
    back as if in flight, so a write lowering Shopify keeps that gap. A
    window in which Shopify did not move (no write of ours, the level's
    updatedAt and quantity as when it began) ends the settle with a
    rebase: every sale before the window has landed
    (assumed: within one window), so nothing is unseen and the webhooks
    counted since the first push are dropped (they were sales Shopify's
    quantity already showed). Otherwise a new window begins, until
    SETTLE_MAX_MS, when the settle ends as it is.
    """
    first = state.pushed is None
    settle, until, gap = None, None, 0
    if first:
        count, settling, settle = 0, True, "start"
        gap = max(0, state.available - now)
        until = state.read_ms + FIRST_PUSH_SETTLE_MS
    else:
        count = state.owed + (state.pushed - now) - state.seen
        settling = state.settle_until is not None
        until = state.settle_until
        gap = state.settle_gap
        if settling and state.read_ms >= state.settle_until:
            if (state.settle_quiet and now == state.pushed and mark is not None
                    and mark == state.settle_mark):
                count, settling, settle = 0, False, "rebase"
            elif state.read_ms - state.settle_started >= SETTLE_MAX_MS:
                settling, settle = False, "end"
            else:
                settle, until = "restart", state.read_ms + FIRST_PUSH_SETTLE_MS
    unseen = count + (gap if settling else 0)
    high = max(0, state.available - max(0, unseen))
    low = max(0, state.available - max(0, unseen + state.recent))
    settle_at = None
    if settling:
        # a raise the count alone would make, the gap, or a count a rebase
        # would reset (webhooks counted, also those a restart folded into
        # owed) wait for the window's end: look again then (a look within
        # the window must keep that, or the window's end goes unnoticed)
        if (max(0, state.available - max(0, count)) > now or gap or count or state.seen
                or settle == "restart"):
            settle_at = until
        high, low = min(high, now), min(low, now)
    recheck = state.recent_until if low < high else None
    quantity = None if low <= now <= high else low
    return Decision(quantity, unseen, high, low, recheck, settle,
                    until if settle in ("start", "restart") else None, gap, settle_at)


# ---------------------------------------------------------------- mapping


class Target(msgspec.Struct, kw_only=True):
    item: str | None = None
    level: str | None = None
    at: int = 0


def item_gid(value: str | int) -> str | None:
    n = numeric_id(value)
    return None if n is None else f"gid://shopify/InventoryItem/{n}"


class SkuMapping:
    """SKU -> Shopify inventory item and level at the synced location: from
    the SKU's ``shopify_inventory_item_id`` or ONHAND_SHOPIFY_SKU_MAP, else
    looked up by SKU; cached in Redis (P:shopify:map)."""

    def __init__(self, redis: Redis, keys: Keys, client: ShopifyClient, settings):
        self.redis = redis
        self.key = f"{keys.prefix}:shopify:map"
        self.client = client
        self.configured = settings.shopify_sku_map
        self.location_setting = settings.shopify_location_id
        self._location: str | None = None

    def location(self) -> str:
        if self._location is None:
            n = numeric_id(self.location_setting)
            if n is not None:
                self._location = f"gid://shopify/Location/{n}"
            else:
                data = self.client.execute(PRIMARY_LOCATION, cost=1)
                self._location = data["location"]["id"]
        return self._location

    def forget(self, skus: list[str]) -> None:
        if skus:
            self.redis.hdel(self.key, *skus)

    def resolve(self, states: list[SkuState], now_ms: int) -> dict[str, Target]:
        """Targets of the SKUs Shopify has; SKUs it lacks are left out."""
        wanted: dict[str, str | None] = {}
        for s in states:
            details = _decode.decode(s.m) if s.m else {}
            configured = self.configured.get(s.sku) or (
                details.get("shopify_inventory_item_id") if isinstance(details, dict) else None)
            wanted[s.sku] = item_gid(configured) if configured else None
        cached = dict(zip(wanted, self.redis.hmget(self.key, list(wanted)), strict=True)) if wanted else {}
        out: dict[str, Target] = {}
        by_item: dict[str, str] = {}
        by_sku: list[str] = []
        for sku, item in wanted.items():
            raw = cached.get(sku)
            hit = msgspec.json.decode(raw, type=Target) if raw else None
            if hit and (item is None or hit.item == item):
                if hit.level:
                    out[sku] = hit
                    continue
                if now_ms - hit.at < UNMAPPED_RETRY_MS:
                    continue  # Shopify did not have it a moment ago
            if item:
                by_item[item] = sku
            else:
                by_sku.append(sku)
        found: dict[str, Target] = {}
        location = self.location() if (by_item or by_sku) else ""
        items = list(by_item)
        for i in range(0, len(items), 100):
            chunk = items[i:i + 100]
            data = self.client.execute(LEVELS_OF_ITEMS, {"ids": chunk, "location": location},
                                       cost=2 * len(chunk) + 1)
            for node in data.get("nodes") or []:
                if node and node.get("id") in by_item and node.get("inventoryLevel"):
                    found[by_item[node["id"]]] = Target(item=node["id"], level=node["inventoryLevel"]["id"])
        for i in range(0, len(by_sku), 50):
            chunk = by_sku[i:i + 50]
            query = " OR ".join(f'sku:"{sku}"' for sku in chunk)
            first = min(250, 2 * len(chunk))
            data = self.client.execute(VARIANTS_BY_SKU, {"query": query, "first": first,
                                                         "location": location}, cost=3 * first + 2)
            for node in (data.get("productVariants") or {}).get("nodes") or []:
                sku, item = node.get("sku"), node.get("inventoryItem") or {}
                # exact SKU only; a SKU on two variants keeps the first (documented)
                if sku in chunk and sku not in found and item.get("inventoryLevel"):
                    found[sku] = Target(item=item["id"], level=item["inventoryLevel"]["id"])
        fresh = {}
        for sku in [*by_item.values(), *by_sku]:
            target = found.get(sku)
            if target is None:
                fresh[sku] = _encode.encode(Target(at=now_ms))
            else:
                target.at = now_ms
                fresh[sku] = _encode.encode(target)
                out[sku] = target
        if fresh:
            self.redis.hset(self.key, mapping=fresh)
        return out


# ---------------------------------------------------------------- PostgreSQL

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _wal_engine(url: str) -> Engine:
    """One small pool per process for the write-ahead records (fails fast)."""
    from persistence.db import sqlalchemy_url

    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _ENGINES[url] = create_engine(
                sqlalchemy_url(url), pool_size=1, max_overflow=1, pool_pre_ping=True,
                connect_args={"connect_timeout": 1})
        return engine


# ---------------------------------------------------------------- the worker


@dataclass
class SyncReport:
    got_slot: bool = False
    rounds: int = 0
    writes: int = 0
    quantities: int = 0
    stale: int = 0
    unauthorized: bool = False
    #: the app was uninstalled: the slice ended early
    stopped: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class _Push:
    state: SkuState
    target: Target
    now: int
    decision: Decision
    #: When Shopify's level last changed, as read with ``now`` (None: guessed).
    mark: str | None = None
    #: ``seen`` as read before Shopify was read (a rebase drops those webhooks).
    seen_before: int = 0

    def entry(self, key: str, *, wrote: bool) -> dict[str, Any]:
        s, d = self.state, self.decision
        out = {"sku": s.sku, "gen": s.gen, "pushed": s.pushed, "owed": s.owed, "now": self.now,
               "quantity": d.quantity if wrote else self.now, "set": wrote,
               "dirty_at": s.dirty_at, "available": s.available, "seen": s.seen,
               "recent": s.recent, "unseen": d.unseen, "read_ms": s.read_ms, "key": key}
        if d.settle:
            out["settle"], out["mark"] = d.settle, self.mark
            if d.settle == "rebase":
                out["seen_before"] = self.seen_before
            if d.settle_until is not None:
                out["settle_until"] = d.settle_until
            if d.settle == "start":
                out["gap"] = d.gap
        return out


class ShopifySync:
    def __init__(self, redis: Redis, keys: Keys, client: ShopifyClient, settings,
                 *, batch: int = BATCH, mapping: SkuMapping | None = None,
                 engine: Engine | None = None):
        self.redis = redis
        self.keys = keys
        self.client = client
        self.batch = batch
        self.mapping = mapping or SkuMapping(redis, keys, client, settings)
        #: PostgreSQL, for the write-ahead records (None: taken from the settings)
        self.engine = engine
        self.database_url = getattr(settings, "database_url", None)
        self._pg_retry_at = 0.0
        self.slot_key = f"{keys.prefix}:shopify:sync:slot"
        self.wal_key = f"{keys.prefix}:sync:wal"
        self.inflight_key = f"{keys.prefix}:sync:inflight"
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: monotonic time each SKU's quantity was last read from (or written to) Shopify
        self._verified: dict[str, float] = {}

    # ------------------------------------------------------------ slot

    def acquire(self) -> bool:
        return bool(self.redis.set(self.slot_key, self.token, nx=True, px=SLOT_TTL_MS))

    def renew(self) -> bool:
        script = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                  "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end")
        return bool(self.redis.eval(script, 1, self.slot_key, self.token, SLOT_TTL_MS))

    def release_slot(self) -> None:
        script = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                  "return redis.call('DEL', KEYS[1]) else return 0 end")
        self.redis.eval(script, 1, self.slot_key, self.token)

    def run_for(self, seconds: float, stop: threading.Event | None = None) -> SyncReport:
        """Holds the sync slot and pushes for up to ``seconds`` (or until
        ``stop`` is set)."""
        stop = stop or threading.Event()
        report = SyncReport()
        if not self.acquire():
            return report
        report.got_slot = True
        deadline = time.monotonic() + seconds
        renewed = time.monotonic()
        last_round = 0.0
        try:
            self.recover()
            while time.monotonic() < deadline and not stop.is_set():
                if time.monotonic() - renewed > SLOT_TTL_MS / 3000:
                    if not self.renew():
                        break
                    renewed = time.monotonic()
                wait = last_round + ROUND_INTERVAL_S - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                try:
                    started = time.monotonic()
                    worked = self.round(report)
                    if report.stopped:
                        break
                    if worked:
                        last_round = started
                except NotReady as exc:   # Redis is being rebuilt
                    report.errors.append(str(exc))
                    stop.wait(UNAVAILABLE_BACKOFF_S)
                    continue
                except ShopifyUnauthorized as exc:
                    report.unauthorized = True
                    report.errors.append(str(exc))
                    log.error("Shopify refused the access token; the sync stops: %s", exc)
                    break
                except (ShopifyUnavailable, ShopifyError) as exc:
                    report.errors.append(str(exc))
                    log.warning("Shopify sync round failed, retrying: %s", exc)
                    stop.wait(UNAVAILABLE_BACKOFF_S)
                    continue
                if not worked:
                    stop.wait(POLL_S)
        finally:
            self._count_calls()
            self.release_slot()
        return report

    def _count_calls(self) -> None:
        s = self.client.stats
        with self.redis.pipeline(transaction=False) as pipe:
            key = f"{self.keys.prefix}:sync:stats"
            pipe.hincrby(key, "calls", s.calls)
            pipe.hincrby(key, "throttled", s.throttled)
            pipe.hincrby(key, "rate_limited", s.rate_limited)
            pipe.execute()
        s.calls = s.throttled = s.rate_limited = 0

    # ------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Settles writes a predecessor may have made (write-ahead records,
        replayed with their idempotency key, oldest first: also those a
        rebuild of Redis brought back from PostgreSQL), then puts SKUs it left
        in flight back in the dirty set."""
        records = sorted(((_decode.decode(raw), key.decode())
                          for key, raw in (self.redis.hgetall(self.wal_key) or {}).items()),
                         key=lambda r: (r[0].get("at", 0), r[1]))
        for record, key in records:
            data = self.client.execute(SET_QUANTITIES, {"input": record["input"], "key": key},
                                       cost=10)
            errors = (data.get("inventorySetQuantities") or {}).get("userErrors") or []
            if errors:
                self._release([e["sku"] for e in record["entries"]], retry=True,
                              dirty_at={e["sku"]: e.get("dirty_at") for e in record["entries"]})
                self._commit(key, [])   # closes the record (in PostgreSQL too)
            else:
                entries = record["entries"]
                if record.get("restored"):
                    # brought back by a rebuild: the seen a rebase counts from
                    # is gone, so the write is counted plainly and the settle
                    # goes on (its next quiet window rebases)
                    entries = [{**e, "settle": None} if e.get("settle") == "rebase" else e
                               for e in entries]
                self._commit(key, entries)
        orphans = [m.decode() for m in self.redis.zrange(self.inflight_key, 0, -1)]
        self._release(orphans, retry=True)

    # ------------------------------------------------------------ one round

    def _read(self, again: list[str] | None = None) -> tuple[list[SkuState], str | None]:
        read_ms = int(time.time() * 1000)
        args: list = [read_ms, self.batch]
        if again is not None:
            args.append(_encode.encode(again))
        raw = call_function(self.redis, "shopify_sync_read", [self.keys.prefix], args)
        data = _decode.decode(raw[0])
        if data.get("c") != "ok":
            raise NotReady(f"sync read refused: {data.get('detail', data)}")
        skus = data.get("skus") if isinstance(data.get("skus"), list) else []
        return [msgspec.convert({**s, "read_ms": read_ms}, SkuState) for s in skus
                if isinstance(s, dict)], data.get("stopped")

    def round(self, report: SyncReport) -> bool:
        """One round; True when there was work."""
        if self.redis.hlen(self.wal_key):
            self.recover()
        states, stopped = self._read()
        if stopped:
            report.stopped = True
            return False
        if not states:
            return False
        report.rounds += 1
        now_ms = int(time.time() * 1000)
        try:
            targets = self.mapping.resolve(states, now_ms)
        except ShopifyError:
            self._release([s.sku for s in states], retry=True,
                          dirty_at={s.sku: s.dirty_at for s in states})
            raise
        unmapped = [s.sku for s in states if s.sku not in targets]
        self._release(unmapped, retry=False)
        states = [s for s in states if s.sku in targets]
        if not states:
            return True
        try:
            self._push(states, targets, report)
        except ShopifyError:
            if not self.redis.hlen(self.wal_key):
                self._release([s.sku for s in states], retry=True,
                              dirty_at={s.sku: s.dirty_at for s in states})
            raise
        return True

    def _read_now(self, targets: list[Target]) -> dict[str, tuple[int, str | None]]:
        """Shopify's available per level, with when the level last changed
        (a settle's quiet window checks it)."""
        levels = [t.level for t in targets]
        data = self.client.execute(LEVELS, {"ids": levels}, cost=2 * len(levels) + 1)
        out = {}
        for node in data.get("nodes") or []:
            if node and node.get("quantities"):
                out[node["id"]] = (int(node["quantities"][0]["quantity"]), node.get("updatedAt"))
        return out

    def _plan(self, states: list[SkuState], targets: dict[str, Target]) -> list[_Push]:
        """Reads Shopify's quantities, then onhand once more (so webhooks that
        landed while Shopify was being read count), and decides."""
        now_by_level = self._read_now([targets[s.sku] for s in states])
        fresh, _ = self._read(again=[s.sku for s in states])
        by_sku = {f.sku: f for f in fresh}
        pushes, gone, moved = [], [], []
        for s in states:
            target, f = targets[s.sku], by_sku.get(s.sku)
            if target.level not in now_by_level:
                gone.append(s.sku)
                continue
            if f is None or f.gen != s.gen:
                moved.append(s.sku)
                continue
            f.dirty_at = s.dirty_at
            now, mark = now_by_level[target.level]
            pushes.append(_Push(f, target, now, decide(f, now, mark), mark, s.seen))
        if gone:  # the level went away on Shopify: look the SKU up again next time
            self.mapping.forget(gone)
        if gone or moved:
            self._release(gone + moved, retry=True, dirty_at={s.sku: s.dirty_at for s in states})
        return pushes

    def _push(self, states: list[SkuState], targets: dict[str, Target], report: SyncReport) -> None:
        """Decides and writes. Shopify's quantity is first taken to be what
        onhand already knows (``pushed - seen``: Shopify moved only by the
        webhooks onhand received); the compare-and-set proves it or fails, and
        only then is Shopify read. Most rounds (sales whose webhooks came) so
        need no call at all, or one write. A SKU without a state, or not read
        from Shopify for VERIFY_EVERY_S, is read first."""
        location = self.mapping.location()
        clock = time.monotonic()
        guess, read = [], []
        for st in states:
            # a settle ends on Shopify's real quantity (a rebase needs it)
            fresh = (st.pushed is not None and not settle_ended(st)
                     and clock - self._verified.get(st.sku, -1e9) < VERIFY_EVERY_S)
            (guess if fresh else read).append(st)
        pushes = [_Push(st, targets[st.sku], st.pushed - st.seen, decide(st, st.pushed - st.seen))
                  for st in guess]
        read += self._settle(pushes, location, report)
        for _attempt in range(STALE_RETRIES):
            if not read:
                return
            pushes = self._plan(read, targets)
            for p in pushes:
                self._verified[p.state.sku] = clock
            read = self._settle(pushes, location, report)
        self._release([st.sku for st in read], retry=True, dirty_at={st.sku: st.dirty_at for st in read})

    def _settle(self, pushes: list[_Push], location: str, report: SyncReport) -> list[SkuState]:
        """Writes what must be written in one compare-and-set, commits, and
        releases the rest; returns the SKUs whose compare was stale (to read)."""
        writes = [p for p in pushes if p.decision.quantity is not None]
        still = [p for p in pushes if p.decision.quantity is None]
        # the looks later (sales held back, a settle under way) are noted
        # before the SKUs leave flight, so a SKU is never in no set at all
        self._recheck(pushes)
        # Shopify already shows a value in range: a baseline for a first
        # push, the end of a settle, nothing to do otherwise
        baselines = [p.entry("", wrote=False) for p in still if p.decision.settle]
        if baselines:
            self._commit("", baselines)
        self._release([p.state.sku for p in still if not p.decision.settle], retry=False)
        if not writes:
            return []
        key, inp, record = self._batch(writes, location)
        if not self._durable(key, record):
            # PostgreSQL cannot keep the record: a write lost with Redis must
            # not be a raise (its units would count as an unseen restock)
            raising = [p for p in writes if p.decision.quantity > p.now]
            if raising:
                self._defer([p.state.sku for p in raising])
                writes = [p for p in writes if p.decision.quantity <= p.now]
                if not writes:
                    return []
                key, inp, record = self._batch(writes, location)
        entries = record["entries"]
        self.redis.hset(self.wal_key, key, _encode.encode(record))
        data = self.client.execute(SET_QUANTITIES, {"input": inp, "key": key}, cost=10)
        errors = (data.get("inventorySetQuantities") or {}).get("userErrors") or []
        if not errors:
            self._commit(key, entries)
            clock = time.monotonic()
            for p in writes:
                self._verified[p.state.sku] = clock
            report.writes += 1
            report.quantities += len(entries)
            return []
        self._commit(key, [])   # nothing was written: close the record (in PostgreSQL too)
        stale, broken = set(), set()
        for err in errors:
            index = _index(err.get("field"))
            sku = writes[index].state.sku if index is not None and index < len(writes) else None
            if err.get("code") in ("CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE") and sku:
                stale.add(sku)
            elif sku:
                broken.add(sku)
            else:
                log.error("inventorySetQuantities refused the batch: %s", err)
                broken.update(p.state.sku for p in writes)
        report.stale += len(stale)
        if broken:
            log.warning("Shopify refused quantities for %s: %s", sorted(broken), errors)
            self.mapping.forget(sorted(broken))
            self._release(sorted(broken), retry=True,
                          dirty_at={p.state.sku: p.state.dirty_at for p in writes})
        # nothing of the batch was written (all or nothing): read Shopify for all of it
        return [p.state for p in writes if p.state.sku not in broken]

    # ------------------------------------------------------------ bookkeeping

    def _batch(self, writes: list[_Push], location: str) -> tuple[str, dict, dict]:
        """One inventorySetQuantities: its idempotency key, input and
        write-ahead record."""
        key = f"onhand-sync-{uuid.uuid4().hex}"
        quantities = [{"inventoryItemId": p.target.item, "locationId": location,
                       "quantity": p.decision.quantity, "changeFromQuantity": p.now}
                      for p in writes]
        inp = {"name": "available", "reason": "correction",
               "referenceDocumentUri": f"onhand://sync/{key}", "quantities": quantities}
        record = {"input": inp, "entries": [p.entry(key, wrote=True) for p in writes],
                  "at": int(time.time() * 1000)}
        return key, inp, record

    def _durable(self, key: str, record: dict[str, Any]) -> bool:
        """Writes the write-ahead record to PostgreSQL (shopify_sync_wal)
        before the write is sent, so that a Redis lost before the commit's
        event reached PostgreSQL still replays it; False when PostgreSQL
        cannot take it (then not tried again for WAL_PG_RETRY_S)."""
        if time.monotonic() < self._pg_retry_at:
            return False
        from persistence.apply import ms_to_dt
        from persistence.models import ShopifySyncWal

        try:
            if self.engine is None:
                if not self.database_url:
                    return False
                self.engine = _wal_engine(self.database_url)
            with self.engine.begin() as conn:
                conn.execute(insert(ShopifySyncWal).values(
                    merchant_id=self.keys.merchant, key=key, record=record, created_at=ms_to_dt(record["at"])))
            return True
        except (SQLAlchemyError, OSError) as exc:
            log.warning("PostgreSQL did not take the sync's write-ahead record; raises wait: %s", exc)
            self._pg_retry_at = time.monotonic() + WAL_PG_RETRY_S
            return False

    def _defer(self, skus: list[str]) -> None:
        """Raises that must wait for PostgreSQL: looked at again later."""
        self._release(skus, retry=False)
        due = int(time.time() * 1000) + int(WAL_PG_RETRY_S * 1000)
        self.redis.zadd(f"{self.keys.prefix}:sync:due", {sku: due for sku in skus})

    def _commit(self, key: str, entries: list[dict[str, Any]]) -> None:
        raw = call_function(self.redis, "shopify_sync_commit", [self.keys.prefix],
                            [int(time.time() * 1000), key, _encode.encode(entries)])
        data = _decode.decode(raw[0])
        if data.get("c") != "ok":
            raise ShopifyError(f"sync commit refused: {data}")

    def _release(self, skus: list[str], *, retry: bool,
                 dirty_at: dict[str, int | None] | None = None) -> None:
        """Takes SKUs out of flight; with retry, back into the dirty set
        (keeping when their oldest change happened)."""
        if not skus:
            return
        now = int(time.time() * 1000)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.inflight_key, *skus)
            if retry:
                pipe.sadd(self.keys.dirty, *skus)
                for sku in skus:
                    pipe.hsetnx(f"{self.keys.prefix}:dirtyat", sku, (dirty_at or {}).get(sku) or now)
            pipe.execute()

    def _recheck(self, pushes: list[_Push]) -> None:
        cap = int(time.time() * 1000) + RECHECK_MAX_MS
        due = {}
        for p in pushes:
            d = p.decision
            at = [t for t in (d.recheck_at_ms and min(d.recheck_at_ms, cap), d.settle_at_ms) if t]
            if at:
                due[p.state.sku] = min(at)
        if due:
            self.redis.zadd(f"{self.keys.prefix}:sync:due", due)


def _index(path: Any) -> int | None:
    """The quantity index in a userError field path like ["input", "quantities", "3", ...]."""
    if isinstance(path, list) and len(path) >= 3 and path[1] == "quantities":
        try:
            return int(path[2])
        except (TypeError, ValueError):
            return None
    return None
