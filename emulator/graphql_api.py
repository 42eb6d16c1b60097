"""`POST /admin/api/{version}/graphql.json`: the Admin GraphQL request, end to end.

Order of checks, as on Shopify: token (401), edge rate limit (429), request body
(400), then with HTTP 200: parse, validate against the real schema, coerce
variables, the version's own rules, single-query max cost, the leaky bucket,
and finally execution. Every GraphQL answer carries `extensions.cost`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSyntaxError,
    ListValueNode,
    OperationDefinitionNode,
    execute,
    parse,
)
from graphql.execution.values import get_variable_values
from graphql.language import Visitor, visit

from emulator import errors as shopify_errors
from emulator.cost import CostCalculator, LeakyBucket
from emulator.logs import CallRecord, ValidationFailure
from emulator.resolvers import RequestContext, default_resolver, type_resolver
from emulator.schema import AdminSchema, cached, load_schema
from emulator.state import Shop
from emulator.versions import (
    idempotency_problems,
    is_known_version,
    literal_rule,
    root_fields,
    variable_problems,
)

# Shopify caps every input array at 250 entries.
MAX_INPUT_ARRAY = 250
EDGE_LIMIT_BODY = {
    "errors": "Exceeded 2 calls per second for api client."
    " Reduce request rates to resume uninterrupted service."
}


class GraphQLRequest(msgspec.Struct, kw_only=True):
    query: str | None = None
    variables: dict[str, Any] | None = None
    operationName: str | None = None  # noqa: N815 - the wire name


@dataclass
class EdgeLimiter:
    """Makes the next N requests answer 429, as Shopify's edge does under load."""

    remaining: int = 0
    retry_after_s: float = 2.0


@dataclass
class ApiResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Outcome:
    payload: dict[str, Any]
    record: CallRecord


class AdminApi:
    def __init__(self, shop: Shop, bucket: LeakyBucket, edge: EdgeLimiter) -> None:
        self.shop = shop
        self.bucket = bucket
        self.edge = edge

    async def schema(self) -> AdminSchema:
        path = self.shop.config.schema_path
        return cached(path) or await asyncio.to_thread(load_schema, path)

    async def handle(
        self, version: str, headers: dict[str, str], raw_body: bytes, content_type: str
    ) -> ApiResponse:
        shop = self.shop
        if not is_known_version(version):
            return ApiResponse(404, msgspec.json.encode({"errors": "Not Found"}))
        token = headers.get("x-shopify-access-token")
        if token != shop.config.access_token or not shop.installed:
            self._log_transport(version, 401)
            return ApiResponse(401, msgspec.json.encode(shopify_errors.INVALID_TOKEN_BODY))
        if self.edge.remaining > 0:
            self.edge.remaining -= 1
            self._log_transport(version, 429, edge_limited=True)
            return ApiResponse(
                429,
                msgspec.json.encode(EDGE_LIMIT_BODY),
                {"Retry-After": _seconds(self.edge.retry_after_s)},
            )
        request = _decode(raw_body, content_type)
        if request is None or not request.query:
            self._log_transport(version, 400)
            return ApiResponse(
                400,
                msgspec.json.encode({"errors": {"query": "Required parameter missing or invalid"}}),
            )
        admin = await self.schema()
        with shop.lock:
            outcome = self._run(admin, version, request)
            shop.call_log.append(outcome.record)
        return ApiResponse(
            200,
            msgspec.json.encode(outcome.payload),
            {"X-Shopify-API-Version": version},
        )

    # -- the synchronous part ---------------------------------------------------------

    def _run(self, admin: AdminSchema, version: str, request: GraphQLRequest) -> _Outcome:
        query = request.query or ""
        raw_vars = request.variables or {}
        record = CallRecord(
            time=self.shop.clock(),
            api_version=version,
            operation_name=request.operationName,
            operation_type=None,
            root_fields=[],
            status_code=200,
            requested_cost=None,
            actual_cost=None,
        )

        def refuse(
            stage: str, errs: list[dict[str, Any]], requested: int | None = None
        ) -> _Outcome:
            record.validation_errors = [e["message"] for e in errs]
            record.errors = [e["message"] for e in errs]
            record.requested_cost = requested
            self.shop.validation_failures.append(
                ValidationFailure(
                    time=record.time,
                    api_version=version,
                    stage=stage,
                    operation_name=record.operation_name,
                    query=query,
                    variables=raw_vars,
                    errors=errs,
                )
            )
            return _Outcome(
                {"errors": errs, "extensions": {"cost": self._cost(requested, None)}}, record
            )

        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            err = exc.formatted
            return refuse("parse", [{**err, "extensions": {"code": "PARSE_ERROR"}}])
        if record.operation_name is None:
            named = [
                d.name.value
                for d in document.definitions
                if isinstance(d, OperationDefinitionNode) and d.name is not None
            ]
            record.operation_name = named[0] if len(named) == 1 else None

        found = shopify_errors.validate_document(
            admin.schema, document, (literal_rule(admin, version, raw_vars),)
        )
        if found:
            return refuse("validate", [_format(e) for e in found])

        operation = _operation(document, request.operationName)
        if operation is None:
            message = (
                f'No operation named "{request.operationName}"'
                if request.operationName
                else "An operation name is required"
            )
            return refuse("validate", [shopify_errors.error(message, "OPERATION_NOT_FOUND")])
        record.operation_type = operation.operation.value
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        record.root_fields = [f.name.value for f in root_fields(operation, fragments)]

        coerced = _coerce(admin, operation, raw_vars)
        if isinstance(coerced, list):
            return refuse(
                "variables",
                [{**_format(e), "extensions": {"code": "INVALID_VARIABLE"}} for e in coerced],
            )

        problems = (
            _oversized_inputs(document, raw_vars)
            + variable_problems(admin, version, operation, raw_vars)
            + idempotency_problems(admin, version, operation, fragments, coerced)
        )
        if problems:
            return refuse("version_rules", problems)

        calculator = CostCalculator(admin.schema, fragments, coerced)
        requested = calculator.requested(operation)
        record.requested_cost = requested
        max_cost = self.shop.config.single_query_max
        if requested > max_cost:
            record.errors = ["MAX_COST_EXCEEDED"]
            return _Outcome(
                {
                    "errors": [shopify_errors.max_cost_exceeded(requested, max_cost)],
                    "extensions": {"cost": self._cost(requested, None)},
                },
                record,
            )
        if not self.bucket.try_take(requested):
            record.throttled = True
            record.errors = ["Throttled"]
            return _Outcome(
                {
                    "errors": [shopify_errors.throttled()],
                    "extensions": {"cost": self._cost(requested, None)},
                },
                record,
            )

        context = RequestContext(shop=self.shop, admin=admin, version=version, variables=coerced)
        result = execute(
            admin.schema,
            document,
            context_value=context,
            variable_values=raw_vars,
            operation_name=request.operationName,
            field_resolver=default_resolver,
            type_resolver=type_resolver,
        )
        actual = calculator.actual(operation, result.data)
        self.bucket.refund(requested - actual)
        record.actual_cost = actual
        record.idempotency_keys = context.idempotency_keys
        record.replayed = context.replayed

        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = [shopify_errors.formatted(e) for e in result.errors]
            record.errors = [e.message for e in result.errors]
        payload["data"] = result.data
        extensions: dict[str, Any] = {"cost": self._cost(requested, actual)}
        if context.search:
            extensions["search"] = context.search
        payload["extensions"] = extensions
        return _Outcome(payload, record)

    def _cost(self, requested: int | None, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": self.bucket.status(),
        }

    def _log_transport(self, version: str, status: int, edge_limited: bool = False) -> None:
        with self.shop.lock:
            self.shop.call_log.append(
                CallRecord(
                    time=self.shop.clock(),
                    api_version=version,
                    operation_name=None,
                    operation_type=None,
                    root_fields=[],
                    status_code=status,
                    requested_cost=None,
                    actual_cost=None,
                    edge_limited=edge_limited,
                )
            )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _decode(raw: bytes, content_type: str) -> GraphQLRequest | None:
    if content_type.startswith("application/graphql"):
        return GraphQLRequest(query=raw.decode("utf-8", "replace"))
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    variables = body.get("variables")
    if isinstance(variables, str) and variables.strip():
        try:
            variables = msgspec.json.decode(variables)
        except msgspec.DecodeError:
            return None
    query = body.get("query")
    name = body.get("operationName")
    return GraphQLRequest(
        query=query if isinstance(query, str) else None,
        variables=variables if isinstance(variables, dict) else None,
        operationName=name if isinstance(name, str) else None,
    )


def _format(err: GraphQLError) -> dict[str, Any]:
    out = dict(err.formatted)
    out.setdefault("extensions", {}).setdefault("code", "validationError")
    return out


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def _coerce(
    admin: AdminSchema, operation: OperationDefinitionNode, raw: dict[str, Any]
) -> dict[str, Any] | list[GraphQLError]:
    result = get_variable_values(admin.schema, operation.variable_definitions or (), raw)
    if isinstance(result, list):
        return result
    # graphql-core 3.3 wraps the values with their sources; 3.2 returns the dict itself.
    return getattr(result, "coerced", result)


def _oversized_inputs(document: DocumentNode, raw: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def message(size: int) -> str:
        return (
            f"The input array size of {size} is greater than the maximum allowed"
            f" of {MAX_INPUT_ARRAY}."
        )

    class Lists(Visitor):
        def enter_list_value(self, node: ListValueNode, *_: Any) -> None:
            if len(node.values) > MAX_INPUT_ARRAY:
                loc = node.loc
                found.append(
                    shopify_errors.error(
                        message(len(node.values)),
                        "MAX_INPUT_SIZE_EXCEEDED",
                        locations=[{"line": loc.start_token.line, "column": loc.start_token.column}]
                        if loc
                        else None,
                    )
                )

    visit(document, Lists())

    def walk(value: Any, path: list[str | int]) -> None:
        if isinstance(value, list):
            if len(value) > MAX_INPUT_ARRAY:
                found.append(
                    shopify_errors.error(message(len(value)), "MAX_INPUT_SIZE_EXCEEDED", path=path)
                )
            for i, item in enumerate(value):
                walk(item, [*path, i])
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, [*path, key])

    for name, value in raw.items():
        walk(value, [name])
    return found
