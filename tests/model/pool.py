"""A plain-Python reference model of the pool: the executable specification the
Lua scripts are checked against (tests/integration/test_pool_model.py).

It follows API.md and DESIGN.md literally and is written for clarity, not
speed. It knows nothing of Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Refused(Exception):
    def __init__(self, code: str, **values):
        super().__init__(code)
        self.code = code
        self.values = values


@dataclass
class Sku:
    oh: int = 0
    rd: int = 0
    rw: int = 0
    bd: int = 0
    bw: int = 0
    ex: int = 0
    fence: int = 0

    @property
    def available(self) -> int:
        return self.oh - self.rd - self.rw

    @property
    def atw(self) -> int:
        return max(0, self.available - self.fence)


@dataclass
class Line:
    sku: str
    qty: int
    res: int = 0
    bo: int = 0
    exc: int = 0
    ship: int = 0
    canc: int = 0
    ret: int = 0
    why: str = ""
    pooled: bool = True


@dataclass
class Order:
    id: str
    channel: str
    policy: str
    seq: int
    lines: list[Line] = field(default_factory=list)


class Pool:
    def __init__(self) -> None:
        self.skus: dict[str, Sku] = {}
        self.orders: dict[str, Order] = {}
        self.seq = 0
        self.refs: set[str] = set()
        self.fills: list[tuple[str, str, int, int]] = []  # of the last operation
        self.wholesale_fill_breaches = 0

    # ------------------------------------------------------------ helpers

    def _move(self, o: Order, idx: int, *, res=0, bo=0, exc=0, ship=0, canc=0) -> None:
        line = o.lines[idx]
        line.res += res
        line.bo += bo
        line.exc += exc
        line.ship += ship
        line.canc += canc
        assert min(line.res, line.bo, line.exc, line.ship, line.canc) >= 0
        if not line.pooled:
            return
        s = self.skus[line.sku]
        s.oh -= ship
        if o.channel == "wholesale":
            s.rw += res
            s.bw += bo
        else:
            s.rd += res
            s.bd += bo
        s.ex += exc

    def _waiting(self, sku: str, channel: str) -> list[tuple[int, str, Order, int]]:
        out = []
        for o in self.orders.values():
            if o.channel != channel:
                continue
            for i, line in enumerate(o.lines):
                if line.pooled and line.sku == sku and line.bo + line.exc > 0:
                    out.append((o.seq, f"{o.id}#{i}", o, i))
        out.sort(key=lambda t: (t[0], t[1]))
        return out

    def _fill(self, sku: str) -> None:
        s = self.skus[sku]
        while s.available > 0:
            dtc = self._waiting(sku, "dtc")
            wh = self._waiting(sku, "wholesale") if s.atw > 0 else []
            if dtc and (not wh or dtc[0][0] < wh[0][0]):
                _, _, o, i = dtc[0]
                cap = s.available
            elif wh:
                _, _, o, i = wh[0]
                cap = s.atw
            else:
                break
            line = o.lines[i]
            tx = min(line.exc, cap)
            tb = min(line.bo, cap - tx)
            self._move(o, i, res=tx + tb, exc=-tx, bo=-tb)
            if o.channel == "wholesale" and s.available < s.fence:
                self.wholesale_fill_breaches += 1
            self.fills.append((sku, o.id, i, tx + tb))

    def _take_back(self, sku: str, units: int) -> list[tuple[str, int, str]]:
        taken = []
        while units > 0:
            holders = []
            for o in self.orders.values():
                for i, line in enumerate(o.lines):
                    if line.pooled and line.sku == sku and line.res > 0:
                        holders.append((o.seq, f"{o.id}#{i}", o, i))
            if not holders:
                break
            holders.sort(key=lambda t: (t[0], t[1]))
            _, _, o, i = holders[-1]
            t = min(o.lines[i].res, units)
            if o.channel == "dtc":
                became = "exception"
                self._move(o, i, res=-t, exc=t)
                if not o.lines[i].why:
                    o.lines[i].why = "stock_count"
            elif o.policy == "cancel_remainder":
                became = "cancelled"
                self._move(o, i, res=-t, canc=t)
            else:
                became = "backordered"
                self._move(o, i, res=-t, bo=t)
            taken.append((o.id, t, became))
            units -= t
        return taken

    def _cap(self, sku: str, channel: str) -> int:
        s = self.skus[sku]
        return s.atw if channel == "wholesale" else s.available

    # ------------------------------------------------------------ operations

    def put_sku(self, sku: str, dtc_reserve: int | None) -> None:
        self.fills = []
        s = self.skus.setdefault(sku, Sku())
        before = s.atw
        if dtc_reserve is not None:
            s.fence = dtc_reserve
        if s.atw > before:
            self._fill(sku)

    def reserve(self, oid: str, channel: str, policy: str, lines: list[tuple[str, int]]) -> Order:
        self.fills = []
        missing = [sku for sku, _ in lines if sku not in self.skus]
        if missing:
            raise Refused("not_found", skus=list(dict.fromkeys(missing)))
        free: dict[str, int] = {}
        for sku, _ in lines:
            free.setdefault(sku, self._cap(sku, channel))
        if policy == "all_or_nothing":
            demand: dict[str, int] = {}
            for sku, qty in lines:
                demand[sku] = demand.get(sku, 0) + qty
            short = [(sku, d, free[sku]) for sku, d in demand.items() if d > free[sku]]
            if short:
                raise Refused("insufficient_stock", lines=short)
        self.seq += 1
        o = Order(oid, channel, policy, self.seq)
        self.orders[oid] = o
        for i, (sku, qty) in enumerate(lines):
            o.lines.append(Line(sku, qty))
            take = min(qty, free[sku])
            free[sku] -= take
            rest = qty - take
            kw = {"res": take}
            if rest:
                if policy == "cancel_remainder":
                    kw["canc"] = rest
                elif policy == "accept":
                    kw["exc"] = rest
                    o.lines[i].why = "oversold"
                else:
                    kw["bo"] = rest
            self._move(o, i, **kw)
        return o

    def cancel(self, oid: str, want: list[tuple[str, int]] | None) -> None:
        self.fills = []
        o = self.orders.get(oid)
        if o is None:
            raise Refused("not_found")
        if want is not None:
            asked: dict[str, int] = {}
            for sku, qty in want:
                asked[sku] = asked.get(sku, 0) + qty
            for sku, qty in asked.items():
                mine = [line for line in o.lines if line.sku == sku]
                if not mine:
                    raise Refused("conflict", reason="not_on_order")
                if qty > sum(line.exc + line.bo + line.res for line in mine):
                    raise Refused("conflict", reason="cancel_exceeds_open")
        elif sum(line.exc + line.bo + line.res for line in o.lines) == 0:
            raise Refused("conflict", reason="nothing_to_cancel")
        released: list[str] = []
        remaining = [[sku, qty] for sku, qty in want] if want is not None else None
        for kind in ("exc", "bo", "res"):
            if remaining is not None:
                for w in remaining:
                    for i, line in enumerate(o.lines):
                        if w[1] == 0:
                            break
                        if line.sku == w[0]:
                            w[1] -= self._cancel_kind(o, i, kind, w[1], released)
            else:
                for i, line in enumerate(o.lines):
                    self._cancel_kind(o, i, kind, getattr(line, kind), released)
        for sku in released:
            self._fill(sku)

    def _cancel_kind(self, o: Order, i: int, kind: str, units: int, released: list[str]) -> int:
        line = o.lines[i]
        t = min(getattr(line, kind), units)
        if t == 0:
            return 0
        self._move(o, i, canc=t, **{kind: -t})
        if kind == "res" and line.pooled:
            released.append(line.sku)
        return t

    def ship(self, oid: str, want: list[tuple[str, int]]) -> None:
        self.fills = []
        o = self.orders.get(oid)
        if o is None:
            raise Refused("not_found")
        if o.policy == "ship_complete" and any(line.bo + line.exc for line in o.lines):
            raise Refused("conflict", reason="not_complete")
        asked: dict[str, int] = {}
        for sku, qty in want:
            asked[sku] = asked.get(sku, 0) + qty
        for sku, qty in asked.items():
            mine = [line for line in o.lines if line.sku == sku]
            if not mine:
                raise Refused("conflict", reason="not_on_order")
            if qty > sum(line.res for line in mine):
                raise Refused("conflict", reason="ship_exceeds_reserved")
        for sku, qty in asked.items():
            for i, line in enumerate(o.lines):
                if qty == 0:
                    break
                if line.sku == sku and line.res > 0:
                    t = min(line.res, qty)
                    self._move(o, i, res=-t, ship=t)
                    qty -= t

    def count(self, sku: str, on_hand: int, expected: int | None = None) -> list:
        self.fills = []
        s = self.skus.get(sku)
        if s is None:
            raise Refused("not_found")
        if expected is not None and expected != s.oh:
            raise Refused("conflict", reason="count_stale")
        return self._set_on_hand(sku, on_hand)

    def adjust(self, sku: str, delta: int) -> list:
        self.fills = []
        s = self.skus.get(sku)
        if s is None:
            raise Refused("not_found")
        if s.oh + delta < 0:
            raise Refused("conflict", reason="negative_on_hand")
        return self._set_on_hand(sku, s.oh + delta)

    def _set_on_hand(self, sku: str, after: int) -> list:
        s = self.skus[sku]
        avail_before = s.available
        s.oh = after
        taken = []
        if after < s.rd + s.rw:
            taken = self._take_back(sku, s.rd + s.rw - after)
        if s.available > avail_before:
            self._fill(sku)
        return taken

    def receive(self, reference: str | None, lines: list[tuple[str, int]]) -> None:
        self.fills = []
        qty: dict[str, int] = {}
        for sku, q in lines:
            qty[sku] = qty.get(sku, 0) + q
        missing = [sku for sku in qty if sku not in self.skus]
        if missing:
            raise Refused("not_found", skus=missing)
        if reference is not None and reference in self.refs:
            raise Refused("conflict", reason="reference_used")
        if reference is not None:
            self.refs.add(reference)
        for sku, q in qty.items():
            self.skus[sku].oh += q
        for sku in qty:
            self._fill(sku)

    def return_units(self, oid: str, lines: list[tuple[str, int, bool]]) -> None:
        self.fills = []
        o = self.orders.get(oid)
        if o is None:
            raise Refused("not_found")
        asked: dict[str, int] = {}
        for sku, q, _ in lines:
            asked[sku] = asked.get(sku, 0) + q
        for sku, q in asked.items():
            mine = [line for line in o.lines if line.sku == sku]
            if not mine:
                raise Refused("conflict", reason="not_on_order")
            if q > sum(line.ship - line.ret for line in mine):
                raise Refused("conflict", reason="return_exceeds_shipped")
        restocked = []
        for sku, q, restock in lines:
            for line in o.lines:
                if q == 0:
                    break
                can = line.ship - line.ret
                if line.sku == sku and can > 0:
                    t = min(can, q)
                    line.ret += t
                    if restock and line.pooled:
                        self.skus[sku].oh += t
                        restocked.append(sku)
                    q -= t
        for sku in restocked:
            self._fill(sku)
