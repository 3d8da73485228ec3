"""Conflict radar: which files each agent's branch changes, and which pairs of agents (or an agent
and the base branch) would conflict if merged now.

Data: the agents and their branches, and git's dry-run merge, from fracta's own sources; each
branch's diff from the real `mcp-server-git` (its git_diff tool, run in the agent's worktree
against the point where the branch left the base). Findings go to the knowledge graph:
(:Agent)-[:CHANGES]->(:File), (:Agent)-[:CONFLICTS_WITH {files}]->(:Agent|:Branch).

Every agent with unmerged work on its branch counts, idle, done, failed or lost alike: that work
conflicts when merged whatever became of its agent. The report's `skipped` says who was left out
and why (a branch gone or merged already), and whose changes are not listed (a lost agent whose
worktree is gone: its branch's conflicts are still found, by git, without the worktree).

Bind `diff` in fracta.yaml (the server is a mcp_servers entry running mcp-server-git):

    strategies:
      bindings:
        conflict_radar:
          diff: {server: git, tool: git_diff, arguments: {context_lines: 0}}
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fracta.strategies import Context, Data, Source, Strategy


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    base: str = Field("main", description="the branch the agents' work merges into")
    graph: bool = Field(True, description="write the findings to the knowledge graph")


strategy = Strategy(
    "conflict_radar",
    "Which files the agents' branches change, and which agents (or an agent and the base branch) "
    "would conflict if merged now (git's dry-run merge).",
    params=Params,
    requires={
        "agents": Data("the agents, their branches and worktrees", "json", default=Source("fracta", "agents")),
        "merge_base": Data("where two branches part", "json", args=("a", "b"), default=Source("fracta", "merge_base")),
        "dry_merge": Data(
            "would merging one branch into another conflict, and where",
            "json",
            args=("ours", "theirs"),
            default=Source("fracta", "dry_merge"),
        ),
        "diff": Data("a worktree's changes against a commit (git diff TARGET)", "text", args=("repo_path", "target")),
    },
)

_FILE = re.compile(r"^diff --git a/(.+?) b/(.+)$", re.M)


@strategy.step
async def branches(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """The agents whose branch has work not yet in the base, whatever their status: an idle, done,
    failed or lost agent's unmerged branch still conflicts when merged. Skipped, with the reason:
    a branch that is gone (or shares no history with the base), or merged already."""
    found = await ctx.fetch("agents")
    candidates = [a for a in found if a["branch"] and a["workspace_kind"] == "git" and a["status"] != "killed"]

    async def where(agent: dict[str, Any]) -> dict[str, Any]:
        parted = (await ctx.fetch("merge_base", a=ctx.params.base, b=agent["branch"]))["sha"]
        tip = (await ctx.fetch("merge_base", a=agent["branch"], b=agent["branch"]))["sha"]  # the branch's own commit
        reason = None
        if parted is None:
            reason = f"its branch {agent['branch']} is gone, or shares no history with {ctx.params.base}"
        elif parted == tip:
            reason = f"its branch {agent['branch']} is merged into {ctx.params.base} already"
        worktree = bool(agent["workspace"]) and os.path.isdir(agent["workspace"])
        return {**agent, "merge_base": parted, "worktree": worktree, "skipped": reason}

    placed = await asyncio.gather(*(where(a) for a in candidates))
    skipped = [{"agent": a["name"], "status": a["status"], "reason": a["skipped"]} for a in placed if a["skipped"]]
    return {"active": [a for a in placed if a["skipped"] is None], "skipped": skipped}


@strategy.step
async def changes(ctx: Context, branches: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """The files each agent's branch changes since it left the base (its worktree's diff); an
    agent whose worktree is gone (lost) is left out here, its conflicts are still found."""

    async def files_of(agent: dict[str, Any]) -> list[str]:
        text = await ctx.fetch("diff", repo_path=agent["workspace"], target=agent["merge_base"])
        return sorted({m.group(2) for m in _FILE.finditer(text)})

    present = [a for a in branches["active"] if a["worktree"]]
    found = await asyncio.gather(*(files_of(a) for a in present))
    return {a["name"]: files for a, files in zip(present, found, strict=True)}


@strategy.step
async def conflicts(ctx: Context, branches: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every pair of agents, and each agent with the base, merged dry: the pairs that conflict."""
    active = branches["active"]
    pairs = [(a["name"], a["branch"], b["name"], b["branch"]) for a, b in itertools.combinations(active, 2)]
    pairs += [(a["name"], a["branch"], None, ctx.params.base) for a in active]

    async def merged(pair: tuple[str, str, str | None, str]) -> dict[str, Any]:
        name, branch, other, other_branch = pair
        found = await ctx.fetch("dry_merge", ours=other_branch, theirs=branch)
        return {"agent": name, "with": other or other_branch, "with_agent": other is not None, **found}

    results = await asyncio.gather(*(merged(p) for p in pairs))
    return [
        {"agent": r["agent"], "with": r["with"], "with_agent": r["with_agent"], "files": r["conflicts"]}
        for r in results
        if not r["clean"]
    ]


@strategy.step
async def report(
    ctx: Context,
    branches: dict[str, list[dict[str, Any]]],
    changes: dict[str, list[str]],
    conflicts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The findings, written to the knowledge graph (when params.graph), and the agents left out."""
    if ctx.params.graph:
        nodes = [{"label": "Agent", "key": name} for name in changes]
        rels = [
            {"type": "CHANGES", "from": {"label": "Agent", "key": name}, "to": {"label": "File", "key": path}}
            for name, files in changes.items()
            for path in files
        ]
        rels += [
            {
                "type": "CONFLICTS_WITH",
                "from": {"label": "Agent", "key": c["agent"]},
                "to": {"label": "Agent" if c["with_agent"] else "Branch", "key": c["with"]},
                "properties": {"files": c["files"], "base": ctx.params.base},
            }
            for c in conflicts
        ]
        await ctx.upsert(nodes, rels)
    skipped = list(branches["skipped"])
    skipped += [
        {"agent": a["name"], "status": a["status"], "reason": "its worktree is gone: its changes are not listed"}
        for a in branches["active"]
        if not a["worktree"]
    ]
    return {"changes": changes, "conflicts": conflicts, "skipped": sorted(skipped, key=lambda s: s["agent"])}
