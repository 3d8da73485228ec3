"""fracta doctor: is everything fracta needs here and working, and if not, what to do about it.

Checks git, fracta on PATH (the AI CLIs' config runs `fracta serve`), fracta.yaml, each AI CLI
runtime's binary and version, every credential resolver (run for real, the secret never shown),
the state store's database when `state.backend` is postgres (reachable, schema version, LISTEN;
the password never shown), and the control plane and gateway (reachable, and accepting the
chessmaster's token).

What a spawn uses is checked where the spawn happens: when a control plane runs, its PATH and
the names of its variables (recorded in control.json, never values) — the runtimes' binaries are
looked up on that PATH, and the variables fracta.yaml names are looked for there; with none
running, this shell's (a control plane started from here would inherit them). Every such check
says which it searched.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import atomic, config, credentials, environment, git
from . import repo as repo_mod
from .errors import EXIT_ERROR, EXIT_USAGE, CorruptRecord, FractaError

SCHEMA = 1
GIT_MINIMUM = (2, 38)  # git merge-tree --write-tree: conflict checks without touching a worktree
AI_RUNTIMES = ("claude", "codex", "opencode")
VERSION_TIMEOUT = 30.0
HTTP_TIMEOUT = 5.0

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Check:
    area: str  # git | fracta | config | runtime | credentials | state | control_plane | gateway
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Report:
    checks: list[Check]
    searched: environment.SpawnEnvironment | None = None  # the environment spawn-related checks used

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when all is well; 2 (bad config, as `up` would exit) when fracta.yaml is invalid; else 1."""
        if any(c.status == FAIL and c.area == "config" for c in self.checks):
            return EXIT_USAGE
        return 0 if self.ok else EXIT_ERROR

    def to_dict(self) -> dict[str, Any]:
        searched = None
        if self.searched is not None:
            searched = {
                "of": "control_plane" if self.searched.of_control_plane else "caller",
                "path": self.searched.path,
            }
        return {"version": SCHEMA, "ok": self.ok, "checks": [asdict(c) for c in self.checks], "searched": searched}


def run(start: Path | None = None) -> Report:
    """Run every check from `start` (default: the current folder); never raises a FractaError."""
    checks = [check_git(), check_fracta_on_path()]
    try:
        repo = repo_mod.find(start)
    except FractaError as exc:
        return Report([*checks, Check("fracta", "repository", FAIL, exc.message, exc.hint or None)])
    if not repo.initialized:
        checks.append(Check("fracta", "initialized", FAIL, f"fracta is not initialized in {repo.root}", "fracta init"))
        return Report(checks)
    found = check_config(repo)
    checks.extend(found)
    if any(c.status == FAIL for c in found):
        return Report(checks)  # the other checks read fracta.yaml: they would only repeat it
    env = spawn_environment(repo)
    checks.extend(check_environment(repo, env))
    checks.extend(check_codex_forwarding(repo))
    # The slow ones (CLIs that take seconds to print a version, token commands) run side by side.
    jobs: list[Callable[[], list[Check]]] = [functools.partial(check_runtime, repo, rt, env) for rt in _runtimes(repo)]
    jobs += [functools.partial(check_profiles, repo), functools.partial(check_state, repo)]
    jobs.append(functools.partial(check_services, repo))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for found in pool.map(lambda job: job(), jobs):
            checks.extend(found)
    return Report(checks, env)


def check_config(repo: repo_mod.Repo) -> list[Check]:
    """fracta.yaml against its schema, as `up` checks it; unset variables a backend server needs."""
    from . import config_check

    name = repo.config_path.name
    try:
        checked = config_check.check(repo.config_path)
    except FractaError as exc:
        return [Check("config", name, FAIL, exc.message, exc.hint or None)]
    shown = f"{repo.config_path} is valid" if repo.config_path.exists() else f"no {name}: every default applies"
    checks = [Check("config", name, OK, shown)]
    for key, names in checked.deferred.items():
        if key.startswith("mcp_servers."):  # a runtime's variables are checked with its credentials
            server = key.split(".")[1]
            detail = f"{key} needs {', '.join(names)}, not set here: backend server {server} would be skipped"
            checks.append(Check("config", f"mcp_servers.{server}", WARN, detail, environment.missing_hint(names)))
    return checks


# --- the environment a spawn uses --------------------------------------------------------------


def spawn_environment(repo: repo_mod.Repo) -> environment.SpawnEnvironment:
    """The running control plane's PATH and variable names, or this process's when none runs."""
    from .control import daemon

    info = daemon.read_info(repo)
    if info is not None:
        try:
            found = environment.from_record(atomic.read_json(repo.control_path), info.pid)
        except (FileNotFoundError, CorruptRecord):
            found = None
        if found is not None:
            return found
    return environment.of_this_process()


def check_environment(repo: repo_mod.Repo, env: environment.SpawnEnvironment) -> list[Check]:
    """Whose environment a spawn uses, this shell's provider variables it lacks, and PATH folders
    that have vanished (the variables fracta.yaml names are checked per runtime)."""
    ours = set(environment.known_names()) & set(os.environ)
    lacking = environment.missing_from(ours, env.names) if env.of_control_plane else []
    vanished = [p for p in env.path if not os.path.isdir(p)]
    present = sorted(set(environment.known_names()) & env.names)
    detail = f"spawn uses {env.source} environment: PATH of {len(env.path)} folders; provider variables: " + (
        ", ".join(present) or "none"
    )
    checks = [Check("environment", "spawn environment", OK, detail)]
    if lacking:
        checks.append(
            Check(
                "environment",
                "provider variables",
                WARN,
                f"{env.source} environment lacks {', '.join(lacking)}, which this shell has: agents will not get them",
                environment.missing_hint(lacking),
            )
        )
    if vanished:
        checks.append(
            Check(
                "environment",
                "PATH",
                WARN,
                f"{len(vanished)} folder(s) on {env.source} PATH no longer exist (left out at spawn): "
                + ", ".join(vanished),
                "restart the control plane from your shell: fracta down && fracta up",
            )
        )
    return checks


def check_codex_forwarding(repo: repo_mod.Repo) -> list[Check]:
    """The project's Codex entry for fracta forwards every variable agents may need (env_vars)."""
    import tomllib

    from . import project, wiring

    path = repo.root / ".codex" / "config.toml"
    try:
        entry = tomllib.loads(path.read_text(encoding="utf-8")).get("mcp_servers", {}).get(wiring.SERVER)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return []  # no such file, or one `fracta init` reports on
    if not isinstance(entry, dict) or not wiring.runs_serve(entry.get("command"), entry.get("args")):
        return []
    missing = environment.missing_from(project.forwarded(repo), wiring.forwarded_names(entry))
    if not missing:
        return [Check("environment", "codex env_vars", OK, ".codex/config.toml forwards every provider variable")]
    detail = f".codex/config.toml does not forward {', '.join(missing)} to fracta serve (env_vars)"
    fix = f"add them to env_vars in [mcp_servers.{wiring.SERVER}] of .codex/config.toml"
    return [Check("environment", "codex env_vars", WARN, detail, fix)]


# --- git and fracta ----------------------------------------------------------------------------


def check_git() -> Check:
    try:
        out = git.out(Path.cwd(), "--version")
    except FractaError:
        return Check("git", "git", FAIL, "git is not installed or not on PATH", "install git 2.38 or newer")
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if match is None:
        return Check("git", "git", WARN, f"cannot read git's version from {out!r}", "check that git 2.38+ is installed")
    version = (int(match.group(1)), int(match.group(2)))
    if version < GIT_MINIMUM:
        return Check(
            "git",
            "git",
            FAIL,
            f"git {match.group(0)} is too old: fracta needs 2.38+ (merge-tree --write-tree)",
            "upgrade git to 2.38 or newer",
        )
    return Check("git", "git", OK, f"git {match.group(0)}")


def check_fracta_on_path() -> Check:
    """On this shell's PATH: the AI CLIs started from here run `fracta serve` by that name."""
    found = shutil.which("fracta")
    if found is None:
        return Check(
            "fracta",
            "fracta on PATH",
            WARN,
            "`fracta` is not on PATH: an AI CLI started from here cannot run `fracta serve` "
            "(.mcp.json, .codex/config.toml, opencode.json), and agents cannot run `fracta` commands",
            "install fracta as a tool from its checkout or wheel (uv tool install /path/to/fracta, or "
            "pipx install /path/to/fracta; see the README's Install), or put its virtualenv's bin folder on PATH",
        )
    return Check("fracta", "fracta on PATH", OK, f"{found} (on this shell's PATH)")


# --- runtimes ----------------------------------------------------------------------------------


def _runtimes(repo: repo_mod.Repo) -> list[str]:
    """The AI CLIs (always looked at) and any other runtime fracta.yaml configures."""
    table = repo.config.get("agents.agent_runtimes") or {}
    configured = [str(k) for k in table] if isinstance(table, dict) else []
    default = repo.config.get("agents.default_runtime")
    extra = [r for r in [str(default), *configured] if r not in AI_RUNTIMES]
    return list(dict.fromkeys([*AI_RUNTIMES, *extra]))


def _configured(repo: repo_mod.Repo, runtime: str) -> bool:
    table = repo.config.get("agents.agent_runtimes") or {}
    return runtime == repo.config.get("agents.default_runtime") or (isinstance(table, dict) and runtime in table)


def check_runtime(repo: repo_mod.Repo, runtime: str, env: environment.SpawnEnvironment | None = None) -> list[Check]:
    """The runtime's options and binary on the spawn's PATH (with its version), then its
    credentials (not run here)."""
    from . import runtimes
    from .runtimes.base import LaunchContext

    configured = _configured(repo, runtime)
    try:
        adapter = runtimes.get(runtime)
    except FractaError as exc:
        return [Check("runtime", runtime, FAIL, exc.message, exc.hint or None)]
    env = env or environment.of_this_process()
    options = credentials.runtime_options(repo, runtime)
    if runtime == "command":
        checks = [Check("runtime", runtime, OK, "runs the command given to fracta spawn after --")]
    else:
        found = _binary(repo, runtime, options, env.path_string)
        where = f"{env.source} PATH"
        if not configured and found is None:
            detail = f"{runtime} is not installed on {where} (needed for --runtime {runtime})"
            return [Check("runtime", runtime, SKIP, detail)]
        if found is None:
            return [_not_found(runtime, options, env), *_credentials_if(repo, runtime, configured, options, env)]
        # Found on the spawn's PATH: the adapter checks its options with that very binary.
        probe = LaunchContext(
            name="doctor",
            prompt=None,
            workspace=repo.root,
            agent_dir=repo.agent_dir("doctor"),
            home=repo.state,
            token="",
            control_url=None,
            gateway_url=None,
            options={**options, "binary": found},
            root=repo.root,
        )
        try:
            adapter.check(probe)  # its options, as a spawn would check them
            checks = [_version(repo, runtime, found, where)]
        except FractaError as exc:
            checks = [Check("runtime", runtime, FAIL, exc.message, exc.hint or None)]
    return [*checks, *_credentials_if(repo, runtime, configured, options, env)]


def _credentials_if(
    repo: repo_mod.Repo, runtime: str, configured: bool, options: dict[str, Any], env: environment.SpawnEnvironment
) -> list[Check]:
    return [_runtime_credentials(repo, runtime, env)] if configured or options else []


def _not_found(runtime: str, options: dict[str, Any], env: environment.SpawnEnvironment) -> Check:
    binary = str(options.get("binary") or runtime)
    fix = f"install it, or set agents.agent_runtimes.{runtime}.binary in fracta.yaml to its full path"
    if env.of_control_plane and os.sep not in binary:
        fix += "; or restart the control plane from a shell whose PATH has it: fracta down && fracta up"
    where = "" if os.sep in binary else f" on {env.source} PATH"
    return Check("runtime", runtime, FAIL, f"cannot find the {runtime} CLI {binary!r}{where}", fix)


def _binary(repo: repo_mod.Repo, runtime: str, options: dict[str, Any], path: str | None = None) -> str | None:
    """The runtime's executable as a spawn would find it (on `path`, or a path from the repo root)."""
    binary = os.path.expanduser(str(config.interpolate(str(options.get("binary") or runtime), os.environ, [])))
    if os.sep not in binary:
        return shutil.which(binary, path=path)
    full = repo.root / binary  # an absolute path stays as it is
    return str(full) if full.is_file() and os.access(full, os.X_OK) else None


def _version(repo: repo_mod.Repo, runtime: str, path: str, where: str) -> Check:
    try:
        proc = subprocess.run(
            [path, "--version"],
            cwd=repo.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else (exc.strerror or str(exc))
        return Check("runtime", runtime, FAIL, f"{path} --version failed: {why}", f"reinstall the {runtime} CLI")
    first = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[:1]
    if proc.returncode != 0:
        detail = f"{path} --version exited with {proc.returncode}" + (f": {first[0]}" if first else "")
        return Check("runtime", runtime, FAIL, detail, f"run it yourself; reinstall the {runtime} CLI if it is broken")
    return Check("runtime", runtime, OK, f"{first[0] if first else 'version unknown'} ({path}, found on {where})")


def _runtime_credentials(repo: repo_mod.Repo, runtime: str, spawn_env: environment.SpawnEnvironment) -> Check:
    """The runtime's env variables are all set where spawns happen, and its profiles exist and suit
    it (resolvers run apart)."""
    name = f"{runtime} credentials"
    try:
        used = credentials.chosen(repo, runtime)
        missing = environment.missing_from(credentials.referenced(repo, runtime), spawn_env.names)
        if missing:
            detail = f"needs {', '.join(missing)}, which {spawn_env.source} environment lacks"
            return Check("credentials", name, FAIL, detail, environment.missing_hint(missing))
        raw = credentials.runtime_options(repo, runtime).get("env") or {}
        env = raw if spawn_env.of_control_plane else credentials.runtime_env(repo, runtime)[0]
    except FractaError as exc:
        return Check("credentials", name, FAIL, exc.message, exc.hint or None)
    parts = [f"profile {p.name}" for p in used] + [f"env {k}" for k in env]
    if not parts:
        detail = "no auth profile: the agent uses what your own CLI uses (this environment, your login)"
    else:
        detail = ", ".join(parts)
    return Check("credentials", name, OK, detail)


def check_profiles(repo: repo_mod.Repo) -> list[Check]:
    """Run every auth profile's resolver; report success or the (secret-free) error."""
    try:
        names = credentials.defined(repo)
    except FractaError as exc:
        return [Check("credentials", "profiles", FAIL, exc.message, exc.hint or None)]
    checks = []
    for name in names:
        label = f"profile {name}"
        try:
            profile = credentials.profile(repo, name)
            secret = credentials.secret_of(repo, profile)
        except FractaError as exc:
            checks.append(Check("credentials", label, FAIL, exc.message, exc.hint or None))
            continue
        detail = f"{profile.describe()} gave a secret of {len(secret)} characters"
        checks.append(Check("credentials", label, OK, detail))
    return checks


# --- the state store ----------------------------------------------------------------------------


def check_state(repo: repo_mod.Repo) -> list[Check]:
    """With state.backend postgres: the database reachable, its schema version, LISTEN working."""
    if repo.config.get("state.backend") != "postgres":
        return []
    try:
        url = str(repo.config.resolved("state.url"))
    except FractaError as exc:  # an unset ${VAR}: named by the error
        return [Check("state", "state.url", FAIL, exc.message, exc.hint or None)]
    try:
        from .store.postgres import check, schema
    except ImportError:
        detail = "state.backend is postgres, but psycopg (fracta's postgres extra) is not installed"
        return [
            Check("state", "database", FAIL, detail, "install fracta[postgres], e.g. pip install 'fracta[postgres]'")
        ]
    return [Check("state", f.name, OK if f.ok else FAIL, f.text, f.fix) for f in check.check(url, schema.VERSION)]


# --- control plane and gateway -----------------------------------------------------------------


def check_services(repo: repo_mod.Repo) -> list[Check]:
    from . import identity
    from .control import daemon

    info = daemon.read_info(repo)
    if info is None:
        return [
            Check(
                "control_plane",
                "control plane",
                WARN,
                "not running (fracta spawn and fracta serve start it when needed)",
                "fracta up",
            )
        ]
    try:
        token = identity.chessmaster_token(repo)
    except OSError:
        return [Check("control_plane", "control plane", FAIL, f"cannot read {repo.token_path}", "fracta init")]
    status, body = _request(info.url, "GET", "/v1/health", token)
    fix = "restart it: fracta down && fracta up"
    if status == 200 and isinstance(body, dict) and body.get("ok"):
        checks = [Check("control_plane", "control plane", OK, f"{info.url} (pid {info.pid}) answers with the token")]
    elif status == 401:
        checks = [Check("control_plane", "control plane", FAIL, f"{info.url} refuses the token in .fracta/token", fix)]
    else:
        checks = [Check("control_plane", "control plane", FAIL, f"{info.url} does not answer: {body}", fix)]
    if not info.gateway_url:
        checks.append(Check("gateway", "gateway", FAIL, "the control plane serves no MCP gateway", fix))
        return checks
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    status, body = _request(info.gateway_url, "POST", None, token, ping)
    if status == 200:
        checks.append(Check("gateway", "gateway", OK, f"{info.gateway_url} answers MCP with the token"))
    elif status == 401:
        checks.append(Check("gateway", "gateway", FAIL, f"{info.gateway_url} refuses the token", fix))
    else:
        checks.append(Check("gateway", "gateway", FAIL, f"{info.gateway_url} does not answer MCP: {body}", fix))
    return checks


def _request(url: str, method: str, path: str | None, token: str, body: Any = None) -> tuple[int, Any]:
    """(HTTP status, parsed body or a short reason); status 0 when unreachable."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=HTTP_TIMEOUT)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    try:
        conn.request(
            method, path or parts.path or "/", body=json.dumps(body) if body is not None else None, headers=headers
        )
        response = conn.getresponse()
        raw = response.read(65536)
    except OSError as exc:
        return 0, f"cannot connect ({exc.strerror or exc})"
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.status, f"HTTP {response.status}"
