"""`.fracta.example/` is exactly what fracta writes (see tests/example_format.py), and readable by it."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import example_format
from example_format import EXAMPLE, REGENERATE

from fracta import agents, mailbox
from fracta import repo as repo_mod
from fracta.store.files import mailbox as maildir


def describe(expected: example_format.Snapshot, actual: example_format.Snapshot) -> str:
    """What differs, file by file, as unified diffs (committed example first)."""
    out: list[str] = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            out.append(f"only in .fracta.example/: {key}")
        elif key not in expected:
            out.append(f"only in what fracta writes now: {key}")
        elif expected[key] != actual[key]:
            out += difflib.unified_diff(
                (expected[key] or "").splitlines(),
                (actual[key] or "").splitlines(),
                f".fracta.example/{key}",
                f"written now: {key}",
                lineterm="",
            )
    return "\n".join(out)


def test_the_committed_example_is_what_fracta_writes(tmp_path: Path) -> None:
    r = example_format.generate(tmp_path)
    written = example_format.snapshot(r.state, r.root)
    committed = example_format.snapshot(EXAMPLE)
    assert written == committed, (
        "the on-disk format changed, so .fracta.example/ no longer matches what fracta writes.\n"
        f"If the change is intended, regenerate the example with:\n    {REGENERATE}\n"
        "then review `git diff -- .fracta.example/` and update .fracta.example/README.md.\n\n"
        + describe(committed, written)
    )


def test_tokens_are_private_to_their_owner(tmp_path: Path) -> None:
    r = example_format.generate(tmp_path)
    tokens = [r.token_path, *(r.agent_dir(name) / "token" for name in ("api", "ui"))]
    assert {oct(path.stat().st_mode & 0o777) for path in tokens} == {"0o600"}


def test_fracta_reads_the_example_as_it_reads_a_real_state_folder() -> None:
    example = repo_mod.Repo(root=EXAMPLE.parent, git_common_dir=None, state=EXAMPLE)
    found, problems = agents.list_all(example)
    assert [a.name for a in found] == ["api", "ui"]
    assert problems == []
    for name, unread, held, read in (("api", 2, 0, 0), ("ui", 0, 0, 1), ("chessmaster", 0, 1, 0)):
        box = example.inbox_dir(name)
        assert mailbox.unread_count(example, name) == unread
        assert len(list((box / "pending").glob("[0-9]*"))) == held
        assert len(list((box / "cur").glob("[0-9]*"))) == read
        for path in [p for sub in ("tmp", "new", "pending", "cur") for p in (box / sub).glob("[0-9]*")]:
            msg = maildir.parse(path, path.read_bytes(), read=path.parent.name == "cur")
            assert msg.id == path.name.split("+")[0] and msg.to == name  # pending/<id>+<receipt>+<ms>
        for path in (box / "keys").glob("*"):
            assert maildir.parse(path, path.read_bytes(), read=False).dedup_key == path.name


def test_the_example_readme_explains_every_file_and_folder() -> None:
    readme = (EXAMPLE / example_format.README).read_text()
    names = {re.sub(r"^\d{19}\..*", "message", Path(key.rstrip("/")).name) for key in example_format.snapshot(EXAMPLE)}
    names -= {"api", "ui", "message"}  # the agents' names and the messages are the scenario's
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f".fracta.example/README.md does not mention {missing}"
