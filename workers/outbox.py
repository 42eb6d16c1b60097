"""Drains the engine's outbox stream into PostgreSQL.

A drainer owns one *slot* (a Redis lock with an expiry) and reads the stream
through a consumer group as consumer ``drain-<slot>``. Because only the slot's
holder uses that consumer name, a drainer that takes over a slot after a
crash first re-reads the entries its predecessor had read but not
acknowledged (its pending list), then new ones. Entries pending on consumers
that no longer hold a slot are claimed after CLAIM_IDLE_MS.

Per batch: one PostgreSQL transaction (persistence.apply, idempotent), then
mark_synced.lua for the orders written, then XACK + XDEL. A crash anywhere in
between at worst applies the batch again, which changes nothing.

Every Redis command of a drainer names one key (the outbox, the slot lock, a
stats hash) or is a script called with the merchant's guard (engine/keys.py),
so on a Redis Cluster it follows MOVED and ASK while the merchant's slot
migrates. Redis refusing meanwhile (TRYAGAIN, a failover, a lost connection)
is not a failure of the entries: the drainer keeps its slot, waits
REDIS_RETRY_S and reads its pending entries again.

Failures: a connection failure to PostgreSQL is retried without limit (the
entries stay pending; orders keep flowing into the outbox). Any other failure
is isolated to its entry by applying the batch's entries one by one; an entry
that has failed MAX_FAILURES times goes to the dead_letters table, is removed
from the stream and counted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import msgspec
from redis import Redis
from redis import exceptions as redis_errors
from sqlalchemy import Engine
from sqlalchemy import exc as sa_errors
from sqlalchemy.dialects.postgresql import insert

from engine import scripts
from engine.keys import Keys, script_keys
from persistence.apply import OutboxEntry, apply_batch, mark_synced_args
from persistence.models import DeadLetter

log = logging.getLogger("onhand.outbox")

#: Consumer group of the drainers.
GROUP = "pg"
#: Entries per batch (one transaction).
BATCH = 500
#: Failures of one entry (with PostgreSQL reachable) before it is dead-lettered.
MAX_FAILURES = 5
#: A slot lock lives this long unless renewed, milliseconds.
SLOT_TTL_MS = 5_000
#: Entries pending this long on a consumer that holds no slot are claimed, milliseconds.
CLAIM_IDLE_MS = 30_000
#: How long one XREADGROUP waits for new entries, milliseconds.
BLOCK_MS = 200
#: Pause before reading again after Redis refused (a slot migration, a failover), seconds.
REDIS_RETRY_S = 0.2
#: What Redis (Cluster) answers while a slot migrates, a failover runs or a node is away.
REDIS_UNAVAILABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ClusterError,
                     redis_errors.ClusterDownError, redis_errors.TryAgainError, redis_errors.MovedError,
                     redis_errors.AskError, redis_errors.SlotNotCoveredError)


def ensure_group(redis: Redis, keys: Keys) -> None:
    try:
        redis.xgroup_create(keys.outbox, GROUP, id="0", mkstream=True)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def stats_key(keys: Keys) -> str:
    return f"{keys.prefix}:stats"


@dataclass
class DrainReport:
    applied: int = 0
    acked: int = 0
    redelivered: int = 0
    dead_lettered: int = 0
    postgres_down: bool = False
    #: Times Redis refused (a slot migration, a failover) and the drainer read again.
    redis_retries: int = 0
    #: False when another drainer held the slot (nothing was done).
    got_slot: bool = False
    #: True when it stopped because the stream stayed empty for ``idle_s``.
    went_idle: bool = False
    errors: list[str] = field(default_factory=list)


class PostgresUnavailable(Exception):
    """Raised when PostgreSQL cannot be reached; the entries stay pending."""


class RedisUnavailable(Exception):
    """Raised when Redis refused for now (REDIS_UNAVAILABLE); the entries stay pending."""


class Drainer:
    def __init__(self, redis: Redis, engine: Engine, keys: Keys, *, slot: int,
                 closed_order_retention_ms: int = 24 * 3600 * 1000, batch: int = BATCH):
        self.redis = redis
        self.engine = engine
        self.keys = keys
        self.slot = slot
        self.consumer = f"drain-{slot}"
        self.retention_ms = closed_order_retention_ms
        self.batch = batch
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------ slot

    @property
    def slot_key(self) -> str:
        return f"{self.keys.prefix}:drain:slot:{self.slot}"

    def acquire(self) -> bool:
        return bool(self.redis.set(self.slot_key, self.token, nx=True, px=SLOT_TTL_MS))

    def renew(self) -> bool:
        """Extends the lock if still ours (compare-and-extend in one step)."""
        script = (
            "if redis.call('GET', KEYS[1]) == ARGV[1] then "
            "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
        )
        return bool(self.redis.eval(script, 1, self.slot_key, self.token, SLOT_TTL_MS))

    def release(self) -> None:
        script = (
            "if redis.call('GET', KEYS[1]) == ARGV[1] then "
            "return redis.call('DEL', KEYS[1]) else return 0 end"
        )
        self.redis.eval(script, 1, self.slot_key, self.token)

    # ------------------------------------------------------------ draining

    def run_for(self, seconds: float, stop: threading.Event | None = None, *,
                idle_s: float | None = None) -> DrainReport:
        """Holds the slot and drains for up to ``seconds`` (or until ``stop``
        is set, or, with ``idle_s``, until no entry came for that long);
        returns a report. Returns at once when the slot is held by someone
        else."""
        report = DrainReport()
        if not self.acquire():
            return report
        report.got_slot = True
        deadline = time.monotonic() + seconds
        recover, claimed = True, False
        busy_at = time.monotonic()
        try:
            while time.monotonic() < deadline:
                try:
                    if recover:
                        ensure_group(self.redis, self.keys)
                        # first what this consumer had read but not acknowledged (a crash,
                        # or Redis refusing halfway through a batch)
                        self._drain(report, pending=True, deadline=deadline)
                        if not claimed:
                            self._claim_orphans(report)
                            claimed = True
                        recover = False
                        busy_at = time.monotonic()
                    if not self.renew() or (stop is not None and stop.is_set()):
                        break
                    if self._drain(report, pending=False, deadline=deadline):
                        busy_at = time.monotonic()
                    elif idle_s is not None and time.monotonic() - busy_at >= idle_s:
                        report.went_idle = True
                        break
                except (RedisUnavailable, *REDIS_UNAVAILABLE) as exc:
                    # the entries read stay pending on this consumer: read them again
                    report.redis_retries += 1
                    recover = True
                    log.info("Redis refused the drainer of %s (%r); reading again", self.keys.merchant, exc)
                    if stop is not None and stop.wait(REDIS_RETRY_S):
                        break
                    if stop is None:
                        time.sleep(REDIS_RETRY_S)
        except PostgresUnavailable:
            report.postgres_down = True
        finally:
            try:
                self.release()
            except REDIS_UNAVAILABLE:
                pass  # the lock expires on its own
        return report

    def _drain(self, report: DrainReport, *, pending: bool, deadline: float) -> int:
        """Reads and applies batches; returns how many entries it handled."""
        handled = 0
        while time.monotonic() < deadline:
            start = "0" if pending else ">"
            got = self.redis.xreadgroup(GROUP, self.consumer, {self.keys.outbox: start},
                                        count=self.batch, block=None if pending else BLOCK_MS)
            entries = got[0][1] if got else []
            # an entry deleted while pending comes back without fields: settle it
            gone = [eid for eid, f in entries if not f]
            if gone:
                self._ack(gone, report)
            entries = [(eid, f) for eid, f in entries if f]
            if pending:
                report.redelivered += len(entries)
                if entries:
                    self.redis.hincrby(stats_key(self.keys), "redelivered", len(entries))
            if not entries:
                return handled
            self._handle(entries, report)
            handled += len(entries)
            if not pending and len(entries) < self.batch:
                return handled
        return handled

    def _claim_orphans(self, report: DrainReport) -> None:
        """Claims entries left pending by consumers that no longer drain
        (e.g. after the number of slots shrank)."""
        start = "0-0"
        while True:
            next_start, claimed, _deleted = self.redis.xautoclaim(
                self.keys.outbox, GROUP, self.consumer, CLAIM_IDLE_MS, start, count=self.batch)
            claimed = [(eid, f) for eid, f in claimed if f]
            if claimed:
                report.redelivered += len(claimed)
                self.redis.hincrby(stats_key(self.keys), "redelivered", len(claimed))
                self._handle(claimed, report)
            start = next_start.decode() if isinstance(next_start, bytes) else next_start
            if start == "0-0":
                return

    def _handle(self, raw: list, report: DrainReport) -> None:
        entries, unreadable = [], []
        for eid, fields in raw:
            try:
                entries.append(OutboxEntry.from_stream(eid, fields))
            except Exception as exc:  # noqa: BLE001 - a corrupt entry is dead-lettered
                unreadable.append((eid, fields, repr(exc)))
        for eid, fields, error in unreadable:
            self._dead_letter(eid.decode() if isinstance(eid, bytes) else eid,
                              repr(fields), error, MAX_FAILURES, report)
        try:
            applied = self._apply(entries)
            self._synced(entries)
            self._ack([e.id for e in entries], report)
            report.applied += applied
        except (PostgresUnavailable, RedisUnavailable):
            raise
        except REDIS_UNAVAILABLE as exc:
            raise RedisUnavailable(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - isolate the failing entry
            log.warning("outbox batch failed (%s); applying entries one by one", exc)
            for entry in entries:
                self._handle_one(entry, report)

    def _handle_one(self, entry: OutboxEntry, report: DrainReport) -> None:
        try:
            applied = self._apply([entry])
            self._synced([entry])
            self._ack([entry.id], report)
            report.applied += applied
        except (PostgresUnavailable, RedisUnavailable):
            raise
        except REDIS_UNAVAILABLE as exc:
            raise RedisUnavailable(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001
            fails = self.redis.hincrby(f"{self.keys.prefix}:outbox:fails", entry.id, 1)
            report.errors.append(f"{entry.id}: {exc!r}")
            log.error("outbox entry %s failed (%d of %d): %r", entry.id, fails, MAX_FAILURES, exc)
            if fails >= MAX_FAILURES:
                self._dead_letter(entry.id, msgspec.json.encode(entry.event).decode(),
                                  repr(exc), fails, report)

    def _apply(self, entries: list[OutboxEntry]) -> int:
        try:
            with self.engine.begin() as conn:
                return apply_batch(conn, entries, self.keys.merchant)
        except (sa_errors.OperationalError, sa_errors.InterfaceError) as exc:
            if _is_connection_error(exc):
                raise PostgresUnavailable(str(exc)) from exc
            raise

    def _ack(self, ids: list[str], report: DrainReport) -> None:
        if not ids:
            return
        # XACK + XDEL in one step (an entry acknowledged but not deleted would
        # stay forever), on the outbox key alone: one key follows an ASK while
        # the slot migrates, where a MULTI over several keys gets TRYAGAIN
        self.redis.eval(_ACK_DEL, 1, self.keys.outbox, GROUP, *ids)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(f"{self.keys.prefix}:outbox:fails", *ids)
            pipe.hincrby(stats_key(self.keys), "applied", len(ids))
            pipe.execute()
        report.acked += len(ids)

    def _synced(self, entries: list[OutboxEntry]) -> None:
        if args := mark_synced_args(entries, self.retention_ms):
            call_function(self.redis, "mark_synced", [self.keys.prefix], args)

    def _dead_letter(self, eid: str, payload: str, error: str, failures: int,
                     report: DrainReport) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(DeadLetter).values(
                    merchant_id=self.keys.merchant, event_id=eid, payload=payload, error=error[:4000], failures=failures,
                ).on_conflict_do_nothing())
        except (sa_errors.OperationalError, sa_errors.InterfaceError) as exc:
            if _is_connection_error(exc):
                raise PostgresUnavailable(str(exc)) from exc
            raise
        self._ack([eid], report)
        self.redis.hincrby(stats_key(self.keys), "dead_letters", 1)
        report.dead_lettered += 1
        log.error("ALARM outbox entry %s moved to dead_letters after %d failures: %s",
                  eid, failures, error)


#: KEYS[1] the outbox stream; ARGV[1] the group, ARGV[2..] entry ids. Acknowledges
#: and deletes the entries; returns how many were acknowledged.
_ACK_DEL = ("local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2)) "
            "redis.call('XDEL', KEYS[1], unpack(ARGV, 2)) return n")


def call_function(redis: Redis, name: str, keys: list[str], args: list) -> object:
    """FCALL from a synchronous client, loading the library when Redis lacks
    it (on a cluster: on every primary; the call goes to the slot's node)."""
    from redis.cluster import RedisCluster

    fn = scripts.function_name(name)
    cluster = isinstance(redis, RedisCluster)
    # the merchant prefix and its guard (engine/keys.py: no script runs mid-migration)
    keys = list(script_keys(keys[0])) + list(keys[1:])

    def call() -> object:
        if cluster:
            return redis.execute_command("FCALL", fn, len(keys), *keys, *args,
                                         target_nodes=redis.get_node_from_key(keys[0]))
        return redis.fcall(fn, len(keys), *keys, *args)

    try:
        return call()
    except redis_errors.ResponseError as exc:
        if "function not found" not in str(exc).lower():
            raise
        if cluster:
            redis.execute_command("FUNCTION", "LOAD", "REPLACE", scripts.library(),
                                  target_nodes=redis.get_primaries())
        else:
            redis.execute_command("FUNCTION", "LOAD", "REPLACE", scripts.library())
        return call()


def _is_connection_error(exc: Exception) -> bool:
    import psycopg

    orig = getattr(exc, "orig", None)
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("connection", "server closed", "could not connect", "timeout"))
