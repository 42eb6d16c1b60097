"""Query cost and the leaky bucket behind Shopify's GraphQL rate limit.

Cost rules (shopify.dev "API rate limits", calculated query cost):

* scalars and enums cost 0, objects 1;
* a connection costs 2 plus `first`/`last` times the cost of one node (the node
  object is 1 plus whatever is selected in it); `edges`, `node` and `pageInfo`
  are part of that and add nothing;
* a list taking `first` (e.g. `Order.fulfillments`) costs `first` items, a list
  sized by a list argument (`ids`, `names`) one item per entry, other lists one item;
* interfaces and unions cost the most expensive of the types selected;
* every top-level mutation field costs 10.

`requestedQueryCost` uses the requested page sizes; `actualQueryCost` walks the
response and counts what came back. The bucket charges the requested cost up front
and refunds the difference after execution, as Shopify does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)

MUTATION_COST = 10
CONNECTION_COST = 2
_MISSING = object()


def _is_connection(named: Any) -> bool:
    fields = getattr(named, "fields", None)
    return (
        isinstance(named, GraphQLObjectType)
        and named.name.endswith("Connection")
        and fields is not None
        and "pageInfo" in fields
        and ("edges" in fields or "nodes" in fields)
    )


def _unwrap(gql_type: Any) -> Any:
    return gql_type.of_type if isinstance(gql_type, GraphQLNonNull) else gql_type


class CostCalculator:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    # -- entry points -----------------------------------------------------------------

    def requested(self, operation: OperationDefinitionNode) -> int:
        return self._operation(operation, _MISSING, actual=False)

    def actual(self, operation: OperationDefinitionNode, data: Any) -> int:
        return self._operation(operation, data, actual=True)

    def _operation(self, operation: OperationDefinitionNode, data: Any, actual: bool) -> int:
        kind = operation.operation.value
        if kind == "mutation":
            root = self.schema.mutation_type
            if root is None:
                return 0
            fields = self._collect(root, operation.selection_set)
            if actual and not isinstance(data, dict):
                return 0
            return MUTATION_COST * len(fields)
        root = self.schema.query_type if kind == "query" else self.schema.subscription_type
        if root is None:
            return 0
        return self._selection(root, [operation.selection_set], data, actual)

    # -- walking ----------------------------------------------------------------------

    def _selection(
        self, parent: Any, selection_sets: list[SelectionSetNode], data: Any, actual: bool
    ) -> int:
        if actual and not isinstance(data, dict):
            return 0
        if is_abstract_type(parent):
            candidates = self._candidates(parent, selection_sets)
            if actual and isinstance(data, dict) and data.get("__typename") in candidates:
                candidates = [data["__typename"]]
            costs = [
                self._concrete(self.schema.get_type(name), selection_sets, data, actual)
                for name in candidates
            ]
            return max(costs, default=self._concrete(parent, selection_sets, data, actual))
        return self._concrete(parent, selection_sets, data, actual)

    def _concrete(
        self, parent: Any, selection_sets: list[SelectionSetNode], data: Any, actual: bool
    ) -> int:
        grouped: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            for field in self._collect(parent, selection_set):
                key = field.alias.value if field.alias else field.name.value
                grouped.setdefault(key, []).append(field)
        total = 0
        for key, nodes in grouped.items():
            value = data.get(key, _MISSING) if actual and isinstance(data, dict) else _MISSING
            total += self._field(parent, nodes, value, actual)
        return total

    def _field(self, parent: Any, nodes: list[FieldNode], value: Any, actual: bool) -> int:
        name = nodes[0].name.value
        fields = getattr(parent, "fields", {})
        if name.startswith("__") or name not in fields:
            return 0
        field_def = fields[name]
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            return 0
        if actual and (value is _MISSING or value is None):
            return 0
        sub_sets = [n.selection_set for n in nodes if n.selection_set is not None]
        if _is_connection(named):
            return self._connection(named, nodes[0], sub_sets, value, actual)
        outer = _unwrap(field_def.type)
        if isinstance(outer, GraphQLList):
            if actual:
                items = value if isinstance(value, list) else []
                return sum(
                    1 + self._selection(named, sub_sets, item, True)
                    for item in items
                    if item is not None
                )
            return self._list_size(nodes[0]) * (
                1 + self._selection(named, sub_sets, _MISSING, False)
            )
        return 1 + self._selection(named, sub_sets, value, actual)

    def _connection(
        self,
        connection: GraphQLObjectType,
        node: FieldNode,
        sub_sets: list[SelectionSetNode],
        value: Any,
        actual: bool,
    ) -> int:
        node_type = get_named_type(
            connection.fields["nodes"].type
            if "nodes" in connection.fields
            else get_named_type(connection.fields["edges"].type).fields["node"].type
        )
        node_sets: list[SelectionSetNode] = []
        nodes_keys: list[str] = []
        edge_node_keys: list[tuple[str, str]] = []
        for sub in sub_sets:
            for field in self._collect(connection, sub):
                key = field.alias.value if field.alias else field.name.value
                if field.name.value == "nodes" and field.selection_set:
                    node_sets.append(field.selection_set)
                    nodes_keys.append(key)
                elif field.name.value == "edges" and field.selection_set:
                    edge_type = get_named_type(connection.fields["edges"].type)
                    for inner in self._collect(edge_type, field.selection_set):
                        if inner.name.value == "node" and inner.selection_set:
                            node_sets.append(inner.selection_set)
                            inner_key = inner.alias.value if inner.alias else "node"
                            edge_node_keys.append((key, inner_key))
        if not actual:
            size = self._page_size(node)
            return CONNECTION_COST + size * (
                1 + self._selection(node_type, node_sets, _MISSING, False)
            )
        if not isinstance(value, dict):
            return 0
        # One merged view per returned node, whether it came through `nodes` or `edges`.
        merged: list[dict[str, Any]] = []
        for key in nodes_keys:
            for i, item in enumerate(value.get(key) or []):
                _merge_at(merged, i, item)
        for edges_key, node_key in edge_node_keys:
            for i, edge in enumerate(value.get(edges_key) or []):
                _merge_at(merged, i, (edge or {}).get(node_key))
        return CONNECTION_COST + sum(
            1 + self._selection(node_type, node_sets, item, True) for item in merged
        )

    # -- helpers ----------------------------------------------------------------------

    def _page_size(self, node: FieldNode) -> int:
        args = {a.name.value: self._value(a.value) for a in node.arguments or ()}
        for name in ("first", "last"):
            if isinstance(args.get(name), int):
                return max(args[name], 0)
        return 0

    def _list_size(self, node: FieldNode) -> int:
        args = {a.name.value: self._value(a.value) for a in node.arguments or ()}
        if isinstance(args.get("first"), int):
            return max(args["first"], 0)
        # A list sized by its input (`ids`, `names`, ...) has one item per entry.
        for value in args.values():
            if isinstance(value, list):
                return len(value)
        return 1

    def _value(self, node: Any) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, ListValueNode):
            return [self._value(v) for v in node.values]
        return getattr(node, "value", None)

    def _applies(self, condition: str | None, parent: Any) -> bool:
        if condition is None or condition == parent.name:
            return True
        cond_type = self.schema.get_type(condition)
        if cond_type is None or not is_abstract_type(cond_type):
            return False
        if is_abstract_type(parent):
            return False
        return self.schema.is_sub_type(cond_type, parent)

    def _collect(self, parent: Any, selection_set: SelectionSetNode) -> list[FieldNode]:
        out: list[FieldNode] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                cond = selection.type_condition.name.value if selection.type_condition else None
                if self._applies(cond, parent):
                    out.extend(self._collect(parent, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment and self._applies(fragment.type_condition.name.value, parent):
                    out.extend(self._collect(parent, fragment.selection_set))
        return out

    def _candidates(self, abstract: Any, selection_sets: list[SelectionSetNode]) -> list[str]:
        """Object types named by the fragments under an interface or union."""
        names: list[str] = []

        def visit(selection_set: SelectionSetNode) -> None:
            for selection in selection_set.selections:
                cond: str | None = None
                inner: SelectionSetNode | None = None
                if isinstance(selection, InlineFragmentNode):
                    cond = selection.type_condition.name.value if selection.type_condition else None
                    inner = selection.selection_set
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    if fragment:
                        cond, inner = fragment.type_condition.name.value, fragment.selection_set
                if cond is None:
                    if inner is not None:
                        visit(inner)
                    continue
                cond_type = self.schema.get_type(cond)
                if isinstance(cond_type, GraphQLObjectType):
                    names.append(cond)
                elif cond_type is not None and is_abstract_type(cond_type) and inner is not None:
                    visit(inner)

        for selection_set in selection_sets:
            visit(selection_set)
        return list(dict.fromkeys(names))


def _merge_at(merged: list[dict[str, Any]], index: int, item: Any) -> None:
    while len(merged) <= index:
        merged.append({})
    if isinstance(item, dict):
        merged[index].update(item)


class LeakyBucket:
    """Points drain out at `restore_rate` per second up to `maximum`."""

    def __init__(
        self,
        maximum: float,
        restore_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self._level = float(maximum)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.maximum, self._level + (now - self._stamp) * self.restore_rate)
        self._stamp = now

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._level

    def try_take(self, cost: float) -> bool:
        with self._lock:
            self._refill()
            if cost > self._level:
                return False
            self._level -= cost
            return True

    def refund(self, amount: float) -> None:
        with self._lock:
            self._refill()
            self._level = min(self.maximum, self._level + max(amount, 0))

    def configure(
        self,
        maximum: float | None = None,
        restore_rate: float | None = None,
        currently_available: float | None = None,
    ) -> None:
        with self._lock:
            self._refill()
            if maximum is not None:
                self.maximum = float(maximum)
                self._level = min(self._level, self.maximum)
            if restore_rate is not None:
                self.restore_rate = float(restore_rate)
            if currently_available is not None:
                self._level = min(float(currently_available), self.maximum)

    def reset(self) -> None:
        with self._lock:
            self._level = self.maximum
            self._stamp = self._clock()

    def status(self) -> dict[str, Any]:
        level = self.available()
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": math.floor(level),
            "restoreRate": self.restore_rate,
        }
