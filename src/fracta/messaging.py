"""Sending a message the way every face does: deliver it durably, then wake idle recipients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import delivery, events, mailbox, wake
from .repo import Repo


@dataclass(frozen=True)
class Delivery:
    sent: list[mailbox.Message]
    woken: list[str]  # idle recipients whose sessions are being resumed to read it
    undeliverable: dict[str, str]  # recipient -> why it will never read this message (stored all the same)


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
    kick: Callable[[], None] | None = None,
) -> Delivery:
    """Deliver `body` from `sender` to `to` (or * for all but the sender) and wake idle recipients.

    `key` and `same_call_within` make a retried send store its message once (mailbox.send).
    `kick` wakes an in-process spawner (the control plane's faces pass theirs); without it the
    control plane is started if a recipient needs waking.
    """
    sent = mailbox.send(
        repo, sender, to, body, subject=subject, reply_to=reply_to, key=key, same_call_within=same_call_within
    )
    fresh = [m for m in sent if not m.duplicate]  # a retry's recipients were woken by the first call
    woken = wake.after_send(repo, fresh, kick)
    lost = delivery.undeliverable(repo, [m.to for m in fresh])
    for m in fresh:
        if m.to in lost:  # reported to the sender now, and in `fracta inbox --sent`: never silently dropped
            events.record(repo, "message.undeliverable", agent=sender, to=m.to, id=m.id, reason=lost[m.to])
    return Delivery(sent=sent, woken=woken, undeliverable=lost)
