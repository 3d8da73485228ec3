"""The program the chaos run's `command` agents run: one POSIX shell script, several behaviours.

Everything an agent does that the invariants need is appended to logs *outside* the repository
(so no fracta action can remove them): the sha of each commit (commits.log), each uncommitted
change it leaves (dirty.log), and the JSON of every message it sent or read (sent-*, read-*).
Waiting agents wait for the run's gate file, and never longer than a bound.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

# behaviour -> what the agent does (the script's `case` below)
BEHAVIOURS = ("commit", "dirty", "sleep", "fail", "conflict", "chatty", "looper")
WAITING = frozenset({"dirty", "sleep", "chatty", "looper"})  # run until the gate opens (bounded)
GATE_TICKS = 900  # a waiting agent gives up after this many 0.1 s ticks, gate or not
CHATTY_ROUNDS = 15
LOOPER_COMMITS = 60

_SCRIPT = r"""# chaos agent: BEHAVIOUR IDENT (the run's paths are filled in below)
set -u
# Like Node (Claude Code, Codex, OpenCode), ignore SIGPIPE: an agent whose runner is gone keeps
# going (its writes to the closed output just fail) instead of dying at its next line of output.
trap '' PIPE
B=$1
ID=$2
LOG={log}
GATE={gate}
FR="{python} -m fracta"
ERR="$LOG/stderr-$ID.txt"  # what the fracta commands it runs say on stderr (checked for tracebacks)

wait_gate() {{
  i=0
  while [ ! -e "$GATE" ] && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done
}}

commit() {{  # commit a new file of its own, then log the commit's sha
  f="c-$ID-$1.txt"
  echo "commit $1 of $ID" > "$f"
  git add "$f" && git commit -q -m "$ID: $f" && echo "$ID $(git rev-parse HEAD)" >> "$LOG/commits.log"
}}

dirty() {{  # a tracked file changed and an untracked file added, neither committed
  echo "dirty $ID" >> README.md
  echo "uncommitted $ID" > "u-$ID.txt"
  echo "$ID README.md" >> "$LOG/dirty.log"
  echo "$ID u-$ID.txt" >> "$LOG/dirty.log"
}}

case $B in
  commit) commit 1; commit 2; commit 3 ;;
  dirty) commit 1; dirty; wait_gate ;;
  sleep) wait_gate ;;
  fail) commit 1; exit 3 ;;
  conflict)
    echo "conflict $ID" > shared.txt
    git commit -q -am "$ID: shared" && echo "$ID $(git rev-parse HEAD)" >> "$LOG/commits.log" ;;
  chatty)
    k=0
    while [ ! -e "$GATE" ] && [ $k -lt {rounds} ]; do
      k=$((k+1))
      $FR say chessmaster "chaos $ID $k" --from "$FRACTA_AGENT" --json > "$LOG/sent-$ID-$k.json" 2>> "$ERR"
      # A read that failed (the database away) acknowledged nothing: not a read of its messages.
      R="$LOG/read-$ID-$k.json"
      $FR inbox "$FRACTA_AGENT" --json > "$R" 2>> "$ERR" || mv "$R" "$LOG/failed-read-$ID-$k.json"
      sleep 0.3
    done ;;
  looper)
    k=0
    while [ ! -e "$GATE" ] && [ $k -lt {commits} ]; do k=$((k+1)); commit $k; sleep 1; done ;;
  *) echo "unknown behaviour $B" >&2; exit 2 ;;
esac
"""


def write_script(path: Path, log_dir: Path, gate: Path) -> Path:
    """Write the agent script for a run whose logs go to `log_dir` and whose gate is `gate`."""
    path.write_text(
        _SCRIPT.format(
            log=shlex.quote(str(log_dir)),
            gate=shlex.quote(str(gate)),
            python=shlex.quote(sys.executable),
            ticks=GATE_TICKS,
            rounds=CHATTY_ROUNDS,
            commits=LOOPER_COMMITS,
        )
    )
    return path


def command(script: Path, run: str, ident: str, behaviour: str) -> list[str]:
    """The spawn command: the markers go in the environment, so every child process carries them."""
    return ["env", f"CHAOS_RUN={run}", f"CHAOS_ID={ident}", "sh", str(script), behaviour, ident]
