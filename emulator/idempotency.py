"""Idempotency keys given with `@idempotent(key:)`.

A repeat of a key with the same mutation and arguments gets the first result back
and changes nothing; the same key with other arguments is refused with
IDEMPOTENCY_KEY_PARAMETER_MISMATCH (shopify.dev "Implementing idempotency").
"""

from __future__ import annotations

from typing import Any

import msgspec


class Remembered(msgspec.Struct, kw_only=True):
    field: str
    fingerprint: bytes
    payload: Any


def fingerprint(field: str, args: dict[str, Any]) -> bytes:
    return field.encode() + b":" + msgspec.json.encode(args, order="sorted")


class IdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[str, Remembered] = {}

    def get(self, key: str) -> Remembered | None:
        return self._entries.get(key)

    def remember(self, key: str, field: str, args: dict[str, Any], payload: Any) -> None:
        self._entries[key] = Remembered(
            field=field, fingerprint=fingerprint(field, args), payload=payload
        )

    def __len__(self) -> int:
        return len(self._entries)
