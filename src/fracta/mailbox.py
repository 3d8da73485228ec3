"""Mailboxes with Maildir semantics: one message a file, durable on send, delivered exactly once."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import agents, atomic, clock, events, names, progress
from .errors import AgentNotFound, CorruptRecord, InvalidInput
from .repo import Repo

SCHEMA = 1
_seq = itertools.count()
# A whole message found in tmp/ this long after its last write was left by a sender that died, or
# by a crash that lost its move into new/, after the message's fsync: a reader delivers it itself.
ORPHAN_AGE = 10.0
_READ_SIZE = 1 << 16  # one read() takes a message of the default size limit whole


@dataclass(frozen=True)
class Message:
    id: str
    sender: str
    to: str
    sent_at: str
    body: str
    subject: str | None = None
    reply_to: str | None = None
    read: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "sent_at": self.sent_at,
            "subject": self.subject,
            "reply_to": self.reply_to,
            "body": self.body,
            "read": self.read,
        }

    def render(self) -> bytes:
        """The file format: mail-like headers, a blank line, the body. Readable with cat.

        The body's checksum lets a reader tell a whole message from one a crash tore (_whole).
        """
        body = self.body.encode()
        headers = {
            "fracta-message": str(SCHEMA),
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "sent": self.sent_at,
            "subject": self.subject,
            "reply-to": self.reply_to,
            "body-crc32": f"{zlib.crc32(body):08x}",
        }
        head = "".join(f"{k}: {v}\n" for k, v in headers.items() if v is not None)
        return f"{head}\n".encode() + body


def parse(path: Path | str, data: bytes, read: bool) -> Message:
    """A message file's contents; `path` (a string on the hot path) only names the file in errors."""
    raw_head, sep, raw_body = data.partition(b"\n\n")
    if not sep:
        raise CorruptRecord(Path(path), "no blank line between headers and body")
    try:
        head, body = raw_head.decode("utf-8"), raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptRecord(Path(path), "not UTF-8 text") from None
    headers: dict[str, str] = {}
    for line in head.splitlines():
        key, colon, value = line.partition(": ")
        if not colon:
            raise CorruptRecord(Path(path), f"bad header line {line!r}")
        headers[key] = value
    if headers.get("fracta-message") != str(SCHEMA):
        raise CorruptRecord(Path(path), f"message schema {headers.get('fracta-message')!r}, expected {SCHEMA}")
    checksum = headers.get("body-crc32")  # absent from messages written by hand
    if checksum is not None and checksum != f"{zlib.crc32(raw_body):08x}":
        raise CorruptRecord(Path(path), "the body does not match its body-crc32: the file was damaged or edited")
    try:
        return Message(
            id=headers["id"],
            sender=headers["from"],
            to=headers["to"],
            sent_at=headers["sent"],
            body=body,
            subject=headers.get("subject"),
            reply_to=headers.get("reply-to"),
            read=read,
        )
    except KeyError as exc:
        raise CorruptRecord(Path(path), f"missing header {exc}") from None


def _new_id() -> str:
    # Sorting ids sorts by send time; pid + sequence + random keep concurrent senders apart.
    return f"{time.time_ns():019d}.{os.getpid()}.{next(_seq)}.{os.urandom(3).hex()}"


def _size_limit(repo: Repo) -> int:
    """mailbox.max_message_bytes (the config is read once per Repo)."""
    return repo.config.integer("mailbox.max_message_bytes", minimum=1)


def _known(repo: Repo, name: str) -> bool:
    return name == names.CHESSMASTER or agents.exists(repo, name)


def recipients(repo: Repo, sender: str, to: str) -> list[str]:
    """Resolve `to` (a name, or * for every agent but the sender); unknown names are an error."""
    if to == names.BROADCAST:
        everyone, _ = agents.list_all(repo)
        return [a.name for a in everyone if a.name != sender]
    names.validate_participant(to)
    if not _known(repo, to):
        raise AgentNotFound(f"cannot send to {to!r}: no such agent", "run fracta list to see the agents")
    return [to]


def send(
    repo: Repo,
    sender: str,
    to: str,
    body: str,
    *,
    subject: str | None = None,
    reply_to: str | None = None,
) -> list[Message]:
    """Deliver a message durably to one agent or to all (*); validates everything before writing."""
    names.validate_participant(sender)
    if not _known(repo, sender):
        raise AgentNotFound(f"unknown sender {sender!r}", "send as an existing agent or as chessmaster")
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
    targets = recipients(repo, sender, to)
    sent: list[Message] = []
    for target in targets:
        msg = Message(_new_id(), sender, target, clock.now(), body, subject, reply_to)
        atomic.maildir_deliver(repo.inbox_dir(target), msg.id, msg.render())
        sent.append(msg)
    agents.touch_activity(repo, sender)
    for msg in sent:
        events.record(repo, "message.sent", agent=sender, to=msg.to, id=msg.id)
    progress.refresh(repo)
    return sent


@dataclass(frozen=True)
class Inbox:
    messages: list[Message]
    problems: list[CorruptRecord]


def read(repo: Repo, name: str, *, include_read: bool = False) -> Inbox:
    """Unread messages in send order, each claimed (marked read) exactly once across readers.

    A corrupt message file is reported and left where it is; it never hides the others.
    """
    names.validate_participant(name)
    if not _known(repo, name):
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")
    box = repo.inbox_dir(name)
    folder = os.fspath(box)  # plain strings: this runs once per message
    # An orphan waits ORPHAN_AGE before anyone delivers it: looking a tenth as often is enough.
    now = time.monotonic()
    if now - repo.tmp_checked.get(name, -ORPHAN_AGE) >= ORPHAN_AGE / 10:
        repo.tmp_checked[name] = now
        _recover(repo, name, box)
    out: list[Message] = []
    problems: list[CorruptRecord] = []
    if include_read:
        for entry in sorted(_names(f"{folder}/cur")):
            try:
                path = f"{folder}/cur/{entry}"
                out.append(parse(path, _read(path), read=True))
            except CorruptRecord as exc:
                problems.append(exc)
            except FileNotFoundError:
                continue
    claimed = 0
    for entry in sorted(_names(f"{folder}/new")):
        path = f"{folder}/new/{entry}"
        try:
            msg = parse(path, _read(path), read=False)
        except FileNotFoundError:
            continue  # another reader claimed it
        except CorruptRecord as exc:
            problems.append(exc)
            continue
        if not atomic.maildir_claim(box, entry):
            continue  # another reader claimed it between our read and our rename
        out.append(msg)
        claimed += 1
    if claimed:
        agents.touch_activity(repo, name)
        events.record(repo, "inbox.read", agent=name, count=claimed)
        progress.refresh(repo)
    return Inbox(out, problems)


def _whole(name: str, data: bytes) -> bool:
    """A message file as its sender wrote it: it parses, is named after its id, and its body
    matches its checksum (a crash may leave a file empty, cut short, or with another's blocks)."""
    try:
        msg = parse(name, data, read=False)
    except CorruptRecord:
        return False
    return msg.id == name and b"\nbody-crc32: " in data.partition(b"\n\n")[0]


def _recover(
    repo: Repo, name: str, box: Path, orphan_age: float | None = None, remove_torn_after: float | None = None
) -> int:
    found = atomic.maildir_recover(box, _whole, ORPHAN_AGE if orphan_age is None else orphan_age, remove_torn_after)
    for msg_id in found.delivered:
        events.record(repo, "message.recovered", agent=name, id=msg_id)
    return len(found.delivered) + len(found.removed)


def sweep(repo: Repo, stale_after: float, orphan_age: float | None = None) -> int:
    """Finish every inbox's interrupted deliveries, and delete torn leftovers `stale_after` old.

    Readers recover their own inbox as they read; this covers the inboxes nobody reads (the
    reaper runs it). `orphan_age` defaults to ORPHAN_AGE. Returns how many files it delivered
    or deleted.
    """
    everyone = [names.CHESSMASTER]
    with contextlib.suppress(FileNotFoundError):
        everyone += sorted(n for n in os.listdir(repo.agents_dir) if not n.startswith("."))  # as agents.list_all
    done = sum(_recover(repo, who, repo.inbox_dir(who), orphan_age, stale_after) for who in everyone)
    if done:
        progress.refresh(repo)  # unread counts may have changed
    return done


def unread_count(repo: Repo, name: str) -> int:
    return len(_names(f"{os.fspath(repo.inbox_dir(name))}/new"))


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)  # not open(): a buffered file object costs more than the read
    try:
        data = os.read(fd, _READ_SIZE)
        # A read of a regular file that returns less than asked for has reached the end.
        return data if len(data) < _READ_SIZE else data + atomic.read_all(fd)
    finally:
        os.close(fd)


def _names(folder: Path | str) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if not n.startswith(".")]
    except FileNotFoundError:
        return []
