"""Setting fracta up in a repository (init) and registering agents run by hand (join)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import agents, atomic, config, events, names, progress
from .errors import CorruptRecord, FractaError
from .repo import Repo

if TYPE_CHECKING:  # imported by init() alone: `fracta list`, `join` and `intent` do without them
    from . import hooks, scaffold, wiring


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: bool  # False when .fracta/ already existed
    wrote_config: bool
    hook: hooks.InstallResult | FractaError | None = None  # the error when the hook could not be installed
    wiring: list[wiring.Wired] = field(default_factory=list)  # the AI CLIs' MCP config files
    scaffold: scaffold.ScaffoldResult | None = None  # `--scaffold MODE`: the files written or kept


def init(repo: Repo, wire: bool = True, mode: str | None = None, force: bool = False) -> InitResult:
    """Create .fracta/, a commented fracta.yaml and the git exclude entry, and wire fracta into the
    AI CLIs' project config (`wire`). `mode` also writes that deployment mode's fracta.yaml and
    deployment/ (fracta/scaffold.py), keeping files the user edited unless `force`. Safe to run twice."""
    import secrets

    from . import hooks, scaffold, wiring

    created = not repo.initialized
    atomic.ensure_dirs(
        repo.agents_dir,
        repo.chessmaster_dir / "inbox" / "tmp",
        repo.chessmaster_dir / "inbox" / "new",
        repo.chessmaster_dir / "inbox" / "cur",
        repo.worktrees_dir,
        repo.missions_dir,
        repo.logs_dir,
    )
    if not repo.token_path.exists():
        atomic.write_text(repo.token_path, secrets.token_urlsafe(32) + "\n", mode=0o600)
    made = None
    if mode is not None:
        made = scaffold.materialise(repo, mode, force)
        changed = (scaffold.Outcome.CREATED, scaffold.Outcome.UPDATED, scaffold.Outcome.OVERWRITTEN)
        wrote_config = any(w.path == "fracta.yaml" and w.outcome in changed for w in made.files)
    else:
        wrote_config = not repo.config_path.exists()
        if wrote_config:
            atomic.write_text(repo.config_path, config.TEMPLATE)
    _exclude_state_dir(repo)
    if mode == "compose":  # the agents' folders, /workspace/agents in the container, are in the checkout
        _exclude(repo, ("agents/", "agents", "/agents/", "/agents"), "# agents' workspaces in Compose mode\n/agents/\n")
    # In Compose and Kubernetes modes the store is the deployment's PostgreSQL, which this machine
    # need not reach (nor have FRACTA_DATABASE_URL for): the control plane opens it where it runs.
    if mode not in scaffold.REMOTE:
        if created:
            events.record(repo, "fracta.initialized", root=str(repo.root))
        progress.refresh(repo)
    try:
        hook: hooks.InstallResult | FractaError = hooks.install(repo)
    except FractaError as exc:  # e.g. a relative core.hooksPath: init still succeeds and says why
        hook = exc
    wired = wiring.wire(repo.root, forwarded(repo)) if wire else []
    return InitResult(
        root=repo.root, created=created, wrote_config=wrote_config, hook=hook, wiring=wired, scaffold=made
    )


def forwarded(repo: Repo) -> list[str]:
    """The variables an AI CLI is to pass `fracta serve` (Codex's env_vars): every provider variable
    fracta knows and every variable fracta.yaml names for a runtime."""
    from . import credentials, environment

    names = set(environment.known_names())
    table = repo.config.get("agents.agent_runtimes") or {}
    for runtime in table if isinstance(table, dict) else {}:
        try:
            names.update(credentials.referenced(repo, str(runtime)))
        except FractaError:  # a broken profile is reported at spawn and by doctor, not here
            continue
    return sorted(names)


def _exclude_state_dir(repo: Repo) -> None:
    _exclude(repo, (".fracta/", ".fracta", "/.fracta/", "/.fracta"), "# fracta's state (fracta init)\n/.fracta/\n")


def _exclude(repo: Repo, entries: tuple[str, ...], block: str) -> None:
    """Add `block` to .git/info/exclude unless a line of it already names one of `entries`."""
    if repo.git_common_dir is None:
        return
    exclude = repo.git_common_dir / "info" / "exclude"
    exclude.parent.mkdir(exist_ok=True)
    current = exclude.read_text() if exclude.exists() else ""
    if any(line.strip() in entries for line in current.splitlines()):
        return
    sep = "" if current == "" or current.endswith("\n") else "\n"
    atomic.write_text(exclude, f"{current}{sep}{block}")


@dataclass(frozen=True)
class JoinResult:
    agent: agents.Agent
    env: dict[str, str]


def join(
    repo: Repo, name: str, intent: str = "", workspace: Path | None = None, branch: str | None = None
) -> JoinResult:
    """Register an agent the user runs by hand; returns the environment lines it needs."""
    repo.require_initialized()
    names.validate(name)
    agent = agents.new(
        name,
        runtime="manual",
        status=agents.Status.RUNNING,
        kind="joined",
        intent=agents.clean_intent(intent),
        workspace=str(workspace) if workspace else None,
        branch=branch,
    )
    agents.create(repo, agent)
    events.record(repo, "agent.joined", agent=name)
    progress.refresh(repo)
    return JoinResult(agent=agent, env=agent_env(repo, name))


def agent_token(repo: Repo, name: str) -> str:
    return repo.store.tokens.agent(name)


def agent_env(repo: Repo, name: str) -> dict[str, str]:
    """What an agent's process needs to find fracta and prove who it is."""
    env = {"FRACTA_AGENT": name, "FRACTA_HOME": str(repo.state), "FRACTA_TOKEN": agent_token(repo, name)}
    control = repo.control_path
    if control.exists():
        try:
            data = atomic.read_json(control)
        except CorruptRecord:  # a damaged control.json only means no URL to print
            data = {}
        if data.get("url"):
            env["FRACTA_URL"] = str(data["url"])
        if data.get("gateway_url"):
            env["FRACTA_GATEWAY_URL"] = str(data["gateway_url"])
    return env


def set_intent(repo: Repo, name: str, text: str) -> agents.Agent:
    """Set an agent's one-line intent."""
    intent = agents.clean_intent(text)
    agent = agents.update(repo, name, intent=intent)
    events.record(repo, "agent.intent", agent=name, intent=intent)
    progress.refresh(repo)
    return agent
