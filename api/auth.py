"""API keys: how they look, how they are stored, how a request is authenticated.

A key is ``onh_<id>_<secret>``: the id finds the record, the secret (190
random bits) is stored only as its SHA-256 and compared with
``hmac.compare_digest``. The id ends with its merchant
(``key_<12 random>_<merchant>``), so the key leads to the one merchant whose
Redis slot holds its record; ids without a merchant (keys made before
merchants existed) are the home merchant's. Keys live in Redis (written
through by doc_put.lua), so authenticating needs only Redis, and revoking
removes the record at once. Every failure - missing header, malformed key,
unknown id, wrong secret, revoked key - answers the same 401.

Each API process keeps the records it read for :data:`KEY_CACHE_TTL_S` (1 s),
so a busy key costs one Redis read per second per process instead of one per
request. Staleness is bounded twice: every change of a key record (revoke,
re-put) is published by doc_put.lua on :data:`KEYS_CHANNEL`, and each process
drops the key on that message (in practice within milliseconds); should the
subscription be down, or a message be lost, the entry still expires after
1 s. So a revoked key stops working on every API process within 1 s. Keys
not found are not cached (a new key works at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import string
import time
from enum import StrEnum

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.problems import FORBIDDEN, UNAUTHORIZED, ApiProblem
from engine.keys import Keys

KEY_PREFIX = "onh_"
_ALPHABET = string.ascii_letters + string.digits
#: Characters of the secret part (log2(62) * 32 = 190 bits).
SECRET_CHARS = 32
#: Id of the key given by ONHAND_ADMIN_KEY (it has no stored record).
ENV_ADMIN_ID = "admin-env"
#: How long an API process trusts a key record it read, seconds.
KEY_CACHE_TTL_S = 1.0
#: Most key records one process keeps (a larger set is dropped at once).
KEY_CACHE_MAX = 100_000
#: Pub/sub channel doc_put.lua publishes a key id on when its record changes.
KEYS_CHANNEL = "onhand:keys"

log = logging.getLogger("onhand.api")


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    WHOLESALE = "wholesale"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's id, its role, for wholesale its customer, and
    the merchant everything it does belongs to."""

    key_id: str
    role: Role
    customer_id: str | None = None
    merchant: str = "default"

    @property
    def is_wholesale(self) -> bool:
        return self.role is Role.WHOLESALE


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    role: str
    customer_id: str | None = None
    name: str | None = None
    hash: str
    created_at_ms: int


def new_key(merchant: str) -> tuple[str, str, str]:
    """Returns (key id, full key shown once, hash of the secret)."""
    key_id = ("key_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
              + "_" + merchant)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS))
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def merchant_of(key_id: str, home: str) -> str:
    """The merchant a key id names (``key_<random>_<merchant>``), else ``home``."""
    parts = key_id.split("_", 2)
    return parts[2] if len(parts) == 3 else home


def split_key(token: str) -> tuple[str, str] | None:
    """``onh_<id>_<secret>`` -> (id, secret), or None when malformed."""
    if not token.startswith(KEY_PREFIX):
        return None
    body = token[len(KEY_PREFIX):]
    key_id, sep, secret = body.rpartition("_")
    if not sep or not key_id.startswith("key_") or len(key_id) > 64 or len(secret) != SECRET_CHARS:
        return None
    if not _SECRET.fullmatch(secret):
        return None
    return key_id, secret


_record_decoder = msgspec.json.Decoder(KeyRecord)
#: A key's secret part (checked with one regex: a per-character loop was 10%
#: of the order path's samples)
_SECRET = re.compile(rf"[A-Za-z0-9]{{{SECRET_CHARS}}}")


class Authenticator:
    """Turns an Authorization header into a Principal, reading only Redis
    (through a 1 s per-process cache invalidated by pub/sub, see the module)."""

    def __init__(self, redis, home: str, admin_key: str | None, *, ttl_s: float = KEY_CACHE_TTL_S,
                 clock=time.monotonic):
        self.redis = redis
        self.home = home
        self._admin_hash = hash_secret(admin_key) if admin_key else None
        self.ttl_s = ttl_s
        self._clock = clock
        #: key id -> (valid until, record, principal)
        self._cache: dict[str, tuple[float, KeyRecord, Principal]] = {}
        self._listener: asyncio.Task | None = None
        #: True while the invalidation subscription is up (for health and tests).
        self.subscribed = False

    async def authenticate(self, authorization: str | None) -> Principal:
        token = _bearer(authorization)
        if token is None:
            raise unauthorized()
        if self._admin_hash and hmac.compare_digest(hash_secret(token), self._admin_hash):
            return Principal(ENV_ADMIN_ID, Role.ADMIN, merchant=self.home)
        parts = split_key(token)
        if parts is None:
            raise unauthorized()
        key_id, secret = parts
        entry = self._cache.get(key_id)
        if entry is not None and entry[0] > self._clock():
            _, record, principal = entry
        else:
            try:
                keys = Keys(merchant_of(key_id, self.home))
            except ValueError:
                raise unauthorized() from None
            raw = await self.redis.hget(f"{keys.prefix}:d:api_key:{key_id}", "doc")
            if raw is None:
                self._cache.pop(key_id, None)
                # same work as a found key, so timing does not tell ids apart
                hmac.compare_digest(hash_secret(secret), "0" * 64)
                raise unauthorized()
            record = _record_decoder.decode(raw)
            principal = Principal(record.id, Role(record.role), record.customer_id, keys.merchant)
            if len(self._cache) >= KEY_CACHE_MAX:
                self._cache.clear()
            self._cache[key_id] = (self._clock() + self.ttl_s, record, principal)
        if not hmac.compare_digest(hash_secret(secret), record.hash):
            raise unauthorized()
        return principal

    def forget(self, key_id: str | None = None) -> None:
        """Drops one cached key (all of them with None)."""
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    # ------------------------------------------------------------ invalidation

    def start(self) -> None:
        """Starts listening on :data:`KEYS_CHANNEL` (from the app's lifespan)."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None

    def _subscriber(self):
        """A client that can subscribe: the API's own, or on a cluster a plain
        client to one primary (classic pub/sub reaches every node)."""
        if hasattr(self.redis, "get_primaries"):
            from redis.asyncio import Redis

            node = self.redis.get_primaries()[0]
            return Redis(host=node.host, port=node.port), True
        return self.redis, False

    async def _listen(self) -> None:
        while True:
            client, own = None, False
            pubsub = None
            try:
                client, own = self._subscriber()
                pubsub = client.pubsub()
                await pubsub.subscribe(KEYS_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # whatever changed while we were not listening is forgotten
                        self.subscribed = True
                        self._cache.clear()
                    elif message["type"] == "message":
                        data = message["data"]
                        self.forget(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the TTL still bounds staleness
                log.warning("key invalidation subscription lost (%s); retrying", exc)
                self.subscribed = False
                self._cache.clear()
                await asyncio.sleep(0.5)
            finally:
                self.subscribed = False
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except Exception:  # noqa: BLE001
                        pass
                if own and client is not None:
                    try:
                        await client.aclose()
                    except Exception:  # noqa: BLE001
                        pass


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized() -> ApiProblem:
    return ApiProblem(UNAUTHORIZED, "a valid API key is required",
                      headers={"WWW-Authenticate": 'Bearer realm="onhand"'})


def requires(*roles: Role):
    """A guard: the route is open to these roles only (403 otherwise)."""
    allowed = frozenset(roles)

    # async: Litestar runs a sync guard in a worker thread (a thread hop per request)
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise unauthorized()
        if principal.role not in allowed:
            raise ApiProblem(FORBIDDEN, f"the {principal.role} role may not use this route")

    return guard


STAFF = (Role.ADMIN, Role.OPERATOR)


class KeyRequestError(ValueError):
    """Raised when a key request is inconsistent (field, message)."""

    def __init__(self, field: str, message: str, *, not_found: bool = False):
        super().__init__(message)
        self.field = field
        self.not_found = not_found


async def issue_key(store, role: str, customer_id: str | None, name: str | None,
                    now_ms: int) -> tuple[KeyRecord, str]:
    """Creates an API key: stores its record (hash only) through doc_put.lua and
    returns the record and the key, which is shown this once."""
    from engine.commands import Op, PutRecord

    role = Role(role)
    if role is Role.WHOLESALE:
        if not customer_id:
            raise KeyRequestError("customer_id", "a wholesale key is bound to a customer")
        if not await store.redis.exists(f"{store.keys.prefix}:d:customer:{customer_id}"):
            raise KeyRequestError("customer_id", "no such customer", not_found=True)
    elif customer_id:
        raise KeyRequestError("customer_id", "only wholesale keys are bound to a customer")
    key_id, key, digest = new_key(store.keys.merchant)
    record = KeyRecord(id=key_id, role=role.value, customer_id=customer_id, name=name,
                       hash=digest, created_at_ms=now_ms)
    await store.run(PutRecord(kind="api_key", id=key_id, doc=msgspec.json.encode(record).decode()),
                    Op(op_id=f"key-{key_id}", now_ms=now_ms, actor="system"))
    return record, key
