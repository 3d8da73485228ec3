"""What the strategy runner answers: list, describe and run, as versioned plain dicts
(fracta/contracts/strategies.py describes them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import InvalidInput
from ..repo import Repo
from . import bindings, engine
from .api import Strategy
from .loader import Loader
from .sources import FRACTA, Gateway

VERSION = 1


@dataclass
class Service:
    """One repository's strategies, run with its bindings and through its gateway."""

    repo: Repo
    loader: Loader
    gateway_url: str | None
    token: str

    def list(self) -> dict[str, Any]:
        found = []
        for loaded in self.loader.all():
            s = loaded.strategy
            found.append(
                {
                    "name": loaded.name,
                    "description": s.description if s else "",
                    "error": loaded.error.message if loaded.error else None,
                }
            )
        return {"version": VERSION, "strategies": found}

    def describe(self, name: str) -> dict[str, Any]:
        strategy = self.loader.get(name)
        raw = bindings.configured(self.repo, name)
        contract = []
        for entry, data in strategy.requires.items():
            source = raw.get(entry) or (data.default.describe() if data.default else None)
            contract.append(
                {
                    "entry": entry,
                    "description": data.description,
                    "shape": data.shape,
                    "args": list(data.args),
                    "source": dict(source) if source else None,
                }
            )
        return {
            "version": VERSION,
            "name": strategy.name,
            "description": strategy.description,
            "params": strategy.params.model_json_schema(),
            "contract": contract,
            "steps": [
                {"name": s.name, "needs": list(s.needs), "description": s.description} for s in strategy.steps.values()
            ],
            "findings": strategy.findings_steps(),
        }

    async def run(self, name: str, params: dict[str, Any], by: str) -> dict[str, Any]:
        loaded = self.loader.load(name)
        strategy = loaded.require()
        values = parse_params(strategy, params)
        gateway = None
        if any(not _fracta_only(self.repo, strategy, entry) for entry in strategy.requires):
            if self.gateway_url is None:
                raise InvalidInput(f"{name} needs the gateway's MCP servers, and this runner has no gateway")
            gateway = Gateway(self.gateway_url, self.token)
        ctx = engine.RunContext(self.repo, values, by, {}, gateway, loaded.path)
        try:
            ctx.bound = await bindings.resolve(self.repo, strategy, gateway)
            limits = engine.Limits(
                float(self.repo.config.get("strategies.timeout")),
                float(self.repo.config.get("strategies.step_timeout")),
            )
            return await engine.run(strategy, ctx, limits)
        finally:
            ctx.close()
            if gateway is not None:
                await gateway.close()


def _fracta_only(repo: Repo, strategy: Strategy, entry: str) -> bool:
    """Is `entry` fed by fracta's own sources (no gateway needed)?"""
    raw = bindings.configured(repo, strategy.name).get(entry)
    if raw is not None:
        return isinstance(raw, dict) and raw.get("server") == FRACTA
    default = strategy.requires[entry].default
    return default is not None and default.server == FRACTA


def parse_params(strategy: Strategy, params: Any) -> BaseModel:
    """`params` as the strategy's params model, or InvalidInput naming the wrong one and its type."""
    if not isinstance(params, dict):
        raise InvalidInput(f"the params of {strategy.name} must be a JSON object, not {type(params).__name__}")
    try:
        return strategy.params.model_validate(params)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in error["loc"]) or "params"
        takes = _takes(strategy)
        if error["type"] == "missing":
            return _raise(f"{strategy.name} needs the parameter {key!r}", takes)
        if error["type"] == "extra_forbidden":
            return _raise(f"{strategy.name} takes no parameter {key!r}", takes)
        got = type(error.get("input")).__name__
        return _raise(f"the parameter {key!r} of {strategy.name}: {error['msg'].lower()} (got {got})", takes)


def _takes(strategy: Strategy) -> str:
    schema = strategy.params.model_json_schema()
    props = schema.get("properties", {})
    listed = [f"{k} ({v.get('type', 'any')})" for k, v in props.items()]
    return f"it takes: {', '.join(listed) or 'no parameters'} (strategy_describe)"


def _raise(message: str, hint: str) -> BaseModel:
    raise InvalidInput(message, hint)
