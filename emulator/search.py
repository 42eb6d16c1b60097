"""Shopify's search syntax for `query:` arguments (`sku:A OR sku:"B C"`, `-sku:X`, `id:>5`).

Terms next to each other are ANDed; `OR`, `AND`, `NOT`/`-` and parentheses work as
on Shopify. Values match case-insensitively; a trailing `*` matches a prefix.
An unknown field is ignored and reported as a search warning, which is what
Shopify does (`extensions.search[].warnings`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Fields = Mapping[str, Any]
Predicate = Callable[[Fields], bool]


@dataclass(frozen=True)
class Term:
    field: str | None
    comparator: str  # one of = > >= < <=
    value: str


@dataclass
class SearchQuery:
    predicate: Predicate
    warnings: list[dict[str, str]]


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def tokens(self) -> list[Any]:
        out: list[Any] = []
        while True:
            token = self._next()
            if token is None:
                return out
            out.append(token)

    def _next(self) -> Any:
        text = self.text
        while self.i < len(text) and text[self.i].isspace():
            self.i += 1
        if self.i >= len(text):
            return None
        ch = text[self.i]
        if ch in "()":
            self.i += 1
            return ch
        if ch == "-" and self.i + 1 < len(text) and not text[self.i + 1].isspace():
            self.i += 1
            return "NOT"
        if ch in "\"'":
            return Term(None, "=", self._quoted())
        start = self.i
        while self.i < len(text) and not text[self.i].isspace() and text[self.i] not in "():\"'":
            self.i += 1
        word = text[start : self.i]
        if self.i < len(text) and text[self.i] == ":":
            self.i += 1
            comparator = "="
            for op in (">=", "<=", ">", "<"):
                if text.startswith(op, self.i):
                    comparator = op
                    self.i += len(op)
                    break
            if self.i < len(text) and text[self.i] in "\"'":
                value = self._quoted()
            else:
                vstart = self.i
                while (
                    self.i < len(text) and not text[self.i].isspace() and text[self.i] not in "()"
                ):
                    self.i += 1
                value = text[vstart : self.i]
            return Term(word.lower(), comparator, value)
        if word in ("OR", "AND", "NOT"):
            return word
        return Term(None, "=", word)

    def _quoted(self) -> str:
        quote = self.text[self.i]
        self.i += 1
        chars: list[str] = []
        while self.i < len(self.text) and self.text[self.i] != quote:
            if self.text[self.i] == "\\" and self.i + 1 < len(self.text):
                self.i += 1
            chars.append(self.text[self.i])
            self.i += 1
        self.i += 1
        return "".join(chars)


def parse_search(
    text: str | None, known_fields: set[str], free_text_fields: tuple[str, ...]
) -> SearchQuery:
    warnings: list[dict[str, str]] = []
    if not text or not text.strip():
        return SearchQuery(lambda _: True, warnings)
    tokens = _Lexer(text).tokens()
    pos = 0

    def peek() -> Any:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> Any:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def or_expr() -> Predicate:
        parts = [and_expr()]
        while peek() == "OR":
            take()
            parts.append(and_expr())
        return parts[0] if len(parts) == 1 else (lambda f: any(p(f) for p in parts))

    def and_expr() -> Predicate:
        parts = [unary()]
        while peek() not in (None, "OR", ")"):
            if peek() == "AND":
                take()
                continue
            parts.append(unary())
        return parts[0] if len(parts) == 1 else (lambda f: all(p(f) for p in parts))

    def unary() -> Predicate:
        if peek() == "NOT":
            take()
            inner = unary()
            return lambda f: not inner(f)
        return primary()

    def primary() -> Predicate:
        token = take() if peek() is not None else None
        if token == "(":
            inner = or_expr()
            if peek() == ")":
                take()
            return inner
        if isinstance(token, Term):
            return term(token)
        return lambda _: True

    def term(t: Term) -> Predicate:
        if t.field is None:
            needle = t.value.lower().rstrip("*")
            return lambda f: any(needle in str(f.get(k) or "").lower() for k in free_text_fields)
        if t.field not in known_fields:
            warnings.append({"field": t.field, "message": "Invalid search field for this query."})
            return lambda _: True
        return lambda f: _matches(f.get(t.field), t)

    predicate = or_expr()
    return SearchQuery(predicate, warnings)


def _matches(actual: Any, t: Term) -> bool:
    if actual is None:
        return False
    if t.comparator != "=":
        try:
            left, right = float(actual), float(t.value)
        except ValueError:
            left, right = str(actual), t.value  # type: ignore[assignment]
        return {
            ">": left > right,
            ">=": left >= right,
            "<": left < right,
            "<=": left <= right,
        }[t.comparator]
    expected = t.value.lower()
    candidates = actual if isinstance(actual, (list, tuple, set)) else [actual]
    for candidate in candidates:
        text = str(candidate).lower()
        if expected.endswith("*") and text.startswith(expected[:-1]):
            return True
        if text == expected:
            return True
    return False
