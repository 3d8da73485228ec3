"""Checking the whole of fracta.yaml against its schema, with errors naming file, line and key.

`check(path)` reads the file, fills in every `${VAR}`, and validates everything at once (unknown
keys with "did you mean", types, ranges, cross-references such as auth profiles), raising one
ConfigError (exit 2) that names the file, the line and the dotted key of each problem.
The CLI runs it before it starts anything (`up`, `spawn` and `serve` when they start the control
plane, `doctor`), and the control plane runs it again before it listens.

Which `${VAR}`s must be set: those of the settings the control plane itself uses (ports, limits,
hooks, ...) — an unset one is an error. Those of a runtime's options (`agents.agent_runtimes`),
of a backend MCP server (`mcp_servers`), of a credential resolver (`auth`) and of a strategy's
bindings (`strategies.bindings`) are filled in later, where they are used, and are only reported
here (`Checked.deferred`): a spawn of that runtime fails naming them, a backend server is skipped
naming them, a strategy run lists them as what its contract misses.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from . import config
from .config_schema import Settings, cross_checks
from .errors import ConfigError

REFERENCE = "docs/config.md"
# Sections whose ${VAR}s are filled in where they are used, not when the control plane starts.
DEFERRED = (("agents", "agent_runtimes"), ("mcp_servers",), ("auth",), ("strategies", "bindings"))


# --- checking a file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A valid configuration: the settings, and the unset variables left for later (key -> names)."""

    settings: Settings
    deferred: dict[str, list[str]]


@dataclass(frozen=True)
class Problem:
    line: int | None
    key: str
    text: str


def check(path: Path, env: Mapping[str, str] | None = None) -> Checked:
    """Validate the whole of fracta.yaml at `path` (a missing file means all defaults)."""
    env = os.environ if env is None else env
    if not path.exists():
        return Checked(Settings(), {})
    node, raw = config.parse(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}:1: the top level must be a mapping of settings", f"see {REFERENCE}")
    problems: list[Problem] = []
    deferred: dict[str, list[str]] = {}
    problems.extend(_repeated(node, ()))
    filled = _fill(raw, (), env, node, problems, deferred)
    unset = {p.key for p in problems}  # their values could not be checked: say only what is unset
    settings = None
    try:
        settings = Settings.model_validate(filled)
    except ValidationError as exc:
        problems.extend(p for p in _problems(exc, node) if p.key not in unset)
    if settings is not None:
        problems.extend(Problem(_line(node, at)[0], dotted(at), text) for at, text in cross_checks(settings))
    if problems or settings is None:
        raise _error(path, problems)
    return Checked(settings, deferred)


def _fill(
    value: Any,
    at: tuple[Any, ...],
    env: Mapping[str, str],
    node: Any,
    problems: list[Problem],
    later: dict[str, list[str]],
) -> Any:
    """`value` with ${VAR}s filled in; an unset one is a problem, or left as written where deferred."""
    if isinstance(value, Mapping):
        return {k: _fill(v, (*at, k), env, node, problems, later) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, (*at, i), env, node, problems, later) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    missing: list[str] = []
    filled = config.interpolate(value, env, missing)
    if not missing:
        return filled
    names = sorted(set(missing))
    if any(at[: len(d)] == d for d in DEFERRED):
        later[dotted(at)] = names
        return value  # checked as written; filled in where it is used
    if len(names) == 1:
        text = f"environment variable {names[0]} is not set (export it, or write ${{{names[0]}:-default}})"
    else:
        text = f"environment variables {', '.join(names)} are not set (export them, or give defaults: ${{VAR:-x}})"
    problems.append(Problem(_line(node, at)[0], dotted(at), text))
    return value


def _repeated(node: Any, at: tuple[Any, ...]) -> Iterator[Problem]:
    """Keys given twice in one mapping: YAML keeps the last silently, so a setting could vanish."""
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _repeated(item, (*at, i))
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[str, int] = {}
    for key, value in node.value:
        name = str(getattr(key, "value", ""))
        line = key.start_mark.line + 1
        if name in first:
            yield Problem(line, dotted((*at, name)), f"given twice (also on line {first[name]}; only this one counts)")
        first.setdefault(name, line)
        yield from _repeated(value, (*at, name))


def dotted(at: tuple[Any, ...]) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(exc: ValidationError, node: Any) -> list[Problem]:
    """pydantic's errors as problems, one per key (a union's alternatives said in one line)."""
    by_key: dict[str, tuple[int | None, list[str]]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        line, found = _line(node, loc)
        kind = error["type"]
        text = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            text = "unknown key" + _did_you_mean(loc)
        elif kind == "missing":
            found, text = loc, "required"
        elif kind != "value_error" and not isinstance(error.get("input"), dict | list):
            text = text.split(", ")[0] if kind.endswith("_parsing") else text
        key = dotted(found) or "(top level)"
        by_key.setdefault(key, (line, []))[1].append(text)
    out = []
    for key, (line, texts) in by_key.items():
        first, *rest = dict.fromkeys(texts)
        text = first + "".join(f" or {t.removeprefix('Input should be ')}" for t in rest)
        value = _value_at(node, _parts(key))
        text = text.replace("Input should be", "should be")
        out.append(Problem(line, key, text + (f", not {value}" if value and "unknown key" not in text else "")))
    return out


def _parts(key: str) -> tuple[Any, ...]:
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", key))


def _value_at(node: Any, at: tuple[Any, ...]) -> str:
    """The value as written at `at`, when it is a scalar (to show it), else ''."""
    import yaml

    found = _walk(node, at)
    if isinstance(found, yaml.ScalarNode) and len(at) and _walk(node, at[:-1]) is not found:
        return repr(found.value) if found.style or not found.value.isdigit() else found.value
    return ""


def _walk(node: Any, at: tuple[Any, ...]) -> Any:
    for part in at:
        node = _child(node, part)
        if node is None:
            return None
    return node


def _child(node: Any, part: Any) -> Any:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def _line(node: Any, loc: tuple[Any, ...]) -> tuple[int | None, tuple[Any, ...]]:
    """The 1-based line of the deepest part of `loc` in the YAML node tree, and that part's path.

    A mapping's key gives its key's line. Parts pydantic adds (a union's member) are not in the tree.
    """
    import yaml

    line: int | None = None
    found: tuple[Any, ...] = ()
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        else:
            child = _child(node, part)
            if child is None:
                break
            line, node = child.start_mark.line + 1, child
        found = (*found, part)
    return line, found


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    kind: Any = Settings
    for part in loc[:-1]:
        kind = _inside(kind, part)
    model = model_of(kind)
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (the keys here: {', '.join(model.model_fields)})"


def _inside(kind: Any, part: Any) -> Any:
    """The type of `part` inside a value of type `kind`: a model's field, a mapping's or a list's item."""
    model = model_of(kind)
    if model is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field is not None else None
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    args = get_args(kind)
    if get_origin(kind) is dict:
        return args[1]
    if get_origin(kind) is list:
        return args[0]
    return None


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model an annotation holds directly (`X`, `X | None`, `Annotated[X, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Annotated, Union, types.UnionType):
        for arg in get_args(annotation):
            if (found := model_of(arg)) is not None:
                return found
    return None


def _error(path: Path, problems: list[Problem]) -> ConfigError:
    ordered = sorted(problems, key=lambda p: p.line or 1)  # as an editor shows the file
    lines = [f"{path}:{p.line or 1}: {p.key}: {p.text}" for p in ordered]
    more = f" ({len(problems)} problems)" if len(problems) > 1 else ""
    return ConfigError(
        "\n".join(lines),
        f"fix {path.name}{more}; every key, its type and default: {REFERENCE} (and the template fracta init writes)",
    )
