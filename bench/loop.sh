#!/usr/bin/env bash
# B6's bare isolation loop: what isolating a test fundamentally needs, and nothing more.
# One worker: in its own worktree WT, for each of N tests, one `git status --porcelain`
# (the state check) and one `bash -c CMD` (the test). No cleaning, no process-group
# kill, no log, no store: the floor grove's per-test cost is compared with.
#   bench/loop.sh WT N CMD
set -eu
wt=$1 n=$2 cmd=$3
cd "$wt"
for ((i = 0; i < n; i++)); do
  git status --porcelain >/dev/null
  bash -c "$cmd"
done
