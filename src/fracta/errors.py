"""The one error hierarchy: every expected failure is a FractaError with a hint and an exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Named exit codes, shared by every face (the CLI maps errors to these; HTTP maps them to 4xx).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_REFUSED = 5
EXIT_CORRUPT = 6
EXIT_LOCKED = 7
EXIT_UNAVAILABLE = 8
EXIT_INTERRUPTED = 130


class FractaError(Exception):
    """An expected failure: a message saying what is wrong and a hint saying what to do."""

    exit_code = EXIT_ERROR
    http_status = 400

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class NotInitialized(FractaError):
    exit_code = EXIT_USAGE
    http_status = 409


class NotARepository(FractaError):
    exit_code = EXIT_USAGE
    http_status = 409


class InvalidName(FractaError):
    exit_code = EXIT_USAGE
    http_status = 422


class InvalidInput(FractaError):
    exit_code = EXIT_USAGE
    http_status = 422


class ConfigError(FractaError):
    exit_code = EXIT_USAGE
    http_status = 422


class AgentNotFound(FractaError):
    exit_code = EXIT_NOT_FOUND
    http_status = 404


class AgentExists(FractaError):
    exit_code = EXIT_CONFLICT
    http_status = 409


class Refused(FractaError):
    """The action would lose work or break a rule; nothing was changed."""

    exit_code = EXIT_REFUSED
    http_status = 409


class BudgetReached(Refused):
    """A spawn or a wake that agents.budget does not allow."""


class Forbidden(FractaError):
    """The caller's identity does not allow this action."""

    exit_code = EXIT_REFUSED
    http_status = 403


class CorruptRecord(FractaError):
    exit_code = EXIT_CORRUPT
    http_status = 500

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"corrupt record {path}: {problem}",
            "inspect the file; move it aside or delete it if it cannot be repaired",
        )
        self.path = path


class LockTimeout(FractaError):
    exit_code = EXIT_LOCKED
    http_status = 503

    def __init__(self, path: Path, seconds: float) -> None:
        super().__init__(
            f"timed out after {seconds:g}s waiting for lock {path}",
            "another fracta process holds it; retry, or remove the lock file if no fracta process is running",
        )
        self.path = path


class ControlPlaneUnavailable(FractaError):
    exit_code = EXIT_UNAVAILABLE
    http_status = 503


class StoreUnavailable(FractaError):
    """The state store's database cannot be used: unreachable, refusing the login, no such
    database, or lost for longer than the retry time. Its URL is shown without the password."""

    exit_code = EXIT_UNAVAILABLE
    http_status = 503


class ClusterError(FractaError):
    """The Kubernetes API refused or could not answer a launcher's request (create, delete,
    list, logs): what was asked, and the API's status and reason, never a token."""

    exit_code = EXIT_UNAVAILABLE
    http_status = 503

    def __init__(self, message: str, hint: str = "", status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status  # the API's HTTP status, when it answered


class SchemaTooNew(FractaError):
    """The database's schema was made by a newer fracta than this one.

    Exit 2, not 8: nothing is down and retrying cannot help; this fracta and this database do
    not go together, a set-up problem like a bad config, fixed by upgrading fracta (or pointing
    state.url at another database)."""

    exit_code = EXIT_USAGE
    http_status = 409

    def __init__(self, database: str, found: int, known: int) -> None:
        super().__init__(
            f"the database {database} has schema version {found}, newer than this fracta knows "
            f"(version {known}): a newer fracta has used it",
            "upgrade fracta to the version the other control planes run (pip install -U 'fracta[postgres]'), "
            "or point state.url (FRACTA_DATABASE_URL) at another database",
        )
        self.found = found
        self.known = known


class GraphQueryError(FractaError):
    """The knowledge graph refused a query: its own error message, said as it said it."""

    exit_code = EXIT_USAGE
    http_status = 422


class GraphUnavailable(FractaError):
    """The knowledge graph (FalkorDB) cannot be reached, or is not set up here."""

    exit_code = EXIT_UNAVAILABLE
    http_status = 503


class GitError(FractaError):
    """A git (or other) command failed; carries the command, return code and output."""

    def __init__(self, cmd: list[str], returncode: int, stdout: str, stderr: str, hint: str = "") -> None:
        shown = " ".join(cmd)
        detail = (stderr or stdout).strip()
        super().__init__(f"command failed ({returncode}): {shown}\n{detail}".rstrip(), hint)
        self.cmd = cmd
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class MergeConflict(FractaError):
    exit_code = EXIT_CONFLICT
    http_status = 409

    def __init__(self, branch: str, files: list[str]) -> None:
        listing = "\n".join(f"  {f}" for f in files)
        super().__init__(
            f"merging {branch} would conflict in {len(files)} file(s); nothing was changed:\n{listing}",
            f"resolve by hand (git merge {branch}), or ask the agent to merge your branch into its own first",
        )
        self.branch = branch
        self.files = files


class IdempotencyConflict(FractaError):
    """An idempotency key repeated with a different message: the key names the first one."""

    exit_code = EXIT_CONFLICT
    http_status = 409


class StrategyError(FractaError):
    """A strategy could not be loaded or run. `details` is structured data for the faces (a failed
    step's name, the finished steps' results, what a contract misses)."""

    def __init__(self, message: str, hint: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.details = details


class StrategyNotFound(StrategyError):
    exit_code = EXIT_NOT_FOUND
    http_status = 404


class StrategyInvalid(StrategyError):
    """A strategy file that does not import, or declares a cycle, an unknown step, a bad contract."""

    exit_code = EXIT_USAGE
    http_status = 422


class ContractUnsatisfied(StrategyError):
    """The bindings in fracta.yaml cannot give a strategy the data its contract requires."""

    exit_code = EXIT_USAGE
    http_status = 422


class StepFailed(StrategyError):
    """A step raised or ran past its timeout; the steps finished before it keep their results."""

    http_status = 500


class StrategyRunnerUnavailable(StrategyError):
    exit_code = EXIT_UNAVAILABLE
    http_status = 503
