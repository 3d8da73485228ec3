"""Sending a message the way every face does: deliver it durably, then wake idle recipients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import mailbox, wake
from .repo import Repo


@dataclass(frozen=True)
class Delivery:
    sent: list[mailbox.Message]
    woken: list[str]  # idle recipients whose sessions are being resumed to read it


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
    return Delivery(sent=sent, woken=wake.after_send(repo, fresh, kick))
