"""`fracta strategy list|describe|run|init`: strategies, as agents see them through the gateway."""

from __future__ import annotations

import json

import click

from .. import repo
from .graph import _params
from .render import emit_json, examples, table


@click.group(
    "strategy",
    epilog=examples(
        "fracta strategy init",
        "fracta strategy list",
        "fracta strategy describe conflict_radar",
        "fracta strategy run conflict_radar -p base=main --json",
    ),
)
def strategy_cmd() -> None:
    """Strategies: shared analyses in strategies/*.py, run by the strategy runner (needs `fracta up`)."""


@strategy_cmd.command("list", epilog=examples("fracta strategy list", "fracta strategy list --json"))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_cmd(as_json: bool) -> None:
    """The strategies here, and why any of them cannot run."""
    from ..strategies import client

    found = client.list_strategies(repo.find().require_initialized())
    if as_json:
        emit_json(found)
        return
    rows = [[s["name"], f"error: {s['error']}" if s["error"] else s["description"]] for s in found["strategies"]]
    click.echo(
        table(rows, ["strategy", "description"]) if rows else "(no strategies: fracta strategy init adds examples)"
    )


@strategy_cmd.command("describe", epilog=examples("fracta strategy describe conflict_radar"))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def describe_cmd(name: str, as_json: bool) -> None:
    """A strategy's parameters, contract (and its bindings) and steps."""
    from ..strategies import client

    found = client.describe(repo.find().require_initialized(), name)
    if as_json:
        emit_json(found)
        return
    click.echo(f"{found['name']}: {found['description']}")
    props = found["params"].get("properties", {})
    click.echo("\nparams:" + ("" if props else " none"))
    for key, prop in props.items():
        default = json.dumps(prop.get("default"))
        click.echo(f"  {key} ({prop.get('type', 'any')}, default {default}): {prop.get('description', '')}")
    click.echo("\ncontract:")
    for c in found["contract"]:
        source = c["source"]
        where = f"{source['server']}.{source['tool']}" if source else "UNBOUND"
        click.echo(f"  {c['entry']} ({c['shape']}) <- {where}: {c['description']}")
    click.echo("\nsteps:")
    for s in found["steps"]:
        needs = f" (after {', '.join(s['needs'])})" if s["needs"] else ""
        click.echo(f"  {s['name']}{needs}: {s['description']}")


@strategy_cmd.command("run", epilog=examples("fracta strategy run who_waits -p unread_after=60"))
@click.argument("name")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=JSON", help="A parameter; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_cmd(name: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run a strategy as the chessmaster and print its findings."""
    from ..strategies import client

    found = client.run(repo.find().require_initialized(), name, _params(params), by="chessmaster")
    if as_json:
        emit_json(found)
        return
    click.echo(json.dumps(found["findings"], indent=2, ensure_ascii=False))
    click.echo(f"{found['strategy']}: {len(found['steps'])} steps in {found['seconds']:.2f}s", err=True)


@strategy_cmd.command("init", epilog=examples("fracta strategy init"))
def init_cmd() -> None:
    """Copy the example strategies (conflict_radar, who_waits) into strategies/ (keeps existing files)."""
    from ..strategies import examples as shipped

    done = shipped.install(repo.find().require_initialized())
    for name in done.written:
        click.echo(f"wrote {done.folder / name}")
    for name in done.kept:
        click.echo(f"kept {done.folder / name} (already there)")


COMMANDS = [strategy_cmd]
