"""fracta's own logs under .fracta/logs/: one JSON object a line, rotated by size.

Each line has `time`, `level`, `component`, `event` (a stable dotted key such as
`mission.started`, listed in docs/logs.md), `message` (the human sentence), `agent`, then the
call's own fields, and `traceback` for an exception. A call site names its key with
`extra={"event": "..."}`; the sentence is the log call's message.

Rotation. A log past MAX_BYTES is renamed <log>.1 (.1 to .2, ... up to KEEP files; the oldest is
dropped). Several processes may append to one log: every post-commit hook to hooks.log, every
`fracta serve` to serve.log, successive runners to an agent's runner.log, and a second control
plane that lost the race for control.lock to control.log. There is no single owner to rotate,
so every writer may rotate, under a lock: an append holds a shared flock on `.<log>.lock` while
it finds the file and writes its line, and a rotation holds it exclusively (after checking the
size again: another writer may have rotated first). So a rotation never falls between a writer
finding the file and writing to it, and no line is lost or split. The only lock-free writer is
the hook script's own failure line (when Python cannot run at all); a rename during its `>>`
puts that line in <log>.1, which keeps it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from . import atomic, clock
from .errors import FractaError

MAX_BYTES = 10 * 1024 * 1024  # a log is rotated once it grows past this
KEEP = 3  # rotated files kept: <log>.1 (newest) to <log>.3
MAX_BYTES_VAR = "FRACTA_TEST_LOG_MAX_BYTES"  # tests only: a small threshold, to rotate often
EVENT_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
WHO = {"control": "the control plane", "gateway": "the gateway", "runner": "the runner", "serve": "fracta serve"}
UNKEYED = "log.unkeyed"  # a call that named no key (a test keeps fracta's own calls from doing so)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "event"}


def max_bytes() -> int:
    """The rotation threshold: MAX_BYTES, unless a test set MAX_BYTES_VAR."""
    return int(os.environ.get(MAX_BYTES_VAR) or MAX_BYTES)


def append(path: Path, line: str, limit: int | None = None) -> None:
    """Append one whole line to the log at `path`, rotating it once it is past `limit` bytes.
    Raises FileNotFoundError if its folder is gone (a removed agent's): never made again here."""
    limit = max_bytes() if limit is None else limit
    guard = path.with_name(f".{path.name}.lock")
    with atomic.lock(guard, shared=True, make_folder=False):
        atomic.append_line(path, line)
        size = path.stat().st_size
    if size > limit:
        with atomic.lock(guard, make_folder=False), contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > limit:  # another writer may have rotated it meanwhile
                atomic.rotate(path, KEEP)


def line(level: str, component: str, event: str, message: str, agent: str | None = None, **fields: Any) -> str:
    """One log line as JSON, for writers that do not go through `logging` (the post-commit hook)."""
    data = {"time": clock.now(), "level": level, "component": component, "event": event, "message": message}
    return json.dumps({**data, "agent": agent, **fields}, default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": clock.stamp(record.created),
            "level": record.levelname.lower(),
            "component": record.name.removeprefix("fracta."),
            "event": getattr(record, "event", None) or UNKEYED,
            "message": record.getMessage(),
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
        event = getattr(record, "event", None) or UNKEYED
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "agent"}
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        who = f" [{agent}]" if agent else ""
        text = f"{clock.stamp(record.created)} {record.levelname.lower():7} {event}{who}: {record.getMessage()}"
        text = f"{text} {tail}".rstrip()
        return f"{text}\n{self.formatException(record.exc_info)}" if record.exc_info else text


class RotatingHandler(logging.Handler):
    """Writes each record as one line through `append` (rotation included)."""

    def __init__(self, path: Path, limit: int | None = None) -> None:
        super().__init__()
        self.path, self.limit = path, limit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            append(self.path, self.format(record), self.limit)
        except FileNotFoundError:
            pass  # its folder was removed (a killed agent's): the line has nowhere to go
        except Exception:  # logging must never be what breaks the process
            self.handleError(record)


def setup(
    log_dir: Path, component: str, *, foreground: bool, fmt: str = "json", level: int = logging.INFO, file: str = ""
) -> Path:
    """Log the `fracta` logger tree to log_dir/<file or component>.log (JSON) and, in the
    foreground, to stderr. Returns the log's path."""
    root = logging.getLogger("fracta")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{file or component}.log"
    to_file = RotatingHandler(path)
    to_file.setFormatter(JsonFormatter())
    root.addHandler(to_file)
    if foreground:
        to_err = logging.StreamHandler(sys.stderr)
        to_err.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        root.addHandler(to_err)
    return path


# --- Exits -------------------------------------------------------------------------------------


class Stopped(BaseException):
    """A stopping signal, raised in the main thread so that the process ends through `exit_logged`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_on_signals() -> None:
    """Make SIGTERM and SIGINT raise Stopped in the main thread (a blocking read is interrupted)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


@dataclass
class Ending:
    """How the process ends: the body sets `code`, and `signal` when it stopped on one it handled."""

    code: int = 0
    signal: int | None = None


@contextlib.contextmanager
def exit_logged(component: str, agent: str | None = None) -> Iterator[Ending]:
    """Log this process's end as `<component>.exited`: clean, by a signal, by a fracta error, or by
    an unhandled exception (with its traceback). A Stopped or KeyboardInterrupt ends the block
    with the shell's code for that signal (128 + its number); anything else is raised on."""
    log = logging.getLogger(f"fracta.{component}")
    base: dict[str, Any] = {"event": f"{component}.exited", "agent": agent}
    who = WHO.get(component, component)
    ending = Ending()
    try:
        yield ending
    except (Stopped, KeyboardInterrupt) as exc:
        ending.signal = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        ending.code = 128 + ending.signal
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        log.info("%s exited (SystemExit)", who, extra={**base, "exit_code": code, "how": "exit"})
        raise
    except FractaError as exc:
        extra = {**base, "exit_code": exc.exit_code, "how": "error", "error": exc.message}
        log.error("%s exited: %s", who, exc.message, extra=extra)
        raise
    except BaseException as exc:
        extra = {**base, "exit_code": 1, "how": "crash", "exception": type(exc).__name__}
        log.critical("%s crashed: %s: %s", who, type(exc).__name__, exc, exc_info=True, extra=extra)
        raise
    if ending.signal is not None:
        name = signal.Signals(ending.signal).name
        extra = {**base, "exit_code": ending.code, "how": "signal", "signal": name}
        log.info("%s stopped by %s", who, name, extra=extra)
    else:
        log.info("%s exited", who, extra={**base, "exit_code": ending.code, "how": "clean"})
