"""The data sources a strategy's contract is bound to: MCP tools reached through the gateway (which
proxies the backend servers of `mcp_servers`), and fracta's own sources (server `fracta`).

fracta's own sources read what fracta knows and the gateway does not offer as a tool: the agents'
records and branches, the event log, and git's dry-run merge (`git merge-tree --write-tree`,
which writes no ref, touches no worktree and leaves the repository as it was).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mcp.types as types

from .. import __version__, agents, events, git
from ..errors import StrategyError
from ..repo import Repo

FRACTA = "fracta"


class SourceFailed(StrategyError):
    """A data source answered a fetch with an error."""


@dataclass(frozen=True)
class Builtin:
    run: Callable[[Repo, dict[str, Any]], Any]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


def _agents(repo: Repo, args: dict[str, Any]) -> list[dict[str, Any]]:
    found, _ = agents.list_all(repo)
    keep = ("name", "status", "branch", "base", "workspace", "workspace_kind", "intent", "last_commit")
    return [{k: a.to_dict()[k] for k in keep} for a in sorted(found, key=lambda a: a.name)]


def _events(repo: Repo, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [e.data for e in events.tail(repo, int(args.get("limit", 10000)))]


def _merge_base(repo: Repo, args: dict[str, Any]) -> dict[str, Any]:
    proc = git.run(repo.root, "merge-base", str(args["a"]), str(args["b"]), check=False)
    return {"sha": proc.stdout.strip() or None}


def _dry_merge(repo: Repo, args: dict[str, Any]) -> dict[str, Any]:
    """Would merging `theirs` into `ours` conflict now? Which files, by git's own merge."""
    ours, theirs = str(args["ours"]), str(args["theirs"])
    for ref in (ours, theirs):
        if ref.startswith("-"):
            raise SourceFailed(f"dry_merge: {ref!r} is not a branch or commit")
    proc = git.run(repo.root, "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs, check=False)
    if proc.returncode not in (0, 1):
        raise SourceFailed(f"dry_merge of {theirs} into {ours} failed: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    return {"ours": ours, "theirs": theirs, "clean": proc.returncode == 0, "conflicts": sorted(set(lines[1:]))}


BUILTINS: dict[str, Builtin] = {
    "agents": Builtin(_agents),
    "events": Builtin(_events, optional=("limit",)),
    "merge_base": Builtin(_merge_base, required=("a", "b")),
    "dry_merge": Builtin(_dry_merge, required=("ours", "theirs")),
}


class Gateway:
    """An MCP client of the gateway, as the chessmaster, for one strategy run: its session is opened
    on first use and closed with the run. Backend tools are called as `<server>__<tool>`."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: Any = None
        self._tools: dict[str, types.Tool] | None = None

    async def _open(self) -> Any:
        if self._session is not None:
            return self._session
        import httpx2
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        stack = contextlib.AsyncExitStack()
        try:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {self.token}"}, timeout=httpx2.Timeout(30.0, read=None)
                )
            )
            read, write = await stack.enter_async_context(streamable_http_client(self.url, http_client=http))
            session = await stack.enter_async_context(
                ClientSession(
                    read, write, client_info=types.Implementation(name="fracta-strategies", version=__version__)
                )
            )
            await session.initialize()
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._session = stack, session
        return session

    async def tools(self) -> dict[str, types.Tool]:
        if self._tools is None:
            session = await self._open()
            found: dict[str, types.Tool] = {}
            cursor: str | None = None
            while True:
                page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
                found.update((t.name, t) for t in page.tools)
                if not (cursor := page.next_cursor):
                    break
            self._tools = found
        return self._tools

    async def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session = await self._open()
        result: types.CallToolResult = await session.call_tool(name, arguments)
        return result

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._session = self._stack, None, None
            await stack.aclose()


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))
