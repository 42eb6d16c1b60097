"""The staff UI's import screen over real HTTP (no browser needed): a file is
checked first (every row's outcome in a table, nothing changed), imported on
confirm (exactly the checked bytes, once), and an 850's acknowledgment is on
its order's page, downloadable; a check is its user's own."""

from __future__ import annotations

import re

import pytest

from tests.documents_support import fixture
from tests.e2e.test_ui_security import browser, csrf, forget_failed_logins, sign_in
from tests.ui.support import OPERATOR_EMAIL, OPERATOR_PASSWORD, ui_stack

_TOKEN = re.compile(r'name="token" value="([^"]+)"')
FIXTURE_1 = "01_850_4010VICS_node-x12.edi"
PO_1 = "08292233294"


@pytest.fixture(scope="module")
def stack(redis_url, module_database_url, tmp_path_factory):
    with ui_stack(redis_url, module_database_url, edi_outbox=tmp_path_factory.mktemp("edi-out")) as s:
        for sku, on_hand, pack in (("AB3542", 500, 4), ("RD5322", 100, 2), ("XY5266", 0, 6),
                                   ("RV0524", 72, 4), ("DX1875", 700, 6), ("W1", 10, 1)):
            assert s.http.put(f"/v1/skus/{sku}", json={"name": sku, "case_pack": pack}).status_code == 200
            if on_hand:
                assert s.http.post("/v1/inventory/receipts", json={
                    "reference": f"init-{sku}", "lines": [{"sku": sku, "quantity": on_hand}]}).status_code == 201
        r = s.http.post("/v1/customers", json={"name": "XYZ Retail", "account_number": "XYZ-1", "profiles": [{
            "channel": "wholesale", "payment_terms": "net_30", "backorder_policy": "backorder",
            "edi": {"isa_qualifier": "12", "isa_id": "4405197800", "item_qualifiers": ["VN"]}}]})
        assert r.status_code == 201, r.text
        s.customer = r.json()
        s.drained()
        yield s


def _orders_with_po(stack, po: str) -> int:
    return stack.http.get("/v1/orders", params={"po_number": po}).json()["total"]


def _check(client, kind: str, name: str, data: bytes, **fields):
    token = csrf(client, "/ui/import")
    return client.post("/ui/import/check", data={"kind": kind, "_csrf_token": token, **fields},
                       files={"file": (name, data)})


def _confirm(client, token: str):
    return client.post("/ui/import/confirm", data={"token": token, "_csrf_token": csrf(client, "/ui/import")})


def test_an_850_is_checked_then_imported_once_and_its_855_is_on_the_order_page(stack):
    forget_failed_logins(stack)
    with browser(stack) as client:
        assert sign_in(client, OPERATOR_EMAIL, OPERATOR_PASSWORD).status_code == 303
        checked = _check(client, "x12", FIXTURE_1, fixture(FIXTURE_1))
        assert checked.status_code == 200, checked.text
        assert PO_1 in checked.text and "would create" in checked.text
        assert "VX2332" in checked.text  # the unknown part, reported in its row
        assert _orders_with_po(stack, PO_1) == 0  # checking changed nothing
        (token,) = _TOKEN.findall(checked.text)

        done = _confirm(client, token)
        assert done.status_code == 200, done.text
        assert "created" in done.text
        (order_id,) = re.findall(r'href="/ui/orders/(ord_[A-Za-z0-9_-]+)"', done.text)
        assert _orders_with_po(stack, PO_1) == 1
        # the same confirm again: the check is used up
        assert _confirm(client, token).status_code == 410
        # the file checked and confirmed again: the order exists, nothing twice
        again = _check(client, "x12", FIXTURE_1, fixture(FIXTURE_1))
        for token2 in _TOKEN.findall(again.text):
            assert _confirm(client, token2).status_code == 200
        assert _orders_with_po(stack, PO_1) == 1

        page = client.get(f"/ui/orders/{order_id}")
        assert page.status_code == 200 and "EDI documents" in page.text
        (doc_id,) = re.findall(r'href="/ui/import/documents/([A-Za-z0-9_-]+)">855', page.text)
        content = client.get(f"/ui/import/documents/{doc_id}")
        assert content.status_code == 200 and content.headers["content-type"].startswith("application/edi-x12")
        assert content.content.startswith(b"ISA") and f"BAK*00*AC*{PO_1}".encode() in content.content.replace(
            b"~\n", b"~")


def test_a_csv_check_names_every_bad_row_and_the_check_is_its_users_own(stack):
    csv = ("Customer,PO #,Item,Qty\n"
           "XYZ-1,UI-CSV-1,W1,2\n"
           "XYZ-1,UI-CSV-2,NOPE,1\n"     # line 3: unknown SKU
           "XYZ-1,UI-CSV-3,W1,x\n").encode()  # line 4: bad quantity
    forget_failed_logins(stack)
    with browser(stack) as operator, browser(stack) as admin:
        assert sign_in(operator, OPERATOR_EMAIL, OPERATOR_PASSWORD).status_code == 303
        assert sign_in(admin).status_code == 303
        checked = _check(operator, "orders", "buyer.csv", csv)
        assert checked.status_code == 200, checked.text
        rows = {po: row for po, row in re.findall(r"<tr><td>(UI-CSV-\d)</td>(.*?)</tr>", checked.text, re.S)}
        assert "would create" in rows["UI-CSV-1"]
        assert "line 3, Item" in rows["UI-CSV-2"] and "line 4, Qty" in rows["UI-CSV-3"]
        assert [_orders_with_po(stack, f"UI-CSV-{i}") for i in (1, 2, 3)] == [0, 0, 0]
        (token,) = _TOKEN.findall(checked.text)
        assert _confirm(admin, token).status_code == 410  # another user's check is no import
        assert _confirm(operator, token).status_code == 200
        assert [_orders_with_po(stack, f"UI-CSV-{i}") for i in (1, 2, 3)] == [1, 0, 0]


def test_bad_uploads_get_a_clear_answer_and_change_nothing(stack):
    forget_failed_logins(stack)
    with browser(stack) as client:
        assert sign_in(client, OPERATOR_EMAIL, OPERATOR_PASSWORD).status_code == 303
        empty = _check(client, "orders", "empty.csv", b"")
        assert empty.status_code == 400 and "empty" in empty.text
        unknown = _check(client, "nonsense", "x.csv", b"a,b\n")
        assert unknown.status_code == 400
        truncated = _check(client, "x12", "cut.edi", fixture(FIXTURE_1)[:300])
        assert truncated.status_code == 200 and "refused as a whole" in truncated.text
        assert not _TOKEN.findall(truncated.text)  # nothing to confirm
        no_customer = _check(client, "orders", "c.csv", b"PO,Item,Qty\nP,W1,1\n", customer_id="cus_nosuch")
        assert no_customer.status_code == 400
