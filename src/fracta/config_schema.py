"""The one declared schema of fracta.yaml: every key, its type, range, default and meaning.

fracta/config_check.py checks a whole file against it; docs/config.md is generated from it
(fracta/config_reference.py); `config.DEFAULTS` and `config.TEMPLATE` are kept equal to it by
tests/test_config_schema.py. Each mapping forbids unknown keys, so a typo is never ignored.

pydantic is imported here and nowhere on the CLI's fast paths (`list`, `inbox`, ...): this module
is imported only by the commands that start something and by `doctor`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

RUNTIMES = ("claude", "codex", "command", "opencode")  # fracta/runtimes REGISTRY (a test keeps them equal)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_))*$")  # as fracta/gateway/proxy.py


def _none_is_empty(empty: type) -> BeforeValidator:
    """`key:` with nothing after it (YAML null) means an empty mapping or list."""
    return BeforeValidator(lambda v: empty() if v is None else v)


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    if value.startswith("FRACTA_"):
        raise ValueError(f"{value}: FRACTA_* variables are fracta's own")
    return value


def _text(value: Any) -> Any:
    """A scalar written as a string: numbers and booleans become their text, as the env takes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Scalar = Annotated[str, BeforeValidator(_text)]
Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[int, Field(ge=0)]
Strings = Annotated[list[Scalar], _none_is_empty(list)]
EnvTable = Annotated[dict[str, Scalar], _none_is_empty(dict)]


def _env_names(value: dict[str, Scalar]) -> dict[str, Scalar]:
    for key in value:
        _env_name(key)
    return value


# An agent's environment: names checked (no FRACTA_* of fracta's own).
AgentEnv = Annotated[EnvTable, AfterValidator(_env_names)]
Table = Annotated[dict[str, Any], _none_is_empty(dict)]


class Section(BaseModel):
    """A mapping of fracta.yaml: unknown keys are errors; `key:` alone means all defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, data: Any) -> Any:
        return {} if data is None else data


# --- the control plane and the gateway ---------------------------------------------------------


class ControlPlane(Section):
    host: str = Field(default="127.0.0.1", description="Address of the REST API; loopback unless you choose otherwise.")
    port: Port = Field(default=0, description="Port of the REST API; 0: a free one the OS picks (see control.json).")


class Gateway(Section):
    host: str = Field(default="127.0.0.1", description="Address of the MCP gateway; loopback unless chosen.")
    port: Port = Field(default=0, description="Port of the MCP gateway (path /mcp); 0 lets the OS pick a free one.")
    allowed_hosts: Strings = Field(
        default_factory=list, description="Extra Host headers accepted (DNS-rebinding protection)."
    )


# --- agents and their runtimes ------------------------------------------------------------------


class RuntimeOptions(Section):
    """What every runtime takes: the variables and credentials an agent gets."""

    env: AgentEnv = Field(default_factory=dict, description="Extra environment variables for the agent.")
    auth_profile: str | list[str] | None = Field(default=None, description="Auth profile(s) resolved at spawn.")

    @field_validator("auth_profile")
    @classmethod
    def _profiles(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and (value == "" or (isinstance(value, list) and not all(value))):
            raise ValueError("must be a profile name or a list of names")
        return value

    def profile_names(self) -> list[str]:
        if self.auth_profile is None:
            return []
        return [self.auth_profile] if isinstance(self.auth_profile, str) else self.auth_profile


class CliOptions(RuntimeOptions):
    """What every AI CLI runtime takes (fracta/runtimes/options.py: COMMON)."""

    binary: str | None = Field(default=None, description="The executable: a name on PATH or a path.")
    model: str | None = Field(default=None, description="The model to ask for.")
    args: Strings = Field(default_factory=list, description="Extra CLI arguments, put before the prompt.")


class ClaudeOptions(CliOptions):
    allowed_tools: list[str] | None = Field(default=None, description="Rules allowed besides fracta's tools.")
    test_commands: list[str] | None = Field(default=None, description="Test commands the agent may run.")
    permission_mode: str | None = Field(default=None, description="Passed as --permission-mode (default acceptEdits).")
    settings: Table = Field(default_factory=dict, description="A per-agent --settings file's content.")


class CodexOptions(CliOptions):
    config: Table = Field(default_factory=dict, description="Merged into the agent's CODEX_HOME/config.toml.")
    inherit_user_config: bool = Field(default=True, description="Start from your own ~/.codex/config.toml.")
    native: bool = Field(default=True, description="Run an npm-installed codex's native binary directly.")


class OpencodeOptions(CliOptions):
    config: Table = Field(default_factory=dict, description="Merged into the agent's OpenCode config.")
    test_commands: list[str] | None = Field(default=None, description="Test commands the agent may run.")


class RuntimeTable(Section):
    claude: ClaudeOptions | None = None
    codex: CodexOptions | None = None
    command: RuntimeOptions | None = None
    opencode: OpencodeOptions | None = None

    def items(self) -> Iterator[tuple[str, RuntimeOptions]]:
        for name in RUNTIMES:
            options = getattr(self, name)
            if options is not None:
                yield name, options


class Budget(Section):
    tokens: int | None = Field(default=None, ge=1, description="Tokens (input, output and cache); none: no cap.")
    cost_usd: float | None = Field(default=None, gt=0, description="Cost in USD; none: no cap.")


class Budgets(Section):
    """An agent that reaches a cap is not run again (it stops at the end of its turn)."""

    agent: Annotated[Budget, _none_is_empty(dict)] = Field(default_factory=Budget, description="Each agent's cap.")
    fleet: Annotated[Budget, _none_is_empty(dict)] = Field(default_factory=Budget, description="All agents together.")


Price = Annotated[dict[Literal["input", "output", "cache_read", "cache_write"], float], _none_is_empty(dict)]


class Agents(Section):
    max_agents: int = Field(default=4, ge=1, description="Agents running at once; further spawns wait in the queue.")
    default_runtime: Literal["claude", "codex", "command", "opencode"] = Field(
        default="command", description="The runtime of a spawn that names none."
    )
    wake: bool = Field(default=True, description="A message to an idle agent resumes its session to read the inbox.")
    agent_runtimes: Annotated[RuntimeTable, _none_is_empty(dict)] = Field(
        default_factory=RuntimeTable, description="Per runtime: options, env, auth_profile."
    )
    stall_after: int = Field(
        default=300, ge=1, description="Seconds a running agent may print nothing before it shows as stalled."
    )
    budget: Annotated[Budgets, _none_is_empty(dict)] = Field(
        default_factory=Budgets, description="Token and cost caps, per agent and for the fleet."
    )


# --- the rest of the control plane ---------------------------------------------------------------


class Workspaces(Section):
    kind: Literal["git", "directory"] = Field(
        default="git",
        description="git: a worktree per agent on its own branch; directory: a folder per agent under root.",
    )
    root: str = Field(
        default="/workspace/agents",
        description="directory: the folder holding each agent's <root>/<task>; relative: to the repository.",
    )
    spares: int = Field(default=1, ge=0, description="Checkouts kept ready so a spawn need not wait for one; 0: none.")

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a folder")
        return value


# --- launchers -----------------------------------------------------------------------------------


class Quantities(Section):
    cpu: Scalar | None = Field(default=None, description="CPU, as Kubernetes writes it (e.g. 500m, 2).")
    memory: Scalar | None = Field(default=None, description="Memory, as Kubernetes writes it (e.g. 512Mi, 2Gi).")


class Resources(Section):
    requests: Quantities = Field(default_factory=Quantities, description="What the agent's pod is guaranteed.")
    limits: Quantities = Field(default_factory=Quantities, description="What the agent's pod may use at most.")


class Kubernetes(Section):
    """launcher.kind kubernetes: a Job per agent turn."""

    namespace: str = Field(default="fracta", description="The namespace agents' Jobs run in.")
    image: str | None = Field(default=None, description="The agent image (fracta and the runtime CLIs); required.")
    pvc: str = Field(default="fracta-workspace", description="The workspace PersistentVolumeClaim mounted in each Job.")
    mount_path: str = Field(default="/workspace", description="Where the workspace volume is mounted.")
    service_account: str | None = Field(default=None, description="The agents' ServiceAccount (default: namespace's).")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="The Jobs' imagePullPolicy (default: Kubernetes' own)."
    )
    env: AgentEnv = Field(default_factory=dict, description="Extra environment variables for every agent pod.")
    secrets: Strings = Field(default_factory=list, description="Secret names whose keys agents get as env (envFrom).")
    resources: Resources = Field(default_factory=Resources, description="Requests and limits of each agent pod.")
    ttl_seconds_after_finished: Seconds = Field(default=3600, description="Seconds a finished Job is kept.")
    active_deadline_seconds: int = Field(default=7200, ge=1, description="Seconds one turn's Job may run.")
    gateway_url: str | None = Field(default=None, description="The gateway's URL as agent pods reach it.")
    kubeconfig: str | None = Field(
        default=None, description="A kubeconfig file; default: in-cluster, else ~/.kube/config."
    )


class Launcher(Section):
    kind: Literal["local", "container", "kubernetes"] = Field(
        default="local",
        description="local: a runner process here; container: a process in the control plane's container "
        "(Compose); kubernetes: a Job per turn.",
    )
    kubernetes: Kubernetes = Field(default_factory=Kubernetes, description="launcher.kind kubernetes: the Jobs.")


class Mailbox(Section):
    max_message_bytes: int = Field(default=65536, ge=1, description="The largest message accepted.")
    redeliver_after: int = Field(default=300, ge=1, description="Seconds before unacknowledged messages go out again.")
    unread_alert: int = Field(
        default=600, ge=1, description="Seconds a running agent may leave a message unread before it is flagged."
    )


class Reaper(Section):
    ttl: Seconds = Field(default=86400, description="Seconds after an agent finished before it may be removed.")
    sweep_interval: int = Field(default=60, ge=1, description="Seconds between slow sweeps; exits are noticed at once.")
    kill_grace: Seconds = Field(default=5, description="Seconds between SIGTERM and SIGKILL.")


class Hooks(Section):
    notify_chessmaster: bool = Field(default=True, description="An agent's commit sends the chessmaster a message.")
    subscribers: Annotated[dict[str, str | list[str]], _none_is_empty(dict)] = Field(
        default_factory=dict, description="Agent -> the agents whose commits it hears of ('*': everyone)."
    )


class State(Section):
    """Where the control plane keeps agents, messages, missions and events."""

    backend: Literal["files", "postgres"] = Field(
        default="files", description="files: .fracta/ (local mode); postgres: a database shared by control planes."
    )
    url: str | None = Field(
        default=None,
        description="postgres (required): postgresql://USER:PASSWORD@HOST:PORT/DATABASE; best ${FRACTA_DATABASE_URL}.",
    )
    pool_size: int = Field(default=4, ge=1, le=64, description="postgres: connections each control plane keeps open.")
    lease_seconds: float = Field(
        default=15.0,
        ge=1,
        le=3600,
        description="postgres: how long a control plane's mission claims and agent supervision last unrenewed.",
    )
    retry_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="postgres: how long an operation retries a lost connection."
    )

    @model_validator(mode="after")
    def _url_for_postgres(self) -> State:
        if self.backend == "postgres" and not self.url:
            raise ValueError("backend postgres needs url (e.g. url: ${FRACTA_DATABASE_URL})")
        return self


class Graph(Section):
    """The knowledge graph agents share (graph_* tools): FalkorDB, embedded or a service."""

    embedded: bool | None = Field(
        default=None,
        description="Run FalkorDB under .fracta/graph/ with the control plane (needs fracta[graph]); "
        "default: true unless url is given.",
    )
    url: str | None = Field(
        default=None, description="A FalkorDB service: redis://HOST:PORT, rediss://..., or a unix socket path."
    )
    password: str | None = Field(default=None, description="The service's password; best ${FRACTA_GRAPH_PASSWORD}.")
    name: str = Field(default="fracta", min_length=1, description="The graph's name on the server.")
    timeout: float = Field(default=10.0, gt=0, le=3600, description="Seconds one graph query may run.")

    @model_validator(mode="after")
    def _one_place(self) -> Graph:
        if self.embedded is True and self.url:
            raise ValueError("url is for a FalkorDB service: set embedded: false with it (or drop url)")
        if self.embedded is False and not self.url:
            raise ValueError("embedded: false needs url (redis://HOST:PORT of a FalkorDB service)")
        return self


# --- backend MCP servers -------------------------------------------------------------------------


class McpServer(Section):
    """One backend MCP server: `command` (stdio) or `url` (streamable HTTP), never both."""

    command: str | None = Field(default=None, description="stdio: the program to run.")
    args: Strings = Field(default_factory=list, description="stdio: its arguments.")
    env: EnvTable = Field(default_factory=dict, description="stdio: extra environment variables.")
    cwd: str | None = Field(default=None, description="stdio: its working folder (default: the repository).")
    url: str | None = Field(default=None, description="HTTP: the server's URL.")
    headers: EnvTable = Field(default_factory=dict, description="HTTP: headers sent with each request.")
    timeout: float = Field(default=300.0, gt=0, description="Seconds one proxied tool call may take.")

    @model_validator(mode="after")
    def _one_kind(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (stdio) or `url` (HTTP)")
        wrong = {"args", "env", "cwd"} if self.url is not None else {"headers"}
        if given := sorted(wrong & self.model_fields_set):
            kind = "an HTTP server (url)" if self.url is not None else "a stdio server (command)"
            raise ValueError(f"{', '.join(given)} do(es) not apply to {kind}")
        return self


# --- credentials ---------------------------------------------------------------------------------


class Resolver(Section):
    command: str | list[Scalar] | None = Field(default=None, description="A command that prints the secret.")
    env: str | None = Field(default=None, description="An environment variable holding it.")
    file: str | None = Field(default=None, description="A file holding it.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds the command may take.")

    @model_validator(mode="after")
    def _one_kind(self) -> Resolver:
        given = [k for k in ("command", "env", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("needs exactly one of command, env or file")
        if self.command is not None and not self.command:
            raise ValueError("command must be a non-empty list of arguments")
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise ValueError("env must be an environment variable name")
        if self.file == "":
            raise ValueError("file must be a path")
        return self


class Binding(Section):
    env: str | None = Field(default=None, description="Set the secret as this variable.")
    file: str | None = Field(default=None, description="Write it to this file under the agent's credentials folder.")
    path_env: str | None = Field(default=None, description="With file: the variable telling the agent its path.")
    claude_api_key_helper: Literal[True] | None = Field(default=None, description="Claude runs the resolver itself.")

    @model_validator(mode="after")
    def _one_kind(self) -> Binding:
        given = [k for k in ("env", "file", "claude_api_key_helper") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("needs exactly one of: env, file, claude_api_key_helper")
        for name in (self.env, self.path_env):
            if name is not None:
                _env_name(name)
        if self.file is not None and (not self.file or Path(self.file).is_absolute() or ".." in Path(self.file).parts):
            raise ValueError("file must be a plain relative name (written under the agent's credentials folder)")
        return self


class Profile(Section):
    resolver: Resolver = Field(description="Where the secret comes from.")
    bindings: Annotated[list[Binding], BeforeValidator(lambda v: [v] if isinstance(v, Mapping) else v)] = Field(
        min_length=1, description="How the secret reaches the agent."
    )


class Credentials(Section):
    profiles: Annotated[dict[str, Profile], _none_is_empty(dict)] = Field(
        default_factory=dict, description="Auth profiles by name."
    )


class Auth(Section):
    credentials: Annotated[Credentials, _none_is_empty(dict)] = Field(default_factory=Credentials)


# --- strategies ----------------------------------------------------------------------------------


class StrategySource(Section):
    """Where one contract entry of a strategy gets its data: a tool of an MCP server and its arguments."""

    server: str = Field(
        description="A server of mcp_servers, or `fracta` for fracta's own sources (agents, events, "
        "merge_base, dry_merge)."
    )
    tool: str = Field(min_length=1, description="The server's tool (its own name, without the <server>__ prefix).")
    arguments: Table = Field(
        default_factory=dict, description="Arguments given on every call (${VAR} filled in when the strategy runs)."
    )


class Strategies(Section):
    """Strategies: Python DAGs in the repository's strategies/ folder, run by the strategy runner."""

    folder: str = Field(
        default="strategies", description="Where the strategy modules are (relative: to the repository)."
    )
    timeout: float = Field(default=300.0, gt=0, le=86400, description="Seconds one strategy run may take in all.")
    step_timeout: float = Field(
        default=60.0, gt=0, le=86400, description="Seconds one step may run before it is cancelled."
    )
    bindings: Annotated[dict[str, Annotated[dict[str, StrategySource], _none_is_empty(dict)]], _none_is_empty(dict)] = (
        Field(default_factory=dict, description="By strategy, then by contract entry: the source that feeds it.")
    )


# --- the whole file ------------------------------------------------------------------------------


class Settings(Section):
    """fracta.yaml."""

    control_plane: ControlPlane = ControlPlane()
    gateway: Gateway = Gateway()
    agents: Agents = Agents()
    workspaces: Workspaces = Workspaces()
    launcher: Launcher = Launcher()
    mailbox: Mailbox = Mailbox()
    reaper: Reaper = Reaper()
    hooks: Hooks = Hooks()
    state: State = State()
    graph: Graph = Graph()
    mcp_servers: Annotated[dict[str, McpServer], _none_is_empty(dict)] = Field(
        default_factory=dict, description="Backend MCP servers proxied to agents as <server>__<tool>."
    )
    auth: Auth = Auth()
    strategies: Strategies = Strategies()
    pricing: Annotated[dict[str, Price], _none_is_empty(dict)] = Field(
        default_factory=dict,
        description="USD per million tokens by model (name or prefix), over fracta's defaults, for runtimes "
        "that report tokens but no cost.",
    )


def cross_checks(settings: Settings) -> Iterator[tuple[tuple[Any, ...], str]]:
    """What one section cannot check alone: names that must exist elsewhere, names used as prefixes."""
    kind = settings.launcher.kind
    if kind != "local":
        if settings.state.backend != "postgres":
            yield ("launcher", "kind"), f"launcher {kind} needs state.backend postgres (a store its agents share)"
        if settings.workspaces.kind != "directory":
            yield ("launcher", "kind"), f"launcher {kind} needs workspaces.kind directory (agents get no git worktree)"
    if kind == "kubernetes" and not settings.launcher.kubernetes.image:
        yield ("launcher", "kubernetes", "image"), "launcher kubernetes needs the agents' image"
    for name in settings.mcp_servers:
        if not _SERVER_NAME.match(name):
            why = "a server name may use letters, digits, '-' and single '_' (it prefixes tool names)"
            yield ("mcp_servers", name), why
    for strategy, entries in settings.strategies.bindings.items():
        for entry, source in entries.items():
            if source.server != "fracta" and source.server not in settings.mcp_servers:
                known = ", ".join(["fracta", *sorted(settings.mcp_servers)])
                yield (
                    ("strategies", "bindings", strategy, entry, "server"),
                    f"{source.server!r} is not a server here (known: {known})",
                )
    profiles = settings.auth.credentials.profiles
    for runtime, options in settings.agents.agent_runtimes.items():
        at = ("agents", "agent_runtimes", runtime, "auth_profile")
        for name in options.profile_names():
            if name not in profiles:
                defined = ", ".join(sorted(profiles)) or "none"
                yield at, f"names profile {name!r}, not defined under auth.credentials.profiles (defined: {defined})"
            elif runtime != "claude" and any(b.claude_api_key_helper for b in profiles[name].bindings):
                yield at, f"profile {name!r} binds claude_api_key_helper, but the {runtime} runtime is not Claude"
