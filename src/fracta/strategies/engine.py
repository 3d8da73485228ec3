"""Running one strategy: its steps in dependency order, each as soon as the steps it needs are done
(independent steps at the same time, on one asyncio loop), each bounded by its timeout.

A step that raises or runs past its timeout stops the run: the steps still running are cancelled,
and the error names the step and keeps the results of the steps that finished.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import FractaError, StepFailed
from ..repo import Repo
from .api import Step, Strategy
from .bindings import Bound
from .sources import BUILTINS, FRACTA, Gateway, SourceFailed, text_of

VERSION = 1


@dataclass
class RunContext:
    """`ctx` of every step of one run (api.Context)."""

    repo: Repo
    params: Any
    caller: str
    bound: Mapping[str, Bound]
    gateway: Gateway | None
    source: Path | None = None  # the strategy's file: a plain step's process imports it again
    _graph: Any = None
    written: list[dict[str, Any]] = field(default_factory=list)

    @property
    def root(self) -> str:
        return str(self.repo.root)

    async def fetch(self, entry: str, **args: Any) -> Any:
        bound = self.bound.get(entry)
        if bound is None:
            raise SourceFailed(
                f"fetch({entry!r}): {entry!r} is not in the contract", f"the contract has: {', '.join(self.bound)}"
            )
        if extra := sorted(set(args) - set(bound.data.args)):
            raise SourceFailed(
                f"fetch({entry!r}) got argument(s) {', '.join(extra)} the contract does not declare",
                f"declare them in Data(args=...); it declares: {', '.join(bound.data.args) or 'none'}",
            )
        arguments = {**bound.source.arguments, **args}
        if bound.source.server == FRACTA:
            value = await asyncio.to_thread(BUILTINS[bound.source.tool].run, self.repo, arguments)
            return value if bound.data.shape == "json" else json.dumps(value)
        assert self.gateway is not None
        result = await self.gateway.call(bound.tool_name, arguments)
        text = text_of(result)
        if result.is_error:
            raise SourceFailed(f"{bound.tool_name} (contract entry {entry!r}) answered an error: {text[:2000]}")
        if bound.data.shape == "text":
            return text
        if result.structured_content is not None:
            return result.structured_content
        try:
            return json.loads(text)
        except ValueError:
            raise SourceFailed(
                f"{bound.tool_name} (contract entry {entry!r}) did not answer JSON: {text[:200]!r}"
            ) from None

    async def upsert(
        self, nodes: Sequence[Mapping[str, Any]] = (), relationships: Sequence[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        from ..contracts import base
        from ..contracts import graph as gr
        from ..graph import ops

        request = base.parse(
            gr.GraphUpsert, {"nodes": list(nodes), "relationships": list(relationships)}, where="upsert"
        )
        if self._graph is None:
            self._graph = await asyncio.to_thread(ops.open_graph, self.repo)
        written: dict[str, Any] = await asyncio.to_thread(
            ops.upsert,
            self._graph,
            [n.node() for n in request.nodes],
            [r.relationship() for r in request.relationships],
            by=self.caller,
        )
        self.written.append(written)
        return written

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()


@dataclass(frozen=True)
class Limits:
    run: float  # strategies.timeout
    step: float  # strategies.step_timeout (a step's own timeout overrides it)


async def run(strategy: Strategy, ctx: RunContext, limits: Limits) -> dict[str, Any]:
    """Run every step; the findings are the results of the steps nothing depends on."""
    strategy.layers()  # the cycle check, again: a strategy object may have been changed since loading
    started = time.monotonic()
    deadline = started + limits.run
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    running: dict[asyncio.Task[Any], str] = {}
    waiting = dict(strategy.steps)
    try:
        while waiting or running:
            for name in [n for n, s in waiting.items() if set(s.needs) <= results.keys()]:
                step = waiting.pop(name)
                task = asyncio.ensure_future(_one(step, ctx, results, limits, deadline, timings))
                running[task] = name
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                name = running.pop(task)
                results[name] = task.result()  # a failure raises StepFailed here
    except StepFailed as failed:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        assert failed.details is not None
        failed.details["completed"] = dict(results)
        failed.details["cancelled"] = sorted(running.values())
        failed.details["not_started"] = sorted(waiting)
        raise
    return {
        "version": VERSION,
        "strategy": strategy.name,
        "by": ctx.caller,
        "params": ctx.params.model_dump(mode="json"),
        "findings": {name: results[name] for name in strategy.findings_steps()},
        "steps": [{"name": n, "seconds": round(timings[n], 4)} for n in strategy.steps],
        "graph_writes": len(ctx.written),
        "seconds": round(time.monotonic() - started, 4),
    }


async def _one(
    step: Step, ctx: RunContext, results: dict[str, Any], limits: Limits, deadline: float, timings: dict[str, float]
) -> Any:
    """One step, bounded by its timeout (and what is left of the run's); its result made JSON."""
    own = step.timeout if step.timeout is not None else limits.step
    left = deadline - time.monotonic()
    bound, which = (own, "step") if own <= left else (max(left, 0.0), "run")
    started = time.monotonic()
    args = [results[n] for n in step.needs]
    try:
        if inspect.iscoroutinefunction(step.run):
            value = await asyncio.wait_for(step.run(ctx, *args), bound)
        else:  # a plain function runs in a process of its own: past its timeout it is killed
            value = await asyncio.wait_for(_plain(step, ctx, args), bound)
    except TimeoutError:
        setting = f"{step.name}'s timeout" if which == "step" else "the run's timeout (strategies.timeout)"
        raise _failed(step, f"ran past {setting} of {bound:g}s and was cancelled", timed_out=True) from None
    except FractaError as exc:
        raise _failed(step, exc.message, exc.hint) from None
    except Exception as exc:  # a step is user code: whatever it raises fails the run, named
        raise _failed(step, f"{type(exc).__name__}: {exc}") from None
    timings[step.name] = time.monotonic() - started
    return _jsonable(step, value)


async def _plain(step: Step, ctx: RunContext, args: list[Any]) -> Any:
    from . import isolated

    if ctx.source is None:
        raise FractaError("a plain (synchronous) step runs from its strategy's file, and this one has none")
    params = ctx.params.model_dump(mode="json")
    return await isolated.run(ctx.source, ctx.source.stem, step.name, params, ctx.caller, ctx.root, args)


def _failed(step: Step, why: str, hint: str = "", *, timed_out: bool = False) -> StepFailed:
    return StepFailed(
        f"step {step.name!r} failed: {why}",
        hint or "the results of the steps that finished are in the error's details",
        details={"step": step.name, "error": why, "timed_out": timed_out},
    )


def _jsonable(step: Step, value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise _failed(step, f"its result is not JSON ({exc})") from None
