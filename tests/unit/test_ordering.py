"""engine/ordering.py: the order entry screen's previews follow the scripts'
rules (lua/lib.lua place_order and fill)."""

from __future__ import annotations

import pytest

from engine.model import Inventory
from engine.ordering import (LineRequest, OrderRequest, OrderRequestError, WaitingLine, merge_lines,
                             place_order, preview_fills, preview_line)


def inv(on_hand: int, reserved: int = 0, fence: int = 0) -> Inventory:
    return Inventory(sku="A", on_hand=on_hand, reserved_dtc=0, reserved_wholesale=reserved, backordered_dtc=0,
                     backordered_wholesale=0, exception=0, dtc_reserve=fence, version=1)


def test_a_line_that_fits_reserves_in_full():
    assert preview_line(inv(10), 4, "wholesale", "backorder").text() == "reserve 4"


@pytest.mark.parametrize("policy, text", [
    ("backorder", "reserve 6, backorder 4"),
    ("ship_complete", "reserve 6, backorder 4"),
    ("cancel_remainder", "reserve 6, cancel 4"),
    ("all_or_nothing", "refused for want of stock: the order is all or nothing and 10 are short"),
])
def test_the_rest_follows_the_policy(policy, text):
    assert preview_line(inv(6), 10, "wholesale", policy).text() == text


def test_the_ring_fence_keeps_units_from_wholesale_but_not_from_dtc():
    fenced = inv(10, fence=8)
    assert preview_line(fenced, 5, "wholesale", "backorder").text() == "reserve 2, backorder 3 (3 kept by the DTC ring-fence)"
    assert preview_line(fenced, 5, "wholesale", "all_or_nothing").text().startswith("refused by the DTC ring-fence")
    assert preview_line(fenced, 5, "dtc", "all_or_nothing").text() == "reserve 5"
    assert preview_line(inv(2), 5, "dtc", "accept").text() == "reserve 2, exception units 3"


def test_fills_go_oldest_first_and_wholesale_stops_at_the_fence():
    waiting = [WaitingLine("w-new", 0, 30, "wholesale", 5), WaitingLine("w-old", 0, 10, "wholesale", 4),
               WaitingLine("d-mid", 0, 20, "dtc", 3)]
    fills = preview_fills(inv(0, fence=2), 8, waiting)
    # 8 arrive with a ring-fence of 2: w-old (oldest) takes 4, the DTC line 3;
    # the last unit is inside the fence, so the newer wholesale line gets none
    assert [(f.order_id, f.units) for f in fills] == [("w-old", 4), ("d-mid", 3)]


def test_lines_of_one_sku_merge_and_a_price_clash_names_the_later_line():
    merged = merge_lines([LineRequest("A", 2), LineRequest("B", 1), LineRequest("A", 3)])
    assert [(l.sku, l.quantity) for l in merged] == [("A", 5), ("B", 1)]
    with pytest.raises(OrderRequestError) as caught:
        merge_lines([LineRequest("A", 1, "1.00"), LineRequest("A", 1, "2.00")])
    assert caught.value.errors[0]["field"] == "lines[1].unit_price"


def test_a_phone_order_takes_the_profile_terms_ship_to_and_policy():
    customer = {"id": "c1", "profiles": [
        {"id": "p1", "channel": "dtc", "payment_terms": "prepaid"},
        {"id": "p2", "channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "ship_complete",
         "ship_to": {"city": "Springfield"}}]}
    cmd = place_order(OrderRequest(channel="wholesale", customer_id="c1", po_number="PO-1",
                                   lines=(LineRequest("A", 2),), source="ui"), customer, now_ms=1000, order_id="o1")
    import msgspec

    header = msgspec.json.decode(cmd.doc)
    assert (cmd.policy, header["profile_id"], header["payment_terms"], header["po_number"], header["source"]) == (
        "ship_complete", "p2", "net_30", "PO-1", "ui")
    assert header["ship_to"] == {"city": "Springfield"}
