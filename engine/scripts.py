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
STANDALONE = frozenset({"idem_begin", "mark_synced"})
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
    "idem_begin",
    "mark_synced",
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


_RETURN_CODE = re.compile(r"^--\s{2,}([a-z_]+)\b", re.MULTILINE)


def header_codes(name: str) -> set[str]:
    """Result codes named in the script's ``Returns`` header section."""
    text = body(name)
    section = text.split("-- Returns", 1)[1].split("-- Writes", 1)[0]
    return set(_RETURN_CODE.findall(section))
