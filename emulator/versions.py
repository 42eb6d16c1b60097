"""API-version rules the 2026-01 SDL states only in prose.

For requests on 2026-04 and later (source: shopify.dev changelog, 2025-12-12):

* fields, arguments and enum values whose deprecation says "removed in 2026-04"
  no longer exist (`compareQuantity`, `ignoreCompareQuantity`, ...);
* every inventory quantity input must carry the `changeFromQuantity` key, an Int
  for compare-and-swap or an explicit null to opt out. Omitting it is refused
  with `INVALID_FIELD_ARGUMENTS`, the code Shopify answers live;
* mutations whose description says the idempotency key becomes required need
  `@idempotent(key:)`; without it Shopify answers `BAD_REQUEST`.

The key may sit in the document or in the variables; both are checked.
"""

from __future__ import annotations

import re
from typing import Any

from graphql import (
    DirectiveNode,
    EnumValueNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    VariableNode,
    get_named_type,
    print_ast,
)
from graphql.utilities import type_from_ast
from graphql.validation import ValidationContext, ValidationRule

from emulator.errors import error
from emulator.schema import AdminSchema

CAS_VERSION = "2026-04"
CAS_FIELD = "changeFromQuantity"
# The quantity inputs of inventorySetQuantities, inventoryAdjustQuantities,
# inventoryMoveQuantities and inventorySetOnHandQuantities.
CAS_INPUT_TYPES = frozenset(
    {
        "InventoryQuantityInput",
        "InventoryChangeInput",
        "InventoryMoveQuantityTerminalInput",
        "InventorySetQuantityInput",
    }
)
_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")


def is_known_version(version: str) -> bool:
    return version == "unstable" or bool(_VERSION.match(version))


def at_least(version: str, threshold: str) -> bool:
    return version == "unstable" or version >= threshold


def missing_cas_message(type_name: str) -> str:
    return f"{type_name} must include the following argument: {CAS_FIELD}"


def literal_rule(admin: AdminSchema, version: str, raw_variables: dict[str, Any]) -> type:
    """A validation rule applying this version's removals and key presence to literals."""
    removed_fields = {k for k, v in admin.removed_fields.items() if at_least(version, v)}
    removed_args = {k for k, v in admin.removed_args.items() if at_least(version, v)}
    removed_values = {k for k, v in admin.removed_enum_values.items() if at_least(version, v)}
    check_cas = at_least(version, CAS_VERSION)

    class VersionRule(ValidationRule):
        context: ValidationContext

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            parent = self.context.get_parent_type()
            if parent is not None and (parent.name, node.name.value) in removed_fields:
                self.report_error(
                    _located(
                        f"Field '{node.name.value}' doesn't exist on type '{parent.name}'",
                        node,
                        "undefinedField",
                        typeName=parent.name,
                        fieldName=node.name.value,
                    )
                )

        def enter_argument(self, node, _key, _parent, _path, ancestors) -> None:
            owner = next(
                (a for a in reversed(ancestors) if isinstance(a, (FieldNode, DirectiveNode))), None
            )
            parent = self.context.get_parent_type()
            if not isinstance(owner, FieldNode) or parent is None:
                return
            field_name = owner.name.value
            if (parent.name, field_name, node.name.value) in removed_args:
                self.report_error(
                    _located(
                        f"Field '{field_name}' doesn't accept argument '{node.name.value}'",
                        node,
                        "argumentNotAccepted",
                        name=field_name,
                        typeName="Field",
                        argumentName=node.name.value,
                    )
                )

        def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
            parent = self.context.get_parent_input_type()
            named = get_named_type(parent) if parent is not None else None
            if named is not None and (named.name, node.name.value) in removed_fields:
                self.report_error(
                    _located(
                        f"InputObject '{named.name}' doesn't accept argument '{node.name.value}'",
                        node,
                        "argumentNotAccepted",
                        name=named.name,
                        typeName="InputObject",
                        argumentName=node.name.value,
                    )
                )

        def enter_enum_value(self, node: EnumValueNode, *_: Any) -> None:
            input_type = self.context.get_input_type()
            named = get_named_type(input_type) if input_type is not None else None
            if named is not None and (named.name, node.value) in removed_values:
                self.report_error(
                    _located(
                        f"Argument has an invalid value ({node.value})."
                        f" Expected type '{named.name}'.",
                        node,
                        "argumentLiteralsIncompatible",
                    )
                )

        def enter_object_value(self, node: ObjectValueNode, *_: Any) -> None:
            if not check_cas:
                return
            input_type = self.context.get_input_type()
            named = get_named_type(input_type) if input_type is not None else None
            if named is None or named.name not in CAS_INPUT_TYPES:
                return
            value = next((f.value for f in node.fields if f.name.value == CAS_FIELD), None)
            # A field bound to a variable the request leaves out is absent as well.
            absent = value is None or (
                isinstance(value, VariableNode) and value.name.value not in raw_variables
            )
            if absent:
                self.report_error(
                    _located(missing_cas_message(named.name), node, "INVALID_FIELD_ARGUMENTS")
                )

    return VersionRule


def _located(message: str, node: Any, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code, **extensions})


class _VariableWalker:
    """Walks one variable's raw value along its declared type, noting rule breaks."""

    def __init__(
        self,
        removed_fields: set[tuple[str, str]],
        removed_values: set[tuple[str, str]],
        check_cas: bool,
    ) -> None:
        self.removed_fields = removed_fields
        self.removed_values = removed_values
        self.check_cas = check_cas
        self.problems: list[dict[str, Any]] = []
        self.missing_cas: list[str] = []

    def walk(self, value: Any, typ: Any, path: list[str | int]) -> None:
        if isinstance(typ, GraphQLNonNull):
            self.walk(value, typ.of_type, path)
        elif isinstance(typ, GraphQLList):
            items = value if isinstance(value, list) else [] if value is None else [value]
            for i, item in enumerate(items):
                self.walk(item, typ.of_type, [*path, i] if isinstance(value, list) else path)
        elif isinstance(typ, GraphQLInputObjectType) and isinstance(value, dict):
            for key, item in value.items():
                if (typ.name, key) in self.removed_fields:
                    explanation = f"Field is not defined on {typ.name}"
                    self.problems.append({"path": [*path, key], "explanation": explanation})
                elif key in typ.fields:
                    self.walk(item, typ.fields[key].type, [*path, key])
            if self.check_cas and typ.name in CAS_INPUT_TYPES and CAS_FIELD not in value:
                self.missing_cas.append(typ.name)
        elif isinstance(typ, GraphQLEnumType) and (typ.name, value) in self.removed_values:
            allowed = [v for v in typ.values if (typ.name, v) not in self.removed_values]
            explanation = f'Expected "{value}" to be one of: {", ".join(allowed)}'
            self.problems.append({"path": path, "explanation": explanation})


def variable_problems(
    admin: AdminSchema,
    version: str,
    operation: OperationDefinitionNode,
    raw_variables: dict[str, Any],
) -> list[dict[str, Any]]:
    """Apply the version's rules to values passed as variables."""
    removed_fields = {k for k, v in admin.removed_fields.items() if at_least(version, v)}
    removed_values = {k for k, v in admin.removed_enum_values.items() if at_least(version, v)}
    check_cas = at_least(version, CAS_VERSION)
    out: list[dict[str, Any]] = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        gql_type = type_from_ast(admin.schema, definition.type)
        if name not in raw_variables or gql_type is None:
            continue
        walker = _VariableWalker(removed_fields, removed_values, check_cas)
        walker.walk(raw_variables[name], gql_type, [])
        location = _location(definition)
        if walker.problems:
            where = ".".join(str(p) for p in walker.problems[0]["path"])
            out.append(
                error(
                    f"Variable ${name} of type {print_ast(definition.type)}"
                    f" was provided invalid value for {where}",
                    "INVALID_VARIABLE",
                    locations=location,
                    value=raw_variables[name],
                    problems=walker.problems,
                )
            )
        for type_name in dict.fromkeys(walker.missing_cas):
            message = missing_cas_message(type_name)
            out.append(error(message, "INVALID_FIELD_ARGUMENTS", locations=location))
    return out


def _location(node: Any) -> list[dict[str, int]] | None:
    loc = getattr(node, "loc", None)
    if loc is None:
        return None
    return [{"line": loc.start_token.line, "column": loc.start_token.column}]


def root_fields(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> list[FieldNode]:
    """Top-level fields of the operation, looking through fragments."""
    out: list[FieldNode] = []

    def collect(selection_set: Any) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append(selection)
            elif hasattr(selection, "selection_set") and selection.selection_set is not None:
                collect(selection.selection_set)
            elif hasattr(selection, "name") and selection.name.value in fragments:
                collect(fragments[selection.name.value].selection_set)

    collect(operation.selection_set)
    return out


def idempotency_key(field: FieldNode, variables: dict[str, Any]) -> str | None:
    """The `@idempotent(key:)` value on a field, from a literal or a variable."""
    for directive in field.directives or ():
        if directive.name.value != "idempotent":
            continue
        for arg in directive.arguments or ():
            if arg.name.value != "key":
                continue
            if isinstance(arg.value, VariableNode):
                value = variables.get(arg.value.name.value)
            else:
                value = getattr(arg.value, "value", None)
            return value if isinstance(value, str) else None
    return None


def idempotency_problems(
    admin: AdminSchema,
    version: str,
    operation: OperationDefinitionNode,
    fragments: dict[str, Any],
    variables: dict[str, Any],
) -> list[dict[str, Any]]:
    if operation.operation.value != "mutation":
        return []
    out: list[dict[str, Any]] = []
    for field in root_fields(operation, fragments):
        name = field.name.value
        key = idempotency_key(field, variables)
        location = _location(field)
        if key is not None and not key.strip():
            out.append(
                error(
                    "The idempotency key cannot be an empty string or whitespace only.",
                    "BAD_REQUEST",
                    locations=location,
                    path=[field.alias.value if field.alias else name],
                )
            )
            continue
        required_from = admin.idempotency_required.get(name)
        if key is None and required_from is not None and at_least(version, required_from):
            out.append(
                error(
                    "The @idempotent directive is required for this mutation but was not provided.",
                    "BAD_REQUEST",
                    locations=location,
                    path=[field.alias.value if field.alias else name],
                )
            )
    return out
