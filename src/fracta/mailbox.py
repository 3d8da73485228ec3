"""Mailboxes with Maildir semantics: one message a file, durable on send, stored once per dedup key,
handed to its reader until the reader acknowledges it.

An inbox is tmp/ -> new/ -> pending/ -> cur/: a message being written, unread, handed to a reader
and awaiting that reader's acknowledgement, read. keys/ holds a hard link to each message sent
with a dedup key, named after the key. The guarantee as the reader sees it is in README.md
("Messages: exactly once").
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import agents, atomic, clock, events, names, progress
from .errors import AgentNotFound, CorruptRecord, IdempotencyConflict, InvalidInput
from .repo import Repo

SCHEMA = 1
_seq = itertools.count()
# A whole message found in tmp/ this long after its last write was left by a sender that died, or
# by a crash that lost its move into new/, after the message's fsync: a reader delivers it itself.
ORPHAN_AGE = 10.0
# An identical call (same sender, recipient, text) this soon after the one that stored a message is its retry.
SAME_CALL_WINDOW = 600.0
# inbox/acked keeps the holders of about the last 2,000 acknowledged reads (see _retire): a
# copy of a read run later than that is no longer recognised, and what it claims waits for
# mailbox.redeliver_after, delayed but not lost.
ACKED_MAX_BYTES = 1 << 16
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
    dedup_key: str | None = None  # keys/<dedup_key> names it: it was sent with an idempotency key
    duplicate: bool = False  # stored by an earlier call with the same key, returned again to its retry

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
            "dedup-key": self.dedup_key,
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
            dedup_key=headers.get("dedup-key"),
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
        if dedup is None:
            atomic.maildir_deliver(repo.inbox_dir(target), msg.id, msg.render())
        else:
            msg = _deliver_once(repo.inbox_dir(target), msg, None if key is not None else same_call_within)
        sent.append(msg)
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


def _deliver_once(box: Path, msg: Message, window: float | None) -> Message:
    """Deliver `msg` unless keys/ names an earlier message with its key (younger than `window`)."""
    earlier: list[Message] = []

    def reuse(data: bytes) -> bool:
        try:
            found = parse("keys", data, read=False)
        except CorruptRecord:
            return False  # torn by a crash before its send returned: the key is free
        if window is not None and time.time_ns() - _sent_ns(found.id) >= window * 1e9:
            return False  # the same text again, long after: a new message
        earlier[:] = [found]
        return True

    assert msg.dedup_key is not None
    if atomic.maildir_deliver_once(box, msg.id, msg.render(), msg.dedup_key, reuse):
        return msg
    (found,) = earlier
    if (found.to, found.body, found.subject, found.reply_to) != (msg.to, msg.body, msg.subject, msg.reply_to):
        raise IdempotencyConflict(
            f"the idempotency key was already used for another message to {msg.to} ({found.id})",
            "use a new key for a new message; repeat a key only to retry the very same send",
        )
    return dataclasses.replace(found, duplicate=True)


def _sent_ns(message_id: str) -> int:
    """Message ids start with the send time in nanoseconds (_new_id)."""
    head = message_id.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True)
class Inbox:
    messages: list[Message]
    problems: list[CorruptRecord]
    receipt: str  # acknowledges these messages: pass it as `ack` to the next read, or to acknowledge()


def read(
    repo: Repo, name: str, *, include_read: bool = False, ack: str | None = None, redeliver_after: float | None = None
) -> Inbox:
    """Hand out the unread messages in send order, each to one reader, until that reader acknowledges them.

    `ack`, the receipt of this reader's previous read, acknowledges the messages that read
    returned (pending/ -> cur/). The messages handed out now are held in pending/ under the
    receipt returned, whose name part is derived from `ack`: a call repeated with the same
    `ack` (its result was lost) gets them again. Messages held longer than `redeliver_after`
    seconds (mailbox.redeliver_after) under another receipt are handed out again. Reads of one
    inbox take turns (inbox/read.lock). A corrupt message file is reported and left where it
    is; it never hides the others.
    """
    box = _inbox(repo, name)
    acked_by = _receipt(ack) if ack is not None else None
    held_by = _next_holder(name, ack)
    folder = os.fspath(box)  # plain strings: this runs once per message
    # An orphan waits ORPHAN_AGE before anyone delivers it: looking a tenth as often is enough.
    now = time.monotonic()
    if now - repo.tmp_checked.get(name, -ORPHAN_AGE) >= ORPHAN_AGE / 10:
        repo.tmp_checked[name] = now
        _recover(repo, name, box)

    def timeout() -> float:  # read only when a message held for another receipt is looked at: no YAML otherwise
        if redeliver_after is None:
            return repo.config.integer("mailbox.redeliver_after", minimum=1)
        return redeliver_after

    out: list[Message] = []
    problems: list[CorruptRecord] = []
    if include_read:
        out += _folder(f"{folder}/cur", problems)
    # One read at a time: a repeated call then sees all that the call it repeats handed out, and
    # the receipt's time separates what a response held from what a later duplicate added.
    with atomic.lock(box / "read.lock"):
        if ack is not None and _retired(folder, held_by):
            # A copy of a call its retry already answered, and whose answer a later read acknowledged,
            # run late (it sat in a server's queue): whatever it claimed would never reach anyone.
            raise IdempotencyConflict(
                f"a later read already acknowledged the result of this read (ack {ack[:60]!r})",
                "pass the receipt of your latest read as ack",
            )
        stamp = time.time_ns()
        held, acked = _pending(box, acked_by, held_by, (stamp, timeout), problems, include_read)
        if acked_by is not None:
            _retire(folder, acked_by[0])
        handed = [m for m in held if not m.read]
        out += [m for m in held if m.read]
        claimed = _claim(box, f"+{held_by}+{stamp}", problems)
    handed += claimed
    if claimed or acked or handed:
        agents.touch_activity(repo, name)
        events.record(repo, "inbox.read", agent=name, count=len(handed), acked=acked, receipt=f"{held_by}-{stamp}")
    if claimed:
        progress.refresh(repo)
    return Inbox(out + sorted(handed, key=lambda m: m.id), problems, f"{held_by}-{stamp}")


def _claim(box: Path, suffix: str, problems: list[CorruptRecord]) -> list[Message]:
    """Move every whole message of new/ into pending/, its name + `suffix`; returns them."""
    folder = os.fspath(box)
    out: list[Message] = []
    for entry in sorted(_names(f"{folder}/new")):
        path = f"{folder}/new/{entry}"
        try:
            msg = parse(path, _read(path), read=False)
        except FileNotFoundError:
            continue  # another reader claimed it
        except CorruptRecord as exc:
            problems.append(exc)
            continue
        if atomic.maildir_move(box, f"new/{entry}", f"pending/{entry}{suffix}"):
            out.append(msg)  # else another reader claimed it between our read and our rename
    return out


def acknowledge(repo: Repo, name: str, receipt: str) -> int:
    """Mark read the messages the read that returned `receipt` handed out (pending/ -> cur/); returns how many."""
    box = _inbox(repo, name)
    acked_by = _receipt(receipt)
    with atomic.lock(box / "read.lock"):
        _, acked = _pending(box, acked_by, None, (0, lambda: 0.0), [], False)
        _retire(os.fspath(box), acked_by[0])
    if acked:
        events.record(repo, "inbox.acked", agent=name, count=acked)
    return acked


def acknowledge_run(repo: Repo, name: str, since_ns: int) -> int:
    """Mark read what reads of `name`'s inbox handed out since `since_ns` (a run that ended well).

    An agent's run that ends cleanly has its tool results in its session: the messages its last
    read returned reached it, even though no later read acknowledged them. Without this, they
    would be handed out again after the timeout to its next run. Returns how many.
    """
    box = _inbox(repo, name)
    acked = 0
    with atomic.lock(box / "read.lock"):
        for entry in _names(box / "pending"):
            msg_id, _, since = _held(entry)
            if since >= since_ns:
                acked += atomic.maildir_move(box, f"pending/{entry}", f"cur/{msg_id}")
    if acked:
        events.record(repo, "inbox.acked", agent=name, count=acked, by="run end")
    return acked


def _inbox(repo: Repo, name: str) -> Path:
    names.validate_participant(name)
    if not _known(repo, name):
        raise AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")
    return repo.inbox_dir(name)


def _pending(
    box: Path,
    acked_by: tuple[str, int] | None,
    held_by: str | None,
    times: tuple[int, Callable[[], float]],
    problems: list[CorruptRecord],
    include_read: bool,
) -> tuple[list[Message], int]:
    """Go through pending/, with `times` = (now in ns, the redelivery timeout in seconds).

    Acknowledges what `acked_by` (holder, time) covers: its holder's messages handed out up to
    that time. Hands out under `held_by` again what it already holds (a repeated call), and anew
    what its reader never got: the acknowledged holder's messages handed out later (by a
    duplicate of that read), and any held longer than the timeout. Returns those (read=False),
    the others when `include_read` (read=True), and how many were acknowledged.
    """
    now, timeout = times
    expired: int | None = None
    folder = f"{os.fspath(box)}/pending"
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError, FileNotFoundError):  # not the inbox itself, if it is gone
            os.mkdir(folder)  # the inbox's first read (or one made before pending/ existed)
        entries = []
    out: list[Message] = []
    acked = 0
    for entry in entries:
        msg_id, by, since = _held(entry)
        missed = acked_by is not None and by == acked_by[0]
        if acked_by is not None and missed and since <= acked_by[1]:
            acked += atomic.maildir_move(box, f"pending/{entry}", f"cur/{msg_id}")
            continue
        mine = held_by is not None and by == held_by
        if not (mine or missed) and held_by is not None and expired is None:
            expired = now - int(timeout() * 1e9)
        take = held_by is not None and not mine and (missed or (expired is not None and since < expired))
        if not (mine or take or include_read):
            continue
        path = f"{folder}/{entry}"
        try:
            msg = parse(path, _read(path), read=not (mine or take))
        except FileNotFoundError:
            continue  # acknowledged, or taken over, by its reader meanwhile
        except CorruptRecord as exc:
            problems.append(exc)
            continue
        if not take or atomic.maildir_move(box, f"pending/{entry}", f"pending/{msg_id}+{held_by}+{now}"):
            out.append(msg)
    return out, acked


def _retire(folder: str, holder: str) -> None:
    """Note (a line in inbox/acked) that `holder`'s result was acknowledged: a late copy of the
    read that made it (see read) then claims nothing. Called under read.lock.

    One appended line, not a file per holder: on this disk creating an empty file took 513 us,
    half of a whole send and read (1,002 us); this append takes 15 us and _retired's check 20 us
    (5,000 holders in a row, trims included). Past ACKED_MAX_BYTES the older half is dropped;
    losing the file (a crash mid-trim) only delays a late copy's messages.
    """
    path = Path(f"{folder}/acked")
    atomic.append_line(path, holder)
    if os.stat(path).st_size > ACKED_MAX_BYTES:
        data = path.read_bytes()
        keep = data[len(data) // 2 :]
        atomic.write_bytes(path, keep[keep.index(b"\n") + 1 :], durable=False)


def _retired(folder: str, holder: str) -> bool:
    try:
        with open(f"{folder}/acked", "rb") as fh:
            return f"\n{holder}\n".encode() in b"\n" + fh.read()
    except FileNotFoundError:
        return False


def _held(entry: str) -> tuple[str, str, int]:
    """pending/<id>+<holder>+<ns since the epoch it was handed out>; a name not of that shape is overdue."""
    parts = entry.rsplit("+", 2)
    if len(parts) == 3 and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    return entry, "", 0


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


def _folder(folder: str, problems: list[CorruptRecord]) -> list[Message]:
    out: list[Message] = []
    for entry in sorted(_names(folder)):
        try:
            path = f"{folder}/{entry}"
            out.append(parse(path, _read(path), read=True))
        except CorruptRecord as exc:
            problems.append(exc)
        except FileNotFoundError:
            continue
    return out


def _whole(box: str, name: str, data: bytes) -> bool:
    """A committed message file as its sender wrote it: it parses, is named after its id, and its
    body matches its checksum (a crash may leave a file empty, cut short, or with another's
    blocks); one sent with a dedup key is committed only once keys/ links to it (see
    atomic.maildir_deliver_once): without the link, its sender died before that and its retry
    stores it."""
    try:
        msg = parse(name, data, read=False)
    except CorruptRecord:
        return False
    if msg.id != name or b"\nbody-crc32: " not in data.partition(b"\n\n")[0]:
        return False
    if msg.dedup_key is None:
        return True
    try:
        linked, here = os.stat(f"{box}/keys/{msg.dedup_key}"), os.stat(f"{box}/tmp/{name}")
    except FileNotFoundError:
        return False
    return (linked.st_ino, linked.st_dev) == (here.st_ino, here.st_dev)


def _recover(
    repo: Repo, name: str, box: Path, orphan_age: float | None = None, remove_torn_after: float | None = None
) -> int:
    folder = os.fspath(box)
    found = atomic.maildir_recover(
        box,
        lambda entry, data: _whole(folder, entry, data),
        ORPHAN_AGE if orphan_age is None else orphan_age,
        remove_torn_after,
    )
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
