"""The state store's contract: what every backend (files, PostgreSQL) does, and nothing of how.

The core (agents, mailbox, missions, events, identity, progress) holds the policy — validation,
names, receipts, idempotency checks, which event to record — and calls a store for storage
alone. Every backend passes one behavioural suite (tests/test_store.py). Semantics that a
backend must keep are stated here; the files backend (store/files/) is the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import CorruptRecord
from ..records import Agent, Delivery, Event, Message, Mission

# What a store's subscribers hear about (Store.subscribe): a mission queued or freed, an event
# appended, a message stored for an inbox (the topic is "inbox:<name>"), and RESYNC when changes
# may have been missed (a lost database connection): look at everything again.
MISSIONS = "missions"
EVENTS = "events"
INBOX = "inbox:"
RESYNC = "resync"


class AgentStore(Protocol):
    def exists(self, name: str) -> bool: ...

    def load(self, name: str) -> Agent:
        """The record; AgentNotFound if there is none, CorruptRecord if it cannot be read."""
        ...

    def list_all(self) -> tuple[list[Agent], list[CorruptRecord]]:
        """Every agent sorted by (created_at, name); a corrupt record is reported, never fatal."""
        ...

    def names(self) -> list[str]:
        """The agents' names, sorted, as cheaply as the backend can (shell completion)."""
        ...

    def create(self, agent: Agent, token: str) -> None:
        """Create the record, an empty inbox and the agent's token, all or nothing; AgentExists if taken."""
        ...

    def holding(self, name: str) -> AbstractContextManager[Agent]:
        """Hold the agent exclusively (across processes and control planes) and yield its fresh
        record; change it meanwhile only with `write`. AgentNotFound if there is none."""
        ...

    def write(self, agent: Agent) -> Agent:
        """Store `agent` as its record, stamped now (updated_at). Only while `holding` it."""
        ...

    def remove(self, name: str) -> None:
        """Delete the record, its inbox and its token; AgentNotFound if there is none."""
        ...

    def touch(self, name: str) -> None:
        """Note activity now (cheap; may be coalesced to a fraction of a second)."""
        ...

    def last_activity(self, name: str) -> float | None:
        """When `touch` last ran for `name` (epoch seconds), or None."""
        ...


@dataclass(frozen=True)
class Held:
    """What one inbox read found (MailStore.read): the core builds the receipt and the events."""

    messages: list[Message]  # read=False: handed to this reader now; read=True: shown only (include_read)
    problems: list[CorruptRecord]
    stamp: int  # ns since the epoch: when this read handed them out (the receipt's second part)
    acked: int  # how many messages the `acked_by` holder's read had handed out were marked read
    claimed: int  # how many unread messages this read took from the inbox's new ones


class MailStore(Protocol):
    def deliver(self, msg: Message, window: float | None) -> Message:
        """Store `msg` durably in the inbox of `msg.to` before returning it.

        With `msg.dedup_key` set, the key is stored with it, once per inbox: if an earlier
        message holds the key (younger than `window` seconds, when given), nothing is stored and
        that earlier message is returned with duplicate=True (the core checks it is the same).
        AgentNotFound when `msg.to` is no agent (nor the chessmaster) or its inbox is gone: the core
        relies on this instead of looking the recipient up first."""
        ...

    def read(
        self,
        name: str,
        *,
        include_read: bool,
        acked_by: tuple[str, int] | None,
        held_by: str,
        redeliver_after: Callable[[], float],
    ) -> Held:
        """One read of `name`'s inbox; reads of one inbox take turns.

        `acked_by` = (holder, stamp) of this reader's previous read: its messages handed out up
        to that stamp become read, and that holder is retired (IdempotencyConflict if `held_by`
        is itself a retired holder: a late copy of an answered read). Then hands out under
        `held_by`: what it already holds (a repeated call), what `acked_by`'s holder got after its
        stamp (a duplicate's), what another holder held longer than `redeliver_after()` seconds,
        and every unread message, oldest first. Shows read ones too when `include_read`.
        AgentNotFound when `name` is no agent (nor the chessmaster) or has no inbox; a read never
        makes one.
        """
        ...

    def acknowledge(self, name: str, holder: tuple[str, int]) -> int:
        """Mark read what `holder` (holder, stamp) was handed up to its stamp; retire it. Returns how many."""
        ...

    def acknowledge_run(self, name: str, since_ns: int) -> int:
        """Mark read whatever reads handed out since `since_ns` (a run that ended well). Returns how many."""
        ...

    def unread_count(self, name: str) -> int: ...

    def unread_since(self, name: str, since_ns: int) -> bool:
        """Is a message sent after `since_ns` still unread (not yet handed to any reader)?"""
        ...

    def listing(self, name: str) -> list[Delivery]:
        """Every message of `name`'s inbox and where it stands, oldest first, changing nothing
        (a corrupt one is left out: reads report it). AgentNotFound when there is no inbox."""
        ...

    def sent_by(self, sender: str) -> list[Delivery]:
        """Every message `sender` sent that is still in an inbox (its recipient not removed) and
        where it stands, oldest first, changing nothing; as cheaply as the backend can (an index),
        never by reading every inbox."""
        ...

    def flag_unread(self, name: str, before_ns: int) -> list[Message]:
        """Flag the messages of `name`'s inbox sent before `before_ns` and still unread (not yet
        handed to a reader), each once ever: returns those flagged by this call. AgentNotFound
        when there is no inbox."""
        ...

    def sweep(self, stale_after: float, orphan_age: float | None) -> int:
        """Finish interrupted deliveries, drop torn leftovers older than `stale_after`; returns how many."""
        ...


class MissionStore(Protocol):
    def enqueue(self, mission: Mission) -> Mission:
        """Queue durably; returns the mission with its store id."""
        ...

    def pending(self) -> tuple[list[Mission], list[CorruptRecord]]:
        """Missions no live claim holds, oldest first."""
        ...

    def claim(self, owner: str, lease: float, limit: int) -> list[Mission]:
        """Take up to `limit` of the oldest pending missions for `owner` for `lease` seconds.
        Concurrent claimers never get the same mission; one whose lease ran out is pending again."""
        ...

    def renew(self, owner: str, lease: float) -> int:
        """Extend every claim `owner` holds by `lease` seconds from now; returns how many."""
        ...

    def release(self, mission: Mission) -> None:
        """Give a claimed mission back to the queue (not started)."""
        ...

    def remove(self, mission: Mission) -> None:
        """The mission is done (or void): forget it. Removing a removed mission is no error."""
        ...

    def drop_agent(self, name: str) -> None:
        """Forget every mission of agent `name` (killed before it started)."""
        ...

    def scheduling(self) -> AbstractContextManager[None]:
        """One scheduler at a time (across control planes): counting free slots and starting
        missions, or queueing a wake, are not interleaved."""
        ...

    def wake(self) -> None:
        """Tell every spawner to look at the queue again."""
        ...


class EventStore(Protocol):
    def append(self, line: dict[str, Any]) -> None:
        """Append one event, durably ordered after every event appended before it returned."""
        ...

    def read(self, since: int, limit: int | None) -> Iterator[Event]:
        """Events from cursor `since` (0: the first), in order; each Event.end is the next cursor.
        A reader never misses an event: one appended later has a later cursor."""
        ...

    def tail(self, n: int) -> list[Event]:
        """The last `n` events, in order."""
        ...

    def about(self, agents: Collection[str], kinds: Collection[str], since: str) -> Iterator[Event]:
        """The events of `kinds` naming one of `agents` (their "agent"), in order, from about time
        `since` (a clock.stamp) on: possibly a few seconds' earlier ones too (appenders' clocks
        differ a little), never a later one left out. Found without reading the whole log."""
        ...


class TokenStore(Protocol):
    def chessmaster(self) -> str:
        """The chessmaster's token as this machine holds it (.fracta/token, mode 0600)."""
        ...

    def agent(self, name: str) -> str:
        """Agent `name`'s token as handed to it at spawn (kept where its launcher reads it)."""
        ...

    def resolve(self, token: str) -> str | None:
        """The name owning `token` ("chessmaster" or an agent's), or None. A removed agent's
        token stops working at once."""
        ...


class Store(Protocol):
    backend: str  # "files" or "postgres"
    agents: AgentStore
    mail: MailStore
    missions: MissionStore
    events: EventStore
    tokens: TokenStore

    def record_action(self, action: str, at: str) -> None:
        """Remember the chessmaster's last action (shown in progress.md)."""
        ...

    def last_action(self) -> tuple[str, str] | None:
        """(action, at) of the chessmaster's last action, or None."""
        ...

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None] | None:
        """Call `listener(topic)` on each change (MISSIONS, EVENTS, INBOX + name, RESYNC) from any
        process, until the returned function is called. None: this backend cannot push changes,
        and callers look again on their own timer."""
        ...

    def supervise(self, owner: str, lease: float) -> frozenset[str] | None:
        """Renew `owner`'s supervision of its agents, take over those whose supervisor's lease ran
        out, and return the names `owner` now supervises. None: one supervisor supervises all
        (a backend that allows a single control plane)."""
        ...

    def adopt(self, owner: str, name: str, lease: float) -> None:
        """`owner` supervises agent `name` from now (it started it)."""
        ...

    def close(self) -> None: ...
