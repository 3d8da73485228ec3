"""The runtime-adapter protocol: turn a task into argv + env + files, and output into events."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..credentials import CredentialPlan


@dataclass(frozen=True)
class LaunchContext:
    """Everything an adapter may use to build a launch."""

    name: str
    prompt: str | None
    workspace: Path
    agent_dir: Path
    home: Path  # the .fracta folder
    token: str
    control_url: str | None
    gateway_url: str | None
    args: list[str] = field(default_factory=list)  # extra arguments after `--` on the CLI
    options: dict[str, Any] = field(default_factory=dict)  # agents.agent_runtimes.<runtime> from fracta.yaml
    branch: str | None = None  # the agent's branch, for its prompt
    session_id: str | None = None  # set when this launch resumes the agent's session (a wake)
    # Resolved credentials: env the spawner adds, files it writes, Claude's apiKeyHelper command.
    credentials: CredentialPlan = field(default_factory=CredentialPlan)
    root: Path | None = None  # the repository root, where templates/ is looked up


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]  # added to the inherited environment
    cwd: Path
    # A one-time set-up the runner runs first, unless done (see runner.first_start): the command,
    # and the file it leaves under the XDG data folder ($XDG_DATA_HOME, else ~/.local/share).
    first_start: FirstStart | None = None


@dataclass(frozen=True)
class FirstStart:
    argv: list[str]
    creates: str  # relative to the XDG data folder of the agent's environment


@dataclass(frozen=True)
class OutputEvent:
    """One readable event parsed from a runtime's output stream."""

    kind: str  # text | tool_call | tool_result | usage | session | error | line
    text: str
    ts: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Runtime(Protocol):
    name: str
    resumable: bool

    def check(self, ctx: LaunchContext) -> None:
        """Raise a FractaError if this runtime cannot start (binary missing, bad options)."""

    def launch(self, ctx: LaunchContext) -> Launch:
        """Build the command, environment and any per-agent config files."""

    def parse(self, record: dict[str, Any]) -> list[OutputEvent]:
        """Turn one output.jsonl record into readable events."""

    def finished_status(self, exit_code: int) -> str:
        """The agent status after the process exits with `exit_code`."""
