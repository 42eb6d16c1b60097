"""The merchants (tenants) of a deployment.

PostgreSQL's ``merchants`` table is the record; what the request path needs
(each merchant's name and its Shopify channel's settings, the shop domains)
is written through to Redis, to the registry hash (:func:`registry_key`:
under the home merchant's prefix, so it belongs to this deployment alone),
so webhooks and API processes find a merchant with Redis alone, as they find
everything else (a rebuild restores the hash from PostgreSQL).

The home merchant (ONHAND_MERCHANT, ``default`` unless set) exists without
a row: its settings are the environment's. A single-merchant deployment
therefore needs nothing of this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis import Redis
from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert

from engine.keys import Keys
from persistence.models import Merchant

#: A merchant id: it becomes the Redis hash tag {m:<id>} and a key-id suffix.
MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
#: The Shopify settings a merchant may carry (onhand.settings.Settings fields).
SHOPIFY_FIELDS = ("shopify_shop", "shopify_access_token", "shopify_api_secret",
                  "shopify_api_secret_previous", "shopify_api_version", "shopify_api_url",
                  "shopify_location_id", "shopify_sku_map")


def registry_key(home: str) -> str:
    """The Redis hash of the deployment's merchant records (id -> JSON {id,
    name, shopify}), kept with the home merchant's keys."""
    return f"{Keys(home).prefix}:merchants"


class MerchantError(ValueError):
    """Raised when a merchant cannot be created as asked (field, message)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class MerchantRecord:
    id: str
    name: str
    #: Shopify settings by Settings field name (shopify_shop, shopify_api_secret, ...).
    shopify: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return msgspec.json.encode({"id": self.id, "name": self.name, "shopify": self.shopify})

    @classmethod
    def decode(cls, raw: bytes | str) -> "MerchantRecord":
        doc = msgspec.json.decode(raw)
        return cls(doc["id"], doc["name"], dict(doc.get("shopify") or {}))


def settings_for(settings, merchant: str, record: MerchantRecord | None):
    """The deployment's settings as they apply to ``merchant``: its id, its
    name, and its own Shopify channel (nothing of the home merchant's)."""
    if merchant == settings.merchant:
        return settings
    shopify: dict[str, Any] = {name: None for name in SHOPIFY_FIELDS}
    shopify.update(shopify_api_version=settings.shopify_api_version, shopify_sku_map={})
    shopify.update(record.shopify if record else {})
    return msgspec.structs.replace(settings, merchant=merchant,
                                   merchant_name=record.name if record else merchant, **shopify)


def read_registry(redis: Redis, home: str) -> dict[str, MerchantRecord]:
    return {r.id: r for r in (MerchantRecord.decode(v) for v in redis.hgetall(registry_key(home)).values())}


def normalize_shop(domain: str) -> str:
    d = domain.strip().lower()
    for prefix in ("https://", "http://"):
        d = d.removeprefix(prefix)
    return d.rstrip("/")


def create(conn: Connection, redis: Redis, record: MerchantRecord, *, home: str) -> None:
    """Adds a merchant: its row, then its registry entry (so a merchant the
    registry knows always has its row). Raises MerchantError."""
    if not MERCHANT_ID.match(record.id):
        raise MerchantError("id", "1-32 lowercase letters, digits and -, starting with a letter or digit")
    if record.id == home:
        raise MerchantError("id", f"{home} is this deployment's own merchant (ONHAND_MERCHANT)")
    shop = record.shopify.get("shopify_shop")
    if shop:
        record.shopify["shopify_shop"] = shop = normalize_shop(shop)
    unknown = set(record.shopify) - set(SHOPIFY_FIELDS)
    if unknown:
        raise MerchantError("shopify", f"unknown Shopify settings {sorted(unknown)}")
    inserted = conn.execute(insert(Merchant).values(
        id=record.id, name=record.name, shopify_shop=shop, shopify=record.shopify,
    ).on_conflict_do_nothing().returning(Merchant.id)).scalar()
    if inserted is None:
        taken = conn.scalar(select(Merchant.id).where(Merchant.id == record.id))
        raise MerchantError("id" if taken else "shopify_shop",
                            f"merchant {record.id} exists" if taken else f"shop {shop} belongs to another merchant")
    redis.hset(registry_key(home), record.id, record.encode())


def listing(conn: Connection) -> list[MerchantRecord]:
    rows = conn.execute(select(Merchant.id, Merchant.name, Merchant.shopify).order_by(Merchant.id)).all()
    return [MerchantRecord(r.id, r.name, dict(r.shopify or {})) for r in rows]


def ids(conn: Connection, home: str) -> list[str]:
    """Every merchant of the deployment, the home merchant first."""
    return [home, *(m for m in conn.scalars(select(Merchant.id).order_by(Merchant.id)) if m != home)]


def restore_registry(conn: Connection, redis: Redis, home: str) -> int:
    """Writes every merchant's registry entry from PostgreSQL (a rebuild)."""
    records = listing(conn)
    if records:
        redis.hset(registry_key(home), mapping={r.id: r.encode() for r in records})
    return len(records)
