"""fracta.yaml: defaults, ${VAR} interpolation and typed access with clear errors."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "control_plane": {"host": "127.0.0.1", "port": 0},
    "gateway": {"host": "127.0.0.1", "port": 0, "allowed_hosts": []},
    "agents": {"max_agents": 4, "default_runtime": "command", "wake": True, "agent_runtimes": {}},
    "workspaces": {"kind": "git", "root": "/workspace/agents", "spares": 1},
    "launcher": {
        "kind": "local",
        "kubernetes": {
            "namespace": "fracta",
            "pvc": "fracta-workspace",
            "mount_path": "/workspace",
            "env": {},
            "secrets": [],
            "resources": {"requests": {}, "limits": {}},
            "ttl_seconds_after_finished": 3600,
            "active_deadline_seconds": 7200,
        },
    },
    "mailbox": {"max_message_bytes": 65536, "redeliver_after": 300},
    "reaper": {"ttl": 86400, "sweep_interval": 60, "kill_grace": 5},
    "hooks": {"notify_chessmaster": True, "subscribers": {}},
    "state": {"backend": "files", "pool_size": 4, "lease_seconds": 15.0, "retry_seconds": 10.0},
    "mcp_servers": {},
    "auth": {"credentials": {"profiles": {}}},
}

TEMPLATE = """\
# fracta.yaml: configuration for fracta in this repository.
# Values may use ${VAR} or ${VAR:-default}, taken from the environment.
# Every key, its type and default: docs/config.md. `fracta doctor` checks this file.

control_plane:
  host: 127.0.0.1        # loopback only; binding elsewhere needs an explicit setting
  port: 0                # 0: a free port the OS picks; the URL is in .fracta/control.json

gateway:
  host: 127.0.0.1        # loopback only; binding elsewhere needs an explicit setting
  port: 0                # MCP over streamable HTTP for agents (http://HOST:PORT/mcp); 0: a free port
  allowed_hosts: []      # extra Host headers accepted (DNS-rebinding protection), e.g. ["gateway:8765"]

agents:
  max_agents: 4          # agents running at once; further spawns wait in the mission queue
  default_runtime: command
  wake: true             # a message to an idle agent resumes its session to read the inbox
  agent_runtimes: {}     # per runtime (claude, codex, opencode, command): options, env, auth_profile
  # With nothing here an agent gets what your own CLI would use: the control plane's environment
  # (ANTHROPIC_*, OPENAI_*, AWS_*, ...) and your login under HOME. The three usual set-ups:
  # agent_runtimes:
  #   claude:                              # Claude Code on Bedrock, token through apiKeyHelper
  #     auth_profile: bedrock
  #     env:
  #       CLAUDE_CODE_USE_BEDROCK: "1"
  #       AWS_REGION: ${AWS_REGION:-us-east-1}
  #   codex:                               # Codex with OPENAI_API_KEY from the host environment
  #     env:
  #       OPENAI_API_KEY: ${OPENAI_API_KEY}   # a missing variable stops the spawn, naming it
  #   opencode:                            # OpenCode on Bedrock, bearer token made at spawn
  #     auth_profile: opencode_bedrock
  #     env:
  #       AWS_REGION: ${AWS_REGION:-us-east-1}
  # Every AI CLI runtime also takes (strings may use ${VAR}; {{agent}} becomes the agent's name):
  #   binary: claude       # a name on PATH or a path (default: the runtime's name)
  #   model: sonnet        # opencode: provider/model
  #   args: []             # extra CLI arguments, put before the prompt
  # and its own: claude: allowed_tools (besides fracta's; default: git status/diff/log/show/add/
  # commit/merge), test_commands (default: python -m pytest, npm test, ...), permission_mode
  # (default acceptEdits), settings (a per-agent --settings file);
  # codex: config (merged into the agent's CODEX_HOME/config.toml, built over your own),
  # inherit_user_config (default true), native (default true: an npm-installed codex runs its
  # native binary, without Node's start); opencode: config (merged into the agent's config, its
  # `permission` over fracta's), test_commands. What agents may do: docs/permissions.md.
  # An agent's prompt comes from templates/agent_prompt.md at the repo root if you add one (and
  # templates/wake_prompt.md for a resumed session): {{name}}, {{task}}, {{workspace}}, {{branch}}.

workspaces:
  kind: git              # git: a worktree per agent on branch feature/<task>; directory: a plain
                         # folder per agent, <root>/<task> (Compose and Kubernetes; no merge)
  root: /workspace/agents  # directory: where agents' folders are made; relative: to the repository
  spares: 1              # checkouts the control plane keeps ready, so a spawn need not wait for
                         # one (a spare is a detached worktree in .fracta/worktrees/.spare-*); 0: none

launcher:
  kind: local            # local: a runner process on this machine; container: a process in the
                         # control plane's container (Compose); kubernetes: a Job per agent turn.
                         # container and kubernetes need state.backend postgres and
                         # workspaces.kind directory.
  kubernetes:            # kind kubernetes (needs fracta[k8s]); every agent turn is a Job
    namespace: fracta
    # image: registry.example/fracta-agent:1.0   # required: fracta and the runtime CLIs
    pvc: fracta-workspace  # the workspace volume: agents' folders and their runtimes' sessions
    mount_path: /workspace
    # service_account: fracta-agent
    # image_pull_policy: IfNotPresent
    env: {}              # extra variables for every agent pod
    secrets: []          # Secret names whose keys agents get as variables (envFrom)
    resources: {requests: {}, limits: {}}   # e.g. requests: {cpu: 500m, memory: 1Gi}
    ttl_seconds_after_finished: 3600
    active_deadline_seconds: 7200
    # gateway_url: http://fracta-gateway:8765/mcp   # the gateway as agent pods reach it
    # kubeconfig: ~/.kube/config   # default: in-cluster, else ~/.kube/config

mailbox:
  max_message_bytes: 65536
  redeliver_after: 300   # seconds: messages handed to a reader that never acknowledged them are
                         # handed out again after this long (see "Messages: exactly once" in README)

reaper:
  ttl: 86400             # seconds after an agent finished before it may be removed
                         # (never while it has unmerged or uncommitted work)
  sweep_interval: 60     # seconds between slow sweeps; exits are noticed at once
  kill_grace: 5          # seconds between SIGTERM and SIGKILL

hooks:
  notify_chessmaster: true   # an agent's commit sends the chessmaster a message
  subscribers: {}            # e.g. {b: [a]}: agent b hears of agent a's commits

state:
  backend: files         # files: everything under .fracta/ (local mode); postgres: one database
                         # shared by every control plane (needs fracta[postgres])
  pool_size: 4           # postgres: connections each control plane keeps open
  lease_seconds: 15      # postgres: a control plane's mission claims and agent supervision last
                         # this long unrenewed (then another control plane takes them over)
  retry_seconds: 10      # postgres: how long an operation retries a lost connection
  # For PostgreSQL, the URL from the environment (its password never written here):
  # backend: postgres
  # url: ${FRACTA_DATABASE_URL}     # postgresql://USER:PASSWORD@HOST:5432/DATABASE

# LLM credentials for agents, resolved at spawn (and again right before launch). A profile has one
# resolver (where the secret comes from) and bindings (how the agent receives it). Secrets are
# never written to logs, events or progress.md; only 0600 files under .fracta/agents/<name>/.
# auth:
#   credentials:
#     profiles:
#       bedrock:
#         resolver:
#           command: [bedrock-auth-helper, --print-token]   # prints the token on stdout
#           timeout: 30                                     # seconds (default 30)
#         bindings:
#           - claude_api_key_helper: true   # Claude runs the resolver itself when it needs a key
#       opencode_bedrock:
#         resolver:
#           command: [bedrock-auth-helper, --print-token]
#         bindings:
#           - env: AWS_BEARER_TOKEN_BEDROCK  # set in the agent's environment
#       from_file:
#         resolver:
#           file: ~/.config/tokens/llm      # or env: SOME_VARIABLE
#         bindings:
#           - file: llm-token                # written to .fracta/agents/<name>/credentials/llm-token
#             path_env: LLM_TOKEN_FILE       # optional: tell the agent where it is

# Backend MCP servers proxied to agents (tools appear as <server>__<tool>):
# mcp_servers:
#   time:
#     command: uvx
#     args: [mcp-server-time]
"""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], missing: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of `value`; collect unset names in `missing`."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    return value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Config:
    """The merged configuration. Raw values keep their ${VAR}s; `resolved` interpolates them."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(
                    f"missing config key {dotted!r} in {self.path}",
                    f"add {dotted} to {self.path.name} (see the commented template from fracta init)",
                )
            node = node[part]
        return node

    def resolved(self, dotted: str, env: Mapping[str, str] | None = None) -> Any:
        """The value at `dotted` with ${VAR}s filled in; an unset variable is a ConfigError."""
        missing: list[str] = []
        value = interpolate(self.get(dotted), os.environ if env is None else env, missing)
        if missing:
            raise ConfigError(
                f"{dotted} in {self.path.name} needs environment variable(s) {', '.join(sorted(set(missing)))}",
                "export them (or use ${VAR:-default}) and retry",
            )
        return value

    def integer(self, dotted: str, minimum: int = 0) -> int:
        raw = self.resolved(dotted)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{dotted} in {self.path.name} must be an integer, not {raw!r}", f"set {dotted} to a whole number"
            ) from None
        if value < minimum:
            raise ConfigError(
                f"{dotted} in {self.path.name} must be at least {minimum}, not {value}",
                f"set {dotted} to {minimum} or more",
            )
        return value

    def text(self, dotted: str) -> str:
        return str(self.resolved(dotted))


def parse(path: Path) -> tuple[Any, Any]:
    """(YAML node tree, data) of the file at `path`; a syntax error names the file and its line."""
    import yaml  # not needed on the fast paths that never read config

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_error(path, exc), "fix the YAML syntax at that line") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", "fix the YAML syntax") from None
    finally:
        loader.dispose()


def _syntax_error(path: Path, exc: Any) -> str:
    """One line: the file, the error's own line and column, what is wrong (and where it began)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = exc.problem or exc.context or "not valid YAML"
    context = ""
    if exc.context and exc.problem and exc.context_mark is not None:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    return f"{where}: not valid YAML: {problem}{context}"


def load(path: Path) -> Config:
    """Load fracta.yaml over the defaults; a missing file means all defaults.

    Only the syntax is checked here (the fast paths read a value or two); the whole file is
    checked against the schema by `fracta.config_check.check` before anything starts.
    """
    if not path.exists():
        return Config(path=path, data=copy.deepcopy(DEFAULTS))
    raw = parse(path)[1] or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}:1: the top level must be a mapping of settings", "see the template from fracta init")
    return Config(path=path, data=_merge(DEFAULTS, raw))
