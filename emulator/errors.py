"""Error bodies shaped like Shopify's.

Shopify runs graphql-ruby, so validation errors carry graphql-ruby's codes
(`undefinedField`, `argumentNotAccepted`, ...). graphql-core finds the same
problems; each error gets the code graphql-ruby uses for that rule, and the most
common messages are reworded to graphql-ruby's wording.
"""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, validate
from graphql.validation import specified_rules

INVALID_TOKEN_BODY = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"

# graphql-core rule -> graphql-ruby error code
_RULE_CODES = {
    "ExecutableDefinitionsRule": "definitionNotExecutable",
    "UniqueOperationNamesRule": "operationNotUnique",
    "LoneAnonymousOperationRule": "anonymousOperationWithSiblings",
    "SingleFieldSubscriptionsRule": "subscriptionRootMultipleFields",
    "KnownTypeNamesRule": "undefinedType",
    "FragmentsOnCompositeTypesRule": "fragmentOnNonCompositeType",
    "VariablesAreInputTypesRule": "variableRequiresValidType",
    "ScalarLeafsRule": "selectionMismatch",
    "FieldsOnCorrectTypeRule": "undefinedField",
    "UniqueFragmentNamesRule": "fragmentNotUnique",
    "KnownFragmentNamesRule": "undefinedFragment",
    "NoUnusedFragmentsRule": "useAndDefineFragment",
    "PossibleFragmentSpreadsRule": "cannotSpreadFragment",
    "NoFragmentCyclesRule": "infiniteLoop",
    "UniqueVariableNamesRule": "variableNotUnique",
    "NoUndefinedVariablesRule": "variableNotDefined",
    "NoUnusedVariablesRule": "variableNotUsed",
    "KnownDirectivesRule": "directiveCannotBeApplied",
    "UniqueDirectivesPerLocationRule": "directiveNotUniqueForLocation",
    "KnownArgumentNamesRule": "argumentNotAccepted",
    "UniqueArgumentNamesRule": "argumentNotUnique",
    "ValuesOfCorrectTypeRule": "argumentLiteralsIncompatible",
    "ProvidedRequiredArgumentsRule": "missingRequiredArguments",
    "VariablesInAllowedPositionRule": "variableMismatch",
    "OverlappingFieldsCanBeMergedRule": "fieldConflict",
    "UniqueInputFieldNamesRule": "inputFieldNotUnique",
}

_Q = "[\"']"  # graphql-core 3.2 quotes names with ", 3.3 with '
_UNDEFINED_FIELD = re.compile(
    rf"^Cannot query field {_Q}(?P<field>\w+){_Q} on type {_Q}(?P<type>\w+){_Q}\."
)
_UNKNOWN_ARGUMENT = re.compile(
    rf"^Unknown argument {_Q}(?P<arg>\w+){_Q} on field {_Q}(?P<type>\w+)\.(?P<field>\w+){_Q}\."
)
_UNKNOWN_INPUT_FIELD = re.compile(
    rf"^Field {_Q}(?P<field>\w+){_Q} is not defined by type {_Q}(?P<type>\w+){_Q}\."
)


def validate_document(
    schema: Any, document: Any, extra_rules: tuple[type, ...]
) -> list[GraphQLError]:
    """Validate, then label each error with the graphql-ruby code of the rule that found it.

    Rules report through their context in ways a subclass cannot intercept, so the
    (rare) failing document is validated again one rule at a time to attribute errors.
    """
    rules = (*specified_rules, *extra_rules)
    if not validate(schema, document, rules):
        return []
    found: list[GraphQLError] = []
    for rule in rules:
        for err in validate(schema, document, (rule,)):
            if not (err.extensions or {}).get("code"):
                _shopify_wording(err, _RULE_CODES.get(rule.__name__, "validationError"))
            found.append(err)
    return sorted(found, key=_position)


def _position(err: GraphQLError) -> tuple[int, int]:
    loc = (err.locations or [None])[0]
    return (loc.line, loc.column) if loc else (0, 0)


def _shopify_wording(error: GraphQLError, code: str) -> None:
    extensions: dict[str, Any] = {"code": code}
    if m := _UNDEFINED_FIELD.match(error.message):
        error.message = f"Field '{m['field']}' doesn't exist on type '{m['type']}'"
        extensions.update(typeName=m["type"], fieldName=m["field"])
    elif m := _UNKNOWN_ARGUMENT.match(error.message):
        error.message = f"Field '{m['field']}' doesn't accept argument '{m['arg']}'"
        extensions.update(name=m["field"], typeName="Field", argumentName=m["arg"])
    elif m := _UNKNOWN_INPUT_FIELD.match(error.message):
        error.message = f"InputObject '{m['type']}' doesn't accept argument '{m['field']}'"
        extensions.update(
            code="argumentNotAccepted",
            name=m["type"],
            typeName="InputObject",
            argumentName=m["field"],
        )
    error.extensions = extensions


def error(
    message: str,
    code: str,
    *,
    locations: list[dict[str, int]] | None = None,
    path: list[str | int] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"message": message}
    if locations:
        out["locations"] = locations
    if path:
        out["path"] = path
    out["extensions"] = {"code": code, **extensions}
    return out


def formatted(err: GraphQLError) -> dict[str, Any]:
    out = dict(err.formatted)
    # A resolver's own GraphQLError is a request problem; anything else is our bug.
    internal = err.original_error is not None and not isinstance(err.original_error, GraphQLError)
    out.setdefault("extensions", {}).setdefault(
        "code", "INTERNAL_SERVER_ERROR" if internal else "BAD_REQUEST"
    )
    return out


def throttled() -> dict[str, Any]:
    return error("Throttled", "THROTTLED", documentation=RATE_LIMITS_DOC)


def max_cost_exceeded(cost: int, max_cost: int) -> dict[str, Any]:
    message = (
        f"Query cost is {cost}, which exceeds the single query max cost limit ({max_cost}).\n\n"
        "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
        "cost of a query is calculated.\n\n"
        "To query larger amounts of data with fewer limits, bulk operations should be used "
        "instead.\n"
        "See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage "
        "details.\n"
    )
    return error(message, "MAX_COST_EXCEEDED", cost=cost, maxCost=max_cost)
