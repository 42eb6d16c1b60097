"""OpenAPI: every status a route can answer is documented with its problem
type, so the generated document at /schema/openapi.json is complete."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from api import problems
from api.problems import Problem

_BY_STATUS = {
    400: [problems.VALIDATION],
    401: [problems.UNAUTHORIZED],
    403: [problems.FORBIDDEN],
    404: [problems.NOT_FOUND],
    409: [problems.INSUFFICIENT_STOCK, problems.CONFLICT, problems.IN_FLIGHT],
    413: [problems.TOO_LARGE],
    422: [problems.KEY_REUSED],
    429: [problems.RATE_LIMITED],
    503: [problems.NOT_READY],
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    out = {}
    for status in statuses:
        kinds = _BY_STATUS[status]
        description = "; ".join(f"{k.type}: {k.title}" for k in kinds)
        out[status] = ResponseSpec(data_container=Problem, description=description,
                                   media_type=problems.PROBLEM_JSON)
    return out


def refine(schema) -> None:
    """Says in the OpenAPI document what the msgspec-derived schemas cannot:
    request bodies reject unknown fields, and the few rules across fields."""
    from api import schemas as s

    components = schema.components.schemas or {}
    bodies = {cls.__name__ for cls in _subclasses(s.Body)}
    for name, component in components.items():
        if name in bodies:
            component.additional_properties = False
    from litestar.openapi.spec import OpenAPIType, Schema

    if (order := components.get("OrderBody")) is not None:
        # accept is for DTC orders only
        order.schema_if = Schema(properties={"backorder_policy": Schema(const="accept")},
                                 required=["backorder_policy"])
        order.then = Schema(properties={"channel": Schema(const="dtc")})
    if (key := components.get("ApiKeyBody")) is not None:
        # a wholesale key is bound to a customer; other roles are not
        key.schema_if = Schema(properties={"role": Schema(const="wholesale")})
        key.then = Schema(required=["customer_id"], properties={"customer_id": Schema(type=OpenAPIType.STRING)})
        key.schema_else = Schema(properties={"customer_id": Schema(type=OpenAPIType.NULL)})
    if (cancel := components.get("CancelLineBody")) is not None:
        # a cancel line names a sku or a line (not null), exactly one
        cancel.one_of = [Schema(required=["sku"], properties={"sku": Schema(type=OpenAPIType.STRING)}),
                         Schema(required=["line"], properties={"line": Schema(type=OpenAPIType.INTEGER)})]
    if (replay := components.get("ReplayBody")) is not None:
        # one event, or a time range (since, with an optional until)
        text, null = Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)
        replay.one_of = [Schema(required=["event_id"], properties={"event_id": text, "since": null, "until": null}),
                         Schema(required=["since"], properties={"since": text, "event_id": null})]
    if (adjust := components.get("AdjustmentBody")) is not None and adjust.properties:
        adjust.properties["delta"].schema_not = Schema(const=0)
    _zero_minimums(components)
    _no_nul_in_text(components, bodies)
    for path, item in (schema.paths or {}).items():
        for operation in (item.get, item.put, item.post, item.delete):
            if operation is None:
                continue
            for parameter in operation.parameters or []:
                if parameter.name == "offset" and parameter.schema is not None:
                    parameter.schema.minimum = 0
                if path == "/v1/ledger" and parameter.name in ("since", "until") and parameter.schema:
                    _date_time(parameter.schema)
            if path.endswith("/cancel") and operation.request_body is not None:
                operation.request_body.required = False  # no body: cancel the whole remainder


def _date_time(schema) -> None:
    """An optional RFC 3339 time (api/ledger.py parses it)."""
    for option in [schema, *(schema.one_of or [])]:
        if getattr(option, "type", None) == "string" or str(getattr(option, "type", "")).endswith("STRING"):
            option.format = "date-time"


#: Text without NUL (PostgreSQL cannot store it; api/schemas.py refuses it).
NO_NUL = r"^[^\x00]*$"


def _no_nul_in_text(components, bodies: set[str]) -> None:
    from litestar.openapi.spec import OpenAPIType

    def is_text(schema) -> bool:
        kinds = [schema.type] + [getattr(o, "type", None) for o in (schema.one_of or [])]
        return any(k == OpenAPIType.STRING or (isinstance(k, list) and OpenAPIType.STRING in k)
                   for k in kinds)

    for name in bodies:
        component = components.get(name)
        for prop in (component.properties or {}).values() if component else ():
            if is_text(prop) and not prop.pattern and not prop.enum and prop.const is None:
                prop.pattern = NO_NUL


def _zero_minimums(components) -> None:
    """Litestar leaves out `minimum: 0` (a falsy ge); put it back from the Structs."""
    import msgspec

    from api import schemas as s

    for cls in _subclasses(s.Body) + _subclasses(s.View):
        component = components.get(cls.__name__)
        if component is None or not component.properties:
            continue
        for field in msgspec.inspect.type_info(cls).fields:
            types = [field.type] + list(getattr(field.type, "types", ()))
            if any(getattr(t, "ge", None) == 0 for t in types) and field.name in component.properties:
                component.properties[field.name].minimum = 0


def _subclasses(cls) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out
