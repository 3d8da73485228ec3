"""Agent and task names: validated once, here, so they are safe everywhere they are used.

A name becomes a folder under .fracta/, a git branch `feature/<name>` and a Kubernetes object
name, so it follows the strictest of the three: an RFC 1123 label, shorter.
"""

from __future__ import annotations

import re

from .errors import InvalidName

MAX_LENGTH = 40
CHESSMASTER = "chessmaster"
BROADCAST = "*"
# Names that mean something else in fracta's own paths, messages or git.
RESERVED = frozenset({CHESSMASTER, "all", "main", "master", "head", "tmp", "new", "cur", "fracta"})
_RULE = "lowercase letters, digits and single dashes, starting with a letter and ending with a letter or digit"
_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$")


def validate(name: str, *, kind: str = "agent name") -> str:
    """Return `name` if it is a valid agent/task name; raise InvalidName naming the rule otherwise."""
    if not isinstance(name, str) or name == "":
        raise InvalidName(f"the {kind} is empty", f"use {_RULE}, e.g. 'fix-login'")
    if len(name) > MAX_LENGTH:
        raise InvalidName(
            f"the {kind} {name[:50]!r} is {len(name)} characters long; the limit is {MAX_LENGTH}",
            "choose a shorter name",
        )
    if not _PATTERN.match(name):
        raise InvalidName(f"the {kind} {name!r} is not allowed: use {_RULE}", "e.g. 'fix-login' or 'agent2'")
    if name in RESERVED:
        raise InvalidName(
            f"the {kind} {name!r} is reserved", f"choose another name; reserved: {', '.join(sorted(RESERVED))}"
        )
    return name


def validate_participant(name: str) -> str:
    """A sender or reader: an agent name or the chessmaster."""
    if name == CHESSMASTER:
        return name
    return validate(name)
