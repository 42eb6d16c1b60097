"""Emails to a wholesale customer's contact, received by a local SMTP server
(aiosmtpd): order confirmation, backorder filled, shipment notice with the
packing slip attached; and the .eml files written when no SMTP is set."""

from __future__ import annotations

import email
import io
from email import policy

import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader

from tests.harness import running_stack
from tests.notify_helpers import eventually, wholesale_customer
from tests.procs import free_port

pytestmark = pytest.mark.anyio

ALL = ["order_confirmation", "shipment_notice", "backorder_filled"]


class Inbox:
    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


async def _backorder_fill_ship(stack, key) -> dict:
    assert (await stack.put("/v1/skus/BOX", {"name": "Shipping box"})).status_code == 200
    r = await stack.post("/v1/inventory/receipts", {"reference": "in-1", "lines": [{"sku": "BOX", "quantity": 6}]})
    assert r.status_code == 201
    r = await stack.client.post("/v1/orders", headers=key, json={
        "channel": "wholesale", "po_number": "PO-4471", "lines": [{"sku": "BOX", "quantity": 10}]})
    assert r.status_code == 201, r.text
    order = r.json()
    r = await stack.post("/v1/inventory/receipts", {"reference": "in-2", "lines": [{"sku": "BOX", "quantity": 4}]})
    assert r.status_code == 201
    r = await stack.post(f"/v1/orders/{order['id']}/shipments", {
        "lines": [{"sku": "BOX", "quantity": 10}], "method": "freight", "carrier": "XPO",
        "tracking_number": "PRO-5521", "pallets": 1})
    assert r.status_code == 201, r.text
    return order


async def test_emails_reach_the_opted_in_contact(redis_url, database_url):
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        url = f"smtp://127.0.0.1:{port}"
        async with running_stack(redis_url, database_url, smtp_url=url,
                                 mail_from="Acme Orders <orders@acme.example>") as stack:
            # Given a customer whose profile opted in to every email, and one that did not
            _, key = await wholesale_customer(stack, "Dockside", email="receiving@dockside.example",
                                              email_notifications=ALL)
            _, quiet = await wholesale_customer(stack, "Quiet")
            # When an order is confirmed with a backorder, filled, and shipped
            order = await _backorder_fill_ship(stack, key)
            r = await stack.client.post("/v1/orders", headers=quiet, json={
                "channel": "wholesale", "lines": [{"sku": "BOX", "quantity": 1}]})
            assert r.status_code == 201
            # Then the contact receives three emails, each with the PO number in subject and body
            await eventually(lambda: len(inbox.messages) >= 3, what="three emails")
            await stack.drained()
            assert len(inbox.messages) == 3
            assert all(to == ["receiving@dockside.example"] for to, _ in inbox.messages)
            by_subject = {m["Subject"]: m for _, m in inbox.messages}
            assert all("PO-4471" in s and str(order["number"]) in s for s in by_subject)
            confirmation, filled, shipped = (next(m for s, m in by_subject.items() if word in s)
                                             for word in ("confirmed", "ready", "shipped"))
            text = confirmation.get_body(("plain",)).get_content()
            assert "PO-4471" in text and "6 reserved" in text and "4 backordered" in text
            assert "PO-4471" in confirmation.get_body(("html",)).get_content()
            assert "BOX" in filled.get_body(("plain",)).get_content()
            body = shipped.get_body(("plain",)).get_content()
            assert "PRO-5521" in body and "XPO" in body and "PO-4471" in body
            # the packing slip is attached and readable
            pdfs = [p for p in shipped.iter_attachments() if p.get_content_type() == "application/pdf"]
            assert len(pdfs) == 1
            slip = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdfs[0].get_content())).pages)
            assert "PO-4471" in slip and "PACKING SLIP" in slip and "PRO-5521" in slip
            # the Message-ID comes from the event id (receivers can drop a second copy)
            ids = [m["Message-ID"].strip() for _, m in inbox.messages]  # (a long header comes folded)
            assert all(i.startswith("<evt_") and i.endswith("@acme.example>") for i in ids)
            assert all(m["X-Onhand-Event-Id"] in i for i, (_, m) in zip(ids, inbox.messages, strict=True))
            assert all(m["From"] == "Acme Orders <orders@acme.example>" for _, m in inbox.messages)
    finally:
        smtp.stop()


async def test_without_smtp_emails_are_written_as_eml_files(redis_url, database_url, tmp_path):
    async with running_stack(redis_url, database_url, mail_dir=tmp_path / "mail") as stack:
        _, key = await wholesale_customer(stack, "Fileside", email="dock@fileside.example",
                                          email_notifications=["shipment_notice"])
        await _backorder_fill_ship(stack, key)
        await eventually(lambda: len(list((tmp_path / "mail").glob("*.eml"))) >= 1, what="an .eml file")
        await stack.drained()
        files = list((tmp_path / "mail").glob("*.eml"))
        assert len(files) == 1  # only the kind it opted in to
        msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
        assert msg["To"] == "dock@fileside.example" and "PO-4471" in msg["Subject"]
        assert files[0].stem == msg["X-Onhand-Event-Id"]
        assert any(p.get_content_type() == "application/pdf" for p in msg.iter_attachments())
