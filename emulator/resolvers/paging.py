"""Relay connections with Shopify's opaque cursors, and `query:` search filtering."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from graphql import GraphQLError, GraphQLResolveInfo

from emulator.resolvers.core import context_of
from emulator.search import Predicate, parse_search

MAX_PAGE_SIZE = 250


def _cursor(item_id: int) -> str:
    raw = msgspec.json.encode({"last_id": item_id, "last_value": str(item_id)})
    return base64.b64encode(raw).decode("ascii")


def _cursor_id(cursor: str) -> int | None:
    try:
        return int(msgspec.json.decode(base64.b64decode(cursor))["last_id"])
    except (ValueError, KeyError, TypeError, msgspec.DecodeError):
        return None  # a malformed cursor simply matches nothing


def _item_id(item: Any) -> int:
    return item["id"] if isinstance(item, dict) else item.id


def connection(
    items: list[Any],
    *,
    first: int | None = None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
    reverse: bool = False,
    **_: Any,
) -> dict[str, Any]:
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and (size < 0 or size > MAX_PAGE_SIZE):
            raise GraphQLError(
                f"The `{name}` argument must be between 0 and {MAX_PAGE_SIZE}.",
                extensions={"code": "BAD_REQUEST"},
            )
    ordered = list(reversed(items)) if reverse else list(items)
    ids = [_item_id(i) for i in ordered]
    start, end = 0, len(ordered)
    if after is not None:
        after_id = _cursor_id(after)
        if after_id in ids:
            start = ids.index(after_id) + 1
    if before is not None:
        before_id = _cursor_id(before)
        if before_id in ids:
            end = ids.index(before_id)
    window = ordered[start:end]
    lo, hi = 0, len(window)
    if first is not None:
        hi = min(hi, first)
    if last is not None:
        lo = max(lo, hi - last)
    page = window[lo:hi]
    edges = [{"cursor": _cursor(_item_id(n)), "node": n} for n in page]
    return {
        "edges": edges,
        "nodes": page,
        "pageInfo": {
            "hasNextPage": start + hi < end,
            "hasPreviousPage": start + lo > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def search(
    info: GraphQLResolveInfo, query: str | None, known: set[str], free_text: tuple[str, ...]
) -> Predicate:
    """The filter for a `query:` argument; unknown fields become search warnings."""
    parsed = parse_search(query, known, free_text)
    if parsed.warnings:
        context_of(info).search.append(
            {"path": [info.path.key], "query": query, "warnings": parsed.warnings}
        )
    return parsed.predicate
