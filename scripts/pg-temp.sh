#!/usr/bin/env bash
# A throwaway PostgreSQL for grove's Postgres tests (test/PgStore.test.ts), on this machine.
#
#   eval "$(scripts/pg-temp.sh start)"    # prints: export GROVE_TEST_PG_URL=… GROVE_PG_TEMP_DIR=…
#   npx vitest run test/PgStore.test.ts
#   scripts/pg-temp.sh stop "$GROVE_PG_TEMP_DIR"
#
# start: finds Debian's PostgreSQL binaries (installs the `postgresql` package with apt-get when
# initdb/pg_ctl are missing), makes a cluster in a fresh temp folder, owned by a non-root user
# (PostgreSQL refuses to run as root: as root, the system user `grove-pg`, made when missing),
# listening only on 127.0.0.1 at a free port with password auth, creates the database `grove`
# and prints its URL. Durability is off (fsync): the data is thrown away.
# stop: stops that server and removes its folder (only a folder this script made).
# Progress and errors go to stderr; stdout holds only the export lines.
set -euo pipefail

marker=".grove-pg-temp"
pg_user="grove-pg"

say() { echo "pg-temp: $*" >&2; }
die() { say "$*"; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

find_bin() {
  local dir
  # the folder of the real binaries (PATH may hold symlinks to some of them only)
  if command -v pg_ctl >/dev/null; then
    dir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    if [ -x "$dir/initdb" ] && [ -x "$dir/createdb" ]; then echo "$dir"; return 0; fi
  fi
  # Debian keeps them out of PATH, one folder per major version: take the newest
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && [ -x "$dir/createdb" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

# runs a PostgreSQL command as the user that owns the cluster
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

start() {
  local bin dir port password tries=0
  if ! bin=$(find_bin); then
    say "initdb/pg_ctl not found: installing Debian's postgresql package"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(find_bin) || die "installed postgresql, but found no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
  fi
  if [ "$(id -u)" = 0 ] && ! id -u "$pg_user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/grove-pg.XXXXXX")
  touch "$dir/$marker"
  # a failure from here on leaves nothing behind (set -e exits from inside functions too)
  started_dir=$dir
  trap 'if [ -n "${started_dir:-}" ]; then stop_dir "$started_dir" || true; fi' EXIT
  [ "$(id -u)" = 0 ] && chown -R "$pg_user" "$dir"
  password=$(node -e 'console.log(require("node:crypto").randomBytes(18).toString("hex"))')
  printf '%s\n' "$password" >"$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown "$pg_user" "$dir/pwfile"
  chmod 600 "$dir/pwfile"
  as_owner "$bin/initdb" -D "$dir/data" -U grove --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-instructions >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  rm -f "$dir/pwfile"
  # a free port can be taken between the check and the server's listen: try a few
  while :; do
    port=$(free_port)
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>&1; then
      break
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 3 ] || { cat "$dir/server.log" >&2; die "the server did not start (log above)"; }
  done
  echo "$bin" >"$dir/bin"
  as_owner "$bin/createdb" -h "$dir" -p "$port" -U grove grove
  started_dir=""
  say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, folder $dir"
  echo "export GROVE_TEST_PG_URL=postgres://grove:$password@127.0.0.1:$port/grove"
  echo "export GROVE_PG_TEMP_DIR=$dir"
}

stop_dir() {
  local dir=$1 bin
  [ -n "$dir" ] && [ -d "$dir" ] || die "no such folder: ${dir:-(empty)}"
  [ -e "$dir/$marker" ] || die "$dir was not made by pg-temp.sh start: not touching it"
  if [ -f "$dir/data/postmaster.pid" ]; then
    bin=$(cat "$dir/bin" 2>/dev/null || find_bin)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || say "pg_ctl stop failed (server already gone?)"
  fi
  rm -rf -- "$dir"
}

# restart: stops the server, waits SECONDS (default 0) with it down, starts it again on the
# same port (postmaster.opts keeps its options): for tests of what survives a restart
restart_dir() {
  local dir=$1 seconds=${2:-0} bin opts
  [ -n "$dir" ] && [ -e "$dir/$marker" ] || die "$dir was not made by pg-temp.sh start: not touching it"
  bin=$(cat "$dir/bin")
  opts=$(sed -e 's/^[^ ]* "-D" "[^"]*" //' -e 's/"//g' "$dir/data/postmaster.opts")
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  sleep "$seconds"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$opts" start >/dev/null
}

case "${1:-}" in
  start) start ;;
  restart) restart_dir "${2:-${GROVE_PG_TEMP_DIR:-}}" "${3:-0}"; say "restarted ${2:-${GROVE_PG_TEMP_DIR:-}}" ;;
  stop) stop_dir "${2:-${GROVE_PG_TEMP_DIR:-}}"; say "stopped and removed ${2:-${GROVE_PG_TEMP_DIR:-}}" ;;
  *) echo "usage: $0 start | stop [DIR] | restart [DIR] [SECONDS]   (DIR defaults to \$GROVE_PG_TEMP_DIR)" >&2; exit 2 ;;
esac
