#!/usr/bin/env bash
# A Kafka-protocol broker on 127.0.0.1 for tests, demos and benchmarks: tansu (crates.io, Apache-2.0).
#
#   scripts/broker.sh install          cargo install tansu (about 13 minutes once on 2 cores; then cached)
#   scripts/broker.sh start [PORT] [DIR]   start on 127.0.0.1:PORT (default 19092), state and log in DIR
#                                       (default target/broker); STORAGE=sqlite (default: survives a broker
#                                       restart on the same DIR) or STORAGE=memory (faster; benchmarks only)
#   scripts/broker.sh stop [DIR]        stop the broker started from DIR
#
# Against this broker set fetch.wait.max.ms low (ticklane's consumer default is 10): it answers a waiting
# fetch only when the wait ends. It has no transactions (EndTxn); ticklane does not use them.
set -euo pipefail
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
case "${1:-}" in
  install)
    if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
      echo "tansu $TANSU_VERSION is installed"; exit 0
    fi
    # The default features cannot start a broker: dynostore and libsql give the memory and SQLite storage.
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
    ;;
  start)
    port=${2:-19092}; dir=${3:-$PWD/target/broker}
    mkdir -p "$dir"
    case "${STORAGE:-sqlite}" in
      memory) storage="memory://tansu/" ;;
      sqlite) storage="sqlite://tansu.db" ;; # relative to DIR, tansu's working directory
      *) echo "STORAGE must be memory or sqlite" >&2; exit 2 ;;
    esac
    (cd "$dir" && exec tansu broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "$storage" >>"$dir/broker.log" 2>&1) &
    echo $! >"$dir/broker.pid"
    for _ in $(seq 1 200); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && tansu topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1; then
        echo "broker on 127.0.0.1:$port (pid $(cat "$dir/broker.pid"), storage ${STORAGE:-sqlite}, log $dir/broker.log)"
        exit 0
      fi
      sleep 0.1
    done
    echo "the broker did not open 127.0.0.1:$port; its log:" >&2; tail -50 "$dir/broker.log" >&2; exit 1
    ;;
  stop)
    dir=${2:-$PWD/target/broker}
    [ -f "$dir/broker.pid" ] || exit 0
    pid=$(cat "$dir/broker.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/broker.pid"
    ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
