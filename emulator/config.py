"""What one emulated shop is configured with (credentials, limits, webhook delivery)."""

from __future__ import annotations

import msgspec

DEFAULT_API_VERSION = "2026-04"

# Shopify documents "8 retries over 4 hours" with growing gaps but not the exact steps;
# this doubles each gap and sums to four hours.
SHOPIFY_RETRY_SCHEDULE_S: tuple[float, ...] = tuple(round(14_400 * 2**k / 255, 1) for k in range(8))

# Shopify gives a receiver this long to answer before it counts the delivery as failed.
SHOPIFY_WEBHOOK_TIMEOUT_S = 5.0


class EmulatorConfig(msgspec.Struct, kw_only=True):
    shop: str = "test-shop.myshopify.com"
    shop_name: str = "Test Shop"
    access_token: str = "shpat_emulator_token"
    api_secret: str = "emulator_api_secret"
    webhook_url: str | None = None
    # The version of the webhook subscription; it is what X-Shopify-API-Version carries.
    webhook_api_version: str = DEFAULT_API_VERSION
    bucket_max: float = 1000.0
    restore_rate: float = 50.0
    single_query_max: int = 1000
    retry_schedule_s: tuple[float, ...] = SHOPIFY_RETRY_SCHEDULE_S
    webhook_timeout_s: float = SHOPIFY_WEBHOOK_TIMEOUT_S
    currency: str = "USD"
    timezone: str = "America/New_York"
    locations: tuple[str, ...] = ("Shop location",)
    schema_path: str | None = None
