"""`fracta graph query|schema|drop`: the knowledge graph, for the chessmaster (as agents see it)."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import repo
from .render import emit_json, examples, table


@click.group(
    "graph",
    epilog=examples(
        "fracta graph schema",
        "fracta graph query 'MATCH (f:File)<-[:TOUCHES]-(a) RETURN a.key, f.key' --limit 20",
        "fracta graph query 'MATCH (n {key: $k}) RETURN n' -p k=api.py --json",
        "fracta graph drop --confirm",
    ),
)
def graph_cmd() -> None:
    """The knowledge graph agents share (graph_query, graph_upsert, graph_schema); needs `fracta up`."""


@graph_cmd.command(
    "query",
    epilog=examples(
        "fracta graph query 'MATCH (f:File)<-[:TOUCHES]-(a) RETURN a.key, f.key' --limit 20",
        "fracta graph query 'MATCH (n {key: $k}) RETURN n' -p k=api.py --json",
    ),
)
@click.argument("cypher")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=JSON", help="A parameter ($NAME); repeatable.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def query_cmd(cypher: str, params: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Run read-only Cypher (a write is refused by the server)."""
    from ..graph import ops

    found = ops.query(ops.open_graph(repo.find().require_initialized()), cypher, _params(params), limit)
    if as_json:
        emit_json(found)
        return
    rows = [[_cell(row[c]) for c in found["columns"]] for row in found["rows"]]
    click.echo(table(rows, found["columns"]) if rows else "(no rows)")
    if found["note"]:
        click.echo(found["note"], err=True)


@graph_cmd.command("schema", epilog=examples("fracta graph schema", "fracta graph schema --json"))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def schema_cmd(as_json: bool) -> None:
    """Labels and relationship types, their counts and property names."""
    from ..graph import ops

    found = ops.schema(ops.open_graph(repo.find().require_initialized()))
    if as_json:
        emit_json(found)
        return
    rows = [[f":{x['label']}", str(x["count"]), ", ".join(x["properties"])] for x in found["labels"]]
    rows += [[f"-[:{x['type']}]->", str(x["count"]), ", ".join(x["properties"])] for x in found["relationships"]]
    click.echo(table(rows, ["kind", "count", "properties"]) if rows else f"(the graph {found['graph']!r} is empty)")


@graph_cmd.command("drop", epilog=examples("fracta graph drop --confirm"))
@click.option("--confirm", is_flag=True, help="Required: every node and relationship is deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def drop_cmd(confirm: bool, as_json: bool) -> None:
    """Delete the whole knowledge graph (refused without --confirm)."""
    from ..graph import ops

    found = ops.drop(ops.open_graph(repo.find().require_initialized()), confirm=confirm)
    if as_json:
        emit_json(found)
    else:
        click.echo(f"dropped the graph {found['graph']!r}" if found["dropped"] else "there was no graph to drop")


def _params(given: tuple[str, ...]) -> dict[str, Any]:
    """NAME=JSON pairs; a value that is not JSON is taken as a string."""
    out: dict[str, Any] = {}
    for pair in given:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--param")
        try:
            out[name] = json.loads(raw)
        except ValueError:
            out[name] = raw
    return out


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


COMMANDS = [graph_cmd]
