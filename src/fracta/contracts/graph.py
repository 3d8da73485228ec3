"""The knowledge graph's operations: their requests and results (graph_query, graph_upsert,
graph_schema, graph_drop; `fracta graph ...`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from .base import Contract
from .shapes import Stamp, Version

if TYPE_CHECKING:
    from ..graph import ops

NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # a label, a relationship type: written into the Cypher, so plain words only
MAX_ROWS = 1000
MAX_ITEMS = 1000
Primitive = str | int | float | bool
Value = Primitive | list[Primitive] | None
Properties = Annotated[
    dict[str, Value],
    Field(
        description="properties set on it (merged with those it has; null removes one; names starting with _ "
        "are fracta's provenance)"
    ),
]


# --- requests ------------------------------------------------------------------------------------


class GraphQuery(Contract):
    query: str = Field(min_length=1, max_length=65536, description="read-only Cypher; use $name for parameters")
    params: dict[str, Any] = Field(default_factory=dict, description="the query's parameters by name")
    limit: int = Field(100, ge=1, le=MAX_ROWS, description="at most this many rows come back (default 100)")


class NodeRef(Contract):
    label: str = Field(pattern=NAME, description="its label, e.g. File")
    key: str = Field(min_length=1, max_length=1000, description="its key: unique within the label")

    def ref(self) -> ops.NodeRef:
        from ..graph import ops

        return ops.NodeRef(self.label, self.key)


class NodeUpsert(NodeRef):
    properties: Properties = Field(default_factory=dict)

    def node(self) -> ops.Node:
        from ..graph import ops

        return ops.Node(self.label, self.key, dict(self.properties))


class RelationshipUpsert(Contract):
    type: str = Field(pattern=NAME, description="its type, e.g. TOUCHES")
    source: NodeRef = Field(alias="from", description="the node it starts from (made if missing)")
    to: NodeRef = Field(description="the node it points to (made if missing)")
    properties: Properties = Field(default_factory=dict)

    def relationship(self) -> ops.Relationship:
        from ..graph import ops

        return ops.Relationship(self.type, self.source.ref(), self.to.ref(), dict(self.properties))


class GraphUpsert(Contract):
    nodes: list[NodeUpsert] = Field(default_factory=list, max_length=MAX_ITEMS, description="nodes, by label and key")
    relationships: list[RelationshipUpsert] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="relationships, one per type between two nodes"
    )


class GraphDrop(Contract):
    confirm: bool = Field(False, description="must be true: every node and relationship is deleted")


# --- results -------------------------------------------------------------------------------------


class GraphRows(Contract):
    """A read-only query's answer: `fracta graph query --json`, `graph_query`."""

    version: Version
    graph: str = Field(description="the graph's name")
    columns: list[str] = Field(description="the query's columns, in order")
    rows: list[dict[str, Any]] = Field(
        description="the rows, each by column; a node is {id, labels, properties}, a relationship "
        "{id, type, from, to, properties}, a path {nodes, relationships}"
    )
    count: int = Field(description="how many rows the query answered (more than `rows` when cut)")
    truncated: bool = Field(description="`rows` holds only the first rows")
    note: str | None = Field(description="why and where the rows were cut; `null` when they were not")


class GraphWritten(Contract):
    """An upsert: `graph_upsert`."""

    version: Version
    graph: str = Field(description="the graph's name")
    by: str = Field(description="who wrote: stamped on every node and relationship as `_by`")
    at: Stamp = Field(description="when: stamped as `_at` (`_created_by`/`_created_at` keep the first writer)")
    nodes: int = Field(description="nodes given")
    relationships: int = Field(description="relationships given")
    created_nodes: int = Field(description="nodes that did not exist before (endpoints included)")
    created_relationships: int = Field(description="relationships that did not exist before")
    properties_set: int = Field(description="property values written (provenance included)")


class GraphLabel(Contract):
    label: str = Field(description="a node label")
    count: int = Field(description="nodes with it")
    properties: list[str] = Field(description="property names seen on them (the first 1000 looked at)")


class GraphRelationshipType(Contract):
    type: str = Field(description="a relationship type")
    count: int = Field(description="relationships of it")
    properties: list[str] = Field(description="property names seen on them (the first 1000 looked at)")


class GraphSchema(Contract):
    """What the graph holds: `fracta graph schema --json`, `graph_schema`."""

    version: Version
    graph: str = Field(description="the graph's name")
    labels: list[GraphLabel] = Field(description="node labels, by name")
    relationships: list[GraphRelationshipType] = Field(description="relationship types, by name")


class GraphDropped(Contract):
    """A dropped graph: `fracta graph drop --confirm --json`, `graph_drop`."""

    version: Version
    graph: str = Field(description="the graph's name")
    dropped: bool = Field(description="it existed and was deleted")
