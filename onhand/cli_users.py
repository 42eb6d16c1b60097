"""`onhand users create`: a staff user of the web UI. The password is read
from a prompt (or, when stdin is not a terminal, from its first line), never
from an argument that would land in shell history; nothing secret is printed."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from onhand.settings import Settings


def read_password(stream=None) -> str:
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise SystemExit("error: the passwords differ")
        return first
    return stream.readline().rstrip("\r\n")


def cmd_users_create(args, settings: Settings) -> int:
    import asyncio

    from engine.errors import NotReady
    from engine.store import Store
    from onhand.cli import merchant_of
    from onhand.redis_clients import async_client
    from onhand.servers import servers
    from ui.users import UserError, create_user

    password = read_password()

    async def create(url: str):
        redis = async_client(url)
        try:
            store = Store(redis, merchant_of(args, settings))
            await store.start()
            return await create_user(store, args.email, password, args.role, actor="cli",
                                     now_ms=int(time.time() * 1000), replace=args.replace)
        finally:
            await redis.aclose()

    with servers(settings) as resolved:
        try:
            user = asyncio.run(create(resolved.redis_url))
        except UserError as exc:
            print(f"error: {exc.field}: {exc}", file=sys.stderr)
            return 2
        except NotReady as exc:
            print(f"error: Redis is not ready ({exc.detail}): start `onhand serve` first", file=sys.stderr)
            return 1
    print(f"user {user.id} ({user.email}, {user.role}) {'updated' if args.replace else 'created'}; "
          "sign in at /ui/login")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("users", help="staff users of the web UI")
    us = u.add_subparsers(dest="users_command", required=True)
    uc = us.add_parser("create", help="create a user (the password is prompted for, or read from stdin)")
    uc.add_argument("--email", required=True)
    uc.add_argument("--role", required=True, choices=["admin", "operator"])
    uc.add_argument("--replace", action="store_true", help="set the role and password of an existing user")
    uc.set_defaults(fn=cmd_users_create)
