"""The control-plane process: REST API and MCP gateway under uvicorn, the spawner and the reaper.

Only one runs per repository (it holds .fracta/control.lock for its lifetime). Killing it at
any moment loses nothing: agents run under their own runners, and on start it reconciles.
Run as `python -m fracta.control.server STATE_DIR [--foreground] [--log-format json|text]`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import (
    atomic,
    clock,
    commit_watch,
    delivery,
    environment,
    launchers,
    processes,
    progress,
    reaper,
    spares,
    spawner,
)
from .. import repo as repo_mod
from .. import store as store_mod
from ..errors import FractaError, LockTimeout
from ..store import base as store_base
from . import daemon
from .changes import Changes

log = logging.getLogger("fracta.control")


class Supervisor:
    """Wakes when the queue changes (watchdog on missions/, or the store's notifications) and on a
    slow timer; sleeps otherwise. Claims missions and supervises agents as `owner`, for leases
    it renews while it lives (store.lease_seconds): another control plane on the same store takes
    over what it held once they run out."""

    def __init__(self, repo: repo_mod.Repo, urls: spawner.Urls, changes: Changes | None = None) -> None:
        self.repo = repo
        self.urls = urls
        me = os.getpid()  # host, pid and start time: unique to this process, and checkable on this host
        self.owner = f"{socket.gethostname()}:{me}:{processes.start_time(me) or 0}"
        self.lease = store_mod.lease_of(repo)
        self.changes = changes or Changes()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.observer: Any = None
        self.unsubscribe: Callable[[], None] | None = None
        self.launcher = launchers.create(repo)  # launcher.kind's; local keeps a warm runner for the next spawn
        self.spares = spares.Pool(repo)  # keeps a checkout ready for the next spawn's worktree
        self.commits = commit_watch.Watcher(repo)  # records agents' commits the hook could not

    def kick(self) -> None:
        self.wake.set()
        self.spares.used()  # after a spawn: refill once spawns have been quiet for a moment

    def start_queued(self) -> None:
        """Start queued missions now, in the calling thread (the spawn request's)."""
        try:
            for name in self.schedule():
                log.info("started a queued agent", extra={"event": "mission.started", "agent": name})
        except FractaError as exc:  # the spawner's own pass retries
            log.warning("starting queued agents failed", extra={"event": "mission.start_failed", "error": exc.message})

    def schedule(self) -> list[str]:
        return spawner.schedule(self.repo, self.urls, self.launcher.start, owner=self.owner, lease=self.lease)

    def heard(self, topic: str) -> None:
        """A change the store told us about (from any process or control plane)."""
        self.changes.bump()
        if topic in (store_base.MISSIONS, store_base.RESYNC):
            self.wake.set()
        if topic != store_base.MISSIONS:  # progress.md mirrors the store: changes made elsewhere too
            progress.refresh(self.repo)

    def start(self) -> None:
        self.unsubscribe = self.repo.store.subscribe(self.heard)
        if self.unsubscribe is None:  # the files backend: watch missions/ and the event log ourselves
            self.watch_files()
        self.changes.pushed = True
        self.launcher.begin()
        self.spares.start()
        self.commits.start()
        threading.Thread(target=self.loop, name="supervisor", daemon=True).start()
        threading.Thread(target=self.renew, name="leases", daemon=True).start()

    def renew(self) -> None:
        """Keep this control plane's claims and supervision alive: a third of a lease apart."""
        while not self.stopping.wait(self.lease / 3):
            try:
                self.repo.store.missions.renew(self.owner, self.lease)
                self.repo.store.supervise(self.owner, self.lease)
                if self.repo.store.missions.pending()[0]:  # a claim another control plane let run out
                    self.wake.set()
            except FractaError as exc:  # the store away for a moment: the next renewal retries
                log.warning("renewing leases failed", extra={"event": "lease.renew_failed", "error": exc.message})

    def watch_files(self) -> None:
        """The files backend's pushes: missions/ wakes the spawner; an append to events.jsonl wakes
        the event streams (the web view, `fracta watch`), which otherwise looked every 0.2 s
        (bench/ui.py: event to screen p50 157 ms with that poll)."""
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        kick = self.kick
        changes = self.changes
        events_file = str(self.repo.events_path)

        class EventLog(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                path = str(getattr(event, "dest_path", "") or event.src_path)
                if path == events_file and event.event_type in {"created", "moved", "modified"}:
                    changes.bump()

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                # Only mission files and the wake file matter; the folder's own events (and our lock
                # and temp files, named with a leading dot) would wake us in a loop.
                if event.is_directory or event.event_type not in {"created", "moved", "modified", "deleted"}:
                    return
                path = str(getattr(event, "dest_path", "") or event.src_path)
                if not os.path.basename(path).startswith("."):  # our own temp and lock files
                    kick()

        self.observer = Observer()
        self.observer.schedule(Handler(), str(self.repo.missions_dir), recursive=False)
        self.observer.schedule(EventLog(), str(self.repo.events_path.parent), recursive=False)
        self.observer.daemon = True
        self.observer.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.observer is not None:
            self.observer.stop()
        if self.unsubscribe is not None:
            self.unsubscribe()
        self.launcher.close()
        self.spares.stop()
        self.commits.stop()

    def loop(self) -> None:
        interval = float(self.repo.config.integer("reaper.sweep_interval", minimum=1))
        next_full = 0.0
        while not self.stopping.is_set():
            full = time.monotonic() >= next_full
            try:
                # Start queued agents first (a spawn waits on this), then reconcile; start again
                # if the reaper freed slots.
                started = self.schedule()
                supervised = self.repo.store.supervise(self.owner, self.lease)
                swept = reaper.sweep(self.repo, full=full, only=supervised)
                if swept.lost or swept.removed:
                    extra = {"event": "reaper.swept", "lost": swept.lost, "removed": swept.removed}
                    log.info("the reaper settled lost or expired agents", extra=extra)
                if swept.finished or swept.lost or swept.removed:
                    started += self.schedule()
                if full:  # messages a running agent has left unread too long: an event each, once
                    delivery.flag_unread(self.repo, supervised)
                for name in started:
                    log.info("started a queued agent", extra={"event": "mission.started", "agent": name})
            except FractaError as exc:
                log.warning("supervisor pass failed", extra={"event": "supervisor.failed", "error": exc.message})
            except Exception:  # the supervisor must outlive any one bad pass
                log.exception("supervisor pass crashed", extra={"event": "supervisor.crashed"})
            if full:
                self.commits.poke()  # an event the OS dropped delays a commit by one sweep at most
                next_full = time.monotonic() + interval
            self.wake.wait(timeout=max(0.0, next_full - time.monotonic()))
            self.wake.clear()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int, setting: str = "control_plane") -> socket.socket:
    """A listening socket on host:port; a host that is not loopback is logged as a warning."""
    if not is_loopback(host):
        log.warning(
            f"{setting} bound to a non-loopback address: reachable from other machines",
            extra={"event": "listen.not_loopback", "setting": setting, "host": host},
        )
    # IPPROTO_TCP, not the default 0: accepted connections inherit it, and asyncio turns Nagle off
    # (TCP_NODELAY) only on sockets whose proto says TCP. With 0, a response written in two parts
    # (uvicorn's headers, then body) on a kept-alive connection waited for the client's delayed ACK:
    # ~40 ms a call. bench/graph.py, graph_query through the gateway in JSON mode: p50 52 ms -> 9 ms.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FractaError(
            f"cannot listen on {host}:{port} for the {setting.replace('_', ' ')}: {exc.strerror}",
            f"set {setting}.port in fracta.yaml to a free port (0 picks one)",
        ) from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}"


def serve_all(servers: list[tuple[Any, socket.socket, bool]], closing: threading.Event) -> int | None:
    """Serve each (ASGI app, socket, run its lifespan?) with uvicorn in this thread until SIGTERM/SIGINT.
    Returns the signal that stopped them (None if they ended by themselves).

    One signal handler stops them all (uvicorn's own would stop only one and re-raise the
    signal); `closing` is set first so that long-lived responses (event streams) end.
    """
    import asyncio
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    running = [
        (
            Server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    access_log=False,
                    lifespan="on" if lifespan else "off",
                    timeout_graceful_shutdown=10,
                )
            ),
            sock,
        )
        for app, sock, lifespan in servers
    ]

    stopped_by: list[int] = []

    def stop(signum: int | None = None) -> None:
        if signum is not None:
            stopped_by.append(signum)
        closing.set()
        for server, _ in running:
            server.should_exit = True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        tasks = [asyncio.ensure_future(server.serve(sockets=[sock])) for server, sock in running]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()  # one server ending (say, a failed start) ends the others
        await asyncio.gather(*tasks)

    asyncio.run(main())
    if not all(server.started for server, _ in running):
        raise FractaError("a server failed to start", "see the log above (or in .fracta/logs/) for why")
    return stopped_by[0] if stopped_by else None


def serve(
    repo: repo_mod.Repo, *, foreground: bool = False, log_format: str = "json", instance: str | None = None
) -> int:
    """Run the control plane until SIGTERM/SIGINT; its start and its end are logged.

    `instance` names one of several control planes sharing one store (postgres backend): its
    files are control-<instance>.json, .lock and .log. With the files backend, only one runs.
    """
    from .. import __version__, config_check, logs, names

    repo.require_initialized()
    config_check.check(repo.config_path)  # the whole of fracta.yaml, before anything starts
    if instance is not None:
        names.validate(instance)
    logs.setup(repo.logs_dir, f"control-{instance}" if instance else "control", foreground=foreground, fmt=log_format)
    if threading.current_thread() is threading.main_thread():
        logs.raise_on_signals()  # until it serves (serve_all handles them then): a logged exit, not a silent one
    with logs.exit_logged("control") as ending:
        extra = {"event": "control.started", "pid": os.getpid(), "version": __version__}
        log.info("control plane starting", extra=extra)
        ending.signal = _serve(repo, instance)
    return ending.code


def _serve(repo: repo_mod.Repo, instance: str | None) -> int | None:
    """Serve until a signal (returned) or a failure (raised)."""
    from ..gateway import app as gateway_app
    from ..strategies import sidecar as strategies_sidecar
    from . import app as app_mod

    # Many agents' messages and intents arrive here: coalesce progress.md regenerations.
    sink = progress.coalescer_for(repo)
    repo = dataclasses.replace(repo, progress_sink=sink)
    try:
        shared = instance is not None and store_mod.backend_of(repo) != "files"
        lock = repo.state / (f"control-{instance}.lock" if shared else "control.lock")
        info_path = daemon.instance_path(repo, instance)
        with atomic.lock(lock, timeout=0):
            _adopt_leftovers(repo)
            host = repo.config.text("control_plane.host")
            sock = listen(host, repo.config.integer("control_plane.port"))
            url = url_of(sock, host)
            try:
                endpoint = gateway_app.listen(repo)
            except BaseException:
                sock.close()
                raise
            me = os.getpid()
            atomic.write_json(
                info_path,
                {
                    "schema": 1,
                    "pid": me,
                    "pid_start": processes.start_time(me),
                    "url": url,
                    "gateway_url": endpoint.url,
                    "started_at": clock.now(),
                    # Names and PATH only, never values: what `fracta doctor` checks a spawn against.
                    "environment": environment.summary(os.environ),
                },
            )
            changes = Changes()
            supervisor = Supervisor(
                repo, spawner.Urls(control=url, gateway=agents_gateway(repo, endpoint.url)), changes
            )
            closing = threading.Event()
            app = app_mod.build(repo, supervisor.kick, closing.is_set, supervisor.start_queued, changes)
            embedded = _start_graph(repo)
            graph = None
            if embedded is not None:
                from ..graph import client, settings

                graph = client.Graph(settings.of(repo), embedded.socket, reconnect=embedded.ensure)
            gateway = gateway_app.build(repo, endpoint.host, kick=supervisor.kick, graph=graph)
            strategy_runner = strategies_sidecar.for_gateway(repo, endpoint.url)
            supervisor.start()
            extra = {"event": "control.listening", "url": url, "gateway_url": endpoint.url, "pid": me}
            log.info("control plane listening", extra=extra)
            try:
                return serve_all([(app, sock, False), (gateway, endpoint.sock, True)], closing)
            finally:
                supervisor.stop()
                strategy_runner.stop()
                if embedded is not None:
                    embedded.stop()
                sink.flush()
                _forget(info_path, me)
    except LockTimeout:
        info = daemon.read_info(repo, instance if shared else None)
        where = f" at {info.url} (pid {info.pid})" if info else ""
        hint = "fracta down stops it"
        if instance is not None and not shared:
            hint += "; several control planes side by side need the postgres backend (state.backend in fracta.yaml)"
        raise FractaError(f"a control plane is already running for {repo.root}{where}", hint) from None


def _start_graph(repo: repo_mod.Repo) -> Any:
    """The embedded knowledge graph (graph.Embedded), when fracta.yaml wants one; a graph that
    fails to start leaves the rest of the control plane working (its tools then say why)."""
    from ..graph import server as graph_server

    try:
        return graph_server.for_control_plane(repo)
    except FractaError as exc:
        log.warning("the knowledge graph failed to start", extra={"event": "graph.start_failed", "error": exc.message})
        return None


def _adopt_leftovers(repo: repo_mod.Repo) -> None:
    """Before answering anyone: make agents of what interrupted spawns or an older fracta left."""
    from .. import adopt

    try:
        found = adopt.recover(repo)
    except FractaError as exc:  # the reaper's full sweep tries again
        log.warning("could not look for leftovers", extra={"event": "adopt.scan_failed", "error": exc.message})
        return
    if found.adopted or found.annotated:
        extra = {"event": "adopt.recovered", "adopted": found.adopted, "annotated": found.annotated}
        log.warning("adopted leftovers", extra=extra)


def _forget(path: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError, FractaError):
        if atomic.read_json(path).get("pid") == pid:
            os.unlink(path)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="fracta-control")
    parser.add_argument("state")
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--log-format", choices=["json", "text"], default="json")
    parser.add_argument("--instance", default=None)
    args = parser.parse_args(argv)
    repo = repo_mod.find(env={"FRACTA_HOME": args.state})
    try:
        return serve(repo, foreground=args.foreground, log_format=args.log_format, instance=args.instance)
    except FractaError as exc:
        # Read by whoever started it (daemon.up): the error, its hint and the exit code to give.
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        print(f"exit: {exc.exit_code}", file=sys.stderr, flush=True)
        return exc.exit_code


def agents_gateway(repo: repo_mod.Repo, here: str) -> str:
    """The gateway URL agents are given: this one, or for Kubernetes Jobs the Service URL pods
    reach it by (launcher.kubernetes.gateway_url)."""
    if launchers.kind_of(repo) == launchers.KUBERNETES:
        return str(repo.config.resolved("launcher.kubernetes.gateway_url") or here)
    return here


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
