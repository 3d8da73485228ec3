"""A real PostgreSQL server for the tests, started by the suite itself (never mocked).

Each pytest process (each xdist worker) that runs a PostgreSQL test starts its own server, about
a second: binaries from /usr/lib/postgresql/<highest>/bin (else `pg_config --bindir`, else PATH),
a data folder in a temporary folder (/dev/shm when it has room), a free port on 127.0.0.1, fsync
off. As root, initdb and the server run as the `postgres` user (PostgreSQL refuses root).

Local (socket) logins are trusted, for the tests' own administration; TCP logins need a password
(scram-sha-256), so the URLs the code under test gets carry one and a wrong password is refused
as it would be in production. A watchdog process stops the server if the test process dies
without doing so, so no server outlives the run.

No PostgreSQL to be had (no binaries, no psycopg): the tests skip, loudly (conftest.py repeats it
in the terminal summary); with FRACTA_REQUIRE_POSTGRES=1 (scripts/test sets it when
scripts/setup-postgres found the server) they fail instead.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    import psycopg

REQUIRED = os.environ.get("FRACTA_REQUIRE_POSTGRES") == "1"  # read before any fixture clears FRACTA_*
SKIP_MARK = "PostgreSQL is not available"
SUPERUSER = "postgres"
START_TIMEOUT = 60

# Runs apart from the tests: when the test process is gone, stop its server and remove its folder.
WATCHDOG = """
import json, os, shutil, subprocess, sys, time
pid, stop, base = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base)
shutil.rmtree(base, ignore_errors=True)
"""


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's highest version, pg_config's, or PATH's."""

    def usable(folder: Path) -> bool:
        return all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))

    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if usable(p)]
    if found:
        return max(found, key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0])
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and usable(Path(out)):
            return Path(out)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and usable(Path(initdb).parent) else None


def unavailable_reason() -> str | None:
    """Why no PostgreSQL can be had here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if find_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) found (run scripts/setup-postgres)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root, and there is no `postgres` user to run the server as"
    return None


def skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{SKIP_MARK}: {reason}, but FRACTA_REQUIRE_POSTGRES=1 requires these tests to run")
    pytest.skip(f"{SKIP_MARK}: {reason}", allow_module_level=True)


def require() -> None:
    """Skip (loudly) or fail, as the fixtures do, when no PostgreSQL can be had: for a test module
    that imports psycopg, before it does."""
    reason = unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)


@dataclass
class PgServer:
    """A running server: its address, the superuser's password, and helpers to administer it."""

    bindir: Path
    base: Path  # holds data/, the socket, the log and the password file
    port: int
    password: str
    host: str = "127.0.0.1"
    options: str = ""  # the server's command-line options (restart starts it with them again)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """postgresql://user:password@127.0.0.1:port/dbname (the superuser's password by default)."""
        secret = self.password if password is None else password
        return f"postgresql://{quote(user, safe='')}:{quote(secret, safe='')}@{self.host}:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection over the local socket (trusted)."""
        import psycopg

        return psycopg.connect(host=str(self.base), port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True)

    def create_database(self) -> str:
        """A fresh empty database; returns its name."""
        name = f"t_{secrets.token_hex(6)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_role(self, name: str, password: str, *, dbname: str | None = None) -> str:
        """A login role with a password (owning `dbname` if given); returns its URL."""
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            if dbname is not None:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(name))
                )
        return self.url(dbname or "postgres", user=name, password=password)

    def terminate(self, pid: int) -> bool:
        """Kill one backend (as a lost connection would look to its client)."""
        with self.admin() as conn:
            row = conn.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()
        return bool(row and row[0])

    def restart(self, down_for: float = 0.0) -> None:
        """Crash and come back: stop at once (as a power cut would look to clients: no checkpoint,
        crash recovery at start), stay down `down_for` seconds, start on the same port and data."""
        ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(START_TIMEOUT)]
        for args in (["-m", "immediate", "stop"], ["-l", str(self.log), "-o", self.options, "start"]):
            if args[-1] == "start":
                time.sleep(down_for)
            proc = subprocess.run(
                _as_owner([*ctl, *args]),
                cwd=self.base,
                env=_env(),
                capture_output=True,
                text=True,
                check=False,
                timeout=START_TIMEOUT + 10,
            )
            if proc.returncode != 0:
                log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                raise RuntimeError(f"pg_ctl {args[-1]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}\n{log}")

    def stop(self) -> None:
        """Stop at once (no checkpoint: the data is thrown away) and remove the folder."""
        subprocess.run(
            _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            cwd=self.base,
            env=_env(),
            capture_output=True,
            check=False,
            timeout=START_TIMEOUT,
        )
        shutil.rmtree(self.base, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.send_signal(signal.SIGKILL)
            self._watchdog.wait()


def start(bindir: Path) -> PgServer:
    """initdb a fresh cluster and start it on a free port; raises with the server's log on failure."""
    base = Path(tempfile.mkdtemp(prefix="fracta-pg-", dir=_temp_root()))
    password = secrets.token_urlsafe(12)
    (base / "password").write_text(password + "\n")
    if os.geteuid() == 0:  # PostgreSQL runs as its own user; it needs to own its folder
        owner = pwd.getpwnam(SUPERUSER)
        for path in (base, base / "password"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    initdb = [str(bindir / "initdb"), "-D", str(base / "data"), "-U", SUPERUSER, f"--pwfile={base / 'password'}"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"]
    _run(initdb, base)
    for _ in range(5):  # a free port may be taken by someone else before the server binds it
        port = _free_port()
        options = [
            f"-p {port}",
            f"-k {base}",
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c shared_buffers=16MB",
            "-c max_connections=200",
        ]
        server = PgServer(bindir, base, port, password, options=" ".join(options))
        cmd = [str(bindir / "pg_ctl"), "-D", str(server.data), "-l", str(server.log), "-w", "-t", str(START_TIMEOUT)]
        proc = subprocess.run(
            _as_owner([*cmd, "-o", server.options, "start"]),
            cwd=base,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT + 10,
        )
        if proc.returncode == 0:
            stop = _as_owner([str(bindir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"])
            server._watchdog = subprocess.Popen(
                [sys.executable, "-c", WATCHDOG, str(os.getpid()), json.dumps(stop), str(base)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            return server
        log = server.log.read_text(errors="replace") if server.log.exists() else ""
        if "could not bind" not in log and "already in use" not in log:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"pg_ctl start failed ({proc.returncode}): {proc.stdout}{proc.stderr}\n{log}")
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError("pg_ctl start failed five times: every free port was taken before the server bound it")


def _temp_root() -> str | None:
    """/dev/shm when it has room (a memory-backed data folder), else the usual temporary folder."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    room = stat.f_bavail * stat.f_frsize
    return "/dev/shm" if room > 1 << 30 and os.access("/dev/shm", os.W_OK) else None


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *cmd] if os.geteuid() == 0 else cmd


def _env() -> dict[str, str]:
    """This environment without libpq's variables (PGHOST, PGPORT, ...), which would redirect it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        _as_owner(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, check=False, timeout=START_TIMEOUT
    )
    if proc.returncode != 0:
        shutil.rmtree(cwd, ignore_errors=True)
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
