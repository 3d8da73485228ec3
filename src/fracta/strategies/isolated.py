"""Plain (synchronous) steps run in a process of their own, so that one past its timeout is
stopped for real — its process group killed — instead of left running in a thread that Python
cannot stop.

The child is a fresh interpreter (`python -m fracta.strategies.isolated`), not a fork of the
runner: the runner has threads, and a fork would copy whatever lock one of them held. It imports
the strategy's file again, runs the one step with the results of the steps it needs (JSON, as
every step's result is), and answers one line of JSON. What the step prints goes to the runner's
output log (.fracta/logs/strategies.out), not into the answer. A plain step's `ctx` has `params`,
`caller` and `root`; `fetch` and `upsert` are the async steps' (fetch there, pass the data on).
Starting the child costs an interpreter and fracta's import (~0.1-0.3 s); async steps pay nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FractaError

MAX_ANSWER = 64 * 1024 * 1024


class StepRaised(FractaError):
    """The step raised in its process (the message is `Type: what it said`)."""


async def run(file: Path, strategy: str, step: str, params: Any, caller: str, root: str, args: list[Any]) -> Any:
    """Run `step` of the strategy in `file` in a child process; cancelling this (a timeout, another
    step's failure) kills the child and everything it started."""
    request = {"file": str(file), "strategy": strategy, "step": step, "params": params, "caller": caller}
    request |= {"root": root, "args": args}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=root,
        start_new_session=True,  # its own process group: whatever the step starts dies with it
        limit=MAX_ANSWER,
    )
    try:
        out, _ = await proc.communicate(json.dumps(request).encode())
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        raise StepRaised(f"its process ended without an answer (exit code {proc.returncode})") from None
    if "error" in answer:
        raise StepRaised(str(answer["error"]))
    return answer["ok"]


@dataclass(frozen=True)
class PlainContext:
    """`ctx` of a plain step, in its own process."""

    params: Any
    caller: str
    root: str

    async def fetch(self, entry: str, **args: Any) -> Any:
        raise FractaError(
            "a plain (synchronous) step cannot fetch: it runs in a process of its own",
            "fetch in an async step and take its result as a dependency",
        )

    async def upsert(
        self, nodes: Sequence[Mapping[str, Any]] = (), relationships: Sequence[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        raise FractaError(
            "a plain (synchronous) step cannot write to the graph: it runs in a process of its own",
            "return the findings and upsert them in an async step that depends on it",
        )


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    from pydantic import BaseModel

    from .loader import import_file

    file = Path(request["file"])
    strategy = import_file(request["strategy"], file).require()
    step = strategy.steps[request["step"]]
    ctx = PlainContext(strategy.params.model_validate(request["params"]), request["caller"], request["root"])
    try:
        value = step.run(ctx, *request["args"])
    except FractaError as exc:
        return {"error": exc.message}
    except Exception as exc:  # a step is user code: whatever it raises is its error
        return {"error": f"{type(exc).__name__}: {exc}"}
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        return {"ok": json.loads(json.dumps(value))}
    except (TypeError, ValueError) as exc:
        return {"error": f"its result is not JSON ({exc})"}


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the step's prints go to the runner's log, not into the answer
    try:
        reply = _answer(request)
    except FractaError as exc:  # the file changed meanwhile and no longer imports
        reply = {"error": exc.message}
    except KeyError as exc:  # ... or no longer declares the step
        reply = {"error": f"the strategy file changed: it no longer declares {exc}"}
    answer.write(json.dumps(reply, ensure_ascii=False))
    answer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
