"""All settings, read once from the environment into one typed object.

Each field states its unit and default. Nothing reads the environment at
import time: call :func:`Settings.from_env`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import msgspec


def default_data_dir(env: Mapping[str, str]) -> Path:
    """$XDG_DATA_HOME/onhand, or /var/lib/onhand when run as root."""
    if os.geteuid() == 0:
        return Path("/var/lib/onhand")
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "onhand"


#: A broker namespace: what Dramatiq accepts at the start of a queue name.
BROKER_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_bytes(text: str) -> int:
    """'1073741824', '512mb', '1gb', '256MiB' -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) * _UNITS[unit]


def parse_sku_map(text: str) -> dict[str, str]:
    """'SKU-A=123,SKU-B=gid://shopify/InventoryItem/456' -> {sku: inventory item}."""
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        sku, sep, item = part.partition("=")
        if not sep or not sku.strip() or not item.strip():
            raise ValueError(f"ONHAND_SHOPIFY_SKU_MAP entries are SKU=inventory item, not {part!r}")
        out[sku.strip()] = item.strip()
    return out


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    #: Redis/Valkey URL (redis://, rediss://, unix://). None: start an embedded Valkey.
    redis_url: str | None = None
    #: PostgreSQL URL (postgresql://...). None: start an embedded PostgreSQL.
    database_url: str | None = None
    #: Where embedded servers keep their data, and where `serve` records their addresses.
    data_dir: Path = Path("/var/lib/onhand")
    #: Accept a Redis without AOF `appendfsync always` (throwaway instances only).
    allow_unsafe_redis: bool = False
    #: maxmemory of the embedded Valkey, bytes (default 1 GiB); the outbox's budget is half.
    redis_maxmemory_bytes: int = 1024**3
    #: Replicas that must acknowledge each write before it is answered (0: none).
    redis_wait_replicas: int = 0
    #: Dramatiq broker URL: amqp:// or amqps:// (RabbitMQ), or redis://, rediss://,
    #: unix:// (a standalone Redis of its own). None: the Redis of redis_url
    #: (refused when that is a cluster; workers/brokers.py).
    broker_url: str | None = None
    #: Prefix of the broker's queue names (RabbitMQ) and keys (Redis); deployments
    #: sharing one broker need different ones. None: onhand-<merchant>.
    broker_namespace: str | None = None
    #: Redis connections per API process. Requests beyond it wait for one (up
    #: to REDIS_POOL_WAIT_S) instead of failing: Redis runs one command at a
    #: time, so more connections add no throughput.
    redis_pool_size: int = 64
    #: If set at start, an admin API key with this value exists.
    admin_key: str | None = None
    #: Bearer token accepted on /metrics (besides the admin key).
    metrics_token: str | None = None
    #: Requests per second per wholesale key (0: no limit).
    rate_limit_wholesale: float = 50.0
    #: Requests per second per admin or operator key (0: no limit).
    rate_limit_staff: float = 0.0
    #: Merchant id (one per deployment in v1; it prefixes every Redis key).
    merchant: str = "default"
    #: The merchant's name, printed on packing slips.
    merchant_name: str = "onhand merchant"
    #: How long idempotency records are kept, seconds (default 72 h).
    idempotency_ttl_s: int = 72 * 3600
    #: How long closed orders stay in Redis after PostgreSQL has them, seconds.
    closed_order_retention_s: int = 24 * 3600
    #: Most waiting lines one script call fills before handing over to the next.
    fill_limit: int = 1000
    shopify_shop: str | None = None
    shopify_access_token: str | None = None
    shopify_api_secret: str | None = None
    shopify_api_secret_previous: str | None = None
    shopify_api_version: str = "2026-04"
    #: Base URL of the Shopify Admin API (tests point it at the emulator).
    shopify_api_url: str | None = None
    #: The Shopify location whose available onhand sets (gid or number); None: the primary.
    shopify_location_id: str | None = None
    #: Push available to Shopify (ONHAND_SHOPIFY_SYNC=0 pauses the sync; webhooks still apply).
    shopify_sync_enabled: bool = True
    #: SKU -> Shopify inventory item (gid or number), for SKUs whose Shopify SKU differs;
    #: others use the SKU's shopify_inventory_item_id, else a lookup by SKU.
    #: ONHAND_SHOPIFY_SKU_MAP="SKU-A=123,SKU-B=gid://shopify/InventoryItem/456".
    shopify_sku_map: dict[str, str] = msgspec.field(default_factory=dict)
    #: How long after our 200 for a sale the sync still holds it back from
    #: Shopify, milliseconds: the time Shopify may take to read the 200.
    shopify_sale_ack_window_ms: int = 500
    # ---- outbound webhooks and emails (docs/notifications.md)
    #: Let webhook endpoints reach loopback, private, link-local and other
    #: non-global addresses (tests and closed networks only; off by default).
    webhooks_allow_private: bool = False
    #: Longest one webhook delivery attempt may take (connect, send, answer), milliseconds.
    webhook_timeout_ms: int = 10_000
    #: First wait before retrying a failed delivery, milliseconds; doubles per
    #: attempt (with jitter: 50-100% of the step) up to webhook_retry_cap_ms.
    webhook_retry_base_ms: int = 10_000
    #: Longest wait between two attempts, milliseconds (default 4 h).
    webhook_retry_cap_ms: int = 4 * 3600 * 1000
    #: How long a delivery is retried before it is dead-lettered and its
    #: endpoint disabled, seconds (default 3 days).
    webhook_retry_window_s: int = 3 * 24 * 3600
    #: Deliveries in flight at once per delivering worker slot.
    webhook_concurrency: int = 64
    #: Deliveries in flight at once to one endpoint (one worker sends to an
    #: endpoint at a time, over at most this many kept-alive connections).
    webhook_endpoint_concurrency: int = 4
    #: Deliveries one worker claims ahead for one endpoint (a lease on up to
    #: this many queued deliveries, each of a different order), sent
    #: webhook_endpoint_concurrency at a time while the next claim is made.
    webhook_endpoint_batch: int = 32
    #: SMTP server for emails: smtp://[user:pass@]host[:port][?starttls=1] or
    #: smtps://... (TLS from the start). None: each email is written as a
    #: .eml file under mail_dir (the quick start shows them there).
    smtp_url: str | None = None
    #: The From address of emails.
    mail_from: str = "onhand <noreply@localhost>"
    #: Where emails go as .eml files when no SMTP server is set; None: <data_dir>/outbox-mail.
    mail_dir: Path | None = None

    # ------------------------------------------------------------ documents (EDI, CSV)
    #: The merchant's own ISA05/06 qualifier and id, and GS02 application id,
    #: on outgoing documents; incoming ones addressed to another ISA id are
    #: refused. None: answer as whatever id the partner addressed.
    edi_isa_qualifier: str | None = None
    edi_isa_id: str | None = None
    edi_gs_id: str | None = None
    #: ISA15 of documents not in answer to a received one: P production, T test.
    edi_usage: str = "P"
    #: The merchant's GS1 company prefix (7-10 digits); without it cartons get no SSCC.
    gs1_company_prefix: str | None = None
    #: The SSCC extension digit (0-9), first of the 18.
    sscc_extension: int = 0
    #: Folder watched for incoming 850s and CSV orders (None: not watched).
    edi_inbox: Path | None = None
    #: Folder outgoing documents are written to (None: <data_dir>/edi/outbox).
    edi_outbox: Path | None = None
    #: Largest file an import reads (CLI, upload, inbox), bytes (default 10 MiB).
    import_max_bytes: int = 10 * 1024 * 1024
    #: An inbox file is read once its size and time have not changed for this long, milliseconds.
    edi_inbox_settle_ms: int = 2000

    @property
    def sscc_prefix(self) -> str:
        """Extension digit + company prefix, as lua/ship.lua takes it ("" : no SSCCs)."""
        return f"{self.sscc_extension}{self.gs1_company_prefix}" if self.gs1_company_prefix else ""

    @property
    def edi_outbox_dir(self) -> Path:
        return self.edi_outbox or self.data_dir / "edi" / "outbox"

    #: The staff web UI (ui/). A first admin user with this email and
    #: password is created at start when no user exists.
    admin_email: str | None = None
    admin_password: str | None = None
    #: Signs the UI's CSRF tokens; every API process of a deployment needs the
    #: same one (`serve` makes one in the data dir when unset; an app started
    #: on its own without it makes a random one per process).
    ui_secret: str | None = None
    #: A UI session ends after this many seconds without a request.
    ui_session_idle_s: int = 3600
    #: ... and this many seconds after the login, whatever happens (12 h).
    ui_session_max_s: int = 12 * 3600
    #: Failed logins allowed per account, and per client address, within
    #: ui_login_window_s seconds; beyond them a login is refused until the
    #: window ends.
    ui_login_failures_per_account: int = 5
    ui_login_failures_per_address: int = 20
    ui_login_window_s: int = 900
    #: Session and CSRF cookies only over HTTPS (set it behind TLS).
    ui_secure_cookies: bool = False

    @property
    def shopify_configured(self) -> bool:
        """The Admin API can be reached (token and shop or API URL set)."""
        return bool(self.shopify_access_token and (self.shopify_shop or self.shopify_api_url))

    @property
    def mail_path(self) -> Path:
        return self.mail_dir or self.data_dir / "outbox-mail"

    @property
    def outbox_budget_bytes(self) -> int:
        return self.redis_maxmemory_bytes // 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        kwargs: dict = {
            "redis_url": get("ONHAND_REDIS_URL"),
            "database_url": get("ONHAND_DATABASE_URL"),
            "data_dir": Path(get("ONHAND_DATA_DIR") or default_data_dir(env)),
            "allow_unsafe_redis": _flag(get("ONHAND_ALLOW_UNSAFE_REDIS")),
            "broker_url": get("ONHAND_BROKER_URL"),
            "admin_key": get("ONHAND_ADMIN_KEY"),
            "metrics_token": get("ONHAND_METRICS_TOKEN"),
            "shopify_shop": get("ONHAND_SHOPIFY_SHOP"),
            "shopify_access_token": get("ONHAND_SHOPIFY_ACCESS_TOKEN"),
            "shopify_api_secret": get("ONHAND_SHOPIFY_API_SECRET"),
            "shopify_api_secret_previous": get("ONHAND_SHOPIFY_API_SECRET_PREVIOUS"),
            "shopify_api_url": get("ONHAND_SHOPIFY_API_URL"),
            "shopify_location_id": get("ONHAND_SHOPIFY_LOCATION_ID"),
        }
        if (v := get("ONHAND_REDIS_MAXMEMORY")) is not None:
            kwargs["redis_maxmemory_bytes"] = parse_bytes(v)
        if (v := get("ONHAND_REDIS_WAIT_REPLICAS")) is not None:
            kwargs["redis_wait_replicas"] = int(v)
        if (v := get("ONHAND_BROKER_NAMESPACE")) is not None:
            if not BROKER_NAMESPACE.match(v):
                raise ValueError("ONHAND_BROKER_NAMESPACE must be 1-64 letters, digits, '_' or '-', "
                                 "starting with a letter or '_'")
            kwargs["broker_namespace"] = v
        if (v := get("ONHAND_REDIS_POOL_SIZE")) is not None:
            kwargs["redis_pool_size"] = int(v)
            if kwargs["redis_pool_size"] < 1:
                raise ValueError("ONHAND_REDIS_POOL_SIZE must be at least 1")
        if (v := get("ONHAND_RATE_LIMIT_WHOLESALE")) is not None:
            kwargs["rate_limit_wholesale"] = float(v)
        if (v := get("ONHAND_RATE_LIMIT_STAFF")) is not None:
            kwargs["rate_limit_staff"] = float(v)
        if (v := get("ONHAND_MERCHANT")) is not None:
            kwargs["merchant"] = v
        if (v := get("ONHAND_MERCHANT_NAME")) is not None:
            kwargs["merchant_name"] = v
        if (v := get("ONHAND_IDEMPOTENCY_TTL")) is not None:
            kwargs["idempotency_ttl_s"] = int(v)
        if (v := get("ONHAND_CLOSED_ORDER_RETENTION")) is not None:
            kwargs["closed_order_retention_s"] = int(v)
        if (v := get("ONHAND_FILL_LIMIT")) is not None:
            kwargs["fill_limit"] = int(v)
        if (v := get("ONHAND_SHOPIFY_API_VERSION")) is not None:
            kwargs["shopify_api_version"] = v
        if (v := get("ONHAND_SHOPIFY_SYNC")) is not None:
            kwargs["shopify_sync_enabled"] = _flag(v)
        if (v := get("ONHAND_SHOPIFY_SKU_MAP")) is not None:
            kwargs["shopify_sku_map"] = parse_sku_map(v)
        if (v := get("ONHAND_SHOPIFY_SALE_ACK_WINDOW_MS")) is not None:
            kwargs["shopify_sale_ack_window_ms"] = int(v)
        kwargs.update(_document_settings(get))
        kwargs.update(_notification_settings(get))
        kwargs["admin_email"] = get("ONHAND_ADMIN_EMAIL")
        kwargs["admin_password"] = get("ONHAND_ADMIN_PASSWORD")
        kwargs["ui_secret"] = get("ONHAND_UI_SECRET")
        for name in ("ui_session_idle_s", "ui_session_max_s", "ui_login_failures_per_account",
                     "ui_login_failures_per_address", "ui_login_window_s"):
            env_name = "ONHAND_" + name.upper().removesuffix("_S")
            if (v := get(env_name)) is not None:
                kwargs[name] = int(v)
        if (v := get("ONHAND_UI_SECURE_COOKIES")) is not None:
            kwargs["ui_secure_cookies"] = _flag(v)
        return cls(**kwargs)


def _document_settings(get) -> dict:
    """ONHAND_EDI_*, ONHAND_GS1_COMPANY_PREFIX, ONHAND_SSCC_EXTENSION, ONHAND_IMPORT_MAX_BYTES."""
    out: dict = {}
    for name, env in (("edi_isa_qualifier", "ONHAND_EDI_ISA_QUALIFIER"), ("edi_isa_id", "ONHAND_EDI_ISA_ID"),
                      ("edi_gs_id", "ONHAND_EDI_GS_ID")):
        if (v := get(env)) is not None:
            out[name] = v
    if (v := get("ONHAND_EDI_USAGE")) is not None:
        if v not in ("P", "T"):
            raise ValueError("ONHAND_EDI_USAGE must be P (production) or T (test)")
        out["edi_usage"] = v
    if (v := get("ONHAND_GS1_COMPANY_PREFIX")) is not None:
        if not v.isdigit() or not 7 <= len(v) <= 10:
            raise ValueError("ONHAND_GS1_COMPANY_PREFIX must be 7 to 10 digits")
        out["gs1_company_prefix"] = v
    if (v := get("ONHAND_SSCC_EXTENSION")) is not None:
        if v not in tuple("0123456789"):
            raise ValueError("ONHAND_SSCC_EXTENSION must be one digit")
        out["sscc_extension"] = int(v)
    if (v := get("ONHAND_EDI_INBOX")) is not None:
        out["edi_inbox"] = Path(v)
    if (v := get("ONHAND_EDI_OUTBOX")) is not None:
        out["edi_outbox"] = Path(v)
    if (v := get("ONHAND_IMPORT_MAX_BYTES")) is not None:
        out["import_max_bytes"] = parse_bytes(v)
    if (v := get("ONHAND_EDI_INBOX_SETTLE_MS")) is not None:
        out["edi_inbox_settle_ms"] = int(v)
    return out


def _notification_settings(get) -> dict:
    out: dict = {"webhooks_allow_private": _flag(get("ONHAND_WEBHOOKS_ALLOW_PRIVATE")),
                 "smtp_url": get("ONHAND_SMTP_URL")}
    for name, field in (("ONHAND_WEBHOOK_TIMEOUT_MS", "webhook_timeout_ms"),
                        ("ONHAND_WEBHOOK_RETRY_BASE_MS", "webhook_retry_base_ms"),
                        ("ONHAND_WEBHOOK_RETRY_CAP_MS", "webhook_retry_cap_ms"),
                        ("ONHAND_WEBHOOK_RETRY_WINDOW", "webhook_retry_window_s"),
                        ("ONHAND_WEBHOOK_CONCURRENCY", "webhook_concurrency"),
                        ("ONHAND_WEBHOOK_ENDPOINT_CONCURRENCY", "webhook_endpoint_concurrency"),
                        ("ONHAND_WEBHOOK_ENDPOINT_BATCH", "webhook_endpoint_batch")):
        if (v := get(name)) is not None:
            out[field] = int(v)
            if out[field] < 1:
                raise ValueError(f"{name} must be at least 1")
    if (v := get("ONHAND_MAIL_FROM")) is not None:
        out["mail_from"] = v
    if (v := get("ONHAND_MAIL_DIR")) is not None:
        out["mail_dir"] = Path(v)
    return out
