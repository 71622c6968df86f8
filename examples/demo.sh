#!/usr/bin/env bash
# The grove demo: makes a throwaway git repository from examples/repo and
# examples/plans, runs every plan with grove, and shows the reports it wrote.
# One plan fails on purpose and one is flaky, so grove exits 1: that is the
# expected outcome here, and the demo itself exits 0 when grove behaved.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
grove="node $here/../dist/bin/grove.js"
work="$(mktemp -d "${TMPDIR:-/tmp}/grove-demo.XXXXXX")"
repo="$work/demo-shop"
mkdir -p "$repo"
cp -R "$here/repo/." "$repo/"
mkdir -p "$repo/plans" && cp "$here"/plans/*.md "$repo/plans/"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid add -A
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "demo shop"
mkdir -p "$work/reports"

echo "demo repository: $repo"
echo "\$ grove run plans/*.md --workers 3 --report junit:... --report json:..."
echo
set +e
(cd "$repo" && $grove run plans/*.md --workers 3 \
  --report "junit:$work/reports/junit.xml" --report "json:$work/reports/report.json" \
  --report "markdown:$work/reports/report.md" --report "html:$work/reports/report.html")
code=$?
set -e
echo
echo "grove exited $code; reports in $work/reports:"
ls -1 "$work/reports"
left="$(git -C "$repo" worktree list | wc -l)"
echo "worktrees left: $((left - 1)) (grove removes its own)"
if [ "$code" != 1 ] || [ "$left" != 1 ] || [ ! -s "$work/reports/junit.xml" ]; then
  echo "demo: unexpected outcome (expected exit 1 from the failing plan, no worktree left, reports written)" >&2
  exit 1
fi
echo "demo: as expected — one plan fails on purpose, one is flaky, the rest pass."
