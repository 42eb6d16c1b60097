"""Staff users of the web UI: who they are, their role, their password hash.

A user is a record written through to Redis by doc_put.lua (kind "user"),
like an API key: logging in needs only Redis, and the outbox carries every
change to PostgreSQL (``users``), from which a rebuilt Redis gets them back.
The id is derived from the merchant and the lowercased email, so a login
finds the record with one read and two creations of one email are one user.
Passwords are hashed with argon2id (argon2-cffi); nothing here logs or
returns a password or its hash.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from enum import StrEnum

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.commands import Op, PutRecord
from engine.store import Store

log = logging.getLogger("onhand.ui")

#: Shortest password accepted, characters (NIST SP 800-63B: at least 8).
MIN_PASSWORD_CHARS = 10
#: Longest password accepted, characters (argon2 takes any length; a cap
#: keeps a login from being a way to make the server hash megabytes).
MAX_PASSWORD_CHARS = 256
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
_hasher = PasswordHasher()
#: A hash of a password nobody has, verified when the email is unknown, so a
#: login takes as long whether or not the account exists.
_DUMMY_HASH = _hasher.hash("no such user: a password nobody types")


class UserRole(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    role: str
    merchant_id: str
    password_hash: str
    created_at_ms: int
    name: str | None = None
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    @property
    def actor(self) -> str:
        """Who the engine records on every change this user makes."""
        return f"user:{self.id}"


class UserError(ValueError):
    """Raised when a user cannot be created as asked (field, message)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


_decode = msgspec.json.Decoder(User)


def normal_email(email: str) -> str:
    return email.strip().lower()


def user_id(merchant: str, email: str) -> str:
    digest = hashlib.sha256(f"{merchant}\n{normal_email(email)}".encode()).hexdigest()
    return "usr_" + digest[:20]


def user_key(store: Store, uid: str) -> str:
    return f"{store.keys.prefix}:d:user:{uid}"


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError("password", f"a password has at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError("password", f"a password has at most {MAX_PASSWORD_CHARS} characters")


async def get_user(store: Store, uid: str) -> User | None:
    raw = await store.redis.hget(user_key(store, uid), "doc")
    return _decode.decode(raw) if raw else None


async def put_user(store: Store, user: User, *, actor: str, now_ms: int) -> User:
    await store.run(PutRecord(kind="user", id=user.id, doc=msgspec.json.encode(user).decode()),
                    Op(op_id=f"user-{uuid.uuid4().hex}", now_ms=now_ms, actor=actor))
    return user


async def create_user(store: Store, email: str, password: str, role: str, *, actor: str, now_ms: int,
                      name: str | None = None, replace: bool = False) -> User:
    """Creates a user (or, with ``replace``, sets an existing one's role and
    password); refuses a malformed email, a short password or an unknown role."""
    email = normal_email(email)
    if not _EMAIL.match(email):
        raise UserError("email", "not an email address")
    if role not in (UserRole.ADMIN, UserRole.OPERATOR):
        raise UserError("role", "admin or operator")
    check_password(password)
    uid = user_id(store.keys.merchant, email)
    existing = await get_user(store, uid)
    if existing is not None and not replace:
        raise UserError("email", "a user with this email exists")
    user = User(id=uid, email=email, role=str(role), merchant_id=store.keys.merchant,
                password_hash=_hasher.hash(password), name=name,
                created_at_ms=existing.created_at_ms if existing else now_ms)
    return await put_user(store, user, actor=actor, now_ms=now_ms)


async def set_disabled(store: Store, uid: str, disabled: bool, *, actor: str, now_ms: int) -> User | None:
    user = await get_user(store, uid)
    if user is None:
        return None
    changed = msgspec.structs.replace(user, disabled=disabled)
    return await put_user(store, changed, actor=actor, now_ms=now_ms)


async def authenticate(store: Store, email: str, password: str) -> User | None:
    """The user with this email and password, or None (unknown, disabled or
    wrong password: the same answer, after the same work)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return None
    user = await get_user(store, user_id(store.keys.merchant, email)) if _EMAIL.match(normal_email(email)) else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    return user


async def ensure_first_admin(store: Store, records, email: str | None, password: str | None,
                             now_ms: int) -> User | None:
    """ONHAND_ADMIN_EMAIL + ONHAND_ADMIN_PASSWORD: creates that admin when
    no user exists (PostgreSQL's users plus those Redis holds that it lacks).
    Several API processes may race here: the id comes from the email, so they
    write one user."""
    if not email or not password:
        return None
    _, total = await records.users(limit=1, offset=0)
    if total:
        return None
    user = await create_user(store, email, password, UserRole.ADMIN, actor="system", now_ms=now_ms,
                             replace=True)
    log.info("created the first admin user %s (from ONHAND_ADMIN_EMAIL)", user.id)
    return user
