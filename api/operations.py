"""Running one state change for an HTTP request, with Idempotency-Key.

API.md: the key is scoped to the API key, the method and the actual path; a
retry with the same key and body returns the original response; another body
is 422; the same key while the first is in flight is 409; only outcomes (2xx,
and 409 refusals for stock or state) are stored, for at least 72 hours.

The operation id given to the script is a hash of (API key id, method, path,
Idempotency-Key), the fingerprint a hash of the decoded body re-encoded
canonically. The script stores the outcome atomically with the change.

The common path is one FCALL (the operation's guarded variant, lib.lua's
guard()): the rate-limit step, the claim or replay of the Idempotency-Key, a
check that the record the command was built from (an order's customer, read
from this process's cache) is still the version it read, and the operation.
A changed record answers "stale" with its new version, and the command is
built again from it, so an order always carries the profile defaults current
when it is accepted. When building the command refuses (a lookup, a check),
the request takes the careful path, the one every request took before: the
rate-limit step, a claim (idem_begin.lua: a stored outcome replays before
any lookup), the lookups read fresh, the operation, the claim's release.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar.types import Scope

from api.auth import Principal
from api.problems import RATE_LIMITED, VALIDATION, ApiProblem
from api.ratelimit import RATE_SCOPE, RateState
from engine.commands import Command, Op
from engine.errors import OnhandError
from engine.store import Guard, RateLimited, Result, Stale, Store, raise_for

#: Records (kind, id) -> (version, JSON text or None) one merchant's
#: Operations keeps; checked by version in the FCALL, so never trusted stale.
RECORD_CACHE = 10_000

#: Longest Idempotency-Key accepted, characters.
MAX_KEY_LENGTH = 255


def now_ms() -> int:
    return int(time.time() * 1000)


def fingerprint(body: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(body)).hexdigest()


def operation_id(principal: Principal, scope: Scope, key: str) -> str:
    return scoped_operation_id(_scope_of(principal, scope), key)


def _scope_of(principal: Principal, scope: Scope) -> str:
    """What an Idempotency-Key is scoped to (API.md): the API key, the
    method and the actual path (``request.url.path``, read straight from
    the ASGI scope: building the URL was 5% of an order's CPU)."""
    return f"{principal.key_id}\n{scope['method']}\n{scope.get('root_path', '')}{scope['path']}"


def new_op_id() -> str:
    """An operation id of a request without an Idempotency-Key (32 random hex digits)."""
    return "api-" + secrets.token_hex(16)


def scoped_operation_id(scope: str, key: str) -> str:
    return "api-" + hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()[:40]


def idempotency_key(scope: Scope) -> str | None:
    """The request's Idempotency-Key header (its first), checked; None without one."""
    for name, raw in scope["headers"]:
        if name == b"idempotency-key":
            break
    else:
        return None
    key = raw.decode("latin-1").strip().strip('"')
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiProblem(VALIDATION, "Idempotency-Key must be 1-255 printable characters",
                         errors=[{"field": "Idempotency-Key", "message": "malformed"}])
    return key


class Operations:
    def __init__(self, store: Store, idempotency_ttl_ms: int, limiter=None):
        self.store = store
        self.ttl_ms = idempotency_ttl_ms
        self.limiter = limiter
        self._records: dict[tuple[str, str], tuple[int, str | None]] = {}

    async def run(self, request_scope: Scope, principal: Principal, body: Any,
                  build: Callable[..., Awaitable[Command]],
                  record: tuple[str, str] | None = None) -> Result:
        """Builds the command (lookups may refuse) and runs it for the
        request of ``request_scope`` (its ASGI scope: the Idempotency-Key,
        the method and path it is scoped to, the rate-limit step left to
        the call), replaying a stored outcome when the Idempotency-Key was
        seen with this body. With ``record`` (kind, id), ``build`` is given
        that record's document (a dict, or None when absent) and is called
        again when it changed before the command ran."""
        key = idempotency_key(request_scope)
        scope = _scope_of(principal, request_scope)
        actor = f"key:{principal.key_id}"
        state: RateState | None = request_scope.get(RATE_SCOPE)
        if state is None or state.taken or self.limiter is None or not hasattr(self.store, "run_guarded"):
            return await self._careful(actor, scope, key, body, build, record, state, principal)
        if key is None:
            op = Op(op_id=new_op_id(), now_ms=now_ms(), actor=actor)
        else:
            op = Op(op_id=scoped_operation_id(scope, key), now_ms=now_ms(), actor=actor,
                    fingerprint=fingerprint(body), idempotency_ttl_ms=self.ttl_ms)
        params = self.limiter.params(principal)
        bucket, interval, burst = params if params else ("", 0.0, 0)
        version = 0
        try:
            if record is None:
                command = await build()
            else:
                version, doc = await self._record(record)
                command = await build(_doc(doc))
        except (ApiProblem, OnhandError):
            # refused from what this process knows: decide on fresh reads,
            # after a replay had its chance (the careful path)
            return await self._careful(actor, scope, key, body, build, record, state, principal)

        def took(rate) -> None:
            state.taken, state.in_call = True, True
            state.verdict = self.limiter.verdict_of(rate, burst)

        for _ in range(3):
            guard = Guard(bucket=bucket, interval_ms=interval, burst=burst,
                          record_kind=record[0] if record else "", record_id=record[1] if record else "",
                          record_v=version)
            try:
                outcome = await self.store.run_guarded(command, op, guard, took)
            except RateLimited:
                verdict = state.verdict
                raise ApiProblem(RATE_LIMITED, f"over {verdict.limit} requests per second for this key",
                                 headers=verdict.headers(), retry_after_s=verdict.retry_after_s) from None
            if not isinstance(outcome, Stale):
                return outcome
            # the record changed after it was read: build from the new one
            # (the rate-limit step is taken, the next call does not repeat it)
            bucket = ""
            version = outcome.v
            self._remember(record, outcome.v, outcome.doc)
            try:
                command = await build(_doc(outcome.doc))
            except (ApiProblem, OnhandError):
                state.in_call = False
                return await self._careful(actor, scope, key, body, build, record, state, principal)
        state.in_call = False
        return await self._careful(actor, scope, key, body, build, record, state, principal)

    async def run_keyed(self, actor: str, scope: str, key: str | None, body: Any,
                        build: Callable[[], Awaitable[Command]]) -> Result:
        """:meth:`run` for any caller: ``actor`` goes on the change (the
        engine's Op.actor), ``scope`` + ``key`` make the operation id (the
        staff UI scopes a form's key to the user and the form's path)."""
        return await self._careful(actor, scope, key, body, build, None, None, None)

    async def _record(self, record: tuple[str, str]) -> tuple[int, str | None]:
        hit = self._records.get(record)
        if hit is None:
            hit = await self.store.record(*record)
            self._remember(record, *hit)
        return hit

    def _remember(self, record: tuple[str, str], version: int, doc: str | None) -> None:
        if len(self._records) >= RECORD_CACHE:
            self._records.clear()
        self._records[record] = (version, doc)

    async def _careful(self, actor: str, scope: str, key: str | None, body: Any,
                       build: Callable[..., Awaitable[Command]], record: tuple[str, str] | None,
                       state: RateState | None, principal: Principal | None) -> Result:
        """The path of old: rate-limit step (when not taken yet), claim, fresh
        lookups, operation, release."""
        if state is not None and not state.taken and self.limiter is not None:
            state.verdict, state.taken = await self.limiter.check(principal, now_ms()), True
            if state.verdict is not None and not state.verdict.allowed:
                verdict = state.verdict
                state.in_call = True  # this refusal is the response
                raise ApiProblem(RATE_LIMITED, f"over {verdict.limit} requests per second for this key",
                                 headers=verdict.headers(), retry_after_s=verdict.retry_after_s)

        async def fresh_build() -> Command:
            if record is None:
                return await build()
            version, doc = await self.store.record(*record)
            self._remember(record, version, doc)
            return await build(_doc(doc))

        if key is None:
            command = await fresh_build()
            return await self.store.run(command, Op(op_id=new_op_id(),
                                                    now_ms=now_ms(), actor=actor))
        op_id = scoped_operation_id(scope, key)
        fp = fingerprint(body)
        stored = await self.store.claim(op_id, fp)
        if stored is not None:
            raise_for(stored.data)  # a stored refusal answers the same again
            return stored
        try:
            command = await fresh_build()
            op = Op(op_id=op_id, now_ms=now_ms(), actor=actor, fingerprint=fp,
                    idempotency_ttl_ms=self.ttl_ms)
            return await self.store.run(command, op)
        finally:
            # the script removed the claim when it stored an outcome; any other
            # end (lookup refused, validation, not ready) must not leave it
            await self.store.release(op_id)


def _doc(text: str | bytes | None) -> dict[str, Any] | None:
    return msgspec.json.decode(text) if text else None
