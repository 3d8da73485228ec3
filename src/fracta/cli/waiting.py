"""A one-line notice on stderr when a step the user waits for takes longer than about a second."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

AFTER = 1.0  # seconds: a shorter wait needs no word


@contextmanager
def notice(message: str, *, after: float = AFTER, stream: TextIO | None = None) -> Iterator[None]:
    """Print `message` once if the block is still running `after` seconds in.

    Only on a terminal (stderr, unless `stream` is given): in a pipe, a log or a test the output
    stays the same however long the step takes.
    """
    out = stream if stream is not None else sys.stderr
    if stream is None and not out.isatty():
        yield
        return

    def say() -> None:
        out.write(message + "\n")
        out.flush()

    timer = threading.Timer(after, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
