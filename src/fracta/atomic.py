"""Every write under .fracta/ goes through here: atomic replace, locks, appends, Maildir delivery.

A reader never sees a half-written file and a crash never leaves one visible: files are written
to a temporary name in the same folder, fsync'd, then renamed over the target.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CorruptRecord, LockTimeout

TMP_MARK = ".tmp."
DEFAULT_LOCK_TIMEOUT = 30.0


def _rand() -> str:
    """A random suffix for temporary names (os.urandom: the secrets module costs 5 ms to import)."""
    return os.urandom(4).hex()


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: a short write (a signal, a full disk) goes on with the rest."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}.{_rand()}")


def fsync_dir(folder: Path | str) -> None:
    """Make a rename into `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _OpenFiles:
    """Descriptors kept open for the per-message path (event appends), so that a message does not
    pay for opening the same file again and again.

    A file renamed, removed or replaced since it was opened is opened afresh (a stat
    of the path, much cheaper than an open and a close, tells whether it is the same). At
    most LIMIT are kept: beyond that the least recently opened unused one is closed (a
    descriptor is never closed while a caller holds it).
    """

    LIMIT = 64

    def __init__(self) -> None:
        self._fds: dict[tuple[str, int], int] = {}
        self._files: dict[int, tuple[int, int]] = {}  # fd -> (inode, device) of what it opened
        self._users: dict[int, int] = {}  # fd -> callers holding it
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        # The parent's other threads, which may have held the lock or a descriptor, are gone.
        self._lock = threading.Lock()
        self._users = {}

    def hold(self, path: str, flags: int) -> int:
        key = (path, flags)
        with self._lock:
            fd = self._fds.get(key)
            if fd is not None and not _names(path, self._files[fd]):
                del self._fds[key]
                self._close_unused(fd)
                fd = None
            if fd is None:
                fd = os.open(path, flags, 0o644)
                opened = os.fstat(fd)
                self._fds[key] = fd
                self._files[fd] = (opened.st_ino, opened.st_dev)
                self._evict()
            self._users[fd] = self._users.get(fd, 0) + 1
            return fd

    def release(self, fd: int) -> None:
        with self._lock:
            left = self._users.pop(fd) - 1
            if left:
                self._users[fd] = left
            elif fd not in self._fds.values():
                self._close(fd)  # dropped from the cache while it was held

    def _close_unused(self, fd: int) -> None:
        if fd not in self._users:
            self._close(fd)

    def _close(self, fd: int) -> None:
        del self._files[fd]
        os.close(fd)

    def _evict(self) -> None:
        for key in list(self._fds):
            if len(self._fds) <= self.LIMIT:
                return
            fd = self._fds[key]
            if fd not in self._users:
                del self._fds[key]
                self._close(fd)


def _names(path: str, file: tuple[int, int]) -> bool:
    """Whether `path` still names `file` (inode, device)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_dev) == file


_open_files = _OpenFiles()
os.register_at_fork(after_in_child=_open_files.after_fork)


def write_bytes(
    path: Path, data: bytes, *, durable: bool = True, mode: int = 0o644, mtime_ns: int | None = None
) -> None:
    """Atomically replace `path` with `data`; `durable` also fsyncs the file and its folder.

    `mtime_ns` sets the file's times before it becomes visible, for readers that compare them.
    """
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            _write_all(fd, data)
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(path: Path, text: str, *, durable: bool = True, mode: int = 0o644, mtime_ns: int | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), durable=durable, mode=mode, mtime_ns=mtime_ns)


def write_json(path: Path, data: dict[str, Any], *, durable: bool = True, mode: int = 0o644) -> None:
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), durable=durable, mode=mode)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; a truncated or corrupt file raises CorruptRecord naming it."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = "empty file" if not raw.strip() else f"not valid JSON ({exc})"
        raise CorruptRecord(path, problem) from None
    if not isinstance(data, dict):
        raise CorruptRecord(path, f"expected a JSON object, found {type(data).__name__}")
    return data


@contextlib.contextmanager
def lock(
    path: Path,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    *,
    unless: Callable[[], bool] | None = None,
    shared: bool = False,
    make_folder: bool = True,
) -> Iterator[bool]:
    """Hold an exclusive (or, with `shared`, a shared) lock on `path` (a lock file). The OS
    releases it if the holder dies. Without `make_folder`, a missing folder raises FileNotFoundError.

    While waiting, `unless()` is checked between tries: once it is true, stop waiting and yield
    False without the lock (the work the lock guards was done by someone else). Otherwise yield
    True, holding the lock.

    A plain flock on our own descriptor: filelock cost about 130 us a lock and slept 50 ms
    between tries under contention, which made progress.md the bottleneck of every send.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # as filelock did: create the folder of the lock file
        if not make_folder:
            raise
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield _flock(fd, path, timeout, unless, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    finally:
        os.close(fd)  # closing releases the flock


def _flock(fd: int, path: Path, timeout: float, unless: Callable[[], bool] | None, mode: int = fcntl.LOCK_EX) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if timeout <= 0:
            raise LockTimeout(path, timeout) from None
    # Held elsewhere: poll, finely at first (most holds last well under a millisecond), then
    # every millisecond, so a waiter notices the release quickly without spinning.
    deadline = time.monotonic() + timeout
    delay = 0.0001
    while True:
        if unless is not None and unless():
            return False
        time.sleep(delay)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(path, timeout) from None
        delay = min(delay * 1.5, 0.001)


WHOLE_WRITE = 65536  # lines up to this size are appended with one write() and no lock


def append_line(path: Path, line: str) -> None:
    """Append one whole line; concurrent appenders never interleave partial lines.

    A line of ordinary size goes out in a single O_APPEND write(), which a local file system
    performs whole, under the file's own lock, after every earlier one: no flock is needed (it
    would double the cost of every event). A longer line, which could be written in pieces, is
    appended under an flock that every such writer takes.
    """
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    if len(data) <= WHOLE_WRITE:
        fd = _open_files.hold(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            written = os.write(fd, data)
        finally:
            _open_files.release(fd)
        if written == len(data):
            return
        data = data[written:]  # a short write (a full disk, a signal): the rest under the lock
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _write_all(fd, data)
    finally:
        os.close(fd)  # closing releases the flock


def rotate(path: Path, keep: int) -> None:
    """Shift `path` to `path`.1 (and .1 to .2, ...), dropping the oldest beyond `keep`; the caller
    holds the lock that its writers take. Each step is one rename, oldest first: a crash midway
    leaves every line in some file (a number may be missing until the next rotation)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}.{keep}")
    for n in range(keep - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}.{n}", f"{path}.{n + 1}")
    os.rename(path, f"{path}.1")
    fsync_dir(path.parent)


def ensure_dirs(*folders: Path, mode: int = 0o755) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True, mode=mode)


# --- Maildir: write into tmp/, rename into new/; reading renames new/ -> cur/ -------------------


def maildir_deliver(maildir: Path, name: str, data: bytes) -> None:
    """Deliver one message durably: it is on disk when this returns, and visible only once whole.

    The message is written into tmp/ and fsync'd, which makes it durable with its name there
    (ext4, XFS and btrfs write a new file's folder entry with its first fsync); only then is it renamed
    into new/. That rename is not fsync'd: a crash that loses it leaves the whole message in
    tmp/, and maildir_recover (run by every reader) finishes the delivery. So one fsync a
    message, and never a torn message in new/.
    """
    # Plain strings: this runs once per message, and pathlib's joins were a tenth of its CPU.
    box = os.fspath(maildir)
    tmp, final = f"{box}/tmp/{name}", f"{box}/new/{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:
        os.rename(tmp, final)
    except FileNotFoundError:
        # A reader recovering orphans took it first (the sender stalled for ORPHAN_AGE between
        # its fsync and its rename): delivered all the same. Otherwise the inbox itself is gone.
        if not _delivered(box, name):
            raise


def _delivered(box: str, name: str) -> bool:
    """Whether the message is in new/, pending/ or cur/ (looked up in the order messages move).

    In pending/ its name carries its reader and the time: pending/<name>+<holder>+<ns>.
    """
    if os.path.exists(f"{box}/new/{name}"):
        return True
    try:
        held = os.listdir(f"{box}/pending")  # small: only messages awaiting their reader's acknowledgement
    except FileNotFoundError:
        held = []
    return any(entry.startswith(f"{name}+") for entry in held) or os.path.exists(f"{box}/cur/{name}")


def maildir_move(maildir: Path, src: str, dst: str) -> bool:
    """Rename `src` to `dst` (both relative to the Maildir, e.g. new/<id> to pending/<id>+...);
    False when another process moved it first. The rename decides between racing readers."""
    box = os.fspath(maildir)
    try:
        os.rename(f"{box}/{src}", f"{box}/{dst}")
    except FileNotFoundError:
        return False
    return True


def maildir_deliver_once(maildir: Path, name: str, data: bytes, key: str, reuse: Callable[[bytes], bool]) -> bool:
    """Deliver one message as maildir_deliver does, but once per `key`; False when an earlier one stands.

    keys/<key> is a hard link to the message delivered under that key. It is made once the
    message is written whole and before its one fsync (which makes the link durable with the
    file), and stays valid as the message moves from folder to folder (the same inode): making
    it is the send's commit point. A message in tmp/ without its key link was never committed
    and is never delivered (mailbox._whole). When keys/<key> exists and `reuse(its bytes)`
    accepts it, nothing is stored: that earlier message's delivery is finished here if a crash
    interrupted it, and False is returned. When `reuse` refuses it (an old or torn message),
    the key is moved over to this message, under keys/.lock.
    """
    box = os.fspath(maildir)
    tmp = f"{box}/tmp/{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    linked = False
    try:
        try:
            _write_all(fd, data)
            linked = _link_key(box, tmp, key, reuse)
            if linked:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        if not linked:  # a linked message is committed: readers deliver it (maildir_recover)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    if not linked:
        os.unlink(tmp)  # ours, never committed: the earlier message stands for it
        _finish(box, key)
        return False
    try:
        os.rename(tmp, f"{box}/new/{name}")
    except FileNotFoundError:
        if not _delivered(box, name):  # a retry or a reader finished it first; else the inbox is gone
            raise
    return True


def _link_key(box: str, tmp: str, key: str, reuse: Callable[[bytes], bool]) -> bool:
    """Make keys/<key> name `tmp`; False when it names an earlier message that `reuse` accepts."""
    keys = f"{box}/keys"
    try:
        try:
            os.link(tmp, f"{keys}/{key}")
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(keys)  # the inbox's first keyed message (or one made before keys/ existed)
            os.link(tmp, f"{keys}/{key}")
        return True
    except FileExistsError:
        pass
    if _reusable(f"{keys}/{key}", reuse):
        return False
    with lock(Path(f"{keys}/.lock")):
        if _reusable(f"{keys}/{key}", reuse):  # another sender took the key over meanwhile
            return False
        staged = f"{keys}/.{key}{TMP_MARK}{os.getpid()}.{_rand()}"
        os.link(tmp, staged)
        os.replace(staged, f"{keys}/{key}")
    return True


def _reusable(path: str, reuse: Callable[[bytes], bool]) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        return reuse(read_all(fd))
    finally:
        os.close(fd)


def _finish(box: str, key: str) -> None:
    """Deliver the message keys/<key> names if a crash left it in tmp/ (its sender died before its rename)."""
    try:
        fd = os.open(f"{box}/keys/{key}", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        linked = os.fstat(fd)
        for name in os.listdir(f"{box}/tmp"):
            try:
                here = os.stat(f"{box}/tmp/{name}")
            except FileNotFoundError:
                continue
            if (here.st_ino, here.st_dev) != (linked.st_ino, linked.st_dev):
                continue
            os.fsync(fd)  # its sender may have died before its own fsync
            if _delivered(box, name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{box}/tmp/{name}")  # a second name for a message already delivered
            else:
                with contextlib.suppress(FileNotFoundError):  # its sender or a reader moved it first
                    os.rename(f"{box}/tmp/{name}", f"{box}/new/{name}")
            return
    finally:
        os.close(fd)


@dataclass
class Recovery:
    delivered: list[str] = field(default_factory=list)  # whole messages moved into new/
    removed: list[str] = field(default_factory=list)  # torn ones (never acknowledged) deleted


def maildir_recover(
    maildir: Path,
    whole: Callable[[str, bytes], bool],
    older_than: float,
    remove_torn_after: float | None = None,
) -> Recovery:
    """Finish the deliveries that a dead sender or a crash left in tmp/.

    A file in tmp/ untouched for `older_than` seconds that `whole(name, data)` accepts was
    fsync'd (or is fsync'd here) and is renamed into new/, unless new/ or cur/ already holds
    it (a crash can leave both names). Senders, other readers and this may race on the same
    file: the rename decides, exactly one of them moves it. A torn file is never delivered;
    with `remove_torn_after`, one untouched that long is deleted (its send never returned).
    """
    box = os.fspath(maildir)
    found = Recovery()
    try:
        entries = os.listdir(f"{box}/tmp")
    except FileNotFoundError:
        return found
    if not entries:
        return found
    now = time.time()
    for name in entries:
        tmp = f"{box}/tmp/{name}"
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            continue  # delivered meanwhile
        try:
            age = now - os.fstat(fd).st_mtime
            if age < older_than:
                continue  # a sender is most likely still at it
            if not whole(name, read_all(fd)):
                if remove_torn_after is not None and age >= remove_torn_after:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                        found.removed.append(name)
                continue
            if _delivered(box, name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)  # a second name for a message already delivered
                continue
            os.fsync(fd)  # its sender may have died before its own fsync was done
        finally:
            os.close(fd)
        try:
            os.rename(tmp, f"{box}/new/{name}")
        except FileNotFoundError:
            continue  # its sender, or another reader, moved it first
        found.delivered.append(name)
    if found.delivered:
        fsync_dir(f"{box}/new")  # rare: worth making the recovery itself durable at once
    return found


def read_all(fd: int) -> bytes:
    """Everything from `fd`'s position to the end of the file."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def remove_stale_temp_files(folder: Path, older_than: float) -> list[Path]:
    """Delete temporary files left by writers that died mid-write (they were never visible).

    A Maildir's tmp/ is not swept here: a message there may be whole and owed to its recipient
    (maildir_recover decides).
    """
    removed: list[Path] = []
    cutoff = time.time() - older_than
    for entry in _walk_files(folder):
        if TMP_MARK not in entry.name:
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed.append(entry)
    return removed


def _walk_files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        # Worktrees hold the user's files, never ours.
        dirs[:] = [d for d in dirs if not (root == str(folder) and d == "worktrees")]
        for name in files:
            yield Path(root) / name


# --- Whole folders: appear complete or not at all, vanish at once ---------------------------


def create_dir(final: Path, populate: Callable[[Path], None]) -> bool:
    """Build a folder under a hidden name, then rename it into place; False if `final` exists."""
    staging = final.with_name(f".new-{final.name}-{_rand()}")
    try:
        staging.mkdir(parents=True)
        populate(staging)
        try:
            os.rename(staging, final)
        except OSError:
            return False  # renaming onto a non-empty folder fails: someone created it first
        fsync_dir(final.parent)
        return True
    finally:
        _rmtree(staging)


def remove_dir(folder: Path) -> None:
    """Rename the folder away first so readers see it vanish at once, never half-deleted."""
    grave = folder.with_name(f".gone-{folder.name}-{_rand()}")
    os.rename(folder, grave)
    _rmtree(grave)


def _rmtree(path: Path) -> None:
    import shutil  # here, not at import time: it pulls in compression modules every CLI start would pay for

    shutil.rmtree(path, ignore_errors=True)


def touch(path: Path) -> None:
    """Bump a file's mtime (used as a cheap 'last activity' marker); absent files are ignored."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


def remove_stale_dirs(parent: Path, prefixes: tuple[str, ...], older_than: float) -> int:
    """Remove leftover staging/removal folders (see create_dir, remove_dir) older than `older_than`."""
    cutoff = time.time() - older_than
    count = 0
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.startswith(prefixes):
            continue
        path = parent / entry
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                _rmtree(path)
                count += 1
    return count
