"""`fracta gateway`: the MCP gateway alone, in the foreground (for Compose and Kubernetes)."""

from __future__ import annotations

import click

from .. import repo


@click.command("gateway")
@click.option("--host", default=None, help="Listen on this address (default: gateway.host in fracta.yaml).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Listen on this port (default: gateway.port)."
)
@click.option("--log-format", type=click.Choice(["json", "text"]), default="text", show_default=True)
def gateway_cmd(host: str | None, port: int | None, log_format: str) -> int:
    """Serve fracta's MCP tools for agents over streamable HTTP at /mcp, until Ctrl-C or SIGTERM.

    `fracta up` already serves the gateway beside the control plane; run this one alone where the
    control plane runs elsewhere. An address other than loopback is allowed but warned about.
    """
    from .. import config_check, logs
    from ..gateway import app

    r = repo.find().require_initialized()
    config_check.check(r.config_path)  # the whole of fracta.yaml, before anything starts
    logs.setup(r.logs_dir, "gateway", foreground=True, fmt=log_format)
    return app.serve(r, host, port)


COMMANDS = [gateway_cmd]
