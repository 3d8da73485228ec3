"""clock.stamp formats times itself (datetime's isoformat cost a tenth of a message's CPU):
it must write exactly what datetime writes, rounding and second boundaries included."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from fracta import clock


def reference(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_stamp_writes_what_datetime_writes() -> None:
    rng = random.Random(7)
    edges = [0.0, 0.0004999, 0.0005, 0.9995, 0.9999994999, 0.9999995, 0.9999996, 0.5]
    times = [rng.uniform(0, 4e9) for _ in range(20000)]
    times += [rng.randrange(0, 4_000_000_000) + edge for edge in edges for _ in range(500)]
    times += [1735732800.0 + edge for edge in edges]
    rng.shuffle(times)  # consecutive calls in the same second and in different ones
    assert [t for t in times if clock.stamp(t) != reference(t)] == []


def test_parse_reads_back_what_stamp_writes() -> None:
    assert clock.parse(clock.stamp(1735732800.123456)) == 1735732800.123
