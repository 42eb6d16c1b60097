"""The engine's one door to Redis: it loads the Lua function library, calls
its functions, and turns their result codes into domain errors.

Nothing connects or loads at import: :meth:`Store.start` loads the library
(call it from a lifespan). Every state change is one function call (FCALL);
reads here are plain hash reads of what the functions wrote.

On a Redis Cluster the library is loaded on every primary (and again on a
node that answers that it lacks it), and each call goes straight to the node
that holds the merchant's slot (its keys share one hash tag), following
MOVED and ASK redirections when a slot moves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from engine import scripts
from engine.codes import Code
from engine.commands import Command, FillWaiting, Op
from engine.errors import (
    Conflict,
    IdempotencyInFlight,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidCommand,
    NotFound,
    NotReady,
    Shortfall,
)
from engine.keys import Keys
from engine.model import (
    Inventory,
    Order,
    as_list,
    inventory_from_snapshot,
    order_from_snapshot,
)

#: Default for how many waiting lines one script call fills.
DEFAULT_FILL_LIMIT = 1000
#: Default lifetime of an idempotency record: 72 hours, in milliseconds.
DEFAULT_IDEMPOTENCY_TTL_MS = 72 * 3600 * 1000
#: Lifetime of an "in flight" claim on an Idempotency-Key, in milliseconds.
IN_FLIGHT_TTL_MS = 30_000

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()
#: What a Redis Cluster answers while a failover or a slot migration is under way.
_CLUSTER_MOVING = (redis_errors.ClusterDownError, redis_errors.TryAgainError, redis_errors.MovedError,
                   redis_errors.AskError, redis_errors.ClusterError, redis_errors.MaxConnectionsError,
                   redis_errors.SlotNotCoveredError)


class Rate(NamedTuple):
    """A rate-limit verdict from the guard (remaining -1: no limit applies)."""

    allowed: int
    remaining: int
    retry_after_ms: int
    reset_ms: int


class Guard(msgspec.Struct, frozen=True):
    """What lib.lua's guard() checks before the operation (all optional)."""

    #: rate-limit bucket (the API key id); "" for no limit
    bucket: str = ""
    interval_ms: float = 0.0
    burst: int = 0
    #: the record the command was built from, and the version it was read at
    record_kind: str = ""
    record_id: str = ""
    record_v: int = 0


class Stale(NamedTuple):
    """The guard's answer when the record changed: its version and document
    (JSON text, or None when it is gone) now."""

    v: int
    doc: str | None


class RateLimited(Exception):
    def __init__(self, rate: Rate):
        super().__init__("over the rate limit")
        self.rate = rate


class Result(msgspec.Struct):
    """A script's answer. ``data`` is exactly what the script returned (and what
    a replay returns), so anything built from it is the same on a replay."""

    data: dict[str, Any]
    replayed: bool = False
    #: The outbox entry the call appended ("" for a replay or a refusal).
    event_id: str = ""
    #: Fills made by the continuation calls after a fill stopped at the limit.
    later_fills: list[dict[str, Any]] = msgspec.field(default_factory=list)

    @property
    def order(self) -> Order | None:
        snap = self.data.get("order")
        return order_from_snapshot(snap) if snap else None

    @property
    def inventory(self) -> Inventory | None:
        snap = self.data.get("inventory")
        return inventory_from_snapshot(snap) if snap else None

    @property
    def fills(self) -> list[dict[str, Any]]:
        return as_list(self.data.get("fills"))

    @property
    def more(self) -> list[str]:
        return as_list(self.data.get("more"))


def raise_for(data: dict[str, Any]) -> None:
    """Turns a refusal code into its domain error; returns for ``ok``."""
    code = data.get("c")
    detail = data.get("detail", "")
    if code == Code.OK:
        return
    if code == Code.INSUFFICIENT_STOCK:
        raise InsufficientStock([Shortfall(**line) for line in as_list(data.get("lines"))])
    if code == Code.CONFLICT:
        values = {k: v for k, v in data.items() if k not in ("c", "detail", "reason")}
        raise Conflict(data.get("reason", "conflict"), detail, values)
    if code == Code.NOT_FOUND:
        raise NotFound(data.get("kind", "resource"), as_list(data.get("skus")), detail)
    if code == Code.INVALID:
        raise InvalidCommand(data.get("field", "command"), detail)
    if code == Code.NOT_READY:
        raise NotReady(detail)
    if code == Code.IDEMPOTENCY_KEY_REUSED:
        raise IdempotencyKeyReused(detail)
    if code == Code.IDEMPOTENCY_IN_FLIGHT:
        raise IdempotencyInFlight(detail)
    raise RuntimeError(f"unknown script result code {code!r}")


class Store:
    """Runs the pool's scripts for one merchant."""

    def __init__(
        self,
        redis: Redis,
        merchant: str = "default",
        *,
        fill_limit: int = DEFAULT_FILL_LIMIT,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ):
        self.redis = redis
        #: the API's lean command path (onhand.redis_mux.RedisMux), set by its owner
        self.mux = None
        self.keys = Keys(merchant)
        self.fill_limit = fill_limit
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._loaded = False
        self._cluster = isinstance(redis, RedisCluster)
        #: cluster + WAIT: a plain client per node (WAIT must follow the write
        #: on the same connection), by node name
        self._node_clients: dict[str, Redis] = {}

    async def start(self) -> None:
        """Loads the function library (FUNCTION LOAD REPLACE). Call once, from a lifespan."""
        await self._load()

    async def _load(self) -> None:
        if self._cluster:
            await self.redis.execute_command("FUNCTION", "LOAD", "REPLACE", scripts.library(),
                                             target_nodes=self.redis.get_primaries())
        else:
            await self.redis.execute_command("FUNCTION", "LOAD", "REPLACE", scripts.library())
        self._loaded = True

    async def _eval(self, name: str, argv: list[Any]) -> tuple[dict[str, Any], bool, str, list]:
        data, replayed, event_id, later, _ = await self._eval_fn(scripts.function_name(name), argv)
        return data, replayed, event_id, later

    async def _eval_fn(self, fn: str, argv: list[Any]) -> tuple[dict[str, Any], bool, str, list, list]:
        """Calls a function: (reply, replayed, outbox entry, continuation fills,
        what the reply carries past its fourth element)."""
        try:
            try:
                raw = await self._fcall(fn, argv)
            except redis_errors.ResponseError as exc:
                if "function not found" not in str(exc).lower():
                    raise
                # a new or emptied Redis: load the library again
                await self._load()
                raw = await self._fcall(fn, argv)
        except _CLUSTER_MOVING as exc:
            # a failover or a slot migration under way: retry shortly
            raise NotReady(f"Redis Cluster is moving: {exc}", retry_after_s=1) from exc
        except redis_errors.ResponseError as exc:
            if str(exc).startswith("OOM"):
                raise NotReady("Redis is out of memory: the outbox is not draining") from exc
            if str(exc).startswith("NOREPLICAS"):
                # min-replicas-to-write: the primary has lost its replicas (docs/operations.md)
                raise NotReady("Redis has too few replicas to take writes", retry_after_s=1) from exc
            raise
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise NotReady(f"Redis unreachable: {exc}") from exc
        body, replayed, event_id = raw[:3]
        if isinstance(event_id, bytes):
            event_id = event_id.decode()
        # a replay brings the fills its continuation calls made (fill.lua)
        later = _decode.decode(raw[3]) if len(raw) > 3 and raw[3] else []
        return _decode.decode(body), bool(replayed), event_id, later, raw[4:]

    async def _fcall(self, fn: str, argv: list[Any]) -> Any:
        if not self.wait_replicas:
            return await self._fcall_plain(fn, argv)
        if self._cluster:
            raw, acked = await self._fcall_wait_on_cluster(fn, argv)
        else:
            # WAIT applies to the connection that wrote: send both on one pipeline.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.fcall(fn, 2, *self.keys.script_keys, *argv)
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
                raw, acked = await pipe.execute()
        if int(acked) < self.wait_replicas:
            # The change is made (and its outcome stored): only its copy on the
            # replicas is unconfirmed. A retry with the same Idempotency-Key
            # answers the stored outcome; docs/api.md says so.
            raise NotReady(f"the change was made, but only {acked} of {self.wait_replicas} replicas "
                           "confirmed it in time; retry with the same Idempotency-Key for its outcome",
                           reason="replicas_unconfirmed")
        return raw

    async def _fcall_wait_on_cluster(self, fn: str, argv: list[Any]) -> tuple[Any, int]:
        """FCALL then WAIT on one connection to the node of the merchant's slot,
        following a MOVED (the slot moved: learn the new map, go there) or an
        ASK (the slot is moving: ASKING first, on the same connection)."""
        asking: tuple[str, int] | None = None
        for _ in range(5):
            if asking:
                host, port = asking
            else:
                node = self.redis.get_node_from_key(self.keys.prefix)
                host, port = node.host, node.port
            client = self._node_clients.get(f"{host}:{port}")
            if client is None:
                client = self._node_clients[f"{host}:{port}"] = Redis(host=host, port=port)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    if asking:
                        pipe.execute_command("ASKING")
                    pipe.fcall(fn, 2, *self.keys.script_keys, *argv)
                    pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
                    replies = await pipe.execute()
                return replies[-2], replies[-1]
            except redis_errors.MovedError:
                asking = None
                await self.redis.nodes_manager.initialize()
            except redis_errors.AskError as exc:
                asking = (exc.host, exc.port)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                # the node is gone (a failover under way): learn the new map for the next call
                self._node_clients.pop(f"{host}:{port}", None)
                try:
                    await self.redis.nodes_manager.initialize()
                except redis_errors.RedisError:
                    pass
                raise NotReady(f"Redis Cluster node {host}:{port} unreachable: {exc}", retry_after_s=1) from exc
        raise NotReady("Redis Cluster kept redirecting this merchant's slot", retry_after_s=1)

    async def run(self, command: Command, op: Op) -> Result:
        """Runs one command; raises the domain error for a refusal. When a fill
        stopped at the limit, goes on filling until nothing is left."""
        data, replayed, event_id, later = await self._eval(command.script, self._argv(command, op))
        raise_for(data)
        result = Result(data, replayed, event_id, later)
        if result.more and not replayed:
            for more in await self.drain_fills(result.more, op):
                result.later_fills.extend(more.fills)
        return result

    async def run_guarded(self, command: Command, op: Op, guard: "Guard",
                          on_rate: Callable[[Rate], None]) -> Result | Stale:
        """Runs one command through lib.lua's guard (the API's variant: rate
        limit, Idempotency-Key claim or replay, record version, then the
        operation, in one call). ``on_rate`` gets the rate verdict before
        anything is raised, so a refusal still carries it. Raises
        :class:`RateLimited` over the limit and the domain error of a refusal;
        returns :class:`Stale` when the record changed (build again), else
        the result (a replay, or the outcome of this call)."""
        argv = self._argv(command, op) + [guard.bucket, guard.interval_ms, guard.burst, IN_FLIGHT_TTL_MS,
                                          guard.record_kind, guard.record_id, guard.record_v]
        data, replayed, event_id, later, extra = await self._eval_fn(
            scripts.guarded_name(command.script), argv)
        rate = Rate(*(int(x) for x in extra[:4])) if len(extra) >= 4 else Rate(1, -1, 0, 0)
        on_rate(rate)
        code = data.get("c")
        if code == Code.RATE_LIMITED:
            raise RateLimited(rate)
        if code == Code.STALE and not replayed:
            return Stale(data["v"], data.get("doc"))
        raise_for(data)
        result = Result(data, replayed, event_id, later)
        if result.more and not replayed:
            try:
                for more in await self.drain_fills(result.more, op):
                    result.later_fills.extend(more.fills)
            finally:
                # the guard kept the claim while the fills went on
                await self.release(op.op_id)
        return result

    def _argv(self, command: Command, op: Op) -> list[Any]:
        return [
            op.op_id,
            op.fingerprint,
            op.idempotency_ttl_ms,
            op.now_ms,
            op.actor,
            _encode.encode(command.payload()),
            self.fill_limit,
        ]

    async def drain_fills(self, skus: list[str], op: Op) -> list[Result]:
        """Calls fill.lua for each SKU until its waiting lines are caught up.
        When ``op`` keeps an idempotency record, the fills are added to it, so
        its replay lists them too."""
        done: list[Result] = []
        pending = list(dict.fromkeys(skus))
        parent = op.op_id if op.idempotency_ttl_ms > 0 else None
        while pending:
            sku = pending.pop(0)
            fill_op = Op(op_id=f"fill-{uuid.uuid4().hex}", now_ms=op.now_ms, actor=op.actor)
            data, _, event_id, _ = await self._eval(
                "fill", self._argv(FillWaiting(sku=sku, parent=parent), fill_op))
            raise_for(data)
            result = Result(data, False, event_id)
            done.append(result)
            if result.more:
                pending.append(sku)
        return done

    # ------------------------------------------------------------ idempotency

    async def claim(self, op_id: str, fingerprint: str, ttl_ms: int = IN_FLIGHT_TTL_MS) -> Result | None:
        """Claims an Idempotency-Key before work starts. Returns the stored
        result to replay, or None when the caller now holds the claim."""
        data, replayed, _, later = await self._eval("idem_begin", [op_id, fingerprint, ttl_ms])
        if replayed:
            return Result(data, True, later_fills=later)
        raise_for(data)
        return None

    async def record(self, kind: str, record_id: str) -> tuple[int, str | None]:
        """A record doc_put.lua keeps (customer, api_key): (version, JSON text),
        (0, None) when there is none."""
        doc, v = await self.redis.hmget(f"{self.keys.prefix}:d:{kind}:{record_id}", ["doc", "v"])
        if doc is None:
            return 0, None
        return int(v or 0), doc.decode() if isinstance(doc, bytes) else doc

    async def release(self, op_id: str) -> None:
        """Drops a claim whose request ended without a stored outcome."""
        await self.redis.delete(self.keys.in_flight(op_id))

    async def mark_synced(self, args: list) -> None:
        """Tells Redis which order and record versions PostgreSQL now holds
        (lua/mark_synced.lua's ARGV, from persistence.apply.mark_synced_args)."""
        fn = scripts.function_name("mark_synced")
        try:
            await self._fcall_plain(fn, args)
        except redis_errors.ResponseError as exc:
            if "function not found" not in str(exc).lower():
                raise
            await self._load()
            await self._fcall_plain(fn, args)

    async def _fcall_plain(self, fn: str, argv: list[Any]) -> Any:
        if self._cluster:
            # straight to the slot's node: redis-py would first ask a server
            # for FCALL's keys (COMMAND GETKEYS), a second round trip
            node = self.redis.get_node_from_key(self.keys.prefix)
            return await self.redis.execute_command("FCALL", fn, 2, *self.keys.script_keys, *argv,
                                                    target_nodes=node)
        if self.mux is not None:
            return await self.mux.call("FCALL", fn, 2, *self.keys.script_keys, *argv)
        return await self.redis.fcall(fn, 2, *self.keys.script_keys, *argv)

    async def pipeline(self, commands: list[tuple]) -> list:
        """Plain commands in one round trip, no transaction (the webhook
        intake's release of held-back sales after its 200); each reply, an
        error reply as its exception."""
        if self.mux is not None:
            return await self.mux.pipeline(commands)
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            return await pipe.execute(raise_on_error=False)

    async def load_closed_order(self, order: Order, keep_ms: int) -> bool:
        """Brings a closed order read from PostgreSQL back into Redis (for a
        return on an old order). Returns False when Redis already had it."""
        snap = {
            "id": order.id, "d": _encode.encode(order.header).decode(), "n": order.number,
            "c": order.channel.value, "p": order.policy.value,
            "L": [[l.sku or "", l.quantity, l.reserved, l.backordered, l.exception, l.shipped,
                   l.cancelled, l.returned, l.exception_reason or "", 1 if l.pooled else 0]
                  for l in order.lines],
            "S": _encode.encode(order.shipments).decode(), "R": _encode.encode(order.returns).decode(),
            "v": order.version, "u": order.updated_at_ms,
        }
        data, _, _, _ = await self._eval("order_load", [_encode.encode(snap), keep_ms])
        raise_for(data)
        return bool(data.get("loaded"))

    # ------------------------------------------------------------ reads

    async def is_ready(self) -> bool:
        return bool(await self.redis.exists(self.keys.epoch))

    async def scripts_loaded(self) -> bool:
        """True when Redis (on a cluster: the node of this merchant's slot) has
        the function library (a new Redis has none; the next call would load
        it again anyway)."""
        args = ("FUNCTION", "LIST", "LIBRARYNAME", scripts.library_name())
        if self._cluster:
            libs = await self.redis.execute_command(
                *args, target_nodes=self.redis.get_node_from_key(self.keys.prefix))
        else:
            libs = await self.redis.execute_command(*args)
        return bool(libs)

    async def inventory(self, skus: list[str]) -> list[Inventory | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.hgetall(self.keys.sku(sku))
            rows = await pipe.execute()
        return [_inventory(sku, row) for sku, row in zip(skus, rows, strict=True)]

    async def waiting_lines(self, sku: str, limit: int = 200) -> list:
        """The lines waiting for this SKU (backordered or exception units),
        oldest acceptance first, both channels (engine.ordering.WaitingLine):
        what a receipt would fill (engine.ordering.preview_fills)."""
        from engine.ordering import WaitingLine

        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.waiting_dtc(sku), 0, limit - 1, withscores=True)
            pipe.zrange(self.keys.waiting_wholesale(sku), 0, limit - 1, withscores=True)
            dtc, wholesale = await pipe.execute()
        members = sorted([(int(seq), m.decode(), "dtc") for m, seq in dtc]
                         + [(int(seq), m.decode(), "wholesale") for m, seq in wholesale])[:limit]
        ids = list(dict.fromkeys(m.rpartition("#")[0] for _, m, _ in members))
        orders = {oid: await self.order(oid) for oid in ids}
        out = []
        for seq, member, channel in members:
            oid, _, idx = member.rpartition("#")
            order = orders.get(oid)
            if order is None or int(idx) >= len(order.lines):
                continue
            line = order.lines[int(idx)]
            units = line.backordered + line.exception
            if units:
                out.append(WaitingLine(order_id=oid, line=int(idx), seq=seq, channel=channel, units=units))
        return out

    async def order(self, order_id: str) -> Order | None:
        row = await self.redis.hgetall(self.keys.order(order_id))
        if not row:
            return None
        snap = {k.decode(): v.decode() for k, v in row.items()}
        snap["id"] = order_id
        return order_from_snapshot(snap)


def as_hash(reply: dict | list) -> dict[bytes, bytes]:
    """An HGETALL reply as a dict: redis-py's client gives one; the raw
    reply (the hot path's RedisMux, RESP2) is a flat list of fields and values."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def inventory_from_row(sku: str, row: dict[bytes, bytes]) -> Inventory | None:
    """A SKU's counters from its hash (HGETALL P:s:<sku>), None when absent."""
    return _inventory(sku, row)


def order_from_row(order_id: str, row: dict[bytes, bytes]) -> Order | None:
    """An order from its hash (HGETALL P:o:<order>), None when absent."""
    if not row:
        return None
    snap = {k.decode(): v.decode() for k, v in row.items()}
    snap["id"] = order_id
    return order_from_snapshot(snap)


def _inventory(sku: str, row: dict[bytes, bytes]) -> Inventory | None:
    if not row:
        return None
    snap: dict[str, Any] = {k.decode(): v.decode() for k, v in row.items()}
    snap["sku"] = sku
    return inventory_from_snapshot(snap)
