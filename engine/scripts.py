"""The Lua scripts: read from the ``lua`` package, assembled, and described.

Each stock script is sent to Redis as ``#!lua`` + ``lib.lua`` + its body, so
the shared helpers stay in one file while every call remains one atomic
EVALSHA. The shebang matters: over ``maxmemory`` Redis refuses such a script
before it runs instead of failing it half-way (it cannot roll back).
Nothing here touches Redis; :mod:`engine.store` registers the scripts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: Scripts that do not use lib.lua's common ARGV.
STANDALONE = frozenset({"idem_begin", "mark_synced", "order_load"})
#: Every script the store registers.
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
)


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


def _read(name: str) -> str:
    return resources.files("lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")


@cache
def load(name: str) -> Script:
    body = _read(name)
    if name in STANDALONE:
        return Script(name, "#!lua\n" + body)
    return Script(name, "#!lua\n" + _read("lib") + "\n" + body)


def body(name: str) -> str:
    """The script's own file (without lib.lua), for header checks."""
    return _read(name)


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


def used_codes(name: str) -> set[str]:
    """Codes the script's own body can answer (lib.lua's begin() adds
    not_ready, invalid and idempotency_key_reused to every stock script)."""
    found = set(_USED.findall(body(name)))
    if name not in STANDALONE:
        found |= {"not_ready", "invalid", "idempotency_key_reused"}
        if "commit(" in body(name):
            found.add("ok")
    return found
