"""The domain's errors. They carry plain values, never HTTP codes (api/ maps them)."""

from __future__ import annotations

from dataclasses import dataclass, field


class OnhandError(Exception):
    """Base class of every error the engine raises."""


class NotReady(OnhandError):
    """Raised when Redis does not hold a complete state (empty, being rebuilt,
    unreachable or out of memory), or a change was made but too few replicas
    confirmed it (``reason`` "replicas_unconfirmed"); the caller should retry
    later, with the same Idempotency-Key."""

    def __init__(self, detail: str = "state is being rebuilt", retry_after_s: int = 2,
                 reason: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.reason = reason


class InvalidCommand(OnhandError):
    """Raised when a command's arguments are malformed or out of range."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class NotFound(OnhandError):
    """Raised when a named order, SKU or other resource does not exist."""

    def __init__(self, kind: str, ids: list[str] | None = None, detail: str = ""):
        super().__init__(detail or f"no such {kind}")
        self.kind = kind
        self.ids = ids or []
        self.detail = detail or f"no such {kind}"


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int


class InsufficientStock(OnhandError):
    """Raised when an all_or_nothing order cannot be covered in full."""

    def __init__(self, lines: list[Shortfall]):
        super().__init__("not enough stock for every line")
        self.lines = lines


@dataclass
class Conflict(OnhandError):
    """Raised when the state forbids the action: shipping more than reserved, a
    ship_complete order not yet complete, returning more than shipped,
    cancelling shipped units, a receipt reference already used, a stale count."""

    reason: str
    detail: str
    values: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.reason}: {self.detail}")


class IdempotencyKeyReused(OnhandError):
    """Raised when an operation id (Idempotency-Key) comes back with another body."""


class IdempotencyInFlight(OnhandError):
    """Raised when the same operation id is still being processed."""
