"""Timestamps as fracta writes them: UTC, ISO 8601, second precision plus milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> str:
    return stamp(time.time())


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
