"""Emails to a wholesale customer's contact: order confirmation, shipment
notice (with the packing slip attached), backorder filled.

Rendered from Jinja2 templates (templates/<kind>.txt and .html, package
data), built as one multipart message whose Message-ID derives from the
event id (a receiver can drop a copy sent again after a crash), and handed
to SMTP through aiosmtplib, or, with no SMTP server configured, written as
``<event id>.eml`` under the mail directory (the quick start shows them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

ORDER_CONFIRMATION = "order_confirmation"
SHIPMENT_NOTICE = "shipment_notice"
BACKORDER_FILLED = "backorder_filled"
KINDS = (ORDER_CONFIRMATION, SHIPMENT_NOTICE, BACKORDER_FILLED)
#: Longest an SMTP exchange may take, seconds.
SMTP_TIMEOUT_S = 30.0


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("notifications", "templates"),
                       autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def subject(kind: str, data: dict[str, Any], merchant: str) -> str:
    order = data["order"]
    po = f" (PO {order['po_number']})" if order.get("po_number") else ""
    if kind == ORDER_CONFIRMATION:
        return f"{merchant}: order {order['number']}{po} confirmed"
    if kind == SHIPMENT_NOTICE:
        return f"{merchant}: order {order['number']}{po} has shipped"
    return f"{merchant}: backordered items of order {order['number']}{po} are ready"


def render(kind: str, data: dict[str, Any], *, merchant: str, names: dict[str, str | None]) -> tuple[str, str]:
    """(plain text, HTML) of one email."""
    context = {"merchant": merchant, "order": data["order"], "data": data, "names": names,
               "shipment": data.get("shipment"), "filled": data.get("filled") or []}
    env = _templates()
    return env.get_template(f"{kind}.txt").render(context), env.get_template(f"{kind}.html").render(context)


def message_id(event_id: str, kind: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "onhand.invalid"
    return f"<{event_id}.{kind}@{domain}>"


def build(*, kind: str, event_id: str, data: dict[str, Any], sender: str, recipient: str, merchant: str,
          names: dict[str, str | None], occurred_at: datetime,
          attachment: tuple[str, bytes] | None = None) -> EmailMessage:
    plain, html = render(kind, data, merchant=merchant, names=names)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject(kind, data, merchant)
    msg["Date"] = format_datetime(occurred_at.astimezone(UTC))
    msg["Message-ID"] = message_id(event_id, kind, sender)
    msg["X-Onhand-Event-Id"] = event_id
    msg.set_content(plain)
    msg.add_alternative(html, subtype="html")
    if attachment is not None:
        filename, content = attachment
        msg.add_attachment(content, maintype="application", subtype="pdf", filename=filename)
    return msg


@dataclass(frozen=True)
class SmtpServer:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


def parse_smtp_url(url: str) -> SmtpServer:
    """smtp://[user:pass@]host[:port][?starttls=1] (port 25, or 587 with
    STARTTLS) or smtps://... (TLS from the start, port 465)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("ONHAND_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    start_tls = query.get("starttls", "0").lower() in ("1", "true", "yes")
    use_tls = parts.scheme == "smtps"
    port = parts.port or (465 if use_tls else 587 if start_tls else 25)
    return SmtpServer(hostname=parts.hostname, port=port,
                      username=unquote(parts.username) if parts.username else None,
                      password=unquote(parts.password) if parts.password else None,
                      use_tls=use_tls, start_tls=start_tls)


async def send_smtp(server: SmtpServer, msg: EmailMessage) -> None:
    import aiosmtplib

    await aiosmtplib.send(msg, hostname=server.hostname, port=server.port, username=server.username,
                          password=server.password, use_tls=server.use_tls, start_tls=server.start_tls,
                          timeout=SMTP_TIMEOUT_S)


def write_eml(directory: Path, event_id: str, msg: EmailMessage) -> Path:
    """Writes the message as <event id>.eml (atomically: a reader never sees
    half a file, and writing it again replaces it with the same)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{event_id}.eml"
    tmp = path.with_suffix(".eml.tmp")
    tmp.write_bytes(bytes(msg))
    os.replace(tmp, path)
    return path
