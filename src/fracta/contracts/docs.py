"""docs/json.md's field tables, generated from the result models so that the page cannot drift.

A table stands between `<!-- fields: Model -->` and `<!-- end fields -->`. Rewrite them with
`python -m fracta.contracts.docs docs/json.md`; tests/test_contracts.py fails while the page differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from . import graph, review, shapes, strategies
from .base import Contract
from .operations import Schema

BLOCK = re.compile(r"(<!-- fields: (\w+) -->\n).*?(<!-- end fields -->)", re.S)


def anchor(name: str) -> str:
    """The page's anchor of a model's section: its name in words (SavedWork: `saved-work`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def model(name: str) -> type[Contract]:
    found = next((m for m in (shapes, graph, strategies, review) if hasattr(m, name)), None)
    found = getattr(found, name, None)
    if not (isinstance(found, type) and issubclass(found, Contract)):
        raise KeyError(
            f"docs/json.md names {name!r}, which is not a model of fracta.contracts.shapes, .graph, .strategies "
            "or .review"
        )
    return found


def table(of: type[Contract], documented: set[str]) -> str:
    """A model's fields: name, type in the page's words, meaning; models in `documented` are linked."""
    schema = of.model_json_schema(schema_generator=Schema)
    defs = schema.get("$defs", {})
    rows = ["| field | type | meaning |", "|---|---|---|"]
    for key, prop in schema["properties"].items():
        meaning = str(prop.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{key}` | {type_words(prop, defs, documented)} | {meaning} |")
    return "\n".join(rows) + "\n"


def type_words(prop: dict[str, Any], defs: dict[str, Any], documented: set[str]) -> str:
    """`string`, `integer`, `boolean`, `list of X`, `object`, a link to a documented model, `X \\| null`."""
    if "anyOf" in prop:
        kinds = [type_words(p, defs, documented) for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = any(p.get("type") == "null" for p in prop["anyOf"])
        return " \\| ".join(kinds + (["null"] if nullable else []))
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        if "enum" in defs[name]:
            return "string"
        return f"[{anchor(name).replace('-', ' ')}](#{anchor(name)})" if name in documented else "object"
    kind = prop.get("type")
    if kind == "array":
        return "list of " + type_words(prop["items"], defs, documented)
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"object of string to {type_words(values, defs, documented)}" if isinstance(values, dict) else "object"
    if "const" in prop and kind is None:
        kind = {bool: "boolean", int: "integer", str: "string"}[type(prop["const"])]
    return {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "null": "null"}[
        str(kind)
    ]


def render(page: str) -> str:
    """The page with every field table regenerated."""
    documented = {m.group(2) for m in BLOCK.finditer(page)}
    return BLOCK.sub(lambda m: m.group(1) + table(model(m.group(2)), documented) + m.group(3), page)


def main(argv: list[str]) -> int:
    for name in argv or ["docs/json.md"]:
        path = Path(name)
        path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
