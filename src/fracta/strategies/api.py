"""What a strategy module declares: its steps (a DAG), its contract (the data it requires) and its
parameters. Strategy authors import these names from `fracta.strategies`.

A step is a function `async def name(ctx, dep_a, dep_b)`: the parameters after `ctx` name the
steps it depends on, and receive their results. The strategy's findings are the results of the
steps no other step depends on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from ..errors import StrategyInvalid

if TYPE_CHECKING:
    from collections.abc import Sequence

Shape = Literal["text", "json"]
_NAME_OK = str.isidentifier


class NoParams(BaseModel):
    """A strategy without parameters."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class Source:
    """Where a contract entry's data comes from: a tool of an MCP server (fracta.yaml's
    `mcp_servers`, or `fracta` for fracta's own sources) and the arguments given on every call."""

    server: str
    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"server": self.server, "tool": self.tool, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class Data:
    """One contract entry: data the strategy requires, by name and shape.

    `shape`: "text" (the tool's text) or "json" (its structured result, or its text parsed as JSON).
    `args`: the arguments the strategy gives on each fetch (the binding gives the rest).
    `default`: the source used when fracta.yaml binds nothing (fracta's own sources, typically).
    """

    description: str
    shape: Shape = "text"
    args: tuple[str, ...] = ()
    default: Source | None = None


class Context(Protocol):
    """What a step gets as `ctx`."""

    params: Any  # the run's parameters, as the strategy's params model
    caller: str  # who runs the strategy (the agent, or "chessmaster")
    root: str  # the repository the runner serves (its main worktree)

    async def fetch(self, entry: str, **args: Any) -> Any:
        """The data of contract entry `entry`, from its bound source, with `args` added to the call."""
        ...

    async def upsert(
        self, nodes: Sequence[Mapping[str, Any]] = (), relationships: Sequence[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        """Write findings to the knowledge graph (as graph_upsert takes them), stamped with `caller`."""
        ...


StepFunction = Callable[..., Awaitable[Any] | Any]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFunction
    needs: tuple[str, ...]
    timeout: float | None = None  # overrides strategies.step_timeout for this step
    description: str = ""


class Strategy:
    """A strategy: its name, what it does, its parameters, its contract and its steps."""

    def __init__(
        self,
        name: str,
        description: str,
        *,
        params: type[BaseModel] = NoParams,
        requires: Mapping[str, Data] | None = None,
    ) -> None:
        if not _NAME_OK(name):
            raise StrategyInvalid(f"strategy name {name!r} is not a Python identifier", "use letters, digits and _")
        self.name = name
        self.description = description
        self.params = params
        self.requires: dict[str, Data] = dict(requires or {})
        self.steps: dict[str, Step] = {}

    def step(self, fn: StepFunction | None = None, *, timeout: float | None = None) -> Any:
        """Declare a step (as `@strategy.step` or `@strategy.step(timeout=...)`)."""

        def add(function: StepFunction) -> StepFunction:
            names = list(inspect.signature(function).parameters)
            if not names:
                raise StrategyInvalid(f"step {function.__name__!r} of {self.name} must take `ctx` first")
            if function.__name__ in self.steps:
                raise StrategyInvalid(f"{self.name} declares step {function.__name__!r} twice")
            doc = (inspect.getdoc(function) or "").strip().splitlines()
            self.steps[function.__name__] = Step(
                function.__name__, function, tuple(names[1:]), timeout, doc[0] if doc else ""
            )
            return function

        return add(fn) if fn is not None else add

    def layers(self) -> list[list[str]]:
        """The steps in dependency order, as layers of steps that may run together; StrategyInvalid
        for a step that needs an unknown one, or for a cycle (named step by step)."""
        if not self.steps:
            raise StrategyInvalid(f"strategy {self.name} declares no steps", "decorate a function with @strategy.step")
        for step in self.steps.values():
            unknown = [n for n in step.needs if n not in self.steps]
            if unknown:
                known = ", ".join(self.steps)
                raise StrategyInvalid(
                    f"step {step.name!r} of {self.name} needs {', '.join(map(repr, unknown))}, which is not a step",
                    f"the parameters after ctx name the steps it depends on; the steps are: {known}",
                )
        done: set[str] = set()
        layers: list[list[str]] = []
        while len(done) < len(self.steps):
            ready = [s.name for s in self.steps.values() if s.name not in done and set(s.needs) <= done]
            if not ready:
                cycle = _cycle({s.name: s.needs for s in self.steps.values() if s.name not in done})
                raise StrategyInvalid(
                    f"the steps of {self.name} form a cycle (each needs the next): {' -> '.join(cycle)}",
                    "a step may depend only on steps that do not depend on it",
                )
            layers.append(ready)
            done.update(ready)
        return layers

    def findings_steps(self) -> list[str]:
        """The steps no other step depends on: their results are the strategy's findings."""
        needed = {n for s in self.steps.values() for n in s.needs}
        return [name for name in self.steps if name not in needed]


def _cycle(graph: dict[str, tuple[str, ...]]) -> list[str]:
    """One cycle among the steps left (each of which waits on another of them)."""
    start = next(iter(graph))
    path: list[str] = [start]
    while True:
        following = next(n for n in graph[path[-1]] if n in graph)
        if following in path:
            return [*path[path.index(following) :], following]
        path.append(following)
