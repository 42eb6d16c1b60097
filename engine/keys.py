"""Where the pool lives in Redis. Every key of a merchant shares one hash tag,
so a multi-line order is one script call even on Redis Cluster. The scripts
derive the same names from KEYS[1] (see lua/lib.lua's header)."""

from __future__ import annotations


def script_keys(prefix: str) -> tuple[str, str]:
    """KEYS[1], the merchant prefix, and KEYS[2], its guard: two names that
    are never keys. Declaring both makes a Redis Cluster refuse a script while
    the merchant's slot is migrating instead of running it on half of the
    merchant's keys: the migrating node answers ASK (neither key is there),
    and the importing node answers TRYAGAIN (a multi-key call with keys
    missing), until CLUSTER SETSLOT NODE ends the migration. With only the
    prefix, the importing node would run the script on the keys moved so far;
    with a key that exists, the migrating node would run it and fail halfway
    at the first new key ("non local key"). lua/lib.lua's header says the same.
    """
    return prefix, prefix + ":guard"


class Keys:
    def __init__(self, merchant: str = "default"):
        if not merchant or any(c in merchant for c in "{}: "):
            raise ValueError(f"bad merchant id {merchant!r}")
        self.merchant = merchant
        self.prefix = "{m:%s}" % merchant

    @property
    def script_keys(self) -> tuple[str, str]:
        """The KEYS every stock script is called with (script_keys())."""
        return script_keys(self.prefix)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def epoch(self) -> str:
        return self._k("epoch")

    @property
    def seq(self) -> str:
        return self._k("seq")

    @property
    def skus(self) -> str:
        return self._k("skus")

    def sku(self, sku: str) -> str:
        return self._k("s", sku)

    def reservations(self, sku: str) -> str:
        return self._k("r", sku)

    def waiting_dtc(self, sku: str) -> str:
        return self._k("wd", sku)

    def waiting_wholesale(self, sku: str) -> str:
        return self._k("ww", sku)

    def order(self, order_id: str) -> str:
        return self._k("o", order_id)

    def idempotency(self, op_id: str) -> str:
        return self._k("i", op_id)

    def in_flight(self, op_id: str) -> str:
        return self._k("if", op_id)

    @property
    def outbox(self) -> str:
        return self._k("outbox")

    @property
    def dirty(self) -> str:
        return self._k("dirty")

    @property
    def fill_queue(self) -> str:
        return self._k("fillq")

    @property
    def unsynced(self) -> str:
        return self._k("unsynced")

    @property
    def receipt_refs(self) -> str:
        return self._k("rref")

    @property
    def sscc(self) -> str:
        """The last SSCC serial handed out (lua/ship.lua)."""
        return self._k("sscc")

    def pattern(self) -> str:
        """Matches every key of the merchant (for SCAN)."""
        return self._k("*")
