"""Order entry in the browser, keyboard only: a 20-line phone order typed at
8 keys per second lands as one atomic reservation well inside the minute a
buyer on the phone will wait; a double Ctrl+Enter makes one order; a pasted
spreadsheet block fills the grid with bad SKUs flagged in place."""

from __future__ import annotations

import time

from tests.ui.support import autofocused, pg_scalar, press, type_keys, wait_for

#: The buyer's patience for a 20-line phone order, seconds of typing.
TYPING_DEADLINE_S = 60.0
SKUS = [f"ENT-{i:04d}" for i in range(1, 21)]


def _catalogue(stack):
    if stack.redis.exists(stack.keys.sku(SKUS[0])):
        return
    for sku in SKUS:
        stack.sku(sku, 100, name=f"Item {sku}", case_pack=6)
    stack.sku("ENT-FENCE", 10, name="Fenced item", dtc_reserve=8)
    stack.api("POST", "/v1/customers", {
        "name": "Jane Buyer", "company": "Corner Boutique", "account_number": "A-1001",
        "email": "jane@corner.example", "phone": "+1 555 0100",
        "profiles": [{"channel": "wholesale", "payment_terms": "net_30", "ship_to": {
            "name": "Receiving", "company": "Corner Boutique", "address1": "1 Dock St", "city": "Springfield",
            "zip": "12345", "country_code": "US"}}]}, expect=201)
    stack.drained()


def test_a_twenty_line_phone_order_typed_at_eight_keys_a_second(stack, admin_context, artifacts_dir):
    _catalogue(stack)
    page = admin_context.new_page()
    posts = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and r.url.endswith("/ui/orders") else None)
    page.goto(f"{stack.base_url}/ui/orders/new")
    before = set(stack.orders_in_redis())

    # When the order is typed, keyboard only (the Customer field has focus on load)
    assert autofocused(page) == "customer"
    started = time.monotonic()
    type_keys(page, "Corner")
    page.get_by_role("option", name="Corner Boutique", exact=False).first.wait_for()
    press(page, "Enter")
    assert page.evaluate("document.activeElement.id") == "po_number"
    type_keys(page, "PO-PHONE-20")
    press(page, "Enter")
    for i, sku in enumerate(SKUS):
        type_keys(page, sku)
        press(page, "Enter")
        type_keys(page, str(i % 9 + 1))
        press(page, "Enter")
    typing_s = time.monotonic() - started

    # Then the profile filled terms and ship-to, and every line says what it will do
    assert page.locator("#terms").inner_text() == "net_30"
    assert page.locator("#ship_city").input_value() == "Springfield"
    whats = page.locator("#lines tr .what")
    wait_for(lambda: [whats.nth(i).inner_text() for i in range(20)]
             == [f"reserve {i % 9 + 1}" for i in range(20)], message="every line previewed")
    page.screenshot(path=str(artifacts_dir / "order-entry.png"), full_page=True)

    # When Ctrl+Enter is pressed twice
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Control+Enter")
    page.wait_for_url("**/ui/orders/ord_*")
    assert typing_s < TYPING_DEADLINE_S, f"typing took {typing_s:.1f} s"

    # Then exactly one order exists, holding all 20 lines
    new = sorted(set(stack.orders_in_redis()) - before)
    assert len(new) == 1, new
    order = stack.api("GET", f"/v1/orders/{new[0]}", expect=200)
    assert order["po_number"] == "PO-PHONE-20" and order["payment_terms"] == "net_30"
    assert [(l["sku"], l["reserved"]) for l in order["lines"]] == [(s, i % 9 + 1) for i, s in enumerate(SKUS)]
    assert page.url.endswith(f"/ui/orders/{new[0]}")

    # and a replay of the same form's request answers the same order
    token = page.evaluate("document.body.dataset.csrf")
    again = page.request.post(f"{stack.base_url}/ui/orders", data=posts[0].post_data,
                              headers={"content-type": "application/json", "x-csrftoken": token})
    assert again.status == 201 and again.json()["order_id"] == new[0] and again.json()["replayed"] is True
    assert sorted(set(stack.orders_in_redis()) - before) == new

    # and it was one atomic reservation: every line's movement is one outbox event, by the signed-in user
    stack.drained()
    url = stack.settings.database_url
    assert pg_scalar(url, "SELECT count(DISTINCT event_id) FROM inventory_ledger WHERE order_id = :o "
                          "AND reason = 'reserve'", o=new[0]) == 1
    assert pg_scalar(url, "SELECT count(*) FROM inventory_ledger WHERE order_id = :o AND reason = 'reserve'",
                     o=new[0]) == 20
    actor = pg_scalar(url, "SELECT min(actor) FROM inventory_ledger WHERE order_id = :o", o=new[0])
    assert actor.startswith("user:usr_")
    print(f"20-line phone order: {typing_s:.1f} s of typing at 8 keys/s")
    page.close()


def test_a_pasted_block_fills_the_grid_and_flags_bad_skus_in_place(stack, admin_context):
    _catalogue(stack)
    page = admin_context.new_page()
    page.goto(f"{stack.base_url}/ui/orders/new")
    first_sku = page.get_by_label("SKU").first
    first_sku.focus()
    block = "ENT-0001\t3\nNOPE-404\t2\nENT-FENCE\t5\n"
    page.evaluate("""([text]) => {
        const dt = new DataTransfer(); dt.setData('text/plain', text);
        document.activeElement.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
    }""", [block])
    rows = page.locator("#lines tr")
    wait_for(lambda: rows.count() >= 3 and rows.nth(1).locator(".what").inner_text() != "", message="preview")
    assert [rows.nth(i).get_by_label("SKU").input_value() for i in range(3)] == ["ENT-0001", "NOPE-404", "ENT-FENCE"]
    assert [rows.nth(i).get_by_label("Quantity").input_value() for i in range(3)] == ["3", "2", "5"]
    bad = rows.nth(1)
    assert bad.locator(".what").inner_text() == "unknown SKU or UPC NOPE-404"
    assert bad.get_by_label("SKU").get_attribute("aria-invalid") == "true"
    # the ring-fence keeps 8 of the 10 units from wholesale: the screen says so before anything is placed
    wait_for(lambda: "ring-fence" in rows.nth(2).locator(".what").inner_text(), message="ring-fence text")
    assert rows.nth(2).locator(".what").inner_text() == "reserve 2, backorder 3 (3 kept by the DTC ring-fence)"

    # Reserving with the bad line refuses the whole order and places nothing
    before = set(stack.orders_in_redis())
    page.keyboard.press("Control+Enter")
    wait_for(lambda: "fix the flagged lines" in page.locator("#entry-status").inner_text(), message="refusal")
    assert set(stack.orders_in_redis()) == before
    page.close()
