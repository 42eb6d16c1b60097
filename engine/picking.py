"""What to pick for an order's reserved units: per SKU, cases and eaches
(wholesale, from the SKU's case pack) or eaches (DTC). Pure: the caller reads
the SKUs' details. The API's pick list and the staff UI's pick list PDF both
come from here."""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Channel, Inventory, Order


@dataclass(frozen=True)
class PickLine:
    sku: str
    name: str | None
    quantity: int
    case_pack: int | None
    cases: int
    eaches: int


def reserved_by_sku(order: Order) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for line in order.lines:
        if line.sku and line.reserved:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.reserved
    return wanted


def pick_lines(order: Order, inventory: dict[str, Inventory | None]) -> list[PickLine]:
    """``inventory`` holds the SKUs of :func:`reserved_by_sku`."""
    lines = []
    for sku, qty in reserved_by_sku(order).items():
        inv = inventory.get(sku)
        pack = inv.details.get("case_pack") if inv else None
        if order.channel is Channel.WHOLESALE and pack and pack > 1:
            cases, eaches = divmod(qty, pack)
        else:
            cases, eaches = 0, qty
        lines.append(PickLine(sku=sku, name=inv.details.get("name") if inv else None, quantity=qty,
                              case_pack=pack, cases=cases, eaches=eaches))
    return lines
