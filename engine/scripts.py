"""The Lua scripts: read from the ``lua`` package and assembled into one Redis
Function library.

Each operation keeps its own file (with its header: KEYS, ARGV, returns, keys
written, invariant); the library is ``lib.lua`` followed by every operation
registered as a function ``onhand_<version>_<name>`` (FCALL). Loading it once
(FUNCTION LOAD) defines the shared helpers once, instead of on every call as
a prepended EVAL script would.

The library and its functions are named by a hash of the scripts' source
(:func:`version`), so two onhand versions on one Redis - a rolling upgrade,
or two checkouts sharing a test server - each call their own scripts and
never replace each other's. Functions without the ``allow-oom`` flag are
refused over ``maxmemory`` before they run, instead of failing half-way (Redis
cannot roll back). Nothing here touches Redis; :mod:`engine.store` loads it.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

#: The library's name without its version.
LIBRARY = "onhand"
#: Operations that do not use lib.lua's common ARGV (no init()).
STANDALONE = frozenset({"idem_begin", "mark_synced", "order_load",
                        "shopify_sync_read", "shopify_sync_commit"})
#: Functions that only remove or expire data: allowed over maxmemory.
ALLOW_OOM = frozenset({"mark_synced"})
#: Every operation in the library.
NAMES = (
    "reserve",
    "cancel",
    "ship",
    "count",
    "receive",
    "restock",
    "sku_put",
    "fill",
    "doc_put",
    "idem_begin",
    "mark_synced",
    "order_load",
    "shopify_webhook",
    "shopify_sync_read",
    "shopify_sync_commit",
)


def _read(name: str) -> str:
    return resources.files("lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")


@cache
def version() -> str:
    """A hash of every script's source: what makes this library this one."""
    digest = hashlib.sha1()
    for name in ("lib", *NAMES):
        digest.update(name.encode() + b"\0" + _read(name).encode() + b"\0")
    digest.update(repr(sorted(STANDALONE)).encode() + repr(sorted(ALLOW_OOM)).encode())
    return digest.hexdigest()[:12]


def library_name() -> str:
    return f"{LIBRARY}_{version()}"


def function_name(name: str) -> str:
    return f"{library_name()}_{name}"


def guarded_name(name: str) -> str:
    """The API variant of a stock operation: lib.lua's guard() (rate limit,
    Idempotency-Key claim or replay, record version) and then the operation,
    in one call (see lib.lua, "API guard")."""
    return f"{library_name()}_{name}_api"


def body(name: str) -> str:
    """The operation's own file, for header checks."""
    return _read(name)


@cache
def library() -> str:
    """The library's source: lib.lua, then each operation as a function."""
    parts = [f"#!lua name={library_name()}\n", _read("lib"), "\n"]
    for name in NAMES:
        flags = "{'allow-oom'}" if name in ALLOW_OOM else "{}"
        start = "" if name in STANDALONE else "init(KEYS, ARGV)\n"
        parts.append(
            f"redis.register_function{{function_name = '{function_name(name)}', flags = {flags},\n"
            f"  callback = function(KEYS, ARGV)\n{start}{_read(name)}\nend}}\n"
        )
        if name not in STANDALONE:
            parts.append(
                f"redis.register_function{{function_name = '{guarded_name(name)}', flags = {flags},\n"
                f"  callback = function(KEYS, ARGV)\ninit(KEYS, ARGV)\n"
                f"local early, rate = guard(ARGV)\nif early then return guarded(early, rate, ARGV) end\n"
                f"return guarded((function()\n{_read(name)}\nend)(), rate, ARGV)\nend}}\n"
            )
    return "".join(parts)


_WORD = re.compile(r"^[a-z_]+$")
_ENTRY = re.compile(r"^-- {3}\S")
#: Scripts that answer a plain value instead of a coded JSON reply.
CODELESS = frozenset({"mark_synced"})


def header_codes(name: str) -> set[str]:
    """Result codes named in the script's ``Returns`` header section: the
    leading words of each entry (``ok``, ``conflict``, ``not_ready, invalid``)."""
    section = body(name).split("-- Returns", 1)[1].split("-- Writes", 1)[0]
    codes: set[str] = set()
    for raw in section.splitlines()[1:]:
        if not _ENTRY.match(raw):
            continue  # continuation lines are indented further
        text = raw.lstrip("-").strip()
        if text[0] in "|{<(":
            continue
        head = re.split(r"[{(]|\s{2,}", text, maxsplit=1)[0]
        codes.update(w.strip() for w in head.split(",") if _WORD.match(w.strip()))
    return codes


_USED = re.compile(r"(?:refuse(?:_outcome)?\(|c = )'([a-z_]+)'")


_LIB_FUNCTION = re.compile(r"^local function (\w+)\(.*?^end$", re.MULTILINE | re.DOTALL)


def _lib_functions() -> dict[str, str]:
    return {m.group(1): m.group(0) for m in _LIB_FUNCTION.finditer(_read("lib"))}


def used_codes(name: str) -> set[str]:
    """Codes the script can answer: its own body's, and those of the lib.lua
    operations it calls (e.g. place_order); begin() adds not_ready, invalid
    and idempotency_key_reused to every stock script."""
    text = body(name)
    for fn, source in _lib_functions().items():
        if fn not in ("begin", "refuse", "refuse_outcome", "invalid", "reply", "commit") and f"{fn}(" in text:
            text += source
    found = set(_USED.findall(text))
    if name not in STANDALONE:
        found |= {"not_ready", "invalid", "idempotency_key_reused"}
        if "commit(" in body(name):
            found.add("ok")
    return found
