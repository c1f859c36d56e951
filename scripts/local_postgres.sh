#!/usr/bin/env bash
# A throw-away PostgreSQL server on 127.0.0.1 for the sweep tests (and for trying PostgreSQL storage).
#
#   scripts/local_postgres.sh start [STATE_DIR]   initdb into STATE_DIR, start on a free port, print the URL
#   scripts/local_postgres.sh stop  [STATE_DIR]   stop that server and delete STATE_DIR
#   scripts/local_postgres.sh status [STATE_DIR]  exit 0 and print the URL while it runs
#
# STATE_DIR defaults to $AGEBENCH_PG_DIR or /tmp/agebench-postgres. After `start`, STATE_DIR/url holds
# postgresql://agebench@127.0.0.1:<port>/agebench_test (trust auth: only local connections are accepted),
# ready for AGEBENCH_TEST_POSTGRES_URL. PostgreSQL refuses to run as root, so as root the server runs as
# the `postgres` system user (created as a system user if missing). Binaries: PG_BIN, else the newest
# /usr/lib/postgresql/<version>/bin, else whatever is on PATH; as root, `start` installs postgresql with
# apt-get when none is found.
set -euo pipefail

action=${1:-}
state=${2:-${AGEBENCH_PG_DIR:-/tmp/agebench-postgres}}
data="$state/data"

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if command -v initdb > /dev/null; then dirname "$(command -v initdb)"; return; fi
  if [[ $(id -u) -eq 0 && "${1:-}" == install ]] && command -v apt-get > /dev/null; then
    echo "local_postgres: installing postgresql with apt-get" >&2
    if DEBIAN_FRONTEND=noninteractive apt-get update -q > /dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql > /dev/null 2>&1; then
      find_bin; return
    fi
  fi
  echo "local_postgres: no initdb found; install PostgreSQL (apt-get install postgresql) or set PG_BIN" >&2
  exit 1
}

# run a command as the server's user (root may not run postgres)
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$action" in
  start)
    bin=$(find_bin install)
    if [[ -f "$state/url" ]] && as_owner "$bin/pg_ctl" -D "$data" status > /dev/null 2>&1; then
      cat "$state/url"; exit 0
    fi
    rm -rf "$state"
    mkdir -p "$state"
    if [[ $(id -u) -eq 0 ]]; then
      id postgres > /dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
      chown postgres "$state"
    fi
    as_owner "$bin/initdb" -D "$data" -U agebench -A trust --no-sync -E UTF8 > "$state/initdb.log" 2>&1 \
      || { cat "$state/initdb.log" >&2; echo "local_postgres: initdb failed" >&2; exit 1; }
    port=$(free_port)
    # only 127.0.0.1, the socket in the state dir (not /var/run/postgresql, which may not exist)
    if ! as_owner "$bin/pg_ctl" -D "$data" -l "$state/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $state -c fsync=off -c max_connections=50" start > /dev/null; then
      tail -20 "$state/server.log" >&2; echo "local_postgres: server did not start" >&2; exit 1
    fi
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U agebench agebench_test
    echo "postgresql://agebench@127.0.0.1:$port/agebench_test" > "$state/url"
    cat "$state/url"
    ;;
  stop)
    if [[ -d "$data" ]]; then
      bin=$(find_bin)
      as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop > /dev/null 2>&1 || true
    fi
    rm -rf "$state"
    ;;
  status)
    bin=$(find_bin)
    [[ -f "$state/url" ]] && as_owner "$bin/pg_ctl" -D "$data" status > /dev/null 2>&1 && cat "$state/url"
    ;;
  *)
    echo "usage: $0 start|stop|status [STATE_DIR]" >&2
    exit 2
    ;;
esac
