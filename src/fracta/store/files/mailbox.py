"""Mailboxes in local mode, with Maildir semantics: one message a file, durable on send, stored
once per dedup key, handed to its reader until the reader acknowledges it.

An inbox is tmp/ -> new/ -> pending/ -> cur/: a message being written, unread, handed to a reader
and awaiting that reader's acknowledgement, read. keys/ holds a hard link to each message sent
with a dedup key, named after the key. The guarantee as the reader sees it is in README.md
("Messages: exactly once"); the policy (receipts, idempotency checks, events) is the core's
(fracta/mailbox.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from ... import atomic, events, names
from ...errors import AgentNotFound, CorruptRecord, IdempotencyConflict
from ...records import Delivery, Message
from ...repo import Repo
from ..base import Held
from . import sent

SCHEMA = 1
# A whole message found in tmp/ this long after its last write was left by a sender that died, or
# by a crash that lost its move into new/, after the message's fsync: a reader delivers it itself.
ORPHAN_AGE = 10.0
# inbox/acked keeps the holders of about the last 2,000 acknowledged reads (see _retire): a
# copy of a read run later than that is no longer recognised, and what it claims waits for
# mailbox.redeliver_after, delayed but not lost.
ACKED_MAX_BYTES = 1 << 16
_READ_SIZE = 1 << 16  # one read() takes a message of the default size limit whole


def render(msg: Message) -> bytes:
    """The file format: mail-like headers, a blank line, the body. Readable with cat.

    The body's checksum lets a reader tell a whole message from one a crash tore (_whole).
    """
    body = msg.body.encode()
    headers = {
        "fracta-message": str(SCHEMA),
        "id": msg.id,
        "from": msg.sender,
        "to": msg.to,
        "sent": msg.sent_at,
        "subject": msg.subject,
        "reply-to": msg.reply_to,
        "dedup-key": msg.dedup_key,
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
    if atomic.maildir_deliver_once(box, msg.id, render(msg), msg.dedup_key, reuse):
        return msg
    (found,) = earlier
    return dataclasses.replace(found, duplicate=True)


def _sent_ns(message_id: str) -> int:
    """Message ids start with the send time in nanoseconds (_new_id)."""
    head = message_id.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


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


def _no_inbox(name: str) -> AgentNotFound:
    return AgentNotFound(f"no agent named {name!r}", "run fracta list to see the agents")


class FileMail:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def _require_agent(self, name: str) -> None:
        """An inbox serves an agent with a record (or the chessmaster): a folder left by a spawn
        cut short, or by a removal under way, has none."""
        if name != names.CHESSMASTER and not os.path.exists(self.repo.agent_file(name, "agent.json")):
            raise _no_inbox(name)

    def deliver(self, msg: Message, window: float | None) -> Message:
        self._require_agent(msg.to)
        box = self.repo.inbox_dir(msg.to)
        sent.note(self.repo, msg)  # first: a line whose message never arrives is skipped, never misleads
        try:
            if msg.dedup_key is None:
                atomic.maildir_deliver(box, msg.id, render(msg))
                return msg
            return _deliver_once(box, msg, window)
        except FileNotFoundError:  # the inbox is gone (its agent removed meanwhile), or never was
            raise _no_inbox(msg.to) from None

    def _turn(self, box: Path) -> contextlib.AbstractContextManager[bool]:
        """The inbox's read lock; AgentNotFound when the inbox is gone (never made again by a read)."""
        if not box.is_dir():
            raise _no_inbox(box.parent.name if box.name == "inbox" else box.name)
        return atomic.lock(box / "read.lock", make_folder=False)

    def read(
        self,
        name: str,
        *,
        include_read: bool,
        acked_by: tuple[str, int] | None,
        held_by: str,
        redeliver_after: Callable[[], float],
    ) -> Held:
        self._require_agent(name)
        box = self.repo.inbox_dir(name)
        folder = os.fspath(box)  # plain strings: this runs once per message
        # An orphan waits ORPHAN_AGE before anyone delivers it: looking a tenth as often is enough.
        now = time.monotonic()
        if now - self.repo.tmp_checked.get(name, -ORPHAN_AGE) >= ORPHAN_AGE / 10:
            self.repo.tmp_checked[name] = now
            _recover(self.repo, name, box)
        out: list[Message] = []
        problems: list[CorruptRecord] = []
        if include_read:
            out += _folder(f"{folder}/cur", problems)
        # One read at a time: a repeated call then sees all that the call it repeats handed out, and
        # the receipt's time separates what a response held from what a later duplicate added.
        with self._turn(box):
            if acked_by is not None and _retired(folder, held_by):
                # A copy of a call its retry already answered, and whose answer a later read
                # acknowledged, run late (it sat in a server's queue): whatever it claimed would
                # never reach anyone.
                raise IdempotencyConflict(
                    "a later read already acknowledged the result of this read",
                    "pass the receipt of your latest read as ack",
                )
            stamp = time.time_ns()
            held, acked = _pending(box, acked_by, held_by, (stamp, redeliver_after), problems, include_read)
            if acked_by is not None:
                _retire(folder, acked_by[0])
            claimed = _claim(box, f"+{held_by}+{stamp}", problems)
        handed = [m for m in held if not m.read] + claimed
        shown = out + [m for m in held if m.read]
        return Held(shown + sorted(handed, key=lambda m: m.id), problems, stamp, acked, len(claimed))

    def acknowledge(self, name: str, holder: tuple[str, int]) -> int:
        box = self.repo.inbox_dir(name)
        with self._turn(box):
            _, acked = _pending(box, holder, None, (0, lambda: 0.0), [], False)
            _retire(os.fspath(box), holder[0])
        return acked

    def acknowledge_run(self, name: str, since_ns: int) -> int:
        box = self.repo.inbox_dir(name)
        acked = 0
        with self._turn(box):
            for entry in _names(box / "pending"):
                msg_id, _, since = _held(entry)
                if since >= since_ns:
                    acked += atomic.maildir_move(box, f"pending/{entry}", f"cur/{msg_id}")
        return acked

    def unread_count(self, name: str) -> int:
        return len(_names(f"{os.fspath(self.repo.inbox_dir(name))}/new"))

    def unread_since(self, name: str, since_ns: int) -> bool:
        return any(_sent_ns(entry) > since_ns for entry in _names(self.repo.inbox_dir(name) / "new"))

    def listing(self, name: str) -> list[Delivery]:
        folder = os.fspath(self.repo.inbox_dir(name))
        if not os.path.isdir(folder):
            raise _no_inbox(name)
        found: list[Delivery] = []
        alerted = sent.alerted(folder)
        for sub, state in (("new", "stored"), ("pending", "handed"), ("cur", "read")):
            for entry in _names(f"{folder}/{sub}"):
                path = f"{folder}/{sub}/{entry}"
                try:
                    msg = parse(path, _read(path), read=state == "read")
                    # Moving a file into cur/ stamps its inode's change time: when its reading was confirmed.
                    at = (
                        _held(entry)[2] if state == "handed" else os.stat(path).st_ctime_ns if state == "read" else None
                    )
                except (CorruptRecord, FileNotFoundError):
                    continue  # being moved by a reader right now, or corrupt (a read reports it)
                found.append(Delivery(msg, state, at, msg.id in alerted))
        return sorted(found, key=lambda d: d.message.id)

    def sent_by(self, sender: str) -> list[Delivery]:
        sent.ensure_index(self.repo, self.listing)
        return sent.sent_by(self.repo, sender, parse, _read)

    def flag_unread(self, name: str, before_ns: int) -> list[Message]:
        box = self.repo.inbox_dir(name)
        with self._turn(box):
            return sent.flag_unread(box, before_ns, _sent_ns, parse, _read)

    def sweep(self, stale_after: float, orphan_age: float | None) -> int:
        """Every inbox's interrupted deliveries finished, torn leftovers `stale_after` old deleted.

        Readers recover their own inbox as they read; this covers the inboxes nobody reads.
        """
        everyone = [names.CHESSMASTER]
        with contextlib.suppress(FileNotFoundError):
            everyone += sorted(n for n in os.listdir(self.repo.agents_dir) if not n.startswith("."))
        return sum(_recover(self.repo, who, self.repo.inbox_dir(who), orphan_age, stale_after) for who in everyone)
