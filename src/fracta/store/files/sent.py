"""What the files backend keeps beside the inboxes so that following messages stays cheap:
each sender's index of what it sent, and each inbox's list of unread messages already flagged.

`inbox/sent` in the sender's own inbox folder holds one `<message id> <recipient>` line per
message, appended before the message is delivered: `fracta inbox --sent` then opens only the
sender's own messages instead of every inbox (a line whose message never arrived, a crashed or
deduplicated send, is skipped). A project whose messages predate the index has it built once, by
one scan, the first time it is asked (`.fracta/sent-index` marks it built). `inbox/alerted` holds
the ids of unread messages flagged as waiting too long (MailStore.flag_unread), one a line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ... import atomic, clock, names
from ...errors import AgentNotFound, CorruptRecord
from ...records import Delivery, Message
from ...repo import Repo

INDEX = "sent"
ALERTED = "alerted"
MARKER = "sent-index"
ALERTED_MAX_BYTES = 1 << 14  # past this, inbox/alerted is trimmed to the ids still unread

Parse = Callable[[str, bytes, bool], Message]
Read = Callable[[str], bytes]


def note(repo: Repo, msg: Message) -> None:
    """Index `msg` under its sender: one appended line, before its delivery."""
    with contextlib.suppress(FileNotFoundError):  # a sender removed meanwhile: nobody will ask
        atomic.append_line(repo.inbox_dir(msg.sender) / INDEX, f"{msg.id} {msg.to}")


def _participants(repo: Repo) -> list[str]:
    found = [names.CHESSMASTER]
    with contextlib.suppress(FileNotFoundError):
        found += sorted(n for n in os.listdir(repo.agents_dir) if not n.startswith("."))
    return found


def ensure_index(repo: Repo, listing: Callable[[str], list[Delivery]]) -> None:
    """Build every sender's index from the inboxes once, for messages sent before there was one.

    Lines are appended, never rewritten: a send running meanwhile loses nothing, and a line
    twice is read once."""
    marker = repo.state / MARKER
    if marker.exists():
        return
    with atomic.lock(repo.state / f"{MARKER}.lock"):
        if marker.exists():
            return  # another process built it meanwhile
        indexed: dict[str, set[str]] = {}
        for to in _participants(repo):
            try:
                found = listing(to)
            except (FileNotFoundError, CorruptRecord, AgentNotFound):
                continue
            for d in found:
                sender = d.message.sender
                if sender not in indexed:
                    indexed[sender] = {line.split(" ", 1)[0] for line in _lines(repo.inbox_dir(sender) / INDEX)}
                if d.message.id not in indexed[sender] and repo.inbox_dir(sender).is_dir():
                    atomic.append_line(repo.inbox_dir(sender) / INDEX, f"{d.message.id} {d.message.to}")
        atomic.write_json(marker, {"schema": 1, "built_at": clock.now()})


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def alerted(folder: str) -> set[str]:
    """The ids inbox `folder`'s flag_unread has flagged."""
    return set(_lines(Path(folder) / ALERTED))


def sent_by(repo: Repo, sender: str, parse: Parse, read: Read) -> list[Delivery]:
    """Every indexed message of `sender` still in an inbox, where it stands, oldest first."""
    wanted: dict[str, dict[str, None]] = {}
    for line in _lines(repo.inbox_dir(sender) / INDEX):
        msg_id, _, to = line.partition(" ")
        if msg_id and to:
            wanted.setdefault(to, {})[msg_id] = None
    found: list[Delivery] = []
    for to, ids in wanted.items():
        folder = os.fspath(repo.inbox_dir(to))
        if os.path.isdir(folder):
            found += _look_up(folder, ids, parse, read)
    return sorted(found, key=lambda d: d.message.id)


def _look_up(folder: str, ids: Iterable[str], parse: Parse, read: Read) -> list[Delivery]:
    """Find each of `ids` in one inbox, following a message's way new/ -> pending/ -> cur/ so
    that one moved by a reader meanwhile is still found (pending/ is listed again if needed)."""
    held: dict[str, str] | None = None
    flagged = alerted(folder)
    out: list[Delivery] = []
    for msg_id in ids:
        for attempt in range(2):
            if attempt or held is None:
                held = {e.rsplit("+", 2)[0]: e for e in _names(f"{folder}/pending")}
            got = _one(folder, msg_id, held, parse, read)
            if got is not None:
                out.append(dataclasses.replace(got, alerted=msg_id in flagged))
                break
    return out


def _one(folder: str, msg_id: str, held: dict[str, str], parse: Parse, read: Read) -> Delivery | None:
    places = [("new", msg_id, "stored")]
    if msg_id in held:
        places.append(("pending", held[msg_id], "handed"))
    places.append(("cur", msg_id, "read"))
    for sub, entry, state in places:
        path = f"{folder}/{sub}/{entry}"
        try:
            msg = parse(path, read(path), state == "read")
            # Moving a file into cur/ stamps its inode's change time: when its reading was confirmed.
            at = _held_ns(entry) if state == "handed" else os.stat(path).st_ctime_ns if state == "read" else None
        except (FileNotFoundError, CorruptRecord):
            continue
        return Delivery(msg, state, at)
    return None


def _held_ns(entry: str) -> int | None:
    parts = entry.rsplit("+", 2)
    return int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else None


def _names(folder: str) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if not n.startswith(".")]
    except FileNotFoundError:
        return []


def flag_unread(box: Path, before_ns: int, sent_ns: Callable[[str], int], parse: Parse, read: Read) -> list[Message]:
    """Note in inbox/alerted the unread messages sent before `before_ns` not noted yet; returns
    those. The caller holds the inbox's read lock (one flagger at a time)."""
    folder = os.fspath(box)
    path = box / ALERTED
    noted = set(_lines(path))
    waiting = sorted(e for e in _names(f"{folder}/new") if sent_ns(e) < before_ns)
    fresh: list[Message] = []
    for entry in waiting:
        if entry in noted:
            continue
        try:
            fresh.append(parse(f"{folder}/new/{entry}", read(f"{folder}/new/{entry}"), False))
        except (FileNotFoundError, CorruptRecord):
            continue  # claimed by its reader meanwhile, or corrupt (a read reports it)
        atomic.append_line(path, entry)
        noted.add(entry)
    if path.exists() and path.stat().st_size > ALERTED_MAX_BYTES:
        unread = set(_names(f"{folder}/new"))  # ids leave new/ for good: the others need no note
        atomic.write_bytes(path, "".join(f"{i}\n" for i in sorted(noted & unread)).encode(), durable=False)
    return fresh
