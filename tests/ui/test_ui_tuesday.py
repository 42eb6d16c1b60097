"""The Tuesday scenario walked in the browser, against the Shopify emulator.

600 units of the bestseller. The inventory screen is open. A buyer phones
in 500 with a PO, typed on the order entry screen. By 5 PM the Shopify store
has sold 150 (its product keeps selling when out of stock, as many stores
set it): their 150 signed orders/create webhooks arrive in the background
while the inventory screen, already open, shows the split by channel change
live: measured from each webhook's 200 to the number on screen. Then 300
ship by freight, and the packing slip carries the PO.
"""

from __future__ import annotations

import io
import statistics
import threading

from pypdf import PdfReader

from tests.e2e.test_shopify_support import emulator, shopify_stack  # noqa: F401 - fixtures
from tests.ui.support import ADMIN_EMAIL, ADMIN_PASSWORD, autofocused, login, press, type_keys, wait_for

#: Shopify sales delivered as webhooks in the burst.
SALES = 150
#: p95 from a webhook's 200 to its unit on the open inventory screen, seconds (the issue's bar).
LIVE_P95_S = 1.0

#: Records, in the page, every change of the SKU's DTC units on screen
#: (reserved DTC + exception units) with the wall-clock time it showed.
RECORD = """() => {
  const row = document.querySelector('tr[data-sku="TEE-BEST"]');
  const cell = (f) => row.querySelector(`[data-f="${f}"]`);
  const units = () => parseInt(cell('reserved_dtc').textContent, 10) + parseInt(cell('exception').textContent, 10);
  window.__shown = [[Date.now(), units()]];
  const observer = new MutationObserver(() => window.__shown.push([Date.now(), units()]));
  for (const f of ['reserved_dtc', 'exception']) observer.observe(cell(f), {childList: true, characterData: true, subtree: true});
}"""


def _cell(page, field: str) -> str:
    return page.locator(f'tr[data-sku="TEE-BEST"] [data-f="{field}"]').inner_text()


def test_tuesday_in_the_browser(emulator, redis_url, database_url, browser, artifacts_dir):  # noqa: F811
    with shopify_stack(emulator, redis_url, database_url, admin_email=ADMIN_EMAIL,
                       admin_password=ADMIN_PASSWORD) as stack:
        # Given 600 units, on onhand and on the store (which sells past zero)
        stack.emu.client.seed_products([{"sku": "TEE-BEST", "available": 600, "inventory_policy": "CONTINUE"}])
        stack.sku("TEE-BEST", 600, name="Bestseller tee", case_pack=12)
        stack.api("POST", "/v1/customers", {"name": "Pat Buyer", "company": "Corner Boutique", "profiles": [
            {"channel": "wholesale", "payment_terms": "net_30", "ship_to": {
                "name": "Receiving", "company": "Corner Boutique", "address1": "1 Dock St", "city": "Springfield",
                "zip": "12345", "country_code": "US"}}]}, expect=201)
        base = stack.app.base_url
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        entry = context.new_page()
        login(entry, base)
        inventory = context.new_page()
        inventory.goto(f"{base}/ui/inventory?q=TEE-BEST")
        wait_for(lambda: inventory.locator("#live-text").inner_text() == "up to date", message="live stream")
        assert (_cell(inventory, "on_hand"), _cell(inventory, "available")) == ("600", "600")

        # When the buyer's 500 with a PO are typed on the order entry screen
        entry.goto(f"{base}/ui/orders/new")
        assert autofocused(entry) == "customer"
        type_keys(entry, "Corner")
        entry.get_by_role("option", name="Corner Boutique", exact=False).first.wait_for()
        press(entry, "Enter")
        type_keys(entry, "PO-2PM-500")
        press(entry, "Enter")
        type_keys(entry, "TEE-BEST")
        press(entry, "Enter")
        type_keys(entry, "500")
        wait_for(lambda: entry.locator("#lines tr .what").first.inner_text() == "reserve 500", message="preview")
        entry.keyboard.press("Control+Enter")
        entry.wait_for_url("**/ui/orders/ord_*")
        order_id = entry.url.rsplit("/", 1)[1]

        # Then the open inventory screen shows it at once
        wait_for(lambda: _cell(inventory, "reserved_wholesale") == "500", timeout_s=5, message="wholesale 500")
        assert _cell(inventory, "available") == "100"

        # When the store sells 150 and their webhooks arrive in the background
        stack.emu.client.webhook_mode("hold")
        for _ in range(SALES):
            stack.emu.client.purchase([{"sku": "TEE-BEST", "quantity": 1}])
        inventory.evaluate(RECORD)
        burst = threading.Thread(target=lambda: stack.emu.client.flush(concurrency=4, spread_s=3.0, shuffle=True,
                                                                       seed=7))
        burst.start()
        wait_for(lambda: (_cell(inventory, "reserved_dtc"), _cell(inventory, "exception")) == ("100", "50"),
                 timeout_s=60, message="the burst on screen")
        burst.join(60)
        inventory.screenshot(path=str(artifacts_dir / "inventory-live.png"), full_page=True)

        # Then 100 are reserved for DTC, 50 are exception units, nothing is available
        assert (_cell(inventory, "reserved_wholesale"), _cell(inventory, "available")) == ("500", "0")
        inv = stack.inventory("TEE-BEST")
        assert (inv["reserved_by_channel"], inv["exception"]) == ({"dtc": 100, "wholesale": 500}, 50)
        # and each sale showed within a second of its 200 (p95 over the burst)
        oks = sorted(a["sent_at"] + a["latency_ms"] / 1000 for a in stack.emu.client.webhooks()["attempts"]
                     if a["topic"] == "orders/create" and a["ok"] and a["attempt"] == 1 and a["copy"] == 1)
        assert len(oks) == SALES
        shown = inventory.evaluate("window.__shown")
        latencies = []
        for k, answered in enumerate(oks, start=1):
            on_screen = next(t for t, units in shown if units >= k) / 1000
            latencies.append(max(0.0, on_screen - answered))
        p95 = statistics.quantiles(latencies, n=20)[18]
        print(f"webhook 200 -> inventory screen over {SALES} sales: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
        assert p95 < LIVE_P95_S, latencies
        assert inventory.locator("#stale").is_hidden()  # the stream never went silent

        # When 300 ship by freight from the order screen
        entry.goto(f"{base}/ui/orders/{order_id}")
        entry.get_by_label("Ship now, line 1 (TEE-BEST)").fill("300")
        entry.get_by_label("Method").select_option("freight")
        entry.get_by_label("Carrier").fill("XPO")
        entry.get_by_label("Tracking number").fill("PRO-300")
        entry.get_by_label("Pallets").fill("2")
        entry.get_by_role("button", name="Ship", exact=True).click()
        entry.wait_for_url("**shipped=shp_*")
        shipment_id = entry.url.split("shipped=", 1)[1]
        entry.screenshot(path=str(artifacts_dir / "order-detail.png"), full_page=True)

        # Then the order is partly shipped, all lines visible, the rest still reserved
        order = stack.order(order_id)
        assert order["status"] == "partially_shipped"
        assert (order["lines"][0]["shipped"], order["lines"][0]["reserved"]) == (300, 200)
        assert [(s["method"], s["carrier"], s["tracking_number"]) for s in order["shipments"]] == [
            ("freight", "XPO", "PRO-300")]
        assert "partially shipped" in entry.locator("dl.facts").inner_text()
        wait_for(lambda: _cell(inventory, "on_hand") == "300", timeout_s=5, message="on hand 300 on screen")

        # and its packing slip carries the PO
        pdf = entry.request.get(f"{base}/ui/orders/{order_id}/packing-slip.pdf?shipment_id={shipment_id}")
        assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body())).pages)
        assert "PO-2PM-500" in text and "PRO-300" in text and "300" in text
        context.close()
