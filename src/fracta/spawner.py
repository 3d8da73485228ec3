"""The spawner: starts queued missions in FIFO order, never more than max_agents at once."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import (
    agents,
    atomic,
    clock,
    credentials,
    events,
    journal,
    launchers,
    liveness,
    missions,
    progress,
    project,
    runner,
    runtimes,
    store,
)
from .errors import AgentNotFound, FractaError
from .repo import Repo
from .runtimes.base import LaunchContext

log = logging.getLogger("fracta.spawner")
LOCAL_OWNER = "local"  # the claimer when no control plane names itself (the CLI starting queued agents)
DEFAULT_LEASE = store.DEFAULT_LEASE
# Starts an agent's turn (launchers.Launcher.start): the control plane's launcher keeps a warm runner.
LaunchTurn = Callable[[Repo, str, str], launchers.Started]


@dataclass(frozen=True)
class Urls:
    control: str | None = None
    gateway: str | None = None


def context(repo: Repo, agent: agents.Agent, prompt: str | None, args: list[str], urls: Urls) -> LaunchContext:
    options = repo.config.get("agents.agent_runtimes").get(agent.runtime, {}) or {}
    return LaunchContext(
        name=agent.name,
        prompt=prompt,
        workspace=Path(agent.workspace or repo.root),
        agent_dir=repo.agent_dir(agent.name),
        home=repo.state,
        token=project.agent_token(repo, agent.name),
        control_url=urls.control,
        gateway_url=urls.gateway,
        args=list(args),
        options=dict(options),
        branch=agent.branch,
        session_id=agent.session_id,  # a mission for an agent with a session resumes it (a wake)
        root=repo.root,
        # Resolved now, right before launch: a queued agent gets a fresh secret; a failure here
        # marks the agent failed with nothing started.
        credentials=credentials.resolve(repo, agent.runtime, repo.agent_dir(agent.name)),
    )


def schedule(
    repo: Repo,
    urls: Urls,
    launch: LaunchTurn | None = None,
    *,
    owner: str = LOCAL_OWNER,
    lease: float = DEFAULT_LEASE,
) -> list[str]:
    """Start as many queued missions as there are free slots; returns the names started.

    Each mission is claimed for `owner` (a control plane) for `lease` seconds before it is
    started and removed once started: if this process dies in between, the claim runs out and
    another control plane (or this one, restarted) starts it, once.
    """
    limit = repo.config.integer("agents.max_agents", minimum=1)
    launch = launch or launchers.create(repo).start
    started: list[str] = []
    liveness.checked(repo)  # settle dead runners first (not under the lock: stopping takes a while)
    kept = repo.store
    with kept.missions.scheduling():
        everyone, _ = agents.list_all(repo)
        slots = limit - sum(1 for a in everyone if liveness.holds_slot(a))
        while slots > 0:
            claimed = kept.missions.claim(owner, lease, 1)
            if not claimed:
                break
            mission = claimed[0]
            journal.checkpoint("claimed")  # tests kill a control plane here (a no-op otherwise)
            try:
                agent = agents.load(repo, mission.name)
            except (AgentNotFound, FractaError):
                missions.remove(repo, mission)
                continue
            if not startable(agent):
                missions.remove(repo, mission)
                continue
            with contextlib.suppress(AgentNotFound):  # its claimer supervises it from now
                kept.adopt(owner, agent.name, lease)
            launched = False
            try:
                launched = start(repo, agent, mission, urls, launch)
            except AgentNotFound:
                pass  # killed while we started it: kill has stopped whatever had started
            except Exception as exc:  # a bug must fail this agent, not wedge the queue behind it
                log.exception("starting an agent crashed", extra={"event": "mission.crashed", "agent": agent.name})
                with contextlib.suppress(AgentNotFound):
                    agents.update(
                        repo,
                        agent.name,
                        status=agents.Status.FAILED,
                        error=f"fracta could not start it ({type(exc).__name__}); see .fracta/logs/control.log",
                        finished_at=clock.now(),
                    )
            missions.remove(repo, mission)
            if launched:
                started.append(agent.name)
                slots -= 1
    return started


def startable(agent: agents.Agent) -> bool:
    """Queued, or left `starting` with no runner by a start that was cut short (its starter died
    before it launched the runner: the mission's claim ran out, and the mission is ours now)."""
    return agent.status == agents.Status.QUEUED or (agent.status == agents.Status.STARTING and agent.pid is None)


def start(
    repo: Repo,
    agent: agents.Agent,
    mission: missions.Mission,
    urls: Urls,
    launch_turn: LaunchTurn | None = None,
) -> bool:
    """Build the launch and hand it to a detached runner; a failure marks the agent failed.
    Returns True if a runner was started.

    Killed meanwhile (its kill mark set, or its record gone), it is not started: the runner
    checks again, under the agent's lock, right before it starts the program.
    """
    launch_id = secrets.token_hex(8)
    try:
        runtime = runtimes.get(agent.runtime)
        ctx = context(repo, agent, mission.prompt, mission.args, urls)
        runtime.check(ctx)
        launch = runtime.launch(ctx)
        # Credential env is checked to hold no FRACTA_* variable: an agent's identity stays fracta's.
        env = {**project.agent_env(repo, agent.name), **launch.env, **ctx.credentials.env}
        for path, content in ctx.credentials.files.items():
            atomic.ensure_dirs(path.parent, mode=0o700)
            atomic.write_text(path, content, mode=0o600)
        atomic.write_json(
            repo.agent_dir(agent.name) / runner.LAUNCH_FILE,
            {
                "schema": 1,
                "launch_id": launch_id,  # the runner started for this launch checks it: a stale one quits
                "argv": launch.argv,
                "env": env,
                "cwd": str(launch.cwd),
                "first_start": dataclasses.asdict(launch.first_start) if launch.first_start else None,
                # The runner masks these in the recorded output: peers can peek at it, and an agent
                # that prints its environment must not hand them its token or its credentials.
                # Only values already stored here: an apiKeyHelper secret stays in no file at all.
                "redact": [ctx.token, *(v for v in ctx.credentials.secrets if v in env.values())],
            },
            mode=0o600,  # it holds the agent's token and credentials: the only file with env values
            durable=False,  # written afresh at every start, and read by the runner at once
        )
        if not _mark_starting(repo, agent.name):
            return False
        turn = (launch_turn or launchers.create(repo).start)(repo, agent.name, launch_id)
        pid, pid_start = turn.pid, turn.pid_start
    except FractaError as exc:
        if agent.session_id:
            # A wake that could not start (a binary gone, a credential that failed): nothing ran,
            # so the session is as resumable as before. The agent stays idle, saying why, and the
            # next message wakes it again; its unread messages wait in its inbox.
            reason = f"could not wake it: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            agents.update(repo, agent.name, status=agents.Status.IDLE, error=reason)
            events.record(repo, "agent.wake_failed", agent=agent.name, error=exc.message)
        else:
            agents.update(repo, agent.name, status=agents.Status.FAILED, error=exc.message, finished_at=clock.now())
            events.record(repo, "agent.failed", agent=agent.name, error=exc.message)
        progress.refresh(repo)
        return False

    def record_pid(current: agents.Agent) -> agents.Agent:
        # The runner records itself before it starts the program, and may already have moved on
        # (running, or even finished): only fill in a pid not yet there.
        if current.status == agents.Status.STARTING and current.pid is None:
            return dataclasses.replace(current, pid=pid, pid_start=pid_start)
        return current

    with contextlib.suppress(AgentNotFound):
        agents.modify(repo, agent.name, record_pid)
    events.record(repo, "agent.starting", agent=agent.name, pid=pid)
    return True


def _mark_starting(repo: Repo, name: str) -> bool:
    """Move the agent from queued to starting, unless kill got to it first (under its lock, as kill
    marks it). A runner started by an earlier, interrupted start quits: the launch file names ours."""
    with agents.holding(repo, name) as agent:
        if not startable(agent) or (repo.agent_dir(name) / runner.KILL_MARK).exists():
            return False
        agents.write(repo, dataclasses.replace(agent, status=agents.Status.STARTING))
    agents.touch_activity(repo, name)
    return True
