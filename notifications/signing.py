"""Webhook signatures, per the Standard Webhooks specification.

Headers: ``webhook-id`` (the event id: the same on every attempt, the
receiver's dedupe key), ``webhook-timestamp`` (seconds, the attempt's time)
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the endpoint's secret). The ``standardwebhooks`` package signs
here and is what a receiver verifies with.

The secret is ``whsec_`` + base64 of 32 random bytes. It must be usable to
compute the HMAC, so unlike API keys it cannot be stored as a one-way hash:
PostgreSQL keeps it as issued (protect the database and its backups
accordingly); the API shows it once, at creation.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
#: Random bytes in a secret (256 bits).
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(secret: str, msg_id: str, body: str, now_s: int) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now_s, tz=UTC), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(now_s), "webhook-signature": signature}
