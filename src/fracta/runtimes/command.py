"""The `command` runtime: any executable, run in the agent's workspace."""

from __future__ import annotations

import shutil
from typing import Any

from ..errors import InvalidInput
from .base import Launch, LaunchContext, OutputEvent


class CommandRuntime:
    name = "command"
    resumable = False

    def check(self, ctx: LaunchContext) -> None:
        if not ctx.args:
            raise InvalidInput(
                "the command runtime needs a command to run",
                "put it after --, e.g. fracta spawn fix-bug --runtime command -- python script.py",
            )
        binary = ctx.args[0]
        if shutil.which(binary, path=None) is None and not (ctx.workspace / binary).exists():
            raise InvalidInput(
                f"cannot find the executable {binary!r} for agent {ctx.name!r}",
                "install it or give its full path; PATH is searched as for your shell",
            )

    def launch(self, ctx: LaunchContext) -> Launch:
        env = {}
        if ctx.prompt:
            env["FRACTA_PROMPT"] = ctx.prompt
        return Launch(argv=list(ctx.args), env=env, cwd=ctx.workspace)

    def parse(self, record: dict[str, Any]) -> list[OutputEvent]:
        text = str(record.get("line", ""))
        stream = record.get("stream", "stdout")
        return [OutputEvent(kind="line", text=text, ts=record.get("ts"), data={"stream": stream})]

    def finished_status(self, exit_code: int) -> str:
        return "done" if exit_code == 0 else "failed"
