"""Every screen of the staff UI in the browser: what it must do (search, links
to the orders behind a number, receive preview oldest first, returns,
customers, the ledger and its CSV, exceptions, admin), that axe-core finds no
serious or critical WCAG 2.2 AA violation, that focus is always visible, and
a screenshot of each (tmp/artifacts/ui)."""

from __future__ import annotations

import csv
import io

import pytest

from tests.ui.support import autofocused, axe_violations, login

SCREENS = ["/ui/login", "/ui/orders/new", "/ui/inventory", "/ui/orders", "/ui/receive", "/ui/import", "/ui/returns",
           "/ui/customers", "/ui/ledger", "/ui/exceptions", "/ui/admin/users", "/ui/admin/keys"]


@pytest.fixture(scope="module")
def shop(stack):
    """A small merchant: two SKUs, a buyer, a backordered wholesale order and
    a newer one, a DTC sale beyond stock (exception units), a shipped order."""
    stack.sku("SCR-TEE", 30, name="Screen tee", case_pack=6, upc="400000000017")
    stack.sku("SCR-MUG", 0, name="Screen mug")
    buyer = stack.api("POST", "/v1/customers", {
        "name": "Sam Buyer", "company": "Harbor Goods", "account_number": "HG-77", "email": "sam@harbor.example",
        "profiles": [{"channel": "wholesale", "payment_terms": "net_60", "ship_to": {"city": "Portland"}}]},
        expect=201)
    older = stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"], "po_number": "PO-OLD-1",
                                            "lines": [{"sku": "SCR-MUG", "quantity": 4}]}, expect=201)
    newer = stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"], "po_number": "PO-NEW-2",
                                            "lines": [{"sku": "SCR-MUG", "quantity": 5}]}, expect=201)
    oversold = stack.api("POST", "/v1/orders", {"channel": "dtc", "backorder_policy": "accept",
                                               "lines": [{"sku": "SCR-MUG", "quantity": 2}]}, expect=201)
    shipped = stack.api("POST", "/v1/orders", {"channel": "wholesale", "customer_id": buyer["id"],
                                              "po_number": "PO-SHIP-3", "lines": [{"sku": "SCR-TEE", "quantity": 10}]},
                        expect=201)
    stack.api("POST", f"/v1/orders/{shipped['id']}/shipments", {
        "lines": [{"sku": "SCR-TEE", "quantity": 10}], "method": "parcel", "carrier": "UPS",
        "tracking_number": "1ZSCREEN10"}, expect=201)
    stack.drained()
    return {"buyer": buyer, "older": older, "newer": newer, "oversold": oversold, "shipped": shipped}


@pytest.fixture(scope="module")
def page(admin_context):
    p = admin_context.new_page()
    yield p
    p.close()


def test_every_screen_passes_axe_shows_focus_and_is_screenshotted(stack, shop, browser, page, artifacts_dir):
    anonymous = browser.new_page()
    screens = [(anonymous, "/ui/login")] + [(page, path) for path in SCREENS[1:]]
    screens += [(page, f"/ui/orders/{shop['shipped']['id']}"), (page, f"/ui/customers/{shop['buyer']['id']}")]
    for p, path in screens:
        response = p.goto(stack.base_url + path)
        assert response.status == 200, path
        violations = axe_violations(p)
        assert violations == [], (path, violations)
        # focus is visible on everything the keyboard reaches
        for _ in range(6):
            p.keyboard.press("Tab")
            style = p.evaluate("""() => { const e = document.activeElement; const s = getComputedStyle(e);
                return {tag: e.tagName, outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }""")
            if style["tag"] == "BODY":
                continue
            assert style["outline"] != "none" and style["width"] >= 2, (path, style)
        name = path.strip("/").replace("/", "-").replace("ui-", "") or "home"
        name = "order" if name.startswith("orders-ord_") else "customer" if name.startswith("customers-cus_") else name
        p.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
    anonymous.close()


def test_order_search_opens_an_exact_po_and_finds_by_number_customer_sku_and_tracking(stack, shop, page):
    base = stack.base_url
    page.goto(f"{base}/ui/orders?q=po-ship-3")
    assert page.url.endswith(f"/ui/orders/{shop['shipped']['id']}")
    for q, expected in ((str(shop["older"]["number"]), [shop["older"]]), ("1zscreen10", [shop["shipped"]]),
                        ("Harbor", [shop["shipped"], shop["newer"], shop["older"]]),
                        ("SCR-MUG", [shop["oversold"], shop["newer"], shop["older"]])):
        page.goto(f"{base}/ui/orders?q={q}")
        links = page.locator("#results tbody a[href^='/ui/orders/ord_']")
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
            f"/ui/orders/{o['id']}" for o in expected], q
    # filters and page sizes of 25 to 250 rows
    page.goto(f"{base}/ui/orders?channel=dtc&status=exception")
    assert page.locator("#results tbody tr").count() == 1
    assert axe_violations(page) == []
    page.goto(f"{base}/ui/orders?backordered=true&limit=250")
    assert page.locator("#results tbody tr").count() == 2
    assert page.goto(f"{base}/ui/orders?limit=251").status == 400
    # typing in the search box and Enter, keyboard only
    page.goto(f"{base}/ui/orders")
    assert autofocused(page) == "q"
    page.keyboard.type("PO-NEW-2")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/orders/{shop['newer']['id']}")


def test_every_number_on_the_inventory_screen_opens_what_is_behind_it(stack, shop, page):
    page.goto(f"{stack.base_url}/ui/inventory?q=SCR-MUG")
    row = page.locator('tr[data-sku="SCR-MUG"]')
    assert row.locator('[data-f="backordered"]').inner_text() == "9"
    assert row.locator('[data-f="exception"]').inner_text() == "2"
    row.locator('[data-f="backordered"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/orders?sku=SCR-MUG&backordered=true")
    assert page.locator("#results tbody tr").count() == 2
    page.go_back()
    page.locator('tr[data-sku="SCR-MUG"] [data-f="exception"]').click()
    page.wait_for_url("**status=exception")
    assert page.locator("#results tbody tr").count() == 1
    page.goto(f"{stack.base_url}/ui/inventory?q=SCR-MUG")
    page.locator('tr[data-sku="SCR-MUG"] [data-f="on_hand"]').click()
    page.wait_for_url("**/ui/ledger?sku=SCR-MUG")


def test_a_broken_stream_shows_the_stale_banner(stack, shop, admin_context):
    page = admin_context.new_page()
    page.route("**/ui/inventory/stream*", lambda route: route.abort())
    page.goto(f"{stack.base_url}/ui/inventory")
    assert page.locator("#stale").is_hidden()
    page.locator("#stale").wait_for(state="visible", timeout=9000)
    assert "stale" in page.locator("#stale").inner_text()
    page.close()


def test_receiving_shows_the_backorders_it_fills_oldest_first_before_confirming(stack, shop, page, artifacts_dir):
    page.goto(f"{stack.base_url}/ui/receive")
    page.get_by_label("Reference").fill("ASN-SCREEN-1")
    page.get_by_label("Lines").fill("SCR-MUG 6")
    page.get_by_role("button", name="Preview what this receipt fills").click()
    rows = page.locator("main table tbody tr")
    page.screenshot(path=str(artifacts_dir / "receive-preview.png"), full_page=True)
    assert axe_violations(page) == []
    # the DTC sale beyond stock is newest; oldest first: the old PO's 4, then 2 of the newer's 5
    assert [rows.nth(i).inner_text().split("\t")[::3] for i in range(rows.count())] == [
        [str(shop["older"]["number"]), "4"], [str(shop["newer"]["number"]), "2"]]
    assert stack.api("GET", f"/v1/orders/{shop['older']['id']}")["lines"][0]["backordered"] == 4  # nothing yet
    page.get_by_role("button", name="Confirm receipt").click()
    page.wait_for_url("**/ui/receive/done*")
    assert "2 backorder line(s) filled" in page.locator(".notice").inner_text()
    assert stack.api("GET", f"/v1/orders/{shop['older']['id']}")["lines"][0]["reserved"] == 4
    assert stack.api("GET", f"/v1/orders/{shop['newer']['id']}")["lines"][0]["reserved"] == 2


def test_a_return_restocks_and_the_ledger_exports_it(stack, shop, page):
    before = stack.api("GET", "/v1/inventory/SCR-TEE")["on_hand"]
    page.goto(f"{stack.base_url}/ui/returns?order={shop['shipped']['number']}")
    assert axe_violations(page) == []
    page.get_by_label("Units returned, line 1").fill("2")
    page.get_by_label("Reason").fill("damaged box, goods fine")
    page.get_by_role("button", name="Record return").click()
    page.wait_for_url(f"**/ui/orders/{shop['shipped']['id']}?returned=1")
    assert stack.api("GET", "/v1/inventory/SCR-TEE")["on_hand"] == before + 2
    stack.drained()
    page.goto(f"{stack.base_url}/ui/ledger?sku=SCR-TEE&reason=return_restock")
    assert page.locator("main tbody tr").count() == 1
    export = page.request.get(f"{stack.base_url}/ui/ledger.csv?sku=SCR-TEE")
    assert export.status == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text())))
    assert {r["reason"] for r in rows} >= {"receipt", "reserve", "ship", "return_restock"}
    assert all(r["sku"] == "SCR-TEE" for r in rows)


def test_customers_are_created_with_terms_and_found_by_account_number(stack, shop, page):
    page.goto(f"{stack.base_url}/ui/customers")
    page.get_by_label("Name", exact=True).first.fill("Lee Retail")
    page.get_by_label("Company", exact=True).first.fill("Lee & Co")
    page.get_by_label("Account number").fill("LC-9")
    page.get_by_label("Payment terms").select_option("net_15")
    page.get_by_role("button", name="Create customer").click()
    page.wait_for_url("**/ui/customers/cus_*")
    assert "net_15" in page.locator("main").inner_text()
    stack.drained()
    page.goto(f"{stack.base_url}/ui/customers?q=lc-9")
    assert "Lee & Co" in page.locator("main tbody").inner_text()


def test_exception_units_are_resolved_from_the_exceptions_page(stack, shop, page):
    page.goto(f"{stack.base_url}/ui/exceptions")
    button = page.get_by_role("button", name=f"Cancel 2 unit(s) of order {shop['oversold']['number']}")
    button.click()
    page.wait_for_url("**/ui/exceptions?cancelled=1")
    line = stack.api("GET", f"/v1/orders/{shop['oversold']['id']}")["lines"][0]
    assert (line["exception"], line["cancelled"]) == (0, 2)


def test_admins_manage_users_and_keys(stack, shop, page, browser):
    page.goto(f"{stack.base_url}/ui/admin/users")
    page.get_by_label("Email").fill("new.operator@example.com")
    page.get_by_label("Password").fill("a fresh password 42")
    page.get_by_role("button", name="Create user").click()
    assert "new.operator@example.com (operator) created" in page.locator(".notice").inner_text()
    page.goto(f"{stack.base_url}/ui/admin/keys")
    page.get_by_label("Role").select_option("operator")
    page.get_by_label("Name").fill("warehouse script")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("Key", exact=True).input_value()
    assert key.startswith("onh_key_")
    assert stack.http.get("/v1/orders", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    key_id = key[4:].rpartition("_")[0]
    page.get_by_role("button", name=f"Revoke {key_id}").click()
    page.wait_for_url("**/ui/admin/keys")
    assert stack.http.get("/v1/orders", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    # the new operator signs in with what the admin set
    other = browser.new_context()
    p = other.new_page()
    login(p, stack.base_url, "new.operator@example.com", "a fresh password 42")
    assert "Users" not in p.locator("header").inner_text()
    other.close()
