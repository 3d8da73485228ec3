"""LLM credentials for agents: auth profiles in fracta.yaml, resolved at spawn into env, files and helpers.

A profile pairs one *resolver* (where the secret comes from: a command that prints it, an
environment variable, a file) with *bindings* (how the agent receives it: an environment
variable, a 0600 file under the agent's folder, Claude's apiKeyHelper setting). A runtime uses a
profile through `agents.agent_runtimes.<runtime>.auth_profile`, and may add plain environment
variables with `agents.agent_runtimes.<runtime>.env` (values may use ${VAR}).

With nothing configured the plan is empty and an agent gets what the user's own CLI would use:
the control plane's environment (ANTHROPIC_*, OPENAI_*, AWS_*, ...) is inherited by the runner.
How that environment is decided, and why a missing variable names Codex's env_vars, is told in
fracta/environment.py. The plan also carries a PATH when folders on the control plane's PATH have
vanished since it started (they are left out).

Secrets never go into messages: errors name the profile, the variable or the configured
(uninterpolated) command, never a value or a resolver's output. This module stays light (no
subprocess, no yaml at import) because runtimes/base.py, on the CLI's fast paths, imports it.

Run as `python -m fracta.credentials STATE_DIR PROFILE` it prints one profile's secret: that is
the command Claude's apiKeyHelper runs (see `helper_command`).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, environment
from .errors import EXIT_ERROR, ConfigError, FractaError
from .repo import Repo

PROFILES_KEY = "auth.credentials.profiles"
FILES_DIR = "credentials"  # bound files go to agents/<name>/credentials/, mode 0600
DEFAULT_TIMEOUT = 30.0
REDACTED = "[redacted]"
RESOLVER_KINDS = ("command", "env", "file")
BINDING_KINDS = ("env", "file", "claude_api_key_helper")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values of variables named like these are treated as secrets (never shown, redacted from output).
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|SESSION|COOKIE|BEARER", re.IGNORECASE)
# A word that looks like a token (long, letters and digits mixed): withheld from resolver stderr.
_TOKENISH = re.compile(r"[A-Za-z0-9_\-+=/.:]{24,}")


class CredentialError(FractaError):
    """A resolver failed or a variable it needs is missing; nothing was started."""

    exit_code = EXIT_ERROR
    http_status = 422


@dataclass(frozen=True)
class CredentialPlan:
    """What an agent's launch gets from its credentials. Values are secret: kept out of repr."""

    env: dict[str, str] = field(default_factory=dict, repr=False)  # added to the agent's environment
    files: dict[Path, str] = field(default_factory=dict, repr=False)  # written 0600 under the agent dir
    claude_api_key_helper: str | None = None  # a shell command printing the key (Claude's apiKeyHelper)
    secrets: list[str] = field(default_factory=list, repr=False)  # resolved values, for redaction
    profiles: tuple[str, ...] = ()  # the profile names used (safe to show)

    @property
    def empty(self) -> bool:
        return not (self.env or self.files or self.claude_api_key_helper)

    def redact(self, text: str) -> str:
        """`text` with every secret of this plan replaced by [redacted]."""
        return redact(text, self.secrets)


def redact(text: str, secrets: list[str]) -> str:
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class Profile:
    """One auth profile as configured (raw: ${VAR}s not yet filled in)."""

    name: str
    kind: str  # command | env | file
    source: Any  # the command (list of str), variable name or path, as written in fracta.yaml
    timeout: float
    bindings: tuple[dict[str, Any], ...]

    def describe(self) -> str:
        """The resolver in words, without any secret (commands are shown uninterpolated)."""
        if self.kind == "command":
            return f"command `{shlex.join(str(a) for a in self.source)}`"
        if self.kind == "env":
            return f"environment variable {self.source}"
        return f"file {self.source}"


def defined(repo: Repo) -> list[str]:
    """The names of the auth profiles in fracta.yaml."""
    raw = repo.config.get(PROFILES_KEY) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{PROFILES_KEY} in {repo.config.path.name} must be a mapping of profile names")
    return [str(name) for name in raw]


def profile(repo: Repo, name: str, used_by: str | None = None) -> Profile:
    """The auth profile `name`, validated; a missing or malformed one is a ConfigError naming it."""
    names = defined(repo)
    if name not in names:
        who = f"agents.agent_runtimes.{used_by}.auth_profile names profile" if used_by else "there is no profile"
        raise ConfigError(
            f"{who} {name!r}, which is not defined under {PROFILES_KEY}",
            f"define it there, or fix the name (defined: {', '.join(sorted(names)) or 'none'})",
        )
    return _profile(repo, name, repo.config.get(PROFILES_KEY)[name])


def _profile(repo: Repo, name: str, body: Any) -> Profile:
    where = f"{PROFILES_KEY}.{name}"
    fix = f"see the auth section of the template from fracta init; fix {where} in {repo.config.path.name}"
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where} must be a mapping with a resolver and bindings", fix)
    resolver = body.get("resolver")
    if not isinstance(resolver, Mapping):
        raise ConfigError(f"{where}.resolver must be a mapping with one of: command, env, file", fix)
    kinds = [k for k in RESOLVER_KINDS if k in resolver]
    if len(kinds) != 1:
        raise ConfigError(f"{where}.resolver needs exactly one of command, env or file", fix)
    kind = kinds[0]
    source = resolver[kind]
    if kind == "command":
        if isinstance(source, str):
            source = shlex.split(source)
        if not isinstance(source, list) or not source or not all(isinstance(a, str | int | float) for a in source):
            raise ConfigError(f"{where}.resolver.command must be a non-empty list of arguments", fix)
        source = [str(a) for a in source]
    elif kind == "env" and not (isinstance(source, str) and _ENV_NAME.match(source)):
        raise ConfigError(f"{where}.resolver.env must be an environment variable name", fix)
    elif kind == "file" and not (isinstance(source, str) and source):
        raise ConfigError(f"{where}.resolver.file must be a path", fix)
    timeout = resolver.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}.resolver.timeout must be a positive number of seconds", fix)
    return Profile(name, kind, source, float(timeout), _bindings(where, body.get("bindings"), fix))


def _bindings(where: str, raw: Any, fix: str) -> tuple[dict[str, Any], ...]:
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}.bindings must list how the secret reaches the agent (env, file, ...)", fix)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}.bindings[{i}]"
        kinds = [k for k in BINDING_KINDS if isinstance(item, Mapping) and k in item]
        if len(kinds) != 1:
            raise ConfigError(f"{at} needs exactly one of: env, file, claude_api_key_helper", fix)
        binding = dict(item)
        kind = kinds[0]
        if kind == "env" or binding.get("path_env") is not None:
            for key in ("env", "path_env"):
                value = binding.get(key)
                if value is not None and not (isinstance(value, str) and _ENV_NAME.match(value)):
                    raise ConfigError(f"{at}.{key} must be an environment variable name", fix)
                if isinstance(value, str) and value.startswith("FRACTA_"):
                    raise ConfigError(f"{at}.{key}: FRACTA_* variables are fracta's own", fix)
        if kind == "file":
            path = binding["file"]
            if not isinstance(path, str) or not path or Path(path).is_absolute() or ".." in Path(path).parts:
                raise ConfigError(
                    f"{at}.file must be a plain relative name (written under the agent's credentials folder)", fix
                )
        if kind == "claude_api_key_helper" and binding["claude_api_key_helper"] is not True:
            raise ConfigError(f"{at}.claude_api_key_helper must be true", fix)
        out.append(binding)
    return tuple(out)


def runtime_options(repo: Repo, runtime: str) -> dict[str, Any]:
    """agents.agent_runtimes.<runtime> from fracta.yaml (raw), or {}."""
    table = repo.config.get("agents.agent_runtimes") or {}
    options = table.get(runtime) if isinstance(table, Mapping) else None
    return dict(options) if isinstance(options, Mapping) else {}


def profile_names(repo: Repo, runtime: str) -> list[str]:
    """The auth profile(s) a runtime uses: `auth_profile` is a name or a list of names."""
    value = runtime_options(repo, runtime).get("auth_profile")
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(
            f"agents.agent_runtimes.{runtime}.auth_profile must be a profile name or a list of names",
            f"name profiles defined under {PROFILES_KEY}",
        )
    return list(names)


def chosen(repo: Repo, runtime: str) -> list[Profile]:
    """The profiles `runtime` uses, validated against it; nothing is run."""
    found = [profile(repo, name, used_by=runtime) for name in profile_names(repo, runtime)]
    for p in found:
        if runtime != "claude" and any("claude_api_key_helper" in b for b in p.bindings):
            raise ConfigError(
                f"profile {p.name!r} binds claude_api_key_helper, but the {runtime} runtime is not Claude",
                f"use an env or file binding for {runtime}, or a separate profile for claude",
            )
    return found


def resolve(repo: Repo, runtime: str, agent_dir: Path) -> CredentialPlan:
    """Resolve `runtime`'s credentials now. Reads and runs resolvers, writes nothing.

    Raises ConfigError for a malformed or missing profile and CredentialError for a resolver that
    fails or a variable that is missing; the message names the profile and variable or command.
    """
    env, secrets = runtime_env(repo, runtime, agent_dir.name)
    files: dict[Path, str] = {}
    helper: str | None = None
    used = chosen(repo, runtime)
    for p in used:
        secret = secret_of(repo, p, runtime)
        secrets.append(secret)
        for binding in p.bindings:
            if "env" in binding:
                env[binding["env"]] = secret
            elif "file" in binding:
                path = agent_dir / FILES_DIR / binding["file"]
                files[path] = secret + "\n"
                if binding.get("path_env"):
                    env[binding["path_env"]] = str(path)
            else:
                helper = helper_command(repo, p.name)
    path = environment.clean_path(os.environ.get("PATH"))
    if path.dropped and "PATH" not in env:  # e.g. the temporary folder of a Codex that has exited
        env["PATH"] = path.value
    names = tuple(p.name for p in used)
    return CredentialPlan(env=env, files=files, claude_api_key_helper=helper, secrets=secrets, profiles=names)


def check(repo: Repo, runtime: str) -> CredentialPlan:
    """The spawn-time check: resolve everything (resolvers really run) and keep nothing on disk.

    Resolvers run here so that a broken one fails `fracta spawn` at once, before any workspace,
    record or mission exists; they run again right before launch, so a queued agent gets a fresh
    secret.
    """
    return resolve(repo, runtime, repo.state / "agents" / ".check")


def runtime_env(repo: Repo, runtime: str, agent: str = "") -> tuple[dict[str, str], list[str]]:
    """agents.agent_runtimes.<runtime>.env with ${VAR}s filled in and {{agent}} made `agent`'s name,
    and the values that are secrets."""
    raw = runtime_options(repo, runtime).get("env") or {}
    where = f"agents.agent_runtimes.{runtime}.env"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping of variable names to values", f"fix {where} in fracta.yaml")
    env: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in raw.items():
        key = str(key)
        if not _ENV_NAME.match(key) or key.startswith("FRACTA_"):
            raise ConfigError(
                f"{where}: {key!r} is not a variable an agent may be given",
                "use a plain environment variable name; FRACTA_* variables are fracta's own",
            )
        if value is None or isinstance(value, Mapping | list):
            raise ConfigError(f"{where}.{key} must be a string or number", f'quote it: {key}: "..."')
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        text = text.replace("{{agent}}", agent)  # before ${VAR}: a variable's value is taken as it is
        missing: list[str] = []
        filled = config.interpolate(text, os.environ, missing)
        if missing:
            raise CredentialError(
                f"{where}.{key} needs environment variable {', '.join(sorted(set(missing)))}, "
                "which the control plane does not have",
                _export_hint(sorted(set(missing))),
            )
        env[key] = filled
        if filled and filled != text and (_SECRET_NAME.search(key) or _names_secret(text)):
            secrets.append(filled)
    return env, secrets


def referenced(repo: Repo, runtime: str) -> list[str]:
    """The variables fracta.yaml makes `runtime`'s agents take from the control plane (names only):
    ${VAR}s in its env, env resolvers and ${VAR}s in the resolvers of its profiles."""
    found: set[str] = set()

    def scan(value: Any) -> None:
        if isinstance(value, str):
            found.update(m.group(1) for m in config._VAR.finditer(value))
        elif isinstance(value, list):
            for item in value:
                scan(item)
        elif isinstance(value, Mapping):
            for item in value.values():
                scan(item)

    scan(runtime_options(repo, runtime).get("env") or {})
    for p in chosen(repo, runtime):
        if p.kind == "env":
            found.add(str(p.source))
        else:
            scan(p.source)
    return sorted(found)


def _names_secret(text: str) -> bool:
    return any(_SECRET_NAME.search(m.group(1)) for m in config._VAR.finditer(text))


def _export_hint(names: list[str]) -> str:
    return environment.missing_hint(names)


def secret_of(repo: Repo, profile: Profile, runtime: str | None = None) -> str:
    """Run `profile`'s resolver and return the secret (stripped); CredentialError if it yields none."""
    who = f"credential profile {profile.name!r}" + (f" (for the {runtime} runtime)" if runtime else "")
    if profile.kind == "env":
        value = os.environ.get(profile.source, "").strip()
        if not value:
            state = "empty" if profile.source in os.environ else "not set"
            raise CredentialError(
                f"{who}: environment variable {profile.source} is {state}",
                _export_hint([profile.source]),
            )
        return value
    if profile.kind == "file":
        return _read_file(repo, profile, who)
    return _run_command(repo, profile, who)


def _interpolated(repo: Repo, profile: Profile, value: Any, who: str) -> Any:
    missing: list[str] = []
    filled = config.interpolate(value, os.environ, missing)
    if missing:
        raise CredentialError(
            f"{who}: its resolver needs environment variable {', '.join(sorted(set(missing)))}, which is not set",
            _export_hint(sorted(set(missing))),
        )
    return filled


def _read_file(repo: Repo, profile: Profile, who: str) -> str:
    path = Path(os.path.expanduser(_interpolated(repo, profile, profile.source, who)))
    if not path.is_absolute():
        path = repo.root / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CredentialError(f"{who}: file {path} does not exist", "create it, or fix resolver.file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise CredentialError(f"{who}: cannot read file {path}: {reason}", "check its permissions") from None
    if not value:
        raise CredentialError(f"{who}: file {path} is empty", "put the secret in it (one line)")
    if "\n" in value:
        raise CredentialError(f"{who}: file {path} holds several lines", "keep only the secret in it, on one line")
    return value


def _run_command(repo: Repo, profile: Profile, who: str) -> str:
    import subprocess  # not on the fast paths that only import this module for its types

    argv = [str(a) for a in _interpolated(repo, profile, profile.source, who)]
    shown = profile.describe()  # uninterpolated: a ${VAR} in the command may hold a secret
    fix = f"run it yourself to see why, then fix it or {PROFILES_KEY}.{profile.name}.resolver in fracta.yaml"
    try:
        proc = subprocess.run(
            argv,
            cwd=repo.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=profile.timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialError(
            f"{who}: cannot find {argv[0]!r} to run its {shown}",
            "install it or give its full path (PATH is the control plane's)",
        ) from None
    except PermissionError:
        raise CredentialError(f"{who}: {argv[0]!r} is not executable ({shown})", "chmod +x it") from None
    except subprocess.TimeoutExpired:
        raise CredentialError(
            f"{who}: its {shown} did not finish within {profile.timeout:g}s",
            f"{fix}; a slow resolver may set resolver.timeout",
        ) from None
    out = proc.stdout.decode("utf-8", errors="replace").strip()
    if proc.returncode != 0:
        why = _stderr_line(proc.stderr, out.splitlines())  # what it printed on stdout may be the secret
        raise CredentialError(f"{who}: its {shown} exited with {proc.returncode}{why}", fix)
    if not out:
        raise CredentialError(f"{who}: its {shown} printed nothing", f"it must print the secret; {fix}")
    if "\n" in out:
        raise CredentialError(
            f"{who}: its {shown} printed several lines", f"it must print only the secret, on one line; {fix}"
        )
    return out


def _stderr_line(stderr: bytes, secrets: list[str]) -> str:
    """The last line of a failed resolver's stderr, with anything that looks like a token withheld."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    line = _TOKENISH.sub(lambda m: REDACTED if _looks_secret(m.group(0)) else m.group(0), redact(lines[-1], secrets))
    return f": {line[:300]}"


def _looks_secret(word: str) -> bool:
    if word.startswith(("/", "~", "./", "http://", "https://")):  # paths and URLs are worth showing
        return False
    return any(c.isdigit() for c in word) and any(c.isalpha() for c in word)


def helper_command(repo: Repo, profile: str) -> str:
    """The shell command for Claude's apiKeyHelper: this module, run as a program, for `profile`.

    Claude runs it whenever it needs the key (at start, after its TTL, on a 401), so an expiring
    token is fetched afresh by the same resolver code, and no secret is ever written to a file:
    the settings file holds only this command.
    """
    return shlex.join([sys.executable, "-m", "fracta.credentials", str(repo.state), profile])


def main(argv: list[str]) -> int:
    """Print one profile's secret on stdout (Claude's apiKeyHelper); errors on stderr, no secret."""
    from . import repo as repo_mod

    if len(argv) != 2:
        print("usage: python -m fracta.credentials STATE_DIR PROFILE", file=sys.stderr)
        return 2
    state, name = argv
    try:
        repo = repo_mod.find(env={"FRACTA_HOME": state})
        secret = secret_of(repo, profile(repo, name))
    except FractaError as exc:
        print(f"fracta credentials: {exc.message}", file=sys.stderr)
        return 1
    sys.stdout.write(secret + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
