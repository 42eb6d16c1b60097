"""Server-side sessions of the staff UI, in Redis, and the login throttle.

Why not Litestar's ServerSideSessionConfig: its backend keeps whatever
session id the browser's cookie names and only ever writes under it, so a
session id planted before login (fixation) would carry the login. Here a
login always starts a new id and deletes the old session; the id (256
random bits) lives only in the cookie, Redis holds it hashed
(``{m:<merchant>}:ui:session:<sha256>``), so a copy of Redis gives no usable
session. Each request extends the session's idle expiry; a session also ends
``ui_session_max_s`` after its login, and at logout.

Throttle: failed logins are counted per account and per client address in
Redis (``{m:..}:ui:fail:acct:<hash>``, ``...:fail:addr:<addr>``) over a
window; at the limit a login is refused before the password is even checked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import msgspec

from engine.store import Store

#: The session cookie's name.
COOKIE = "onhand_session"


class Session(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    created_at_ms: int


_decode = msgspec.json.Decoder(Session)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class SessionStore:
    store: Store
    idle_s: int
    max_s: int

    def _key(self, session_id: str) -> str:
        return f"{self.store.keys.prefix}:ui:session:{_hash(session_id)}"

    async def create(self, user_id: str, now_ms: int, *, replacing: str | None = None) -> str:
        """A new session for the user (a new id, always); the session the
        browser had before, if any, is deleted."""
        session_id = secrets.token_urlsafe(32)
        async with self.store.redis.pipeline(transaction=True) as pipe:
            if replacing:
                pipe.delete(self._key(replacing))
            pipe.set(self._key(session_id), msgspec.json.encode(Session(user_id=user_id, created_at_ms=now_ms)),
                     ex=self.idle_s)
            await pipe.execute()
        return session_id

    async def load(self, session_id: str | None, now_ms: int) -> Session | None:
        """The live session with this id (its idle expiry extended), or None."""
        if not session_id or len(session_id) > 128:
            return None
        key = self._key(session_id)
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.expire(key, self.idle_s, xx=True)
            raw, _ = await pipe.execute()
        if raw is None:
            return None
        session = _decode.decode(raw)
        if now_ms - session.created_at_ms > self.max_s * 1000:
            await self.store.redis.delete(key)
            return None
        return session

    async def end(self, session_id: str | None) -> None:
        if session_id:
            await self.store.redis.delete(self._key(session_id))


@dataclass(frozen=True)
class LoginThrottle:
    store: Store
    per_account: int
    per_address: int
    window_s: int

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        p = self.store.keys.prefix
        return f"{p}:ui:fail:acct:{_hash(email.strip().lower())}", f"{p}:ui:fail:addr:{address}"

    async def blocked_for_s(self, email: str, address: str) -> int:
        """Seconds until a login for this account from this address may be
        tried again (0: now)."""
        account, addr = self._keys(email, address)
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.get(account)
            pipe.ttl(account)
            pipe.get(addr)
            pipe.ttl(addr)
            a, a_ttl, b, b_ttl = await pipe.execute()
        wait = 0
        if a is not None and int(a) >= self.per_account:
            wait = max(wait, int(a_ttl))
        if b is not None and int(b) >= self.per_address:
            wait = max(wait, int(b_ttl))
        return max(wait, 0)

    async def failed(self, email: str, address: str) -> None:
        async with self.store.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(email, address):
                pipe.incr(key)
                pipe.expire(key, self.window_s, nx=True)
            await pipe.execute()

    async def succeeded(self, email: str) -> None:
        account, _ = self._keys(email, "")
        await self.store.redis.delete(account)
