"""Structured logging: one JSON object a line (time, level, component, event, agent, details)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from . import clock

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": clock.stamp(record.created),
            "level": record.levelname.lower(),
            "component": record.name.removeprefix("fracta."),
            "event": record.getMessage(),
            "agent": getattr(record, "agent", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        agent = getattr(record, "agent", None)
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "agent"}
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        who = f" [{agent}]" if agent else ""
        line = f"{clock.stamp(record.created)} {record.levelname.lower():7} {record.name}{who}: {record.getMessage()}"
        return f"{line} {tail}".rstrip()


def setup(log_dir: Path, component: str, *, foreground: bool, fmt: str = "json", level: int = logging.INFO) -> None:
    """Log the `fracta` logger tree to log_dir/<component>.log (JSON) and, in the foreground, stderr."""
    root = logging.getLogger("fracta")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
    log_dir.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_dir / f"{component}.log", encoding="utf-8")
    to_file.setFormatter(JsonFormatter())
    root.addHandler(to_file)
    if foreground:
        to_err = logging.StreamHandler(sys.stderr)
        to_err.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        root.addHandler(to_err)
