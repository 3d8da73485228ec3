"""The event log in local mode: .fracta/events.jsonl, one JSON object a line, appended whole.
A cursor is a byte offset."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from typing import Any

from ... import atomic, clock
from ...records import Event
from ...repo import Repo

SCHEMA = 1
SKEW = 5.0  # seconds: how far apart appenders' clocks (or a stamp and its append) may be
_SEARCH_DONE = 1 << 16  # bytes: below this the search stops and the rest is read
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode  # json.dumps builds one a call


class FileEvents:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def append(self, line: dict[str, Any]) -> None:
        atomic.append_line(self.repo.events_path, _encode(line))

    def read(self, since: int = 0, limit: int | None = None) -> Iterator[Event]:
        """Events from byte offset `since`; a torn last line (a writer still appending) is left for later."""
        try:
            fh = open(self.repo.events_path, "rb")  # noqa: SIM115 - closed in finally, generator-safe
        except FileNotFoundError:
            return
        try:
            fh.seek(since)
            offset = since
            for count, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    break
                try:
                    data = json.loads(raw)
                except json.JSONDecodeError:
                    data = {"v": SCHEMA, "event": "corrupt-line", "offset": offset}
                yield Event(offset=offset, end=offset + len(raw), data=data)
                offset += len(raw)
                if limit is not None and count >= limit:
                    break
        finally:
            fh.close()

    def tail(self, n: int) -> list[Event]:
        """The last `n` events, reading only the end of the file."""
        try:
            size = os.path.getsize(self.repo.events_path)
        except FileNotFoundError:
            return []
        start = max(0, size - max(n, 1) * 512)
        while True:
            found = list(self.read(self._line_start(start)))
            if len(found) >= n or start == 0:
                return found[-n:] if n else []
            start = max(0, start - n * 2048)

    def about(self, agents: Collection[str], kinds: Collection[str], since: str) -> Iterator[Event]:
        """A binary search for the first line stamped `since` (less SKEW), then the lines from there."""
        who, what = set(agents), set(kinds)
        if not who or not what:
            return
        start = self._first_at(clock.stamp(clock.parse(since) - SKEW))
        for event in self.read(start):
            if event.data.get("agent") in who and event.data.get("event") in what:
                yield event

    def _first_at(self, stamp: str) -> int:
        """The offset of a line at or before the first one stamped `stamp` or later. Lines are in
        append order, their stamps in that order but for appenders' clocks (SKEW covers them)."""
        try:
            size = os.path.getsize(self.repo.events_path)
        except FileNotFoundError:
            return 0
        lo, hi = 0, size  # the answer lies in [lo, hi]: lines starting before lo are earlier
        with open(self.repo.events_path, "rb") as fh:
            while hi - lo > _SEARCH_DONE:
                mid = self._line_start((lo + hi) // 2)
                if mid >= hi:
                    break
                fh.seek(mid)
                raw = fh.readline()
                if not raw.endswith(b"\n"):
                    break  # the last line, still being appended
                try:
                    ts = str(json.loads(raw).get("ts") or "")
                except (json.JSONDecodeError, AttributeError):
                    ts = ""  # a corrupt line: counted as earlier, so nothing after it is skipped
                if ts < stamp:
                    lo = mid + len(raw)
                else:
                    hi = mid
        return self._line_start(lo)

    def _line_start(self, offset: int) -> int:
        if offset == 0:
            return 0
        with open(self.repo.events_path, "rb") as fh:
            fh.seek(offset - 1)
            if fh.read(1) == b"\n":
                return offset
            fh.readline()
            return fh.tell()
