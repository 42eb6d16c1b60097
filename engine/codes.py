"""Result codes of the Lua scripts, defined once.

Every script answers a JSON object whose ``c`` member is one of these codes;
:func:`engine.store.raise_for` turns the refusals into domain errors, and a
test checks that every script's header lists only codes from here.
"""

from enum import StrEnum


class Code(StrEnum):
    OK = "ok"
    NOT_READY = "not_ready"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    INSUFFICIENT_STOCK = "insufficient_stock"
    CONFLICT = "conflict"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_IN_FLIGHT = "idempotency_in_flight"
    #: the API guard (lib.lua guard()): over the key's rate limit
    RATE_LIMITED = "rate_limited"
    #: the API guard: the record the command was built from changed
    STALE = "stale"


#: Codes that are outcomes: stored with an idempotency record and replayed.
STORED_OUTCOMES = frozenset({Code.OK, Code.INSUFFICIENT_STOCK, Code.CONFLICT})
