"""The base of every contract model, and the one translation of a validation failure into a FractaError."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidInput

# An agent name, as fracta/names.py checks it (the core also refuses reserved names, and says why).
NAME_PATTERN = "^[a-z]([a-z0-9-]*[a-z0-9])?$"
NAME_MAX = 40
RECEIPT_PATTERN = "^[0-9a-f]{16}-[0-9]{1,20}$"


class Contract(BaseModel):
    """Exact types (a bool is not an integer, "1" is not a number) and no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


M = TypeVar("M", bound=Contract)


def name_field(description: str, *, default: Any = ..., recipient: bool = False, alias: str | None = None) -> Any:
    """A field holding an agent name. The schema states the pattern; the core checks it, with a hint."""
    pattern = "^([*]|[a-z]([a-z0-9-]*[a-z0-9])?)$" if recipient else NAME_PATTERN
    extra: dict[str, Any] = {"pattern": pattern, "maxLength": NAME_MAX}
    return Field(default, alias=alias, description=description, json_schema_extra=extra)


def parse(model: type[M], data: Any, *, where: str, noun: str = "field") -> M:
    """`data` as `model`, or InvalidInput naming the first wrong field and what it should be."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} must be a JSON object, not {type(data).__name__}", "send a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(model, exc, where, noun) from None


def _invalid(model: type[Contract], exc: ValidationError, where: str, noun: str) -> InvalidInput:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"]) or "the input"
    top = str(error["loc"][0]) if error["loc"] else ""
    takes = ", ".join(_keys(model)) or "nothing"
    if error["type"] == "missing":
        return InvalidInput(f"{where} needs the {noun} {key!r}", f"it takes: {takes}")
    if error["type"] == "extra_forbidden":
        return InvalidInput(f"{where} does not take {key!r}", f"it takes: {takes}")
    field = model.model_fields.get(top) or next((f for f in model.model_fields.values() if f.alias == top), None)
    about = f" ({field.description})" if field is not None and field.description else ""
    return InvalidInput(f"the {noun} {key!r} of {where} {_expected(error)}{about}")


_PLAIN = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "list_type": "must be a list",
    "dict_type": "must be an object",
}


def _expected(error: Any) -> str:
    """pydantic's "Input should be ..." as "must be ...": one voice with the core's messages."""
    plain = _PLAIN.get(error["type"])
    return plain or re.sub(r"^\w+ should ", "must ", str(error["msg"]))


def _keys(model: type[Contract]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]
