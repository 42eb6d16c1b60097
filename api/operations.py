"""Running one state change for an HTTP request, with Idempotency-Key.

API.md: the key is scoped to the API key, the method and the actual path; a
retry with the same key and body returns the original response; another body
is 422; the same key while the first is in flight is 409; only outcomes (2xx,
and 409 refusals for stock or state) are stored, for at least 72 hours.

The operation id given to the script is a hash of (API key id, method, path,
Idempotency-Key), the fingerprint a hash of the decoded body re-encoded
canonically. The script stores the outcome atomically with the change; the
claim taken here only covers the work done before the script runs.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request

from api.auth import Principal
from api.problems import VALIDATION, ApiProblem
from engine.commands import Command, Op
from engine.store import Result, Store, raise_for

#: Longest Idempotency-Key accepted, characters.
MAX_KEY_LENGTH = 255


def now_ms() -> int:
    return int(time.time() * 1000)


def fingerprint(body: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(body)).hexdigest()


def operation_id(principal: Principal, request: Request, key: str) -> str:
    return scoped_operation_id(f"{principal.key_id}\n{request.method}\n{request.url.path}", key)


def scoped_operation_id(scope: str, key: str) -> str:
    return "api-" + hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()[:40]


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip().strip('"')
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiProblem(VALIDATION, "Idempotency-Key must be 1-255 printable characters",
                         errors=[{"field": "Idempotency-Key", "message": "malformed"}])
    return key


class Operations:
    def __init__(self, store: Store, idempotency_ttl_ms: int):
        self.store = store
        self.ttl_ms = idempotency_ttl_ms

    async def run(self, request: Request, principal: Principal, body: Any,
                  build: Callable[[], Awaitable[Command]]) -> Result:
        """Builds the command (lookups may refuse) and runs it, replaying a
        stored outcome when the Idempotency-Key was seen with this body."""
        key = idempotency_key(request)
        scope = f"{principal.key_id}\n{request.method}\n{request.url.path}"
        return await self.run_keyed(f"key:{principal.key_id}", scope, key, body, build)

    async def run_keyed(self, actor: str, scope: str, key: str | None, body: Any,
                        build: Callable[[], Awaitable[Command]]) -> Result:
        """:meth:`run` for any caller: ``actor`` goes on the change (the
        engine's Op.actor), ``scope`` + ``key`` make the operation id (the
        staff UI scopes a form's key to the user and the form's path)."""
        if key is None:
            command = await build()
            return await self.store.run(command, Op(op_id=f"api-{uuid.uuid4().hex}",
                                                    now_ms=now_ms(), actor=actor))
        op_id = scoped_operation_id(scope, key)
        fp = fingerprint(body)
        stored = await self.store.claim(op_id, fp)
        if stored is not None:
            raise_for(stored.data)  # a stored refusal answers the same again
            return stored
        try:
            command = await build()
            op = Op(op_id=op_id, now_ms=now_ms(), actor=actor, fingerprint=fp,
                    idempotency_ttl_ms=self.ttl_ms)
            return await self.store.run(command, op)
        finally:
            # the script removed the claim when it stored an outcome; any other
            # end (lookup refused, validation, not ready) must not leave it
            await self.store.release(op_id)
