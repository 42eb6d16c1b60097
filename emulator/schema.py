"""The real Admin GraphQL schema (SDL), built once per process and shared.

Building the 2.6 MB SDL costs about two seconds of pure-Python parsing, so the
result is cached per file and built lazily on first use. Nothing happens at
import time; `preload()` starts the build on a thread so a server can take
requests while it runs.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_ast_schema,
    parse,
)
from graphql.type import validate_schema

BUNDLED_SDL = Path(__file__).with_name("schema") / "admin-2026-01.graphql"
BUNDLED_SHA256 = "44ede6086d9b8965a0c2cf19351dc50e285493e00b023e076ab11543fa1db8b1"

# The version the SDL was introspected from; rules for later versions are applied by hand.
SDL_VERSION = "2026-01"

# graphql-core 3.3 added a type-system rule (from graphql-js 17) that Shopify's own
# schema breaks: some implementations deprecate a field their interface does not.
# Shopify serves that schema, so the emulator must accept it too.
_TOLERATED_SCHEMA_ERROR = "must not be deprecated"

# Mutation descriptions say when @idempotent became supported and when it turns mandatory,
# e.g. "As of 2026-04, the idempotency key is required". Read the rules from the SDL
# instead of keeping a hand-written list that would drift from it.
_IDEMPOTENT_SUPPORTED = re.compile(r"As of (?:version )?`?(\d{4}-\d{2})`?, this mutation supports")
_IDEMPOTENT_REQUIRED = re.compile(
    r"As of (?:version )?`?(\d{4}-\d{2})`?, the idempotency key is required"
)
# Deprecation reasons announce removals ("This will be removed in 2026-04.").
_REMOVED_IN = re.compile(r"removed in (?:API version )?`?(\d{4}-\d{2})", re.IGNORECASE)


@dataclass(frozen=True)
class AdminSchema:
    """The built schema plus the version rules the SDL only states in prose."""

    schema: GraphQLSchema
    path: Path
    sha256: str
    build_seconds: float
    # mutation field -> first version that accepts @idempotent
    idempotency_supported: dict[str, str] = field(default_factory=dict)
    # mutation field -> first version where @idempotent is mandatory
    idempotency_required: dict[str, str] = field(default_factory=dict)
    # (type, field-or-argument path) -> version from which it no longer exists
    removed_fields: dict[tuple[str, str], str] = field(default_factory=dict)
    removed_args: dict[tuple[str, str, str], str] = field(default_factory=dict)
    removed_enum_values: dict[tuple[str, str], str] = field(default_factory=dict)


_lock = threading.Lock()
_cache: dict[Path, AdminSchema] = {}
_builds = 0


def load_schema(path: Path | str | None = None) -> AdminSchema:
    """Return the schema for `path` (default: the copy bundled with the package)."""
    resolved = Path(path or BUNDLED_SDL).resolve()
    cached = _cache.get(resolved)
    if cached is not None:
        return cached
    with _lock:
        cached = _cache.get(resolved)
        if cached is None:
            cached = _build(resolved)
            _cache[resolved] = cached
        return cached


def cached(path: Path | str | None = None) -> AdminSchema | None:
    """The schema if it is already built, without waiting or building."""
    return _cache.get(Path(path or BUNDLED_SDL).resolve())


def build_count() -> int:
    """How many times this process has built a schema (tests check it stays at one)."""
    return _builds


def preload(path: Path | str | None = None) -> threading.Thread:
    """Build the schema on a daemon thread; `load_schema` then waits for it."""
    thread = threading.Thread(target=load_schema, args=(path,), name="emulator-schema", daemon=True)
    thread.start()
    return thread


def _build(path: Path) -> AdminSchema:
    global _builds
    started = time.perf_counter()
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    # Locations are only needed to point at errors in the SDL itself; dropping them
    # saves a fair share of the parse time. The SDL is a pinned, checked file, so
    # SDL validation is skipped too; the type-system check below still runs.
    document = parse(source.decode("utf-8"), no_location=True)
    built = build_ast_schema(document, assume_valid_sdl=True)
    errors = [e for e in validate_schema(built) if _TOLERATED_SCHEMA_ERROR not in e.message]
    if errors:
        raise TypeError("\n\n".join(e.message for e in errors))
    kwargs = built.to_kwargs()
    kwargs["assume_valid"] = True
    schema = GraphQLSchema(**kwargs)
    _builds += 1
    return AdminSchema(
        schema=schema,
        path=path,
        sha256=digest,
        build_seconds=time.perf_counter() - started,
        **_version_rules(schema),
    )


def _version_rules(schema: GraphQLSchema) -> dict:
    supported: dict[str, str] = {}
    required: dict[str, str] = {}
    mutation = schema.mutation_type
    if mutation is not None:
        for name, fld in mutation.fields.items():
            text = fld.description or ""
            if m := _IDEMPOTENT_SUPPORTED.search(text):
                supported[name] = m.group(1)
            if m := _IDEMPOTENT_REQUIRED.search(text):
                required[name] = m.group(1)
                supported.setdefault(name, m.group(1))

    removed_fields: dict[tuple[str, str], str] = {}
    removed_args: dict[tuple[str, str, str], str] = {}
    removed_enum_values: dict[tuple[str, str], str] = {}
    for type_name, gql_type in schema.type_map.items():
        if type_name.startswith("__"):
            continue
        if isinstance(gql_type, GraphQLEnumType):
            for value_name, value in gql_type.values.items():
                if m := _REMOVED_IN.search(value.deprecation_reason or ""):
                    removed_enum_values[(type_name, value_name)] = m.group(1)
            continue
        if not isinstance(
            gql_type, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)
        ):
            continue
        for field_name, fld in gql_type.fields.items():
            if m := _REMOVED_IN.search(fld.deprecation_reason or ""):
                removed_fields[(type_name, field_name)] = m.group(1)
            for arg_name, arg in getattr(fld, "args", {}).items():
                if m := _REMOVED_IN.search(arg.deprecation_reason or ""):
                    removed_args[(type_name, field_name, arg_name)] = m.group(1)
    return {
        "idempotency_supported": supported,
        "idempotency_required": required,
        "removed_fields": removed_fields,
        "removed_args": removed_args,
        "removed_enum_values": removed_enum_values,
    }
