"""The one door to Shopify's Admin GraphQL API.

Owns the HTTP (httpx; the transport is the test seam), the access token,
Shopify's cost-based rate limit, retries of transient failures, and the
translation of every failure into the errors below. Callers pass the query's
cost estimate; the client waits until the leaky bucket (as the last
``extensions.cost.throttleStatus`` described it) holds that much, so calls
are not refused for cost in the first place. A THROTTLED answer or an HTTP
429 still happens (another app shares the bucket, Shopify's edge is busy):
the client waits as told and tries again.

Mutations are retried only with an ``@idempotent(key:)`` in the document
(the caller's duty): a retry after a lost answer then replays the first
result instead of applying twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("onhand.shopify")

#: Seconds one HTTP call may take before it counts as a transient failure.
TIMEOUT_S = 10.0
#: Attempts of one call (transient failures and throttling) before giving up.
MAX_ATTEMPTS = 8
#: First back-off after a transient failure, seconds (doubles, capped below).
BACKOFF_S = 0.2
#: Longest back-off or wait the client does at once, seconds.
MAX_WAIT_S = 30.0


class ShopifyError(Exception):
    """Base class: raised when a call to Shopify does not succeed."""


class ShopifyUnavailable(ShopifyError):
    """Raised when Shopify cannot be reached, times out or answers 5xx (or
    keeps throttling) through every attempt; try again later."""


class ShopifyUnauthorized(ShopifyError):
    """Raised when Shopify refuses the access token (401/403): the app was
    uninstalled or the token revoked. Retrying does not help."""


class ShopifyGraphQLError(ShopifyError):
    """Raised when Shopify answers top-level GraphQL errors other than
    throttling (a query that does not validate, a cost over the single-query
    maximum). Retrying the same call does not help."""

    def __init__(self, errors: Any):
        super().__init__(str(errors)[:2000])
        self.errors = errors


@dataclass
class Bucket:
    """Shopify's leaky bucket as the last answer described it."""

    maximum: float = 1000.0
    available: float = 1000.0
    restore_rate: float = 50.0
    #: monotonic time of the reading
    at: float = 0.0
    known: bool = False

    def now_available(self, now: float) -> float:
        if not self.known:
            return self.maximum
        return min(self.maximum, self.available + (now - self.at) * self.restore_rate)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until the bucket holds ``cost`` points."""
        missing = min(cost, self.maximum) - self.now_available(now)
        return max(0.0, missing / self.restore_rate) if self.restore_rate > 0 else 0.0

    def update(self, status: dict[str, Any], now: float) -> None:
        try:
            self.maximum = float(status["maximumAvailable"])
            self.available = float(status["currentlyAvailable"])
            self.restore_rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        self.at = now
        self.known = True


@dataclass
class CallStats:
    calls: int = 0
    throttled: int = 0
    rate_limited: int = 0
    transient_failures: int = 0
    waited_s: float = 0.0
    #: requested cost of each call made (for budget reports)
    costs: list[int] = field(default_factory=list)


class ShopifyClient:
    def __init__(self, *, api_url: str, access_token: str, api_version: str,
                 transport: httpx.BaseTransport | None = None, timeout_s: float = TIMEOUT_S,
                 max_attempts: int = MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.url = f"{api_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._http = httpx.Client(transport=transport, timeout=timeout_s,
                                  headers={"X-Shopify-Access-Token": access_token,
                                           "Content-Type": "application/json"})
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.clock = clock
        self.bucket = Bucket()
        self.stats = CallStats()

    @classmethod
    def from_settings(cls, settings, transport: httpx.BaseTransport | None = None) -> "ShopifyClient":
        api_url = settings.shopify_api_url or f"https://{settings.shopify_shop}"
        return cls(api_url=api_url, access_token=settings.shopify_access_token or "",
                   api_version=settings.shopify_api_version, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _pause(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), MAX_WAIT_S)
        if seconds > 0:
            self.stats.waited_s += seconds
            self.sleep(seconds)

    def execute(self, query: str, variables: dict[str, Any] | None = None, *, cost: int) -> dict[str, Any]:
        """Runs one GraphQL document; returns its ``data``. ``cost`` is the
        requested cost the caller expects (Shopify's calculation)."""
        backoff = BACKOFF_S
        last_error = "no attempt made"
        for _attempt in range(self.max_attempts):
            self._pause(self.bucket.wait_for(cost, self.clock()))
            self.stats.calls += 1
            self.stats.costs.append(cost)
            try:
                response = self._http.post(self.url, json={"query": query, "variables": variables or {}})
            except httpx.TransportError as exc:  # connection refused, reset, timeout
                last_error = f"{type(exc).__name__}: {exc}"
                self.stats.transient_failures += 1
                self._pause(backoff)
                backoff *= 2
                continue
            if response.status_code in (401, 403):
                raise ShopifyUnauthorized(f"Shopify answered {response.status_code}: {response.text[:300]}")
            if response.status_code == 429:
                self.stats.rate_limited += 1
                last_error = "HTTP 429"
                self._pause(_retry_after(response, backoff))
                continue
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}"
                self.stats.transient_failures += 1
                self._pause(backoff)
                backoff *= 2
                continue
            if response.status_code != 200:
                raise ShopifyError(f"Shopify answered {response.status_code}: {response.text[:300]}")
            try:
                body = response.json()
            except ValueError as exc:
                raise ShopifyUnavailable(f"Shopify answered a body that is not JSON: {exc}") from exc
            status = ((body.get("extensions") or {}).get("cost") or {}).get("throttleStatus")
            if status:
                self.bucket.update(status, self.clock())
            errors = body.get("errors")
            if errors:
                if _is_throttled(errors):
                    self.stats.throttled += 1
                    last_error = "THROTTLED"
                    self._pause(max(self.bucket.wait_for(cost, self.clock()), 0.05))
                    continue
                raise ShopifyGraphQLError(errors)
            return body.get("data") or {}
        raise ShopifyUnavailable(f"Shopify call failed {self.max_attempts} times: {last_error}")


def _is_throttled(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    return any(isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
               for e in errors)


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return float(response.headers.get("Retry-After", default))
    except ValueError:
        return default
