#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1 for tests, demos and benchmarks: Debian's postgresql package (15).
#
#   scripts/postgres.sh install            apt-get install postgresql-15 if its binaries are missing
#   scripts/postgres.sh start PORT DIR     initdb into DIR (once), start on 127.0.0.1:PORT only, unix socket
#                                          in the data directory, trust auth for user `ticklane` on loopback,
#                                          database `ticklane`; waits until pg_isready answers
#   scripts/postgres.sh kill DIR           stop at once (pg_ctl stop -m immediate: a crash, for tests)
#   scripts/postgres.sh stop DIR           stop the server started from DIR (fast shutdown)
#
# Connect with postgresql://ticklane@127.0.0.1:PORT/ticklane. initdb refuses to run as root: as root the
# server runs as the `postgres` user the package creates (or `nobody`), and its data directory is DIR/data
# when that user can reach it, otherwise a directory under /tmp named in DIR/datadir.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# Runs a command as the server's user (itself when not root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

pick_owner() {
  owner=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
  fi
}

# The data directory of DIR (created on first use).
data_dir() {
  local dir=$1
  if [ -f "$dir/datadir" ]; then cat "$dir/datadir"; return; fi
  local data="$dir/data"
  mkdir -p "$data"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$owner" "$data"
    if ! runuser -u "$owner" -- test -w "$data" 2>/dev/null; then
      rmdir "$data"
      data=$(mktemp -d /tmp/ticklane-pg.XXXXXX)
      chown "$owner" "$data"
    fi
  fi
  chmod 700 "$data"
  echo "$data" >"$dir/datadir"
  echo "$data"
}

case "${1:-}" in
  install)
    if [ -x "$PGBIN/initdb" ]; then echo "PostgreSQL is installed ($("$PGBIN/postgres" --version))"; exit 0; fi
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
    "$PGBIN/postgres" --version
    ;;
  start)
    port=${2:?PORT}; dir=${3:?DIR}
    pick_owner
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    data=$(data_dir "$dir")
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$PGBIN/initdb" -D "$data" -U ticklane --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 50
CONF
      # Trust for loopback and the socket only (initdb's default file also lists ::1 and replication).
      printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$data/pg_hba.conf"
      [ "$(id -u)" -ne 0 ] || chown "$owner" "$data/pg_hba.conf"
      fresh=1
    fi
    as_owner "$PGBIN/pg_ctl" -D "$data" -o "-p $port" -l "$data/server.log" -w -t 60 start >/dev/null \
      || { tail -30 "$data/server.log" >&2; exit 1; }
    for _ in $(seq 1 100); do
      "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
      sleep 0.1
    done
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" || { echo "PostgreSQL does not answer on 127.0.0.1:$port" >&2; exit 1; }
    if [ -n "${fresh:-}" ]; then
      psql -q -h 127.0.0.1 -p "$port" -U ticklane -d postgres -c 'CREATE DATABASE ticklane' >/dev/null
    fi
    echo "PostgreSQL on 127.0.0.1:$port (data $data, log $data/server.log): postgresql://ticklane@127.0.0.1:$port/ticklane"
    ;;
  kill|stop)
    dir=${2:?DIR}
    [ -f "$dir/datadir" ] || exit 0
    pick_owner
    data=$(cat "$dir/datadir")
    [ -f "$data/postmaster.pid" ] || exit 0
    mode=$([ "$1" = kill ] && echo immediate || echo fast)
    as_owner "$PGBIN/pg_ctl" -D "$data" -m "$mode" -w -t 60 stop >/dev/null
    ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
