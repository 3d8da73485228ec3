"""Messages exactly once across control-plane crashes, as the readers see them (issue 13, item 4).

Eight MCP clients (the mcp SDK's client over streamable HTTP) send 25 messages each to `hub`
through the gateway of a real control-plane process, while two readers read hub's inbox with
fracta_inbox; the control plane is SIGKILLed twice mid-load and restarted with `fracta up`.
Every client retries a failed call as an agent would: half of the senders with the same
idempotency_key, the other half with the identical call (no key), the readers with the same
`ack`. Then: no message lost, none stored or read twice, none claimed but never seen.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, wait_for

from fracta import mailbox, project
from fracta import repo as repo_mod
from fracta.control import daemon
from fracta.store.files import mailbox as maildir

SENDERS = 8
EACH = 25
READERS = 2
CRASHES = 2
ATTEMPT = 5.0  # seconds a call may take before the client gives up and retries (one cut off may hang)
DEADLINE = 200.0  # the whole load, retries included (a liveness bound, not a timing assertion)


Call = tuple[str, dict[str, Any]]


class ToolFailed(Exception):
    """The gateway answered with a tool error: a refusal, never a transport failure to retry."""


@dataclass
class Load:
    """What the clients saw: the senders' results, the readers' messages, and the calls retried."""

    url: str
    tokens: dict[str, str]
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # body -> the message the sender was told
    duplicates: list[str] = field(default_factory=list)  # ids a retried send found already stored
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (id, body, reader) of every message read
    failed_calls: Counter[str] = field(default_factory=Counter)  # tool -> attempts that got no result
    receipts: set[int] = field(default_factory=set)  # readers that completed a read
    received: set[str] = field(default_factory=set)  # every receipt a reader got back
    inflight: dict[str, Call] = field(default_factory=dict)  # caller -> the call it waits on
    senders_done: int = 0
    error: BaseException | None = None

    def sent_by(self, name: str) -> list[str]:
        return [body for body in self.sent if body.startswith(f"{name} ")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hub(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """hub and the senders; fixed free ports, so a restarted control plane serves the same URL."""
    text = initialized.config_path.read_text()
    # control_plane.port, then gateway.port (both 0 in the template)
    text = text.replace("port: 0", f"port: {free_port()}", 1).replace("port: 0", f"port: {free_port()}", 1)
    initialized.config_path.write_text(text)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for name in ["hub", *(f"sender{n}" for n in range(SENDERS))]:
        project.join(initialized, name)
    return initialized


async def calls(
    load: Load, who: str, first: Call, then: Callable[[dict[str, Any]], Awaitable[Call | None]], caller: str = ""
) -> None:
    """Make `first`, then each call `then(result)` returns, as `who` over one MCP session. A call
    that fails (the control plane died under it, or is not back yet) is made again, identical, on a
    new session, as an agent retries; a tool error fails the test. `caller` names this client in
    `load.inflight` where several clients act as one agent (the readers all read as hub)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    give_up = time.monotonic() + DEADLINE
    call: Call | None = first
    headers = {"Authorization": f"Bearer {load.tokens[who]}"}
    while call is not None:
        try:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=ATTEMPT) as client,
                streamable_http_client(load.url, http_client=client) as (read, write),
                ClientSession(read, write) as session,
            ):
                with anyio.fail_after(ATTEMPT):
                    await session.initialize()
                while call is not None:
                    load.inflight[caller or who] = call
                    with anyio.fail_after(ATTEMPT):
                        result = await session.call_tool(*call)
                    del load.inflight[caller or who]
                    call = await then(structured(result))
        except Exception as exc:
            if failed_tool(exc) or time.monotonic() > give_up:
                raise
            load.failed_calls[call[0] if call else "?"] += 1
            await anyio.sleep(0.1)


def structured(result: Any) -> dict[str, Any]:
    assert isinstance(result, types.CallToolResult)
    if result.is_error:
        content = result.content[0]
        raise ToolFailed(content.text if isinstance(content, types.TextContent) else repr(content))
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


def failed_tool(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(failed_tool(e) for e in exc.exceptions)
    return isinstance(exc, (ToolFailed, AssertionError))


async def sender(load: Load, n: int) -> None:
    name = f"sender{n}"
    keyed = n % 2 == 0  # half retry with their idempotency key, half with the identical call

    def send(i: int) -> Call | None:
        body = f"{name} message {i}"
        key = {"idempotency_key": f"{name}/{i}"} if keyed else {}
        return ("fracta_send", {"from": name, "to": "hub", "message": body} | key) if i < EACH else None

    async def then(data: dict[str, Any]) -> Call | None:
        [msg] = data["sent"]
        load.sent[msg["body"]] = msg
        load.duplicates += data["duplicates"]
        return send(len(load.sent_by(name)))

    first = send(0)
    assert first is not None
    await calls(load, name, first, then)
    load.senders_done += 1


async def reader(load: Load, index: int) -> None:
    """Read hub's inbox until the senders are done and nothing is left, acknowledging each read with the next."""
    finished = False

    async def then(data: dict[str, Any]) -> Call | None:
        nonlocal finished
        load.receipts.add(index)
        load.received.add(data["receipt"])
        load.seen += [(m["id"], m["body"], index) for m in data["messages"]]
        if finished and not data["messages"]:
            return None  # this call acknowledged the last messages and was handed none
        await anyio.sleep(0.05)  # a reader at work between reads (messages gather meanwhile)
        finished = load.senders_done == SENDERS
        return ("fracta_inbox", {"name": "hub", "ack": data["receipt"]})

    await calls(load, "hub", ("fracta_inbox", {"name": "hub"}), then, caller=f"reader{index}")


def run_load(load: Load) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as group:
            for index in range(READERS):
                group.start_soon(reader, load, index)
            await anyio.sleep(0.5)  # the readers' first (empty) reads, before any message exists
            for n in range(SENDERS):
                group.start_soon(sender, load, n)

    try:
        anyio.run(main)
    except BaseException as exc:
        load.error = exc


def stored_unanswered(repo: repo_mod.Repo, load: Load) -> str | None:
    """A send the (stopped) control plane has committed (its key link made) but not finished
    delivering (still in tmp/): it cannot have answered it yet. Its body, or None."""
    box = repo.inbox_dir("hub")
    for who, (tool, args) in dict(load.inflight).items():
        if tool != "fracta_send":
            continue
        link = box / "keys" / mailbox.dedup_key(who, "hub", args["message"], None, None, args.get("idempotency_key"))
        try:
            msg = maildir.parse(link, link.read_bytes(), read=False)
        except FileNotFoundError:
            continue
        if (box / "tmp" / msg.id).exists():
            return str(args["message"])
    return None


def crash_mid_call(
    repo: repo_mod.Repo, load: Load, find: Callable[[repo_mod.Repo, Load], str | None], tries: int
) -> str | None:
    """SIGKILL the control plane at a moment `find` shows it owes a client an answer (found by
    stopping it with SIGSTOP and looking at its files), or after `tries` looks, anyway. Returns
    what `find` found, or None."""
    info = daemon.read_info(repo)
    assert info is not None
    found = None
    for _ in range(tries):
        soon("calls in flight", lambda: load.inflight or load.error)
        os.kill(info.pid, signal.SIGSTOP)
        found = find(repo, load)
        if found is not None:
            break
        os.kill(info.pid, signal.SIGCONT)
    os.kill(info.pid, signal.SIGKILL)
    wait_for("the control plane to die", lambda: daemon.read_info(repo) is None)
    return found


def soon(what: str, check: Callable[[], object]) -> None:
    """Wait for a passing state (polled every millisecond, unlike wait_for), within a liveness bound."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.001)


def stored(repo: repo_mod.Repo) -> int:
    box = repo.inbox_dir("hub")
    return sum(len(os.listdir(box / sub)) for sub in ("new", "pending", "cur") if (box / sub).is_dir())


def test_messages_are_stored_and_read_exactly_once_across_control_plane_crashes(
    hub: repo_mod.Repo, cli: CliRunner
) -> None:
    total = SENDERS * EACH
    with cleanup(hub):
        assert cli("up").returncode == 0
        info = daemon.read_info(hub)
        assert info is not None and info.gateway_url is not None
        tokens = {name: project.agent_token(hub, name) for name in ["hub", *(f"sender{n}" for n in range(SENDERS))]}
        load = Load(info.gateway_url, tokens)
        clients = threading.Thread(target=run_load, args=(load,), daemon=True)
        clients.start()
        alive: Callable[[], str] = lambda: f"client error: {load.error!r}"  # noqa: E731
        wait_for("both readers' first reads", lambda: len(load.receipts) == READERS or load.error, explain=alive)
        # The first crash cuts a send off after its commit; the second falls where it falls.
        hits: list[str | None] = []
        for crash, find in enumerate((stored_unanswered, lambda r, lo: None), start=1):
            share = total * crash // (CRASHES + 1)
            wait_for(f"{share} messages stored", lambda: stored(hub) >= share)  # noqa: B023
            hits.append(crash_mid_call(hub, load, find, tries=300 if crash == 1 else 1))
            up = cli("up")
            assert up.returncode == 0, up.stderr
        clients.join(DEADLINE + 30)
        assert not clients.is_alive(), "the clients never finished"
        assert load.error is None, repr(load.error)

    box = hub.inbox_dir("hub")
    bodies = [f"sender{n} message {i}" for n in range(SENDERS) for i in range(EACH)]
    # A message whose send was interrupted after its commit would be finished by its retry: none is left.
    assert mailbox.sweep(hub, stale_after=3600, orphan_age=-1) == 0
    on_disk = {p.name: maildir.parse(p, p.read_bytes(), read=True) for p in (box / "cur").iterdir()}
    stored_bodies = Counter(m.body for m in on_disk.values())
    assert sorted(stored_bodies) == sorted(bodies), "lost messages"
    assert [b for b, count in stored_bodies.items() if count > 1] == [], "messages stored twice"
    assert os.listdir(box / "new") == [] and os.listdir(box / "pending") == [], "claimed but never acknowledged"
    # Every sender was told the id of the message that was stored for its call.
    assert {body: msg["id"] for body, msg in load.sent.items()} == {m.body: i for i, m in on_disk.items()}
    read_bodies = Counter(body for _, body, _ in load.seen)
    assert sorted(read_bodies) == sorted(bodies), "messages claimed but never seen by a reader"
    assert [b for b, count in read_bodies.items() if count > 1] == [], "messages seen twice"
    assert {i for i, _, _ in load.seen} == set(on_disk)
    assert load.failed_calls, "the crashes hit no call: the test proved nothing"
    log = [json.loads(line) for line in hub.events_path.read_text().splitlines()]
    retried_sends = {e["id"] for e in log if e["event"] == "message.duplicate"}
    handed = Counter(e["receipt"].split("-")[0] for e in log if e["event"] == "inbox.read" and e["count"])
    repeated_reads = sum(1 for times in handed.values() if times > 1)
    cut_send = hits[0]
    if cut_send is not None:  # its retry found it stored, and stored nothing new
        assert on_disk_id(on_disk, cut_send) in retried_sends
    print(
        f"\n{total} messages; a send cut off after its commit: {cut_send!r}; failed calls retried "
        f"{dict(load.failed_calls)}; retried sends found stored {len(retried_sends)}; reads handed out again "
        f"to a repeated call {repeated_reads}"
    )


def on_disk_id(messages: dict[str, mailbox.Message], body: str) -> str:
    [found] = [i for i, m in messages.items() if m.body == body]
    return found
