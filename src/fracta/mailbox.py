"""Mailboxes as the core sees them: who may send to whom, message limits, idempotency keys,
read receipts and the events they record. The store keeps the messages (store/files/mailbox.py:
Maildir folders under .fracta/; or PostgreSQL), handing each unread message to one reader until
that reader acknowledges it. The guarantee as the reader sees it is in README.md ("Messages:
exactly once").
"""

from __future__ import annotations

import itertools
import os
import time

from . import agents, clock, events, names, progress
from .errors import AgentNotFound, IdempotencyConflict, InvalidInput
from .records import Inbox, Message
from .repo import Repo

__all__ = ["Inbox", "Message"]

_seq = itertools.count()
# An identical call (same sender, recipient, text) this soon after the one that stored a message is its retry.
SAME_CALL_WINDOW = 600.0


def _new_id() -> str:
    # Sorting ids sorts by send time; pid + sequence + random keep concurrent senders apart.
    return f"{time.time_ns():019d}.{os.getpid()}.{next(_seq)}.{os.urandom(3).hex()}"


def _size_limit(repo: Repo) -> int:
    """mailbox.max_message_bytes (the config is read once per Repo)."""
    return repo.config.integer("mailbox.max_message_bytes", minimum=1)


def _known(repo: Repo, name: str) -> bool:
    return name == names.CHESSMASTER or agents.exists(repo, name)


def recipients(repo: Repo, sender: str, to: str) -> list[str]:
    """Resolve `to` (a name, or * for every agent but the sender). A name is only validated here:
    the store's delivery refuses one with no agent (AgentNotFound), in the same round trip."""
    if to == names.BROADCAST:
        everyone, _ = agents.list_all(repo)
        return [a.name for a in everyone if a.name != sender]
    names.validate_participant(to)
    return [to]


def send(
    repo: Repo,
    sender: str,
    to: str,
    body: str,
    *,
    subject: str | None = None,
    reply_to: str | None = None,
    key: str | None = None,
    same_call_within: float | None = None,
) -> list[Message]:
    """Deliver a message durably to one agent or to all (*); validates everything before writing.

    With `key` (the client's idempotency key), a send repeated with the same key is stored once
    per recipient: the repeat returns the earlier message (`duplicate`), and a different message
    under a used key is refused. Without one, `same_call_within` seconds make an identical
    send (same sender, `to`, subject, reply-to and body) that soon after the first its retry.
    """
    names.validate_participant(sender)
    if not _known(repo, sender):
        raise AgentNotFound(f"unknown sender {sender!r}", "send as an existing agent or as chessmaster")
    _check_message(repo, body, subject, reply_to)
    dedup = dedup_key(sender, to, body, subject, reply_to, key) if key is not None or same_call_within else None
    targets = recipients(repo, sender, to)
    sent: list[Message] = []
    for target in targets:
        msg = Message(_new_id(), sender, target, clock.now(), body, subject, reply_to, dedup_key=dedup)
        try:
            stored = repo.store.mail.deliver(msg, None if key is not None else same_call_within)
        except AgentNotFound as exc:
            if to == names.BROADCAST:
                raise
            raise AgentNotFound(f"cannot send to {to!r}: no such agent", exc.hint) from None
        if stored.duplicate and (stored.to, stored.body, stored.subject, stored.reply_to) != (
            msg.to,
            msg.body,
            msg.subject,
            msg.reply_to,
        ):
            raise IdempotencyConflict(
                f"the idempotency key was already used for another message to {msg.to} ({stored.id})",
                "use a new key for a new message; repeat a key only to retry the very same send",
            )
        sent.append(stored)
    agents.touch_activity(repo, sender)
    for msg in sent:
        events.record(
            repo, "message.duplicate" if msg.duplicate else "message.sent", agent=sender, to=msg.to, id=msg.id
        )
    progress.refresh(repo)
    return sent


def _check_message(repo: Repo, body: str, subject: str | None, reply_to: str | None) -> None:
    limit = _size_limit(repo)
    if not body.strip():
        raise InvalidInput("the message is empty", "say something")
    size = len(body.encode())
    if size > limit:
        raise InvalidInput(
            f"the message is {size} bytes; the limit is {limit}",
            "send a shorter message, or commit a file and send its path",
        )
    for field_name, value in (("subject", subject), ("reply-to", reply_to)):
        if value is not None and ("\n" in value or "\r" in value):
            raise InvalidInput(f"the {field_name} must be one line", f"remove the line breaks from the {field_name}")


MAX_KEY = 200


def check_key(key: str) -> str:
    """An idempotency key as clients pass it: 1 to 200 printable characters on one line."""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidInput(
            f"the idempotency key must be 1 to {MAX_KEY} printable characters on one line",
            "use a UUID, or any string unique to this message",
        )
    return key


def dedup_key(sender: str, to: str, body: str, subject: str | None, reply_to: str | None, key: str | None) -> str:
    """The name in keys/: a hash of the sender and its key, or of the whole call when it passed none."""
    import hashlib  # only here: plain sends and `fracta say` without a key do without it

    if key is not None:
        what = f"key\0{sender}\0{check_key(key)}"
    else:
        what = f"call\0{sender}\0{to}\0{subject}\0{reply_to}\0{body}"
    return hashlib.sha256(what.encode()).hexdigest()[:32]


def read(
    repo: Repo, name: str, *, include_read: bool = False, ack: str | None = None, redeliver_after: float | None = None
) -> Inbox:
    """Hand out the unread messages in send order, each to one reader, until that reader acknowledges them.

    `ack`, the receipt of this reader's previous read, acknowledges the messages that read
    returned. The messages handed out now are held under the receipt returned, whose name part
    is derived from `ack`: a call repeated with the same `ack` (its result was lost) gets them
    again. Messages held longer than `redeliver_after` seconds (mailbox.redeliver_after) under
    another receipt are handed out again. Reads of one inbox take turns. A corrupt message is
    reported and left where it is; it never hides the others.
    """
    names.validate_participant(name)  # an unknown reader: the store's read says so (AgentNotFound)
    acked_by = _receipt(ack) if ack is not None else None
    held_by = _next_holder(name, ack)

    def timeout() -> float:  # read only when a message held for another receipt is looked at: no YAML otherwise
        if redeliver_after is None:
            return repo.config.integer("mailbox.redeliver_after", minimum=1)
        return redeliver_after

    try:
        found = repo.store.mail.read(
            name, include_read=include_read, acked_by=acked_by, held_by=held_by, redeliver_after=timeout
        )
    except IdempotencyConflict as exc:
        raise IdempotencyConflict(f"{exc.message} (ack {ack[:60] if ack else ''!r})", exc.hint) from None
    handed = sum(1 for m in found.messages if not m.read)
    receipt = f"{held_by}-{found.stamp}"
    if found.claimed or found.acked or handed:
        agents.touch_activity(repo, name)
        events.record(repo, "inbox.read", agent=name, count=handed, acked=found.acked, receipt=receipt)
    if found.claimed:
        progress.refresh(repo)
    return Inbox(found.messages, found.problems, receipt)


def acknowledge(repo: Repo, name: str, receipt: str) -> int:
    """Mark read the messages the read that returned `receipt` handed out; returns how many."""
    _check_inbox(repo, name)
    acked = repo.store.mail.acknowledge(name, _receipt(receipt))
    if acked:
        events.record(repo, "inbox.acked", agent=name, count=acked)
    return acked


def acknowledge_run(repo: Repo, name: str, since_ns: int) -> int:
    """Mark read what reads of `name`'s inbox handed out since `since_ns` (a run that ended well).

    An agent's run that ends cleanly has its tool results in its session: the messages its last
    read returned reached it, even though no later read acknowledged them. Without this, they
    would be handed out again after the timeout to its next run. Returns how many.
    """
    _check_inbox(repo, name)
    acked = repo.store.mail.acknowledge_run(name, since_ns)
    if acked:
        events.record(repo, "inbox.acked", agent=name, count=acked, by="run end")
    return acked


def _check_inbox(repo: Repo, name: str) -> None:
    names.validate_participant(name)
    if not _known(repo, name):
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")


def _next_holder(name: str, ack: str | None) -> str:
    """The name part of a read's receipt: random, or derived from `ack` (the same for a repeated call)."""
    if ack is None:
        return os.urandom(8).hex()
    import hashlib

    return hashlib.sha256(f"{name}\0{ack}".encode()).hexdigest()[:16]


def _receipt(text: str) -> tuple[str, int]:
    """A receipt as reads return it: <16 hex digits: the holder>-<ns: when it was handed out>."""
    holder, _, until = text.partition("-")
    hexdigits, digits = "0123456789abcdef", "0123456789"
    if len(holder) != 16 or any(c not in hexdigits for c in holder) or not 0 < len(until) <= 20 or until.strip(digits):
        raise InvalidInput(
            f"{text[:60]!r} is not a receipt fracta handed out",
            "pass the `receipt` of your last inbox result, or nothing on your first read",
        )
    return holder, int(until)


def sweep(repo: Repo, stale_after: float, orphan_age: float | None = None) -> int:
    """Finish every inbox's interrupted deliveries, and delete torn leftovers `stale_after` old.

    Readers recover their own inbox as they read; this covers the inboxes nobody reads (the
    reaper runs it). Returns how many it delivered or deleted.
    """
    done = repo.store.mail.sweep(stale_after, orphan_age)
    if done:
        progress.refresh(repo)  # unread counts may have changed
    return done


def unread_count(repo: Repo, name: str) -> int:
    return repo.store.mail.unread_count(name)


def unread_since(repo: Repo, name: str, since_ns: int) -> bool:
    """A message sent to `name` after `since_ns` is still unread."""
    return repo.store.mail.unread_since(name, since_ns)


def sent_ns(message_id: str) -> int:
    """Message ids start with the send time in nanoseconds (_new_id)."""
    head = message_id.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
