"""Strategies' operations: their requests and results (strategy_list, strategy_describe,
strategy_run; `fracta strategy ...`). Kept short: agents pay for every schema in their context."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import Contract
from .shapes import Version

STRATEGY_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"


# --- requests ------------------------------------------------------------------------------------


class StrategyName(Contract):
    name: str = Field(pattern=STRATEGY_NAME, description="the strategy")


class StrategyRun(StrategyName):
    params: dict[str, Any] = Field(default_factory=dict, description="its parameters (strategy_describe)")


# --- results -------------------------------------------------------------------------------------


class StrategySummary(Contract):
    name: str = Field(description="its name")
    description: str = Field(description="what it finds")
    error: str | None = Field(description="why it cannot run (its file does not import, ...); `null` when it can")


class StrategyList(Contract):
    """The strategies here: `strategy_list`, `fracta strategy list --json`."""

    version: Version
    strategies: list[StrategySummary] = Field(description="by name")


class ContractEntry(Contract):
    entry: str = Field(description="its name, as the strategy fetches it")
    description: str = Field(description="the data it is")
    shape: str = Field(description="`text` or `json`")
    args: list[str] = Field(description="the arguments the strategy gives on each fetch")
    source: dict[str, Any] | None = Field(
        description="its source: {server, tool, arguments} from fracta.yaml, or the strategy's default; `null`: unbound"
    )


class StepInfo(Contract):
    name: str = Field(description="the step")
    needs: list[str] = Field(description="the steps whose results it takes")
    description: str = Field(description="its docstring's first line")


class StrategyDescription(Contract):
    """One strategy: `strategy_describe`, `fracta strategy describe --json`."""

    version: Version
    name: str = Field(description="its name")
    description: str = Field(description="what it finds")
    params: dict[str, Any] = Field(description="the JSON schema of its parameters")
    contract: list[ContractEntry] = Field(description="the data it requires")
    steps: list[StepInfo] = Field(description="its steps, as declared")
    findings: list[str] = Field(description="the steps whose results are its findings")


class StepTime(Contract):
    name: str = Field(description="the step")
    seconds: float = Field(description="how long it ran")


class StrategyResult(Contract):
    """A strategy run: `strategy_run`, `fracta strategy run --json`."""

    version: Version
    strategy: str = Field(description="the strategy")
    by: str = Field(description="who ran it (stamped on what it wrote to the graph)")
    params: dict[str, Any] = Field(description="its parameters, defaults filled in")
    findings: dict[str, Any] = Field(description="the results of the steps nothing depends on, by step")
    steps: list[StepTime] = Field(description="every step, as declared")
    graph_writes: int = Field(description="upserts it made to the knowledge graph")
    seconds: float = Field(description="how long the run took")
