#!/usr/bin/env bash
# An InfluxDB 1.x server on 127.0.0.1 for tests and benchmarks of the influxdb sink: Debian's `influxdb`
# package (1.6.7), run with a configuration of this script's own.
#
#   scripts/influxdb.sh install            apt-get install influxdb (the server is not started as a service)
#   scripts/influxdb.sh start [PORT] [DIR] start with its HTTP API on 127.0.0.1:PORT (default 18086), meta, data
#                                          and WAL under DIR (default target/influxdb), log in DIR/influxd.log;
#                                          returns once /ping answers
#   scripts/influxdb.sh stop [DIR]         stop the server started from DIR
#
# Reporting, the UDP/Graphite/collectd/OpenTSDB listeners, the continuous queries and the monitor store are
# off; the RPC (backup) port is bound to a free port of 127.0.0.1. Starting again on the same DIR keeps the data.
set -euo pipefail

# Whether /ping on 127.0.0.1:$1 answers 204 (bash's /dev/tcp: no HTTP client needed).
ping() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r -t 2 _ status _ <&3 || exit 1
    [ "$status" = 204 ]
  ) 2>/dev/null
}

case "${1:-}" in
  install)
    if [ -x /usr/bin/influxd ]; then echo "influxd is installed ($(/usr/bin/influxd version))"; exit 0; fi
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $sudo apt-get update -qq
    # policy-rc.d 101: the package's postinst must not start the system-wide service on the default ports.
    prc=/usr/sbin/policy-rc.d; had_prc=$([ -e $prc ] && echo 1 || echo 0)
    [ "$had_prc" = 1 ] || { printf '#!/bin/sh\nexit 101\n' | $sudo tee $prc >/dev/null; $sudo chmod +x $prc; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends influxdb
    [ "$had_prc" = 1 ] || $sudo rm -f $prc
    /usr/bin/influxd version
    ;;
  start)
    port=${2:-18086}; dir=${3:-$PWD/target/influxdb}
    mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
    dir=$(cd "$dir" && pwd)
    cat >"$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:0"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[coordinator]
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  log-enabled = false
  max-body-size = 0
  max-row-limit = 0
[subscriber]
  enabled = false
[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
[continuous_queries]
  enabled = false
CONF
    (exec /usr/bin/influxd run -config "$dir/influxdb.conf" >>"$dir/influxd.log" 2>&1) &
    echo $! >"$dir/influxd.pid"
    for _ in $(seq 1 300); do
      if ping "$port"; then
        echo "influxdb on 127.0.0.1:$port (pid $(cat "$dir/influxd.pid"), data $dir, log $dir/influxd.log)"
        exit 0
      fi
      kill -0 "$(cat "$dir/influxd.pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "influxd did not answer on 127.0.0.1:$port/ping; its log:" >&2; tail -50 "$dir/influxd.log" >&2; exit 1
    ;;
  stop)
    dir=${2:-$PWD/target/influxdb}
    [ -f "$dir/influxd.pid" ] || exit 0
    pid=$(cat "$dir/influxd.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/influxd.pid"
    ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
