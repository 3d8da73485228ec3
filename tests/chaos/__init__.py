"""The chaos test's harness: a seeded random run of fracta operations through the real CLI.

- `procs`: finding and signalling the processes of one run (by an environment marker, by pid).
- `world`: the run's folder, its CLI calls, and the model of what should exist.
- `agent`: the shell script the `command` agents run (commit, leave work, sleep, fail, ...).
- `ops`: the operations, as a plan drawn from the seed and as concrete, replayable steps.
- `invariants`: fracta's promises, checked as the run goes and at its end.
"""
