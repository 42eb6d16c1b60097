"""One emulated shop wired together: state, rate limits, the Admin API and webhook delivery."""

from __future__ import annotations

from emulator.config import EmulatorConfig
from emulator.cost import LeakyBucket
from emulator.graphql_api import AdminApi, EdgeLimiter
from emulator.outbox import WebhookRecord
from emulator.state import SeedProduct, Shop
from emulator.webhooks import Dispatcher


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.shop = Shop(config)
        self.bucket = LeakyBucket(config.bucket_max, config.restore_rate)
        self.edge = EdgeLimiter()
        self.api = AdminApi(self.shop, self.bucket, self.edge)
        self.dispatcher = Dispatcher(self.shop)

    def publish(self, records: list[WebhookRecord]) -> None:
        """Hand webhooks triggered by a shop event to delivery (call on the loop)."""
        for record in records:
            self.dispatcher.enqueue(record)

    def seed(self, products: list[SeedProduct]) -> None:
        for spec in products:
            self.shop.seed_product(spec)

    async def reset(self) -> None:
        await self.dispatcher.cancel_all()
        self.dispatcher.mode = "immediate"
        self.dispatcher.delay_ms = 0
        self.shop.reset()
        self.bucket.reset()
        self.edge.remaining = 0
