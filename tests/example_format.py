"""The scenario behind .fracta.example/, and the normalization that makes it comparable.

tests/test_example_format.py runs `generate` in a temporary repo and compares the result with the
committed example, both through `snapshot`. After an intended change of the on-disk format,
regenerate the example (and review the diff, and .fracta.example/README.md) with:

    .venv/bin/python tests/example_format.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fracta import mailbox, progress, project
from fracta import repo as repo_mod

EXAMPLE = Path(__file__).resolve().parent.parent / ".fracta.example"
REGENERATE = ".venv/bin/python tests/example_format.py"
README = "README.md"  # the example's own documentation, not part of the format
KEEP = ".keep"  # git keeps no empty folder: the example marks each with this empty file

# What varies from run to run, and what it is replaced with on both sides of the comparison.
# Each pattern matches only the exact shape fracta writes, so a change of shape shows up as a diff.
ROOT_PLACEHOLDER = "/path/to/project"
TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\b")
TIME_PLACEHOLDER = "2025-01-01T12:00:00.000Z"
MESSAGE_ID = re.compile(r"\b\d{19}\.\d+\.\d+\.[0-9a-f]{6}\b")  # <time_ns>.<pid>.<seq>.<random>
PENDING = re.compile(r"\+[0-9a-f]{16}\+\d{19}\b")  # pending/<id>+<holder>+<ns since the epoch>
PENDING_PLACEHOLDER = "+0123456789abcdef+1735732800000000000"
ACKED = re.compile(r"^[0-9a-f]{16}$", re.MULTILINE)  # inbox/acked: one acknowledged holder a line
ACKED_PLACEHOLDER = "0123456789abcdef"
RECEIPT = re.compile(r'"receipt":"[0-9a-f]{16}-\d{19}"')  # in events.jsonl: <holder>-<ns>
RECEIPT_PLACEHOLDER = '"receipt":"0123456789abcdef-1735732800000000000"'
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}\n")  # secrets.token_urlsafe(32)
TOKEN_PLACEHOLDER = "EXAMPLE-PLACEHOLDER-not-a-real-token\n"

Snapshot = dict[str, str | None]  # relative path -> normalized text; folders end with / and map to None


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def generate(folder: Path) -> repo_mod.Repo:
    """Run the example's scenario through the real code in a new git repo under `folder`."""
    root = folder / "project"
    root.mkdir()
    _git(root, "init", "-q")
    _git(
        root,
        "-c",
        "user.name=example",
        "-c",
        "user.email=example@fracta.invalid",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "start",
    )
    r = repo_mod.find(root, env={})
    project.init(r)
    project.join(r, "api", intent="design the REST endpoints", workspace=r.root)
    project.join(r, "ui", intent="sketch the login page", workspace=r.root)
    mailbox.send(r, "chessmaster", "api", "Please also add /logout.\n", key="logout-request")
    [ready] = mailbox.send(
        r,
        "api",
        "ui",
        "POST /login is ready on feature/api.\nThe token comes back in the JSON body.\n",
        subject="login",
    )
    mailbox.acknowledge(r, "ui", mailbox.read(r, "ui").receipt)
    project.set_intent(r, "ui", "build the login form against the api's endpoints")
    mailbox.send(r, "ui", "api", "Thanks: wiring the form to it now.\n", reply_to=ready.id)
    mailbox.send(r, "api", "chessmaster", "Endpoints drafted; ready for a first review.\n")
    progress.record_action(r, "asked api to add /logout")
    mailbox.read(r, "chessmaster")  # handed out, not acknowledged yet: held in pending/
    return r


def snapshot(folder: Path, root: Path | None = None) -> Snapshot:
    """Every folder and file under `folder`, normalized; `root` (a repo root) becomes a placeholder."""
    raw: Snapshot = {}
    for dirpath, _dirs, filenames in os.walk(folder):
        here = Path(dirpath).relative_to(folder)
        if here != Path("."):
            raw[f"{here.as_posix()}/"] = None
        for name in filenames:
            if name == KEEP or (here == Path(".") and name == README):
                continue
            raw[(here / name).as_posix()] = (Path(dirpath) / name).read_text()
    return normalize(raw, root)


def normalize(raw: Snapshot, root: Path | None) -> Snapshot:
    # Message ids sort by send time: map them, in order, to fixed ids that keep that order.
    found = sorted({m for key, text in raw.items() for m in MESSAGE_ID.findall(f"{key}\n{text or ''}")})
    ids = {old: f"{1735732800000000000 + (n + 1) * 1000000}.4242.{n}.{n + 1:06x}" for n, old in enumerate(found)}

    def clean(text: str) -> str:
        if root is not None:
            text = text.replace(str(root), ROOT_PLACEHOLDER)
        text = MESSAGE_ID.sub(lambda m: ids[m.group(0)], text)
        text = PENDING.sub(PENDING_PLACEHOLDER, text)
        text = RECEIPT.sub(RECEIPT_PLACEHOLDER, text)
        return TIME.sub(TIME_PLACEHOLDER, text)

    out: Snapshot = {}
    for key, text in raw.items():
        if text is not None and key.rsplit("/", 1)[-1] == "token" and TOKEN.fullmatch(text):
            text = TOKEN_PLACEHOLDER
        if text is not None and key.endswith("/inbox/acked"):
            text = ACKED.sub(ACKED_PLACEHOLDER, text)
        out[clean(key)] = None if text is None else clean(text)
    return dict(sorted(out.items()))


def write(snap: Snapshot, dest: Path) -> None:
    """Replace the example under `dest` with `snap` (keeping its README.md); mark empty folders."""
    dest.mkdir(exist_ok=True)
    for entry in dest.iterdir():
        if entry.name == README:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for key, text in snap.items():
        path = dest / key
        if text is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for key, text in snap.items():
        if text is None and not any((dest / key).iterdir()):
            (dest / key / KEEP).touch()


def main() -> int:
    # A git configuration of our own: the user's templates and hooks must not shape the example.
    os.environ.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    for var in [v for v in os.environ if v.startswith("FRACTA_")]:
        del os.environ[var]
    with tempfile.TemporaryDirectory(prefix="fracta-example-") as tmp:
        r = generate(Path(tmp))
        write(snapshot(r.state, r.root), EXAMPLE)
    print(f"regenerated {EXAMPLE}; review it with: git diff --stat -- .fracta.example/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
