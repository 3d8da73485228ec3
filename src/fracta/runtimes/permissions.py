"""What an agent may do without asking, by default: edit its worktree, run the project's tests and
the git commands its work needs, and nothing outside its worktree (docs/permissions.md).

An agent runs headless: a tool call that would need a person's approval is refused, so these lists
are what an agent can do at all. The Claude and OpenCode adapters turn them into their CLI's own
rules; the `test_commands` option of either replaces TEST_COMMANDS, and each adapter has a knob for
the rest (Claude's `allowed_tools`, OpenCode's `permission`).
"""

from __future__ import annotations

# To commit its work, see what changed, and take main's changes when the chessmaster says so.
GIT_COMMANDS = ("git status", "git diff", "git log", "git show", "git add", "git commit", "git merge")
# The usual ways a project's tests are run; a project with another adds it with `test_commands`.
TEST_COMMANDS = (
    "python -m pytest",
    "python3 -m pytest",
    "pytest",
    "python -m unittest",
    "python3 -m unittest",
    "npm test",
    "cargo test",
    "go test",
    "make test",
)
# Commands that only read (OpenCode allows every command unless told otherwise; Claude Code has
# its own list of these and allows them by itself).
READ_COMMANDS = ("cd", "ls", "cat", "head", "tail", "wc", "pwd", "grep", "rg", "diff")
