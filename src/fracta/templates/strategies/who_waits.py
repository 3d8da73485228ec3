"""Who waits on whom: read fracta's own event log for messages left unanswered and messages left
unread for long.

An agent waits on another when its last message to it is newer than any message back. A message
is unread when its recipient has not read its inbox since it was sent. Both come from the event
log (`message.sent`, `inbox.read`), fracta's own source: no binding needed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fracta.strategies import Context, Data, Source, Strategy


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    unread_after: int = Field(600, ge=0, description="seconds after which an unread message is reported")
    graph: bool = Field(False, description="write (:Agent)-[:WAITS_ON]->(:Agent) to the knowledge graph")


strategy = Strategy(
    "who_waits",
    "Who is waiting on whom (messages without an answer) and which messages are unread for long.",
    params=Params,
    requires={"events": Data("fracta's event log, oldest first", "json", default=Source("fracta", "events"))},
)


def _at(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@strategy.step
async def messages(ctx: Context) -> dict[str, Any]:
    """The messages sent (sender, recipient, when) and each agent's last inbox read."""
    sent: list[dict[str, Any]] = []
    last_read: dict[str, str] = {}
    for event in await ctx.fetch("events"):
        if event.get("event") == "message.sent" and isinstance(event.get("to"), str):
            sent.append({"from": event.get("agent"), "to": event["to"], "at": event["ts"], "id": event.get("id")})
        elif event.get("event") == "inbox.read" and event.get("agent"):
            last_read[event["agent"]] = event["ts"]
    return {"sent": sent, "last_read": last_read}


@strategy.step
async def waiting(ctx: Context, messages: dict[str, Any]) -> list[dict[str, Any]]:
    """A waits on B: A's last message to B has had no message from B since."""
    last: dict[tuple[str, str], str] = {}
    for m in messages["sent"]:
        last[(m["from"], m["to"])] = m["at"]
    found = []
    for (sender, to), at in sorted(last.items()):
        answered = last.get((to, sender))
        if answered is None or answered < at:
            found.append({"agent": sender, "waits_on": to, "since": at})
    return found


@strategy.step
async def unread(ctx: Context, messages: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages their recipient has not read since they came, older than params.unread_after."""
    now = datetime.now(UTC)
    found = []
    for m in messages["sent"]:
        read = messages["last_read"].get(m["to"])
        age = (now - _at(m["at"])).total_seconds()
        if (read is None or read < m["at"]) and age >= ctx.params.unread_after:
            found.append({**m, "age_seconds": int(age)})
    return found


@strategy.step
async def report(ctx: Context, waiting: list[dict[str, Any]], unread: list[dict[str, Any]]) -> dict[str, Any]:
    """The findings (and WAITS_ON relationships in the graph, when params.graph)."""
    if ctx.params.graph and waiting:
        await ctx.upsert(
            relationships=[
                {
                    "type": "WAITS_ON",
                    "from": {"label": "Agent", "key": w["agent"]},
                    "to": {"label": "Agent", "key": w["waits_on"]},
                    "properties": {"since": w["since"]},
                }
                for w in waiting
            ]
        )
    return {"waiting": waiting, "unread": unread}
