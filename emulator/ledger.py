"""Stock movements Shopify has made that the app has not yet been told about.

A storefront sale lowers `available` at once, but the app only learns of it when
its `orders/create` webhook is answered 2xx. A restock (cancel or refund) raises
`available` at once, and the app learns of it from `orders/cancelled` or
`refunds/create`. Between the two moments an absolute write from the app
(`inventorySetQuantities`) silently overwrites the movement. The set log records
these in-flight units so sync tests can check the app compensates exactly.

Counts are kept per (inventory item, location) so empty or duplicate SKUs stay exact.
A movement is settled by the first 2xx answer to any webhook that carries it.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import msgspec

Kind = Literal["sale", "restock"]
Key = tuple[int, int]  # (inventory item id, location id)


class InFlight(msgspec.Struct, kw_only=True):
    id: int
    kind: Kind
    units: dict[Key, int]
    webhook_ids: list[str]
    settled: bool = False


class UndeliveredLedger:
    def __init__(self) -> None:
        self._sold: Counter[Key] = Counter()
        self._restocked: Counter[Key] = Counter()
        self._movements: dict[int, InFlight] = {}
        self._by_webhook: dict[str, list[int]] = {}
        self._next_id = 1

    def open(self, kind: Kind, units: dict[Key, int]) -> InFlight:
        movement = InFlight(id=self._next_id, kind=kind, units=dict(units), webhook_ids=[])
        self._next_id += 1
        self._movements[movement.id] = movement
        counter = self._sold if kind == "sale" else self._restocked
        for key, qty in units.items():
            counter[key] += qty
        return movement

    def attach(self, movement: InFlight, webhook_id: str) -> None:
        movement.webhook_ids.append(webhook_id)
        self._by_webhook.setdefault(webhook_id, []).append(movement.id)

    def settle_webhook(self, webhook_id: str) -> None:
        for movement_id in self._by_webhook.get(webhook_id, ()):
            movement = self._movements[movement_id]
            if movement.settled:
                continue
            movement.settled = True
            counter = self._sold if movement.kind == "sale" else self._restocked
            for key, qty in movement.units.items():
                counter[key] -= qty

    def sold(self, key: Key) -> int:
        return self._sold[key]

    def restocked(self, key: Key) -> int:
        return self._restocked[key]

    def per_item(self) -> dict[int, tuple[int, int]]:
        """(sold, restocked) summed over locations, per inventory item."""
        out: dict[int, list[int]] = {}
        for (item_id, _), qty in self._sold.items():
            out.setdefault(item_id, [0, 0])[0] += qty
        for (item_id, _), qty in self._restocked.items():
            out.setdefault(item_id, [0, 0])[1] += qty
        return {k: (v[0], v[1]) for k, v in out.items()}
