"""Messages exactly once across control-plane crashes, as the readers see them (issue 13, item 4).

Eight MCP clients (the mcp SDK's client over streamable HTTP) send 25 messages each to `hub`
through the gateway of a real control-plane process, while two readers read hub's inbox with
fracta_inbox; the control plane is SIGKILLed twice mid-load and restarted with `fracta up`.
Every client retries a failed call as an agent would: half of the senders with the same
idempotency_key, the other half with the identical call (no key), the readers with the same
`ack`. Then: no message lost, none stored or read twice, none claimed but never seen.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import pytest
from conftest import CliRunner
from lifecycle_helpers import cleanup, kill_control_plane_hard, wait_for

from fracta import mailbox, project
from fracta import repo as repo_mod
from fracta.control import daemon

SENDERS = 8
EACH = 25
READERS = 2
CRASHES = 2
ATTEMPT = (
    10.0  # seconds one call may take before the client gives it up and retries (a call cut off by a crash may hang)
)
DEADLINE = 300.0  # the whole load, retries included (a liveness bound, not a timing assertion)


class ToolFailed(Exception):
    """The gateway answered with a tool error: a refusal, never a transport failure to retry."""


@dataclass
class Load:
    """What the clients saw: the senders' results, the readers' messages, and the calls retried."""

    url: str
    tokens: dict[str, str]
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # body -> the message the sender was told
    duplicates: list[str] = field(default_factory=list)  # bodies a retried send found already stored
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (id, body, reader) of every message read
    failed_calls: Counter[str] = field(default_factory=Counter)  # tool -> attempts that got no result
    receipts: set[int] = field(default_factory=set)  # readers that completed a read
    senders_done: int = 0
    error: BaseException | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hub(initialized: repo_mod.Repo, monkeypatch: pytest.MonkeyPatch) -> repo_mod.Repo:
    """hub and the senders; fixed free ports, so a restarted control plane serves the same URL."""
    text = initialized.config_path.read_text()
    text = text.replace("port: 9090", f"port: {free_port()}").replace("port: 8080", f"port: {free_port()}")
    initialized.config_path.write_text(text)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for name in ["hub", *(f"sender{n}" for n in range(SENDERS))]:
        project.join(initialized, name)
    return initialized


async def call(load: Load, who: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call `tool` as `who` until a call returns, each attempt in a fresh MCP session, as an agent retries."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    give_up = time.monotonic() + DEADLINE
    while True:
        try:
            with anyio.fail_after(ATTEMPT):
                headers = {"Authorization": f"Bearer {load.tokens[who]}"}
                async with (
                    httpx2.AsyncClient(headers=headers, timeout=ATTEMPT) as client,
                    streamable_http_client(load.url, http_client=client) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    result = await session.call_tool(tool, args)
        except Exception:  # the control plane died under the call, or is not back yet: the same call again
            load.failed_calls[tool] += 1
            if time.monotonic() > give_up:
                raise
            await anyio.sleep(0.1)
            continue
        assert isinstance(result, types.CallToolResult)
        if result.is_error:
            content = result.content[0]
            raise ToolFailed(content.text if isinstance(content, types.TextContent) else repr(content))
        data: dict[str, Any] | None = result.structured_content
        assert data is not None
        return data


async def sender(load: Load, n: int) -> None:
    name = f"sender{n}"
    keyed = n % 2 == 0  # half retry with their idempotency key, half with the identical call
    for i in range(EACH):
        body = f"{name} message {i}"
        args = {"from": name, "to": "hub", "message": body} | ({"idempotency_key": f"{name}/{i}"} if keyed else {})
        data = await call(load, name, "fracta_send", args)
        [msg] = data["sent"]
        load.sent[body] = msg
        load.duplicates += [body for _ in data["duplicates"]]
    load.senders_done += 1


async def reader(load: Load, index: int) -> None:
    """Read hub's inbox until the senders are done and nothing is left, acknowledging each read with the next."""
    receipt: str | None = None
    while True:
        finished = load.senders_done == SENDERS
        data = await call(load, "hub", "fracta_inbox", {"name": "hub"} | ({"ack": receipt} if receipt else {}))
        receipt = data["receipt"]
        load.receipts.add(index)
        load.seen += [(m["id"], m["body"], index) for m in data["messages"]]
        if finished and not data["messages"]:
            return  # this call acknowledged the last messages and was handed none
        if not data["messages"]:
            await anyio.sleep(0.05)


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
        for crash in range(1, CRASHES + 1):
            share = total * crash // (CRASHES + 1)
            wait_for(f"{share} messages stored", lambda: stored(hub) >= share)  # noqa: B023
            kill_control_plane_hard(hub)  # mid-load: calls in flight die with it
            up = cli("up")
            assert up.returncode == 0, up.stderr
        clients.join(DEADLINE + 60)
        assert not clients.is_alive(), "the clients never finished"
        assert load.error is None, repr(load.error)

    box = hub.inbox_dir("hub")
    bodies = [f"sender{n} message {i}" for n in range(SENDERS) for i in range(EACH)]
    # A message whose send was interrupted after its commit would be finished by its retry: none is left.
    assert mailbox.sweep(hub, stale_after=3600, orphan_age=-1) == 0
    on_disk = {p.name: mailbox.parse(p, p.read_bytes(), read=True) for p in (box / "cur").iterdir()}
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
    print(
        f"\n{total} messages, {CRASHES} crashes: failed calls retried {dict(load.failed_calls)}, "
        f"sends found already stored on retry {len(load.duplicates)}"
    )
