"""`fracta doctor`: check what fracta needs and say what to fix."""

from __future__ import annotations

import click

from . import render

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON shape.")
def doctor_cmd(as_json: bool) -> int:
    """Check git, fracta on PATH, fracta.yaml, the AI CLIs, credential resolvers (secrets never shown),
    the control plane and the gateway. Binaries and variables are looked for where spawn looks: in
    the running control plane's environment (names only), else this shell's; each check says which.
    Exits 1 when something is broken, 2 when fracta.yaml is invalid (as `up` would)."""
    from .. import doctor

    report = doctor.run()
    if as_json:
        render.emit_json(report.to_dict())
    else:
        for check in report.checks:
            click.echo(f"{MARKS.get(check.status, check.status)}  {check.name}: {check.detail}")
            if check.fix and check.status in {"fail", "warn"}:
                click.echo(f"      fix: {check.fix}")
        click.echo("everything fracta needs is in order" if report.ok else "something needs fixing (see FAIL above)")
    return report.exit_code


COMMANDS = [doctor_cmd]
