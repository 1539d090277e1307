#!/usr/bin/env bash
# The ticklane benchmark suite: builds release, runs each case several times with its baseline in the same
# run, and prints markdown tables of medians (BENCHMARKS.md explains the cases and the targets).
#
#   scripts/bench.sh [throughput] [latency] [micro] [waits] [kafka] [all]     (default: all)
#
#   throughput  (a) 10M trades, 1,000 instruments, 2 s disorder, tumbling 1 s OHLCV+VWAP+TWAP + sliding
#               60 s/10 s VWAP + session 5 s, from the in-process generator and from a CSV file; events/s.
#               Baseline: the same input through a pipeline with no operator.
#   latency     (b) synthetic source paced open-loop at 100k and 1M trades/s, per-trade running VWAP + EMA,
#               every trade timed; end-to-end p50 … max. Baseline: the same paced run with no operator
#               (its ingest_to_shard stage).
#   micro       (c) criterion: ring handoff, window/continuous update, CSV and JSON parse; ns/event.
#   waits       latency at both rates for several wait strategies and thread placements (not in `all`).
#   kafka       Kafka edges against local tansu brokers (scripts/broker.sh; skipped, with the reason, when
#               `tansu` is not on PATH). Consume throughput: ticklane (kafka source, binary, tumbling 1 s, null
#               sink) reading a pre-filled topic of KAFKA_EVENTS trades with 1 and 4 partitions, events/s
#               from its 100 ms live lines; baselines: the topic drained by a bare client
#               (benches/kafka_e2e.rs drain) and `ticklane consume`. End-to-end latency through the broker:
#               benches/kafka_e2e.rs produces trades open-loop at each of KAFKA_RATES into a topic, ticklane
#               (per-trade running VWAP, inline emitter, kafka sink) writes a tick per trade to another, the
#               bench reads it: due time → tick read, p50 … max; baseline: the same client pair with the
#               consumer reading the input topic (the broker round trip alone). The same latency case
#               again at each of KAFKA_MOCK_RATES on librdkafka's mock cluster (benches/kafka_e2e.rs
#               mock-broker, one broker process per topic, fresh for each run).
#   checkpoint  checkpoint size, duration and shard pause with CKPT_SIZES open windows (default "10000 100000
#               1000000"), restore time (run start → first event) from a checkpoint of each, and throughput of
#               workload (a) with a checkpoint every second vs none.
#   itch        (h) an ITCH 5.0 feed of ITCH_MESSAGES (default 50000000) generated messages (itch-gen, 100
#               stocks): on one core (benches/itch_file.rs) decode only, decode + books (baseline: without
#               prefetching), decode + books + quote check; through the whole pipeline decode + books + 1 s
#               OHLCV and 1 s imbalance windows (null sinks), and the same with a level stream (every L2 level
#               update a row, null sink); baseline: the pipeline with books only (no quotes, no window). Messages/s, wall clock, and thread CPU time for the one-core cases
#   itch-latency  (i) the live ITCH path: `ticklane itch-send` replays a generated feed of ITCH_LAT_RATE × LAT_SECONDS
#               messages as MoldUDP64 over loopback UDP, open-loop at ITCH_LAT_RATE messages/s (default 1000000),
#               into a job that rebuilds the books and writes 1-minute microprice and OHLCV bars
#               (config/bench/itch-latency.toml), and in a variant one row per quote (itch-latency-quotes.toml: a
#               `[[stream]] events = "quote"` to a null sink, end_to_end per book change); end_to_end p50 … max
#               from when each message was due to be sent
#               (the sender's schedule, shared on CLOCK_MONOTONIC) and, in separate runs, from when its packet
#               was received; for each packing in ITCH_LAT_BATCHES (messages per packet at most; default
#               "65534 10": as many as fit 1,400 bytes, about 42, and 10); packets and messages lost. Baseline in the same
#               run: the same sender into a job that only decodes and applies the books (ingest_to_shard).
#   influxdb    (j) sink throughput into a local InfluxDB 1.x (scripts/influxdb.sh starts one on INFLUX_PORT with its
#               data in the run's directory): config/bench/influxdb.toml, about 200,000 1 s bars of 10,000
#               instruments into an influxdb sink, for each batch_rows of INFLUX_BATCHES; rows/s = rows written
#               / the job's wall time (start to exit, the last batch acknowledged), each run checked against a
#               count in the database. Baseline: the same job with a null sink. Not in `all`.
#   metrics-cost  (k) workload (a) from the in-process generator with the latency histograms off (`[metrics]
#               latency = false`), every 1,024th event timed (as in (a)), the default timing (no latency key),
#               every event timed, and every event timed with the metrics endpoint on and scraped every second
#               (curl); the five run alternately RUNS times with the same binary; events/s and each against "off".
#   postgres    postgres sink throughput: PG_EVENTS trades (default 2000000; QUICK 200000) of 1,000 instruments
#               into tumbling 100 ms bars (about one bar per trade), written by the postgres sink to a server
#               this case starts (scripts/postgres.sh, on 127.0.0.1:PG_PORT, default 15532; skipped, with the
#               reason, when PostgreSQL 15 is not installed); rows/s over the whole run (start to exit, the
#               last batch committed), into an empty table and again over the same rows (every row an upsert
#               onto itself). Baseline: the same job with a csv file sink.
#   all         throughput latency micro checkpoint itch itch-latency metrics-cost postgres, and kafka when tansu is installed
#
# Environment:
#   RUNS=5          runs per case; the tables show the median (and min/max) over runs
#   QUICK=1         smoke test: small sizes, RUNS defaults to 1 (under a minute once built)
#   EVENTS          trades for (a) (default 10000000; QUICK 200000)
#   LAT_SECONDS     length of each paced run for (b) (default 10; QUICK 1)
#   BENCH_DIR       scratch directory: the CSV, derived configs, logs, results (default $TMPDIR/ticklane-bench)
#   CARGO_TARGET_DIR  honoured (default: the crate's target/)
#   NO_BUILD=1      use what is built
#   MICRO_BENCHES   which criterion benches `micro` runs (default "ring window parse")
#   CRITERION_ARGS  extra arguments for the criterion benches (e.g. "--measurement-time 5")
#   BENCH_NICE      e.g. -20 (needs root): run each pipeline and micro bench in a session (autogroup) of its
#                   own with that nice value, so other users' jobs on a shared machine take less of the CPU
#                   from it (with autogroup scheduling, plain `nice` only ranks a process within its group)
#   kafka only (RUNS defaults to 3 for it):
#   KAFKA_PORT      first of the two ports the brokers listen on, on 127.0.0.1 (default 19192; the next port
#                   is used too). Another broker already on a port is not touched: pick free ports.
#   KAFKA_EVENTS    trades in the throughput topics (default 2000000; QUICK 200000)
#   KAFKA_RATES     open-loop rates for the latency case on tansu, messages/s (default "2000 5000 10000")
#   KAFKA_MOCK_RATES  the same on librdkafka's mock cluster (default "10000 100000"; empty: skipped)
#   KAFKA_SECONDS   measured seconds per latency run, after KAFKA_WARMUP (default 10 and 2; QUICK 2 and 1)
#   KAFKA_FETCH_WAIT_MS  fetch.wait.max.ms of every consumer in the latency case (default 1)
#   influxdb only:
#   INFLUX_PORT     the InfluxDB server's HTTP port on 127.0.0.1 (default 18186; must be free)
#   INFLUX_BATCHES  batch_rows values, one case each (default "1000 5000 20000")
#   itch-latency only:
#   ITCH_LAT_RATE   messages/s the sender keeps (default 1000000)
#   ITCH_LAT_BATCHES  most messages per packet, one packing per value (default "65534 10")
#   ITCH_LAT_PORT   the UDP port on 127.0.0.1 (default 26490)
#   ITCH_SEND_CORE  pin itch-send to this core with taskset (default 1, the shard worker's; "" = not pinned)
#   ITCH_LAT_WAIT   the jobs' pipeline.wait (default "park"; "spin", "spin-then-yield")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=${QUICK:-0}
KAFKA_RUNS=${RUNS:-3} # the kafka case's own default (QUICK: 1, below)
if [ "$QUICK" = 1 ]; then
    RUNS=${RUNS:-1}
    EVENTS=${EVENTS:-200000}
    LAT_SECONDS=${LAT_SECONDS:-1}
    MICRO_ENV=(TL_WINDOW_EVENTS=50000 TL_PARSE_LINES=10000)
    MICRO_ARGS=(--warm-up-time 0.05 --measurement-time 0.2 --sample-size 10)
    KAFKA_RUNS=$RUNS
    KAFKA_EVENTS=${KAFKA_EVENTS:-200000}
    KAFKA_SECONDS=${KAFKA_SECONDS:-2}
    KAFKA_WARMUP=${KAFKA_WARMUP:-1}
else
    RUNS=${RUNS:-5}
    EVENTS=${EVENTS:-10000000}
    LAT_SECONDS=${LAT_SECONDS:-10}
    MICRO_ENV=()
    MICRO_ARGS=()
fi
KAFKA_PORT=${KAFKA_PORT:-19192}
KAFKA_EVENTS=${KAFKA_EVENTS:-2000000}
KAFKA_RATES=${KAFKA_RATES:-2000 5000 10000}
KAFKA_MOCK_RATES=${KAFKA_MOCK_RATES:-10000 100000}
CKPT_SIZES=${CKPT_SIZES:-10000 100000 1000000}
KAFKA_SECONDS=${KAFKA_SECONDS:-10}
KAFKA_WARMUP=${KAFKA_WARMUP:-2}
KAFKA_FETCH_WAIT_MS=${KAFKA_FETCH_WAIT_MS:-1}
INFLUX_PORT=${INFLUX_PORT:-18186}
INFLUX_BATCHES=${INFLUX_BATCHES:-1000 5000 20000}
# shellcheck disable=SC2206
MICRO_ARGS+=(${CRITERION_ARGS:-})
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NICE_CMD=()
if [ -n "${BENCH_NICE:-}" ]; then
    # shellcheck disable=SC2016
    NICE_CMD=(setsid -w sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec nice -n "$0" "$@"' "$BENCH_NICE")
fi
BIN=$TARGET_DIR/release/ticklane
BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/ticklane-bench}
STAMP=$(date +%Y%m%d-%H%M%S)
WORK=$BENCH_DIR/run-$STAMP
mkdir -p "$WORK"
TSV=$WORK/results.tsv
: >"$TSV"
CFG=$ROOT/config/bench

modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(all)
have_tansu() { command -v tansu >/dev/null 2>&1; }
want() {
    local m
    for m in "${modes[@]}"; do
        [ "$m" = "$1" ] && return 0
        [ "$m" = all ] && [ "$1" != waits ] && [ "$1" != influxdb ] && { [ "$1" != kafka ] || have_tansu; } && return 0
    done
    return 1
}
for m in "${modes[@]}"; do
    case $m in throughput | latency | micro | waits | kafka | checkpoint | itch | itch-latency | influxdb | metrics-cost | postgres | all) ;; *)
        echo "usage: scripts/bench.sh [throughput|latency|micro|waits|kafka|checkpoint|itch|itch-latency|influxdb|metrics-cost|postgres|all]..." >&2
        exit 2
        ;;
    esac
done

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

# --- numbers -------------------------------------------------------------------------------------------
# Median, min and max of the values of (case, metric) over the runs.
stat() { # case metric median|min|max
    awk -F'\t' -v c="$1" -v m="$2" '$1 == c && $2 == m { print $3 }' "$TSV" | sort -g | awk -v what="$3" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "nan"; exit }
            if (what == "min") print v[1]; else if (what == "max") print v[NR];
            else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$TSV"; }
meps() { awk -v v="$1" 'BEGIN { if (v == "nan") print "–"; else printf "%.2f M", v / 1e6 }'; }
human() { # ns → µs / ms
    awk -v v="$1" 'BEGIN {
        if (v == "nan") print "–";
        else if (v < 1000) printf "%.0f ns", v;
        else if (v < 1e6) printf "%.1f µs", v / 1e3;
        else if (v < 1e9) printf "%.2f ms", v / 1e6;
        else printf "%.2f s", v / 1e9 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "–"; else printf "%.0f %%", 100 * a / b }'; }

# --- build ---------------------------------------------------------------------------------------------
if [ "${NO_BUILD:-0}" != 1 ]; then
    log "building release (target dir $TARGET_DIR)"
    cargo build --release --bin ticklane >&2
    if want micro; then
        cargo bench --bench ring --bench window --bench parse --bench jitter --no-run >&2
    fi
    if want kafka && have_tansu; then
        cargo bench --bench kafka_e2e --no-run >&2
    fi
fi
[ -x "$BIN" ] || {
    echo "no $BIN: build first (or unset NO_BUILD)" >&2
    exit 1
}

# A config from config/bench with the sizes and paths of this run.
derive() { # src dst [sed expressions...]
    local src=$1 dst=$2
    shift 2
    sed "$@" "$CFG/$src" >"$dst"
}

# Runs the pipeline; prints events/s from the summary line on stderr.
run_pipeline() { # config logfile
    if ! "${NICE_CMD[@]}" "$BIN" run --config "$1" >/dev/null 2>"$2"; then
        echo "ticklane run --config $1 failed:" >&2
        tail -20 "$2" >&2
        exit 1
    fi
    sed -nE 's/^ticklane: [0-9]+ events in [0-9.]+ s \(([0-9]+) events\/s\).*/\1/p' "$2"
}

# One stage's row of `ticklane stats`: p50 p90 p99 p99.9 p99.99 max, in ns.
stage_ns() { # hlog stage
    "$BIN" stats "$1" | awk -v s="$2" '
        function ns(x) {
            if (x ~ /µs$/) { sub(/µs$/, "", x); return x * 1e3 }
            if (x ~ /ms$/) { sub(/ms$/, "", x); return x * 1e6 }
            if (x ~ /ns$/) { sub(/ns$/, "", x); return x + 0 }
            if (x ~ /s$/) { sub(/s$/, "", x); return x * 1e9 }
            return x + 0
        }
        $1 == s && NF >= 8 { print ns($3), ns($4), ns($5), ns($6), ns($7), ns($8) }'
}

machine() {
    local cpu mem
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "- machine: $cpu, $(nproc) CPUs, $mem, kernel $(uname -r), $(rustc --version 2>/dev/null || echo rustc ?)"
    echo "- runs per case: $RUNS (median shown, min–max in brackets)$([ "$QUICK" = 1 ] && echo '; QUICK mode: small sizes, not comparable to full runs')"
    echo "- source: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'not a git checkout')$([ -n "${BENCH_NICE:-}" ] && echo "; runs in their own autogroup at nice $BENCH_NICE (BENCH_NICE)")"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# --- (a) throughput ------------------------------------------------------------------------------------
throughput() {
    local csv=$BENCH_DIR/trades-$EVENTS.csv
    # Made once per build: a rebuilt generator may draw different trades.
    if [ ! -s "$csv" ] || [ ! -f "$csv.done" ] || [ "$BIN" -nt "$csv.done" ]; then
        log "generating $csv ($EVENTS trades)"
        if ! "$BIN" gen -n "$EVENTS" --instruments 1000 --disorder 2s --seed 42 -o "$csv" 2>"$WORK/gen.log"; then
            cat "$WORK/gen.log" >&2
            exit 1
        fi
        touch "$csv.done"
    fi
    local cases=(gen-baseline gen csv-baseline csv) c i eps
    for c in "${cases[@]}"; do
        derive "throughput-$c.toml" "$WORK/throughput-$c.toml" \
            -e "s|^events = .*|events = $EVENTS|" -e "s|^path = .*|path = \"$csv\"|"
    done
    for i in $(seq 1 "$RUNS"); do
        for c in "${cases[@]}"; do # baseline and workload alternate, so drifting load hits both alike
            eps=$(run_pipeline "$WORK/throughput-$c.toml" "$WORK/throughput-$c.$i.log")
            log "throughput $c run $i: $eps events/s"
            record "throughput-$c" eps "$eps"
        done
    done
    echo
    echo "### (a) Throughput: $EVENTS trades, 1,000 instruments, 2 s disorder"
    echo
    echo "Workload: tumbling 1 s OHLCV+VWAP+TWAP, sliding 60 s / 10 s VWAP, session 5 s gap (null sinks)."
    echo "Baseline: same input, no operator (ingest + watermarks + routing only)."
    echo
    echo "| source | workload events/s | baseline events/s | workload / baseline | target |"
    echo "|---|---|---|---|---|"
    local src tgt
    for src in gen csv; do
        [ $src = gen ] && tgt="≥ 10 M" || tgt="≥ 3 M"
        printf '| %s | %s [%s – %s] | %s [%s – %s] | %s | %s |\n' \
            "$([ $src = gen ] && echo 'in-process generator' || echo 'CSV file')" \
            "$(meps "$(stat "throughput-$src" eps median)")" "$(meps "$(stat "throughput-$src" eps min)")" \
            "$(meps "$(stat "throughput-$src" eps max)")" \
            "$(meps "$(stat "throughput-$src-baseline" eps median)")" \
            "$(meps "$(stat "throughput-$src-baseline" eps min)")" \
            "$(meps "$(stat "throughput-$src-baseline" eps max)")" \
            "$(ratio "$(stat "throughput-$src" eps median)" "$(stat "throughput-$src-baseline" eps median)")" "$tgt"
    done
}

# --- (b) latency ---------------------------------------------------------------------------------------
rate_label() { if [ "$1" = 1m ]; then echo 1M; else echo "$1"; fi; } # 1m reads as a minute
rate_of() { sed -nE 's/^rate = ([0-9_]+).*/\1/p' "$CFG/$1" | tr -d _; }

# One run of a latency config; records the stage's percentiles under `case`.
latency_run() { # case config stage run [sed expressions...]
    local case=$1 src=$2 stage=$3 i=$4 rate eps p
    shift 4
    rate=$(rate_of "$src")
    local cfg=$WORK/$case.$i.toml hlog=$WORK/$case.$i.hlog
    derive "$src" "$cfg" -e "s|^events = .*|events = $((rate * LAT_SECONDS))|" \
        -e "s|^histogram_log = .*|histogram_log = \"$hlog\"|" "$@"
    eps=$(run_pipeline "$cfg" "$WORK/$case.$i.log")
    read -r -a p < <(stage_ns "$hlog" "$stage")
    if [ ${#p[@]} -ne 6 ]; then
        echo "no $stage latencies in $hlog" >&2
        exit 1
    fi
    record "$case" eps "$eps"
    record "$case" p50 "${p[0]}"
    record "$case" p99 "${p[2]}"
    record "$case" p99.9 "${p[3]}"
    record "$case" p99.99 "${p[4]}"
    record "$case" max "${p[5]}"
    log "$case run $i: $eps events/s, $stage p50 $(human "${p[0]}") p99 $(human "${p[2]}") p99.99 $(human "${p[4]}")"
    if [ "$stage" = end_to_end ]; then
        # The operator run's own ingest stage, to compare with the baseline's.
        read -r -a p < <(stage_ns "$hlog" ingest_to_shard)
        record "$case" ingest_p99 "${p[2]}"
        record "$case" ingest_p99.99 "${p[4]}"
    fi
}

# The machine's own floor: an open-loop schedule at the same rate on one spinning thread pinned to the
# source's core, no pipeline (benches/jitter.rs).
jitter_run() { # case rate run
    local case=$1 rate=$2 i=$3 line
    line=$("${NICE_CMD[@]}" cargo bench -q --bench jitter -- --rate "$rate" --seconds "$LAT_SECONDS" --core 0 2>/dev/null | grep '^jitter ')
    [ -n "$line" ] || { echo "the jitter probe printed nothing" >&2; exit 1; }
    local k v
    for k in p50 p99 p99.9 p99.99 max; do
        v=$(sed -nE "s/.* $k=([0-9]+).*/\1/p" <<<"$line")
        record "$case" "$k" "$v"
    done
    record "$case" eps "$rate"
    log "$case run $i: $line"
}

latency_row() { # label case [target]
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
        "$(meps "$(stat "$2" eps median)")" \
        "$(human "$(stat "$2" p50 median)")" \
        "$(human "$(stat "$2" p99 median)") [$(human "$(stat "$2" p99 min)") – $(human "$(stat "$2" p99 max)")]" \
        "$(human "$(stat "$2" p99.9 median)")" \
        "$(human "$(stat "$2" p99.99 median)") [$(human "$(stat "$2" p99.99 min)") – $(human "$(stat "$2" p99.99 max)")]" \
        "$(human "$(stat "$2" max median)")" "${3:-}"
}

latency_header() {
    echo "| case | achieved events/s | p50 | p99 | p99.9 | p99.99 | max | target |"
    echo "|---|---|---|---|---|---|---|---|"
}

latency() {
    local r i
    for i in $(seq 1 "$RUNS"); do
        for r in 100k 1m; do # floor, baseline and operator alternate, so drifting load hits them alike
            jitter_run "jitter-$r" "$(rate_of "latency-$r.toml")" "$i"
            latency_run "latency-$r-baseline" "latency-$r-baseline.toml" ingest_to_shard "$i"
            latency_run "latency-$r" "latency-$r.toml" end_to_end "$i"
        done
    done
    echo
    echo "### (b) Latency: paced synthetic source, per-trade running VWAP + EMA, every trade timed, ${LAT_SECONDS} s per run"
    echo
    echo "Operator rows: end_to_end (due time → result written to the null sink). Baseline rows: the same"
    echo "paced run without the operator, ingest_to_shard (due time → the shard took the trade off its ring)."
    echo "Machine floor rows: how late a thread spinning alone on the source's core sees each tick of the same"
    echo "schedule (benches/jitter.rs): no software on this machine can do better."
    echo
    latency_header
    for r in 100k 1m; do
        latency_row "$(rate_label $r)/s VWAP+EMA end-to-end" "latency-$r" "$([ $r = 1m ] && echo 'p99 ≤ 10 µs, p99.99 ≤ 100 µs')"
        latency_row "$(rate_label $r)/s baseline (no operator), ingest→shard" "latency-$r-baseline"
        latency_row "$(rate_label $r)/s machine floor: open-loop ticks on one spinning thread, no pipeline" "jitter-$r"
        printf '| %s | | | %s | | %s | | |\n' "$(rate_label $r)/s VWAP+EMA run, its own ingest→shard" \
            "$(human "$(stat "latency-$r" ingest_p99 median)")" "$(human "$(stat "latency-$r" ingest_p99.99 median)")"
    done
}

# --- wait strategy / placement sweep -------------------------------------------------------------------
waits() {
    # label | wait | cores (sources workers emitter metrics; "-" = unpinned)
    local variants=(
        'inline emitter, worker spin; source+metrics on 0, worker on 1 (the (b) configuration)|"spin"|0 1 - 0|inline'
        'inline emitter, worker spin-then-yield; source+metrics on 0, worker on 1|"spin-then-yield"|0 1 - 0|inline'
        'emitter thread: worker spin, emitter park; source+emitter+metrics on core 0, worker on 1|{ workers = "spin", emitter = "park" }|0 1 0 0'
        'emitter thread: worker spin, emitter park; source+metrics on 0, worker+emitter on 1|{ workers = "spin", emitter = "park" }|0 1 1 0'
        'emitter thread: worker spin, emitter spin-then-yield; source+emitter+metrics on 0, worker on 1|{ workers = "spin", emitter = "spin-then-yield" }|0 1 0 0'
        'emitter thread: both spin-then-yield; source+metrics on 0, worker+emitter on 1|"spin-then-yield"|0 1 1 0'
        'emitter thread: both park; source+metrics on 0, worker+emitter on 1|"park"|0 1 1 0'
        'emitter thread: both spin-then-yield; not pinned|"spin-then-yield"|-'
        'emitter thread: both park; not pinned|"park"|-'
    )
    local n v label wait cores mode r i s w e m
    for i in $(seq 1 "$RUNS"); do
        n=0
        for v in "${variants[@]}"; do
            n=$((n + 1))
            IFS='|' read -r label wait cores mode <<<"$v"
            # The (b) configs use the inline emitter; the other variants put an emitter thread back.
            local sed_args=(-e "s|^wait = .*|wait = $wait|")
            if [ "${mode:-thread}" != inline ]; then
                sed_args+=(-e 's|^emitter = "inline"|emitter = "thread"|')
            fi
            if [ "$cores" = - ]; then
                sed_args+=(-e '/^\[pipeline.cores\]/d' -e '/^sources = /d' -e '/^workers = \[/d' -e '/^metrics = [0-9]/d')
            else
                read -r s w e m <<<"$cores"
                sed_args+=(-e "s|^sources = .*|sources = [$s]|" -e "s|^workers = \[.*|workers = [$w]|" -e "s|^metrics = [0-9].*|metrics = $m|")
                if [ "$e" != - ]; then
                    sed_args+=(-e "s|^metrics = \([0-9]\)|emitter = $e\nmetrics = \1|")
                fi
            fi
            for r in 100k 1m; do
                log "waits variant $n ($label) at $r/s"
                latency_run "waits-$n-$r" "latency-$r.toml" end_to_end "$i" "${sed_args[@]}"
            done
        done
    done
    echo
    echo "### Wait strategies and thread placement: VWAP+EMA end-to-end latency, ${LAT_SECONDS} s per run"
    echo
    latency_header
    n=0
    for v in "${variants[@]}"; do
        n=$((n + 1))
        IFS='|' read -r label wait cores mode <<<"$v"
        for r in 100k 1m; do
            latency_row "$n. $(rate_label $r)/s: $label" "waits-$n-$r"
        done
    done
}

# --- (c) micro -----------------------------------------------------------------------------------------
micro() {
    local i f id elems med b bench_args=()
    for b in ${MICRO_BENCHES:-ring window parse}; do
        bench_args+=(--bench "$b")
    done
    for i in $(seq 1 "$RUNS"); do
        log "micro benches run $i"
        "${NICE_CMD[@]}" env "${MICRO_ENV[@]}" CRITERION_HOME="$WORK/criterion-$i" \
            cargo bench "${bench_args[@]}" -- "${MICRO_ARGS[@]}" >"$WORK/micro.$i.log" 2>&1 || {
            tail -30 "$WORK/micro.$i.log" >&2
            exit 1
        }
        while IFS= read -r f; do
            id=$(sed -nE 's/.*"full_id":"([^"]*)".*/\1/p' "$f")
            elems=$(sed -nE 's/.*"Elements":([0-9]+).*/\1/p' "$f")
            med=$(sed -nE 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/p' "$(dirname "$f")/estimates.json")
            record "micro:$id" ns "$(awk -v m="$med" -v e="$elems" 'BEGIN { print m / e }')"
        done < <(find "$WORK/criterion-$i" -path '*/new/benchmark.json' | sort)
    done
    echo
    echo "### (c) Micro benchmarks (criterion median per run; median of runs, ns per event or line)"
    echo
    echo "| benchmark | ns/event | min – max over runs | minus baseline | baseline |"
    echo "|---|---|---|---|---|"
    local ids group base
    ids=$(cut -f1 "$TSV" | grep '^micro:' | sort -u)
    for id in $ids; do
        group=$(echo "${id#micro:}" | cut -d/ -f1)
        base=$(echo "$ids" | grep "^micro:$group/baseline/" | head -1)
        case $id in */latency/*) base= ;; esac # a different measure than the group's baseline
        printf '| %s | %.1f | %.1f – %.1f | %s | %s |\n' "${id#micro:}" \
            "$(stat "$id" ns median)" "$(stat "$id" ns min)" "$(stat "$id" ns max)" \
            "$(if [ -n "$base" ] && [ "$base" != "$id" ]; then awk -v a="$(stat "$id" ns median)" -v b="$(stat "$base" ns median)" 'BEGIN { printf "%.1f", a - b }'; fi)" \
            "$(if [ -n "$base" ] && [ "$base" != "$id" ]; then echo "${base#micro:}"; fi)"
    done
}

# --- Kafka edges -----------------------------------------------------------------------------------------
# Two tansu brokers, one after the other, each started fresh for this run and stopped at its end (or on exit):
# STORAGE=memory for consume throughput (a topic of large batches reads fast from memory), the default SQLite
# storage for latency (tansu's memory storage lists every stored batch of a partition on each fetch, so with
# one-message batches, as linger.ms = 0 produces them, reading the live end of a topic slows down as it grows).
KBROKERS=()
KTL_PID=
KMOCK_PIDS=()
kafka_cleanup() {
    local d
    [ -n "$KTL_PID" ] && kill -TERM "$KTL_PID" 2>/dev/null
    stop_mocks
    for d in "${KBROKERS[@]}"; do "$ROOT/scripts/broker.sh" stop "$d" || true; done
    KBROKERS=()
}

start_broker() { # storage port dir
    local out
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
        echo "127.0.0.1:$2 is taken (another broker?): set KAFKA_PORT to the first of two free ports" >&2
        exit 1
    fi
    KBROKERS+=("$3")
    out=$(STORAGE=$1 "${NICE_CMD[@]}" "$ROOT/scripts/broker.sh" start "$2" "$3") || {
        echo "$out" >&2
        exit 1
    }
    log "$out"
}

stop_broker() { # dir
    "$ROOT/scripts/broker.sh" stop "$1"
    local d keep=()
    for d in "${KBROKERS[@]}"; do [ "$d" = "$1" ] || keep+=("$d"); done
    KBROKERS=("${keep[@]}")
}

# librdkafka's mock cluster (benches/kafka_e2e.rs mock-broker), one process per topic, so that the input and
# the output topic are served by two threads: prints the bootstrap address of each, in order.
start_mocks() { # topic...
    local t out n
    for t in "$@"; do
        out=$WORK/mock-$t.out
        "${NICE_CMD[@]}" "$KBIN" mock-broker --topics "$t" >"$out" 2>&1 &
        KMOCK_PIDS+=($!)
        for n in $(seq 1 100); do grep -q bootstrap= "$out" && break; sleep 0.05; done
        grep -q bootstrap= "$out" || {
            echo "the mock broker did not start:" >&2
            cat "$out" >&2
            exit 1
        }
        sed -n 's/.*bootstrap=//p' "$out"
    done
}

stop_mocks() {
    local p
    for p in "${KMOCK_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${KMOCK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    KMOCK_PIDS=()
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; } # user + system, in clock ticks
now_s() { date +%s.%N; }
# Average cores used: ticks between two readings over the wall time between them.
cores() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v s="$2" 'BEGIN { printf "%.2f", (s > 0 ? t / hz / s : 0) }'; }

# Starts `ticklane run --config $1` in the background (stderr to $2) and sets KTL_PID to its pid.
start_ticklane() { # config log
    local pidf=$WORK/ticklane.pid n
    rm -f "$pidf"
    # shellcheck disable=SC2016
    "${NICE_CMD[@]}" sh -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$BIN" run --config "$1" >/dev/null 2>"$2" &
    for n in $(seq 1 100); do [ -s "$pidf" ] && break; sleep 0.05; done
    KTL_PID=$(cat "$pidf")
}

# Waits until the log of the running ticklane shows `pattern`; fails if it exits first or after `timeout` s.
wait_ticklane() { # log pattern timeout
    local n
    for n in $(seq 1 $(($3 * 10))); do
        grep -q -- "$2" "$1" && return 0
        if ! kill -0 "$KTL_PID" 2>/dev/null; then
            echo "ticklane exited before \`$2\`:" >&2
            tail -20 "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "no \`$2\` from ticklane in $3 s:" >&2
    tail -20 "$1" >&2
    exit 1
}

stop_ticklane() { # log
    kill -TERM "$KTL_PID"
    while kill -0 "$KTL_PID" 2>/dev/null; do sleep 0.05; done
    wait "$KTL_PID" 2>/dev/null || true # this one only: mock brokers run in the background too
    KTL_PID=
    grep -q '^ticklane: [0-9]* events' "$1" || {
        echo "ticklane did not finish cleanly:" >&2
        tail -20 "$1" >&2
        exit 1
    }
}

# Events/s from ticklane's live lines (`[   t s] in X ev/s (total N)`, every 100 ms): the events read over
# the whole intervals between the first line with total > 0 and the last line with total < want, divided by
# the lengths of those intervals (each derived as its events / its rate, so the printed 0.1 s rounding of t
# does not matter; an interval with no events counts by t). Startup, group join and the first fetch fall
# before the first counted interval; the idle tail after the last event after the last one.
live_rate() { # log want
    awk -v want="$2" '
        match($0, /^\[ *[0-9.]+s\] in +[0-9]+ ev\/s \(total [0-9]+\)/) {
            s = substr($0, RSTART, RLENGTH); gsub(/[][()]/, " ", s); sub(/s /, " ", s); split(s, f, " ")
            n++; T[n] = f[1] + 0; X[n] = f[3] + 0; N[n] = f[6] + 0
        }
        END {
            for (i = 1; i <= n; i++) {
                if (N[i] == 0) zero = i
                if (N[i] > 0 && !first) first = i
                if (N[i] < want) last = i
                if (N[i] >= want && !reach) reach = i
            }
            if (!reach) { print "nan"; exit }
            if (last <= first || N[last] == N[first]) { # too few whole intervals (QUICK sizes): a lower bound
                printf "%.0f\n", want / (T[reach] - T[zero])
                exit
            }
            for (i = first + 1; i <= last; i++) len += X[i] > 0 ? (N[i] - N[i - 1]) / X[i] : T[i] - T[i - 1]
            printf "%.0f\n", (N[last] - N[first]) / len
        }' "$1"
}

# Intervals in which ticklane read nothing while it had read some but not all of the topic (fetch pauses).
live_stalls() { # log want
    awk -v want="$2" 'match($0, /^\[ *[0-9.]+s\] in +0 ev\/s \(total [0-9]+\)/) {
        s = substr($0, RSTART, RLENGTH); sub(/.*total /, "", s); sub(/\)/, "", s)
        if (s + 0 > 0 && s + 0 < want) n++
    } END { print n + 0 }' "$1"
}

# One ticklane run over a pre-filled topic; records events/s and the cores ticklane and the broker used.
kafka_tput_run() { # brokers topic case run [extra consumer properties]
    local b=$1 topic=$2 case=$3 i=$4 extra=${5:-} cfg log eps t0 b0 s0
    cfg=$WORK/$case.$i.toml
    log=$WORK/$case.$i.log
    cat >"$cfg" <<EOF
# scripts/bench.sh kafka, consume throughput: $topic (pre-filled) → tumbling 1 s bars → null.
[pipeline]
workers = 1
wait = "park"

[metrics]
interval = "100ms"
summary = false

[[source]]
name = "trades"
type = "kafka"
topics = ["$topic"]
format = "binary"
max_out_of_orderness = "2s"
kafka = { "bootstrap.servers" = "$b", "group.id" = "bench-$case-$i-$STAMP"${extra:+, $extra} }

[[window]]
name = "bars_1s"
type = "tumbling"
size = "1s"

[[sink]]
stream = "bars_1s"
type = "null"
[[sink]]
stream = "bars_1s_late"
type = "null"
EOF
    b0=$(cpu_ticks "$KBROKER_PID")
    s0=$(now_s)
    start_ticklane "$cfg" "$log"
    wait_ticklane "$log" "(total $KAFKA_EVENTS)" 600
    t0=$(cpu_ticks "$KTL_PID")
    record "$case" tl_cores "$(cores "$t0" "$(awk -v a="$s0" -v b="$(now_s)" 'BEGIN { print b - a }')")"
    record "$case" broker_cores "$(cores "$(($(cpu_ticks "$KBROKER_PID") - b0))" "$(awk -v a="$s0" -v b="$(now_s)" 'BEGIN { print b - a }')")"
    stop_ticklane "$log"
    eps=$(live_rate "$log" "$KAFKA_EVENTS")
    record "$case" eps "$eps"
    record "$case" stalls "$(live_stalls "$log" "$KAFKA_EVENTS")"
    log "kafka $case run $i: $eps events/s"
}

kafka_throughput() { # brokers
    local b=$1 p i line eps t1 tn s
    for p in 1 4; do
        log "kafka: filling topic tput-$p ($p partition(s)) with $KAFKA_EVENTS binary trades"
        "$BIN" create-topic --brokers "$b" --topic "tput-$p" --partitions "$p" 2>>"$WORK/kafka-fill.log"
        if ! "$BIN" gen -n "$KAFKA_EVENTS" --instruments 1000 --disorder 2s --seed 42 -o - 2>>"$WORK/kafka-fill.log" |
            "$BIN" produce --brokers "$b" --topic "tput-$p" --format binary 2>>"$WORK/kafka-fill.log"; then
            tail -20 "$WORK/kafka-fill.log" >&2
            exit 1
        fi
    done
    for i in $(seq 1 "$KAFKA_RUNS"); do
        for p in 1 4; do # baselines and ticklane alternate, so drifting load hits them alike
            line=$("${NICE_CMD[@]}" "$KBIN" drain --brokers "$b" --topic "tput-$p" --count "$KAFKA_EVENTS" \
                --fetch-wait-ms 10 -X fetch.queue.backoff.ms=1 2>>"$WORK/kafka-drain.log")
            eps=$(sed -nE 's/.* rate=([0-9]+).*/\1/p' <<<"$line")
            record "kafka-drain-$p" eps "${eps:-nan}"
            log "kafka drain tput-$p run $i: $line"
            # `ticklane consume`: the time of all messages minus the time of the first one (start-up, metadata,
            # first fetch), for N - 1 messages.
            s=$(now_s)
            "${NICE_CMD[@]}" "$BIN" consume --brokers "$b" --topic "tput-$p" -n 1 >/dev/null 2>>"$WORK/kafka-consume.log"
            t1=$(awk -v a="$s" -v b="$(now_s)" 'BEGIN { print b - a }')
            s=$(now_s)
            "${NICE_CMD[@]}" "$BIN" consume --brokers "$b" --topic "tput-$p" -n "$KAFKA_EVENTS" >/dev/null 2>>"$WORK/kafka-consume.log"
            tn=$(awk -v a="$s" -v b="$(now_s)" 'BEGIN { print b - a }')
            eps=$(awk -v n="$KAFKA_EVENTS" -v a="$t1" -v b="$tn" 'BEGIN { printf "%.0f", (b > a ? (n - 1) / (b - a) : 0) }')
            record "kafka-consume-$p" eps "$eps"
            log "kafka ticklane consume tput-$p run $i: $KAFKA_EVENTS in $tn s, first in $t1 s: $eps msg/s"
            kafka_tput_run "$b" "tput-$p" "kafka-tl-$p" "$i"
            kafka_tput_run "$b" "tput-$p" "kafka-tl-bo-$p" "$i" '"fetch.queue.backoff.ms" = 1'
        done
    done
}

# One latency run: `ticklane` (producer → in → ticklane → out → consumer) or `broker` (producer → in →
# consumer); records the client's percentiles and, for ticklane, its own end_to_end stage. On `tansu` both
# topics are created on the running broker ($1); on `mock` the run starts a fresh mock broker per topic and
# stops them at its end.
kafka_latency_run() { # brokers rate mode run tansu|mock
    local b=$1 rate=$2 mode=$3 i=$4 kind=$5 case in out cfg log line k v p s0 b0 t0 el bo mocks=()
    case=kafka-lat-$mode-$rate
    [ "$kind" = mock ] && case=kafka-mock-lat-$mode-$rate
    in=lat-$rate-$mode-$i-in
    out=$in
    [ "$mode" = ticklane ] && out=lat-$rate-$mode-$i-out
    if [ "$kind" = mock ]; then
        if [ "$out" = "$in" ]; then start_mocks "$in" >"$WORK/mocks"; else start_mocks "$in" "$out" >"$WORK/mocks"; fi
        mapfile -t mocks <"$WORK/mocks"
        b=${mocks[0]}
        bo=${mocks[1]:-$b}
    else
        "$BIN" create-topic --brokers "$b" --topic "$in" --partitions 1 2>>"$WORK/kafka-topics.log"
        [ "$out" = "$in" ] || "$BIN" create-topic --brokers "$b" --topic "$out" --partitions 1 2>>"$WORK/kafka-topics.log"
        bo=$b
    fi
    s0=$(now_s)
    b0=$(broker_ticks "$kind")
    if [ "$mode" = ticklane ]; then
        cfg=$WORK/$case.$i.toml
        log=$WORK/$case.$i.log
        cat >"$cfg" <<EOF
# scripts/bench.sh kafka, latency: $in → per-trade running VWAP (one tick per trade, with its ts) → $out.
[pipeline]
workers = 1
emitter = "inline"
wait = "park"

[metrics]
live = false
latency_sample = 1
histogram_log = "$WORK/$case.$i.hlog"

[[source]]
name = "trades"
type = "kafka"
topics = ["$in"]
format = "binary"
event_time = "payload"
max_out_of_orderness = "2s"
kafka = { "bootstrap.servers" = "$b", "group.id" = "bench-$case-$i-$STAMP", "fetch.wait.max.ms" = $KAFKA_FETCH_WAIT_MS }

[[continuous]]
name = "ticks"
ema_half_life = "1s"

[[sink]]
stream = "ticks"
type = "kafka"
topic = "$out"
format = "binary"
kafka = { "bootstrap.servers" = "$bo", "linger.ms" = 0 }
[[sink]]
stream = "ticks_late"
type = "null"
EOF
        start_ticklane "$cfg" "$log"
        wait_ticklane "$log" "partitions assigned" 60
    fi
    line=$("${NICE_CMD[@]}" "$KBIN" latency --brokers "$b" --out-brokers "$bo" --in "$in" --out "$out" --rate "$rate" \
        --seconds "$KAFKA_SECONDS" --warmup "$KAFKA_WARMUP" --fetch-wait-ms "$KAFKA_FETCH_WAIT_MS" --label "$mode" \
        --series 2>>"$WORK/kafka-latency.log" | grep '^kafka_e2e ' || true)
    echo "(that was $kind $mode $rate/s run $i)" >>"$WORK/kafka-latency.log"
    el=$(awk -v a="$s0" -v b="$(now_s)" 'BEGIN { print b - a }')
    record "$case" broker_cores "$(cores "$(($(broker_ticks "$kind") - b0))" "$el")"
    if [ "$mode" = ticklane ]; then
        t0=$(cpu_ticks "$KTL_PID")
        record "$case" tl_cores "$(cores "$t0" "$el")"
        stop_ticklane "$log"
        read -r -a p < <(stage_ns "$WORK/$case.$i.hlog" end_to_end)
        if [ ${#p[@]} -eq 6 ]; then
            record "$case-internal" p50 "${p[0]}"
            record "$case-internal" p90 "${p[1]}"
            record "$case-internal" p99 "${p[2]}"
            record "$case-internal" p99.9 "${p[3]}"
            record "$case-internal" p99.99 "${p[4]}"
            record "$case-internal" max "${p[5]}"
        fi
    fi
    [ "$kind" = mock ] && stop_mocks
    [ -n "$line" ] || {
        echo "benches/kafka_e2e.rs printed nothing ($WORK/kafka-latency.log):" >&2
        tail -20 "$WORK/kafka-latency.log" >&2
        exit 1
    }
    for k in p50 p90 p99 p99.9 p99.99 max missing send_p99 achieved_rate; do
        v=$(sed -nE "s/.* $k=([0-9]+).*/\1/p" <<<"$line")
        record "$case" "$k" "${v:-nan}"
    done
    log "kafka latency ($kind) $mode $rate/s run $i: $line"
}

# CPU clock ticks of the broker(s) of a latency run so far.
broker_ticks() { # tansu|mock
    local t=0 pid
    if [ "$1" = mock ]; then
        for pid in "${KMOCK_PIDS[@]}"; do t=$((t + $(cpu_ticks "$pid"))); done
        echo "$t"
    else
        cpu_ticks "$KBROKER_PID"
    fi
}

kafka_lat_row() { # label case
    printf '| %s | %s | %s | %s [%s – %s] | %s | %s | %s | %s |\n' "$1" \
        "$(human "$(stat "$2" p50 median)")" "$(human "$(stat "$2" p90 median)")" \
        "$(human "$(stat "$2" p99 median)")" "$(human "$(stat "$2" p99 min)")" "$(human "$(stat "$2" p99 max)")" \
        "$(human "$(stat "$2" p99.9 median)")" "$(human "$(stat "$2" p99.99 median)")" \
        "$(human "$(stat "$2" max median)")" "${3:-}"
}

kafka() {
    if ! have_tansu; then
        echo
        echo "### Kafka: skipped, \`tansu\` is not on PATH (\`scripts/broker.sh install\` installs it)"
        return 0
    fi
    KBIN=$(cargo bench --bench kafka_e2e --no-run 2>&1 | sed -nE 's/^ *Executable .*\((.*)\)$/\1/p' | tail -1)
    [ -x "$KBIN" ] || {
        echo "cannot find the kafka_e2e bench binary (cargo bench --bench kafka_e2e --no-run)" >&2
        exit 1
    }
    trap kafka_cleanup EXIT
    local b_mem=127.0.0.1:$KAFKA_PORT b_sql=127.0.0.1:$((KAFKA_PORT + 1)) i r m p
    start_broker memory "$KAFKA_PORT" "$WORK/broker-memory"
    KBROKER_PID=$(cat "$WORK/broker-memory/broker.pid")
    kafka_throughput "$b_mem"
    stop_broker "$WORK/broker-memory"
    start_broker sqlite "$((KAFKA_PORT + 1))" "$WORK/broker-sqlite"
    KBROKER_PID=$(cat "$WORK/broker-sqlite/broker.pid")
    for i in $(seq 1 "$KAFKA_RUNS"); do
        for r in $KAFKA_RATES; do # baseline and ticklane alternate, so drifting load hits them alike
            for m in broker ticklane; do
                kafka_latency_run "$b_sql" "$r" "$m" "$i" tansu
            done
        done
    done
    stop_broker "$WORK/broker-sqlite"
    for i in $(seq 1 "$KAFKA_RUNS"); do
        for r in $KAFKA_MOCK_RATES; do
            for m in broker ticklane; do
                kafka_latency_run "" "$r" "$m" "$i" mock
            done
        done
    done
    trap - EXIT

    echo
    echo "### Kafka (tansu $(tansu --version 2>/dev/null | awk '{ print $NF }'), brokers on this machine; $KAFKA_RUNS runs per case)"
    echo
    echo "Consume throughput: $KAFKA_EVENTS binary trades (1,000 instruments, 2 s disorder) pre-filled into a topic"
    echo "(STORAGE=memory broker); ticklane: kafka source → tumbling 1 s bars → null sink, one worker, events/s over"
    echo "the 100 ms intervals it was reading. Drain: benches/kafka_e2e.rs reading the same topic, no processing"
    echo "(first message → last). \`ticklane consume\`: the tool's time for all messages minus its time for one."
    echo
    echo "| partitions | ticklane, librdkafka defaults | ticklane, fetch.queue.backoff.ms = 1 | drain (bare client) | ticklane (backoff 1) / drain | \`ticklane consume\` | 0-event intervals (defaults / backoff 1) | cores: ticklane, broker (backoff 1) |"
    echo "|---|---|---|---|---|---|---|---|"
    for p in 1 4; do
        printf '| %s | %s [%s – %s] | %s [%s – %s] | %s [%s – %s] | %s | %s [%s – %s] | %s / %s | %s, %s |\n' "$p" \
            "$(meps "$(stat "kafka-tl-$p" eps median)")" "$(meps "$(stat "kafka-tl-$p" eps min)")" "$(meps "$(stat "kafka-tl-$p" eps max)")" \
            "$(meps "$(stat "kafka-tl-bo-$p" eps median)")" "$(meps "$(stat "kafka-tl-bo-$p" eps min)")" "$(meps "$(stat "kafka-tl-bo-$p" eps max)")" \
            "$(meps "$(stat "kafka-drain-$p" eps median)")" "$(meps "$(stat "kafka-drain-$p" eps min)")" "$(meps "$(stat "kafka-drain-$p" eps max)")" \
            "$(ratio "$(stat "kafka-tl-bo-$p" eps median)" "$(stat "kafka-drain-$p" eps median)")" \
            "$(meps "$(stat "kafka-consume-$p" eps median)")" "$(meps "$(stat "kafka-consume-$p" eps min)")" "$(meps "$(stat "kafka-consume-$p" eps max)")" \
            "$(stat "kafka-tl-$p" stalls median)" "$(stat "kafka-tl-bo-$p" stalls median)" \
            "$(stat "kafka-tl-bo-$p" tl_cores median)" "$(stat "kafka-tl-bo-$p" broker_cores median)"
    done
    echo
    echo "End-to-end latency (SQLite-storage broker): trades produced open-loop, payload ts = when each was due;"
    echo "latency = wall clock when the consumer read the record − ts, every record after a ${KAFKA_WARMUP} s warm-up,"
    echo "${KAFKA_SECONDS} s per run; fetch.wait.max.ms = $KAFKA_FETCH_WAIT_MS for every consumer, linger.ms = 0 for every producer."
    echo
    echo "| rate | path | p50 | p90 | p99 | p99.9 | p99.99 | max | missing; producer late p99; cores: broker, ticklane |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for r in $KAFKA_RATES; do
        kafka_lat_row "$r/s broker round trip (baseline): producer → topic → consumer" "kafka-lat-broker-$r" \
            "$(stat "kafka-lat-broker-$r" missing max); $(human "$(stat "kafka-lat-broker-$r" send_p99 median)"); $(stat "kafka-lat-broker-$r" broker_cores median)"
        kafka_lat_row "$r/s through ticklane: producer → in → ticklane → out → consumer" "kafka-lat-ticklane-$r" \
            "$(stat "kafka-lat-ticklane-$r" missing max); $(human "$(stat "kafka-lat-ticklane-$r" send_p99 median)"); $(stat "kafka-lat-ticklane-$r" broker_cores median), $(stat "kafka-lat-ticklane-$r" tl_cores median)"
        kafka_lat_row "$r/s ticklane's own end_to_end (message polled → handed to its producer)" "kafka-lat-ticklane-$r-internal"
    done
    [ -n "$KAFKA_MOCK_RATES" ] || return 0
    echo
    echo "The same on librdkafka's mock cluster (benches/kafka_e2e.rs mock-broker): a fresh mock broker process per topic"
    echo "and run (input and output topics on two), so the cores column sums both."
    echo
    echo "| rate | path | p50 | p90 | p99 | p99.9 | p99.99 | max | missing; producer late p99; cores: brokers, ticklane |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for r in $KAFKA_MOCK_RATES; do
        kafka_lat_row "$r/s broker round trip (baseline)" "kafka-mock-lat-broker-$r" \
            "$(stat "kafka-mock-lat-broker-$r" missing max); $(human "$(stat "kafka-mock-lat-broker-$r" send_p99 median)"); $(stat "kafka-mock-lat-broker-$r" broker_cores median)"
        kafka_lat_row "$r/s through ticklane" "kafka-mock-lat-ticklane-$r" \
            "$(stat "kafka-mock-lat-ticklane-$r" missing max); $(human "$(stat "kafka-mock-lat-ticklane-$r" send_p99 median)"); $(stat "kafka-mock-lat-ticklane-$r" broker_cores median), $(stat "kafka-mock-lat-ticklane-$r" tl_cores median)"
        kafka_lat_row "$r/s ticklane's own end_to_end" "kafka-mock-lat-ticklane-$r-internal"
    done
}

# --- (g) checkpoints --------------------------------------------------------------------------------------
# One stage's row of `ticklane stats` for a size stage: p50 p90 p99 p99.9 p99.99 max, in bytes.
stage_bytes() { # hlog stage
    "$BIN" stats "$1" | awk -v s="$2" '
        function b(x) {
            if (x ~ /GiB$/) { sub(/GiB$/, "", x); return x * 1073741824 }
            if (x ~ /MiB$/) { sub(/MiB$/, "", x); return x * 1048576 }
            if (x ~ /KiB$/) { sub(/KiB$/, "", x); return x * 1024 }
            sub(/B$/, "", x); return x + 0
        }
        $1 == s && NF >= 8 { print b($3), b($4), b($5), b($6), b($7), b($8) }'
}
mib() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "–"; else printf "%.1f MiB", v / 1048576 }'; }

checkpoint() {
    local n i dir cfg p b chosen ms eps off pause99
    for n in $CKPT_SIZES; do
        for i in $(seq 1 "$RUNS"); do
            dir=$WORK/ckpt-$n-$i
            rm -rf "$dir"
            mkdir -p "$dir"
            cfg=$dir/job.toml
            derive checkpoint-state.toml "$cfg" -e "s|^instruments = .*|instruments = $n|" \
                -e "s|^dir = .*|dir = \"$dir/chk\"|" -e "s|^retain = .*|retain = 1000|" \
                -e "s|^histogram_log = .*|histogram_log = \"$dir/ckpt.hlog\"|"
            run_pipeline "$cfg" "$dir/run.log" >/dev/null
            read -r -a p < <(stage_ns "$dir/ckpt.hlog" checkpoint_pause)
            pause99=${p[2]:-?}
            if [ ${#p[@]} -eq 6 ]; then
                record "ckpt-$n" pause_p50 "${p[0]}"
                record "ckpt-$n" pause_p99 "${p[2]}"
                record "ckpt-$n" pause_max "${p[5]}"
            fi
            read -r -a p < <(stage_ns "$dir/ckpt.hlog" checkpoint_duration)
            [ ${#p[@]} -eq 6 ] && record "ckpt-$n" duration_p50 "${p[0]}" && record "ckpt-$n" duration_max "${p[5]}"
            read -r -a b < <(stage_bytes "$dir/ckpt.hlog" checkpoint_bytes)
            [ ${#b[@]} -eq 6 ] && record "ckpt-$n" bytes "${b[5]}"
            # Restore: the newest checkpoint taken while trades were still coming (its state is the full one).
            chosen=$("$BIN" checkpoints --dir "$dir/chk" | awk -v total=20000000 '$NF == "ok" {
                for (f = 1; f <= NF; f++) if ($f == "n" && $(f + 1) + 0 < total) c = $1 } END { print c }')
            if [ -n "$chosen" ]; then
                sed -e "s|^dir = .*|dir = \"$dir/chk-restored\"|" "$cfg" >"$dir/restore.toml"
                "${NICE_CMD[@]}" env RUST_LOG=info "$BIN" run --config "$dir/restore.toml" \
                    --from-savepoint "$dir/chk/$(printf 'chk-%020d' "$chosen")" >/dev/null 2>"$dir/restore.log" || {
                    tail -20 "$dir/restore.log" >&2
                    exit 1
                }
                ms=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/restore.log" | sed -nE 's/.*first event after restore.* ms=([0-9.]+).*/\1/p' | head -1)
                record "ckpt-$n" restore_ms "${ms:-nan}"
            fi
            log "checkpoint $n windows run $i: pause p99 $pause99 ns, bytes ${b[5]:-?}, restore ${ms:-?} ms"
        done
    done
    # Throughput with a checkpoint every second vs none: the (a) generator workload, alternating.
    derive throughput-gen.toml "$WORK/ckpt-tput-off.toml" -e "s|^events = .*|events = $EVENTS|"
    cp "$WORK/ckpt-tput-off.toml" "$WORK/ckpt-tput-on.toml"
    for i in $(seq 1 "$RUNS"); do
        rm -rf "$WORK/ckpt-tput-chk"
        printf '\n[checkpoint]\ndir = "%s"\ninterval = "1s"\n' "$WORK/ckpt-tput-chk" >>"$WORK/ckpt-tput-on.toml.$i"
        cat "$WORK/ckpt-tput-off.toml" "$WORK/ckpt-tput-on.toml.$i" >"$WORK/ckpt-tput-on.$i.toml"
        off=$(run_pipeline "$WORK/ckpt-tput-off.toml" "$WORK/ckpt-tput-off.$i.log")
        record ckpt-tput-off eps "$off"
        eps=$(run_pipeline "$WORK/ckpt-tput-on.$i.toml" "$WORK/ckpt-tput-on.$i.log")
        record ckpt-tput-on eps "$eps"
        log "checkpoint throughput run $i: off $off on $eps"
    done
    echo
    echo "### (g) Checkpoints"
    echo
    echo "State: N keys with one open 1 h tumbling window each (OHLCV + VWAP), one worker, a checkpoint every 500 ms"
    echo "during 20,000,000 uniform trades; restore: \`run --from-savepoint\` of the newest checkpoint taken mid-input,"
    echo "run start → first event processed."
    echo
    echo "| open windows | checkpoint size | duration p50 / max | shard pause p50 | p99 [min – max] | max | restore → first event |"
    echo "|---|---|---|---|---|---|---|"
    for n in $CKPT_SIZES; do
        printf '| %s | %s | %s / %s | %s | %s [%s – %s] | %s | %s ms |\n' "$n" "$(mib "$(stat "ckpt-$n" bytes median)")" \
            "$(human "$(stat "ckpt-$n" duration_p50 median)")" "$(human "$(stat "ckpt-$n" duration_max median)")" \
            "$(human "$(stat "ckpt-$n" pause_p50 median)")" "$(human "$(stat "ckpt-$n" pause_p99 median)")" \
            "$(human "$(stat "ckpt-$n" pause_p99 min)")" "$(human "$(stat "ckpt-$n" pause_p99 max)")" \
            "$(human "$(stat "ckpt-$n" pause_max median)")" "$(awk -v v="$(stat "ckpt-$n" restore_ms median)" 'BEGIN { if (v == "nan") print "–"; else printf "%.0f", v }')"
    done
    echo
    echo "Throughput, workload (a) with the generator ($EVENTS trades): no checkpoints $(meps "$(stat ckpt-tput-off eps median)") events/s,"
    echo "a checkpoint every 1 s $(meps "$(stat ckpt-tput-on eps median)") events/s ($(ratio "$(stat ckpt-tput-on eps median)" "$(stat ckpt-tput-off eps median)") of it)."
}

# The generated ITCH feed of $1 messages (100 stocks, seed 7), made once per build of the binary; prints its path.
itch_feed() {
    local feed=$BENCH_DIR/itch-$1.itch
    if [ ! -s "$feed" ] || [ ! -f "$feed.done" ] || [ "$BIN" -nt "$feed.done" ]; then
        log "generating $feed ($1 messages)"
        "$BIN" itch-gen --out "$feed" --messages "$1" --stocks 100 --seed 7 --date 2026-11-26 2>"$WORK/itch-gen.log" || {
            cat "$WORK/itch-gen.log" >&2
            exit 1
        }
        touch "$feed.done"
    fi
    echo "$feed"
}

# --- (h) ITCH ----------------------------------------------------------------------------------------------
# One core (benches/itch_file.rs, the source's loop without the rings): decode only, decode + books, decode +
# books without prefetching (the prefetch's baseline), decode + books + the quote check; then the whole
# pipeline: decode + books (no quotes, no windows), and decode + books + quotes into 1 s OHLCV and 1 s
# imbalance windows. Each run measures every case once, in that order.
itch() {
    local n=${ITCH_MESSAGES:-50000000} feed c i log secs msgs out
    local one=(decode book book-noprefetch book+quotes)
    feed=$(itch_feed "$n")
    cargo bench --bench itch_file --no-run >"$WORK/itch-build.log" 2>&1 || {
        tail -30 "$WORK/itch-build.log" >&2
        exit 1
    }
    for c in baseline windows levels; do
        {
            printf '[metrics]\nlive = false\n[[source]]\nname = "feed"\ntype = "itch"\npath = "%s"\ndate = "2026-11-26"\n' "$feed"
            if [ $c = baseline ]; then
                printf 'quotes = false\n'
            else
                printf '[[window]]\nname = "bars"\ntype = "tumbling"\nsize = "1s"\n'
                printf 'aggregates = ["open", "high", "low", "close", "volume", "vwap", "count"]\n'
                printf '[[window]]\nname = "imb"\ntype = "tumbling"\nsize = "1s"\nvalue = "imbalance"\n'
                printf 'aggregates = ["low", "high", "twap", "count"]\n'
                for st in bars bars_late imb imb_late; do printf '[[sink]]\nstream = "%s"\ntype = "null"\n' $st; done
            fi
            if [ $c = levels ]; then
                printf '[[stream]]\nname = "levels"\nevents = "level"\n[[sink]]\nstream = "levels"\ntype = "null"\n'
            fi
            printf '[[sink]]\nstream = "feed_rejects"\ntype = "null"\n'
        } >"$WORK/itch-$c.toml"
    done
    for i in $(seq 1 "$RUNS"); do
        log "itch run $i: one core ($(cut -d' ' -f1-3 /proc/loadavg))"
        out=$WORK/itch-one.$i.tsv
        "${NICE_CMD[@]}" env TL_RUNS=1 TL_ITCH_FILE="$feed" TL_ITCH_CASES="$(
            IFS=,
            echo "${one[*]}"
        )" cargo bench --bench itch_file >"$out" 2>"$WORK/itch-one.$i.log" || {
            tail -30 "$WORK/itch-one.$i.log" >&2
            exit 1
        }
        for c in "${one[@]}"; do
            record "itch-$c" mps "$(awk -F'\t' -v c="$c" '$1 == c { print $2 }' "$out")"
            record "itch-$c" cpu "$(awk -F'\t' -v c="$c" '$1 == c { print $5 }' "$out")"
        done
        for c in baseline windows levels; do
            log=$WORK/itch-$c.$i.log
            run_pipeline "$WORK/itch-$c.toml" "$log" >/dev/null
            secs=$(sed -nE 's/^ticklane: [0-9]+ events in ([0-9.]+) s.*/\1/p' "$log")
            msgs=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | sed -nE 's/.*ITCH feed ended.* messages=([0-9]+).*/\1/p')
            record "itch-$c" mps "$(awk -v m="$msgs" -v s="$secs" 'BEGIN { printf "%.0f", m / s }')"
            log "itch $c run $i: $msgs messages in $secs s"
        done
    done
    echo
    echo "### (h) ITCH 5.0: $n generated messages, 100 stocks"
    echo
    echo "| case | messages/s (median [min – max]) | thread CPU time: messages/s (median) |"
    echo "|---|---|---|"
    for c in "${one[@]}" baseline windows levels; do
        printf '| %s | %s [%s – %s] | %s |\n' "$(case $c in
            decode) echo 'one core: decode only' ;;
            book) echo 'one core: decode + books (prefetching)' ;;
            book-noprefetch) echo 'one core: decode + books, no prefetching (baseline of the above)' ;;
            book+quotes) echo 'one core: decode + books + quote check' ;;
            baseline) echo 'pipeline: decode + books (no quotes, no windows)' ;;
            windows) echo 'pipeline: decode + books + quotes, 1 s OHLCV and 1 s imbalance windows' ;;
            levels) echo 'pipeline: the above + every L2 level update as a row (a level stream, null sink)' ;;
            esac)" \
            "$(meps "$(stat "itch-$c" mps median)")" "$(meps "$(stat "itch-$c" mps min)")" "$(meps "$(stat "itch-$c" mps max)")" \
            "$(meps "$(stat "itch-$c" cpu median)")"
    done
}

# --- (i) ITCH over loopback UDP: end-to-end latency -----------------------------------------------------
# The host's CLOCK_MONOTONIC in ns: the clock itch-send's schedule (--start-at) and the job's `schedule` share.
host_mono_ns() { python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))'; }

# One paced run: the job listens, itch-send sends the feed on a schedule starting 3 s ahead; records the
# stage's percentiles, the messages received and lost, and how far behind its schedule the sender fell.
itch_lat_run() { # case config stage batch due|receive run feed
    local case=$1 src=$2 stage=$3 batch=$4 from=$5 i=$6 feed=$7
    local rate=${ITCH_LAT_RATE:-1000000} port=${ITCH_LAT_PORT:-26490} wait=${ITCH_LAT_WAIT:-park}
    local cfg=$WORK/$case.$i.toml hlog=$WORK/$case.$i.hlog log=$WORK/$case.$i.log slog=$WORK/$case.$i.send.log
    local start p k v clean pid send=()
    start=$(($(host_mono_ns) + 3000000000))
    local sed_args=(-e "s|^listen = .*|listen = \"127.0.0.1:$port\"|" -e "s|^histogram_log = .*|histogram_log = \"$hlog\"|"
        -e "s|^wait = .*|wait = \"$wait\"|")
    if [ "$from" = due ]; then
        sed_args+=(-e "s|^schedule = .*|schedule = { start = $start, rate = $rate }|")
    else
        sed_args+=(-e '/^schedule = /d')
    fi
    derive "$src" "$cfg" "${sed_args[@]}"
    "${NICE_CMD[@]}" env RUST_LOG=info "$BIN" run --config "$cfg" >/dev/null 2>"$log" &
    pid=$!
    local t=0
    until grep -q 'listening for MoldUDP64' "$log" 2>/dev/null; do
        sleep 0.05
        t=$((t + 1))
        if [ $t -gt 50 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "the job did not start listening within 2.5 s:" >&2
            tail -20 "$log" >&2
            kill "$pid" 2>/dev/null || true
            exit 1
        fi
    done
    [ -n "${ITCH_SEND_CORE-1}" ] && send=(taskset -c "${ITCH_SEND_CORE-1}")
    if ! "${NICE_CMD[@]}" "${send[@]}" "$BIN" itch-send "$feed" --to "127.0.0.1:$port" --rate "$rate" \
        --start-at "$start" --max-messages "$batch" 2>"$slog"; then
        cat "$slog" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    if ! wait "$pid"; then
        echo "ticklane run --config $cfg failed:" >&2
        tail -20 "$log" >&2
        exit 1
    fi
    read -r -a p < <(stage_ns "$hlog" "$stage")
    if [ ${#p[@]} -ne 6 ]; then
        echo "no $stage latencies in $hlog" >&2
        exit 1
    fi
    record "$case" p50 "${p[0]}"
    record "$case" p90 "${p[1]}"
    record "$case" p99 "${p[2]}"
    record "$case" p99.9 "${p[3]}"
    record "$case" p99.99 "${p[4]}"
    record "$case" max "${p[5]}"
    clean=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep 'MoldUDP64 session ended')
    for k in packets messages missing kernel_drops; do
        v=$(sed -nE "s/.* $k=([0-9-]+).*/\1/p" <<<"$clean")
        record "$case" "$k" "${v:-nan}"
    done
    v=$(sed -nE 's/.* in ([0-9]+) packets .*/\1/p' "$slog")
    record "$case" sent_packets "${v:-nan}"
    v=$(sed -nE 's/.*most behind schedule ([0-9]+) ns.*/\1/p' "$slog")
    record "$case" behind "${v:-nan}"
    log "$case run $i: $stage p50 $(human "${p[0]}") p99 $(human "${p[2]}") p99.99 $(human "${p[4]}") max $(human "${p[5]}"); $(sed -nE 's/.* (messages=[0-9]+ gaps=[0-9]+ missing=[0-9]+).* (kernel_drops=[0-9-]+).*/\1 \2/p' <<<"$clean"); sender behind ≤ $(human "${v:-nan}")"
}

itch_lat_row() { # label case
    printf '| %s | %s | %s | %s [%s – %s] | %s | %s [%s – %s] | %s | %s / %s | %s / %s | %s |\n' "$1" \
        "$(human "$(stat "$2" p50 median)")" "$(human "$(stat "$2" p90 median)")" \
        "$(human "$(stat "$2" p99 median)")" "$(human "$(stat "$2" p99 min)")" "$(human "$(stat "$2" p99 max)")" \
        "$(human "$(stat "$2" p99.9 median)")" \
        "$(human "$(stat "$2" p99.99 median)")" "$(human "$(stat "$2" p99.99 min)")" "$(human "$(stat "$2" p99.99 max)")" \
        "$(human "$(stat "$2" max median)")" \
        "$(stat "$2" packets min)" "$(stat "$2" sent_packets max)" \
        "$(stat "$2" missing max)" "$(stat "$2" kernel_drops max)" "$(human "$(stat "$2" behind max)")"
}

itch_latency() {
    local rate=${ITCH_LAT_RATE:-1000000} batches=${ITCH_LAT_BATCHES:-65534 10} n feed b i from
    n=$((rate * LAT_SECONDS))
    feed=$(itch_feed "$n")
    for i in $(seq 1 "$RUNS"); do
        for b in $batches; do # baseline and workload alternate, so drifting load hits them alike
            for from in due receive; do
                itch_lat_run "itchlat-$b-$from-baseline" itch-latency-baseline.toml ingest_to_shard "$b" "$from" "$i" "$feed"
                itch_lat_run "itchlat-$b-$from" itch-latency.toml end_to_end "$b" "$from" "$i" "$feed"
                itch_lat_run "itchlat-$b-$from-quotes" itch-latency-quotes.toml end_to_end "$b" "$from" "$i" "$feed"
            done
        done
    done
    echo
    echo "### (i) ITCH over loopback UDP: $n messages at $rate messages/s, 100 stocks, ${LAT_SECONDS} s per run"
    echo
    echo "Workload rows: end_to_end, message → the 1-minute microprice or OHLCV bar its book change or execution"
    echo "closes written (null sinks); per-quote rows: message → the quote row of its book change written"
    echo "(config/bench/itch-latency-quotes.toml: one row per top-of-book change, null sink). Baseline rows: decode + books only, ingest_to_shard (→ the shard took the"
    echo "execution off its ring). From \"due\": when the sender's schedule said the message was due; from"
    echo "\"receive\": when recv returned its packet. Packets: received (fewest over runs) / sent (most); lost:"
    echo "messages missing by the MoldUDP64 sequence / datagrams the kernel dropped (most over runs); sender: the"
    echo "most a packet went out after it was due (most over runs). itch-send --max-messages as given."
    echo "pipeline.wait = \"${ITCH_LAT_WAIT:-park}\"; itch-send pinned to core ${ITCH_SEND_CORE-1} (empty: not pinned)."
    echo
    echo "| case | p50 | p90 | p99 | p99.9 | p99.99 | max | packets | lost | sender behind |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for b in $batches; do
        for from in due receive; do
            itch_lat_row "≤ $b msgs/packet, from $from: books, quotes, bars" "itchlat-$b-$from"
            itch_lat_row "≤ $b msgs/packet, from $from: books, per-quote stream" "itchlat-$b-$from-quotes"
            itch_lat_row "≤ $b msgs/packet, from $from: baseline (decode + books)" "itchlat-$b-$from-baseline"
        done
    done
}

# --- postgres sink ---------------------------------------------------------------------------------------
# Rows of stream `bars` written per second of the whole run (process start to exit).
pg_run() { # config log
    local t0 t1 rows
    t0=$(now_s)
    if ! "${NICE_CMD[@]}" "$BIN" run --config "$1" >/dev/null 2>"$2"; then
        echo "ticklane run --config $1 failed:" >&2
        tail -20 "$2" >&2
        exit 1
    fi
    t1=$(now_s)
    rows=$(awk '$1 == "bars" && $3 == "rows" { print $2 }' "$2")
    awk -v r="$rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", r / (b - a) }'
}

krows() { awk -v v="$1" 'BEGIN { if (v == "nan") print "–"; else printf "%.1f k", v / 1e3 }'; }

postgres() {
    local pgbin=/usr/lib/postgresql/15/bin
    if [ ! -x "$pgbin/initdb" ]; then
        echo
        echo "### postgres sink: skipped (PostgreSQL 15 is not installed: scripts/postgres.sh install)"
        return
    fi
    local n=${PG_EVENTS:-$([ "$QUICK" = 1 ] && echo 200000 || echo 2000000)} port=${PG_PORT:-15532}
    local csv=$BENCH_DIR/trades-pg-$n.csv dir=$WORK/postgres url i c rps
    url="postgresql://ticklane@127.0.0.1:$port/ticklane"
    if [ ! -s "$csv" ] || [ ! -f "$csv.done" ] || [ "$BIN" -nt "$csv.done" ]; then
        log "generating $csv ($n trades)"
        "$BIN" gen -n "$n" --instruments 1000 --disorder 2s --seed 42 -o "$csv" 2>"$WORK/gen-pg.log"
        touch "$csv.done"
    fi
    "$ROOT/scripts/postgres.sh" start "$port" "$dir" >&2
    # shellcheck disable=SC2064
    trap "'$ROOT/scripts/postgres.sh' stop '$dir'" EXIT
    derive postgres.toml "$WORK/postgres.toml" -e "s|^path = .*|path = \"$csv\"|" -e "s|^connect = .*|connect = \"$url\"|"
    derive postgres-baseline.toml "$WORK/postgres-baseline.toml" -e "s|^path = \"/tmp/ticklane-bench/trades-pg.csv\"|path = \"$csv\"|" \
        -e "s|^path = \"/tmp/ticklane-bench/bars-pg.csv\"|path = \"$WORK/bars-pg.csv\"|"
    for i in $(seq 1 "$RUNS"); do
        psql -q "$url" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS bench_bars' >/dev/null
        rps=$(pg_run "$WORK/postgres.toml" "$WORK/postgres-insert.$i.log")
        log "postgres insert run $i: $rps rows/s"
        record pg-insert rps "$rps"
        rps=$(pg_run "$WORK/postgres.toml" "$WORK/postgres-upsert.$i.log")
        log "postgres upsert run $i: $rps rows/s"
        record pg-upsert rps "$rps"
        rps=$(pg_run "$WORK/postgres-baseline.toml" "$WORK/postgres-baseline.$i.log")
        log "postgres baseline (csv) run $i: $rps rows/s"
        record pg-baseline rps "$rps"
    done
    local rows
    rows=$(awk '$1 == "bars" && $3 == "rows" { print $2 }' "$WORK/postgres-insert.1.log")
    "$ROOT/scripts/postgres.sh" stop "$dir"
    trap - EXIT
    echo
    echo "### postgres sink: $n trades → $rows bars (100 ms, 1,000 instruments), PostgreSQL $("$pgbin/postgres" --version | awk '{ print $3 }') on this machine"
    echo
    echo "batch_rows = 10000, batch_time = 100 ms, queue = 4 (the defaults); the server as scripts/postgres.sh"
    echo "starts it (fsync and synchronous_commit on). Rows/s over the whole run, process start to exit."
    echo
    echo "| case | rows/s | [min – max] |"
    echo "|---|---|---|"
    for c in pg-insert pg-upsert pg-baseline; do
        local label
        case $c in
            pg-insert) label="postgres sink, empty table (inserts)" ;;
            pg-upsert) label="postgres sink, the same rows again (every row an upsert onto itself)" ;;
            pg-baseline) label="baseline: the same job into a csv file" ;;
        esac
        echo "| $label | $(krows "$(stat "$c" rps median)") | $(krows "$(stat "$c" rps min)") – $(krows "$(stat "$c" rps max)") |"
    done
}

# --- (j) sink throughput into InfluxDB ------------------------------------------------------------------
INFLUX_DIR=
influx_cleanup() { [ -z "$INFLUX_DIR" ] || "$ROOT/scripts/influxdb.sh" stop "$INFLUX_DIR" || true; }

# A value of InfluxDB's answer to query $2 on database $1 (the first row's second column).
influx_query() { # db query
    curl -sfG "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "db=$1" --data-urlencode "q=$2" |
        python3 -c 'import json, sys; r = json.load(sys.stdin)["results"][0]; print(r["series"][0]["values"][0][1] if "series" in r else 0)'
}

influxdb() {
    local i b db cfg t0 t1 rows got rps out
    INFLUX_DIR=$WORK/influxdb
    trap influx_cleanup EXIT
    out=$("${NICE_CMD[@]}" "$ROOT/scripts/influxdb.sh" start "$INFLUX_PORT" "$INFLUX_DIR") || {
        echo "$out" >&2
        exit 1
    }
    log "$out"
    derive influxdb.toml "$WORK/influx-null.toml" -e 's|^type = "influxdb"|type = "null"|' -e '/^\[sink.influxdb\]/,$d'
    for i in $(seq 1 "$RUNS"); do
        for b in null $INFLUX_BATCHES; do # alternating, so drifting load hits every case alike
            cfg=$WORK/influx-$b.$i.toml
            db=bench_${b}_$i
            if [ "$b" = null ]; then
                cp "$WORK/influx-null.toml" "$cfg"
            else
                derive influxdb.toml "$cfg" -e "s|^url = .*|url = \"http://127.0.0.1:$INFLUX_PORT\"|" \
                    -e "s|^database = .*|database = \"$db\"|" -e "s|^batch_rows = .*|batch_rows = $b|"
            fi
            t0=$(now_s)
            run_pipeline "$cfg" "$WORK/influx-$b.$i.log" >/dev/null
            t1=$(now_s)
            rows=$(sed -nE 's/^  bars +([0-9]+) rows$/\1/p' "$WORK/influx-$b.$i.log")
            if [ "$b" != null ]; then
                got=$(influx_query "$db" 'SELECT count(close) FROM bars')
                [ "$got" = "$rows" ] || {
                    echo "influxdb batch_rows=$b run $i: the job wrote $rows rows, the database holds $got" >&2
                    exit 1
                }
                influx_query "$db" "DROP DATABASE $db" >/dev/null
            fi
            rps=$(awk -v r="$rows" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", r / (z - a) }')
            record "influx-$b" rps "$rps"
            record "influx-$b" secs "$(awk -v a="$t0" -v z="$t1" 'BEGIN { print z - a }')"
            log "influxdb $b run $i: $rows rows in $(awk -v a="$t0" -v z="$t1" 'BEGIN { printf "%.2f", z - a }') s, $rps rows/s"
        done
    done
    influx_cleanup
    INFLUX_DIR=
    trap - EXIT
    echo
    echo "### (j) Sink throughput into InfluxDB"
    echo
    echo "config/bench/influxdb.toml: $rows 1 s bars of 10,000 instruments (2,000,000 generated trades) into an influxdb"
    echo "sink posting to InfluxDB $(/usr/bin/influxd version 2>/dev/null | awk '{ print $2 }') on 127.0.0.1 (scripts/influxdb.sh); rows/s = rows / the job's wall time."
    echo "Baseline: the same job with a null sink."
    echo
    echo "| sink | rows/s [min – max] | job wall time |"
    echo "|---|---|---|"
    for b in null $INFLUX_BATCHES; do
        printf '| %s | %s [%s – %s] | %s s |\n' "$([ "$b" = null ] && echo 'null (baseline)' || echo "influxdb, batch_rows = $b")" \
            "$(stat "influx-$b" rps median)" "$(stat "influx-$b" rps min)" "$(stat "influx-$b" rps max)" \
            "$(awk -v v="$(stat "influx-$b" secs median)" 'BEGIN { printf "%.2f", v }')"
    done
}

# --- (k) metrics cost ----------------------------------------------------------------------------------
# One run with the metrics endpoint scraped every second while it runs; prints events/s and logs the scrapes.
scraped_run() { # config logfile
    local cfg=$1 logf=$2 pid addr scrapes=0
    "${NICE_CMD[@]}" "$BIN" run --config "$cfg" >/dev/null 2>"$logf" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        addr=$(sed -nE 's|.*metrics at http://([^/]+)/metrics.*|\1|p' "$logf" | head -1)
        if [ -n "$addr" ] && curl -sf -o /dev/null "http://$addr/metrics"; then
            scrapes=$((scrapes + 1))
            sleep 1
        else
            sleep 0.05
        fi
    done
    if ! wait "$pid"; then
        echo "ticklane run --config $cfg failed:" >&2
        tail -20 "$logf" >&2
        exit 1
    fi
    log "  ($scrapes scrapes of /metrics)"
    sed -nE 's/^ticklane: [0-9]+ events in [0-9.]+ s \(([0-9]+) events\/s\).*/\1/p' "$logf"
}

metrics_cost() {
    local cases=(off sample-1024 default every every-scraped) c i eps cfg
    for c in "${cases[@]}"; do
        cfg=$WORK/metrics-$c.toml
        case $c in
        off) set -- -e 's|^latency_sample = .*|latency = false|' ;;
        sample-1024) set -- ;;
        default) set -- -e '/^latency_sample = /d' ;;
        every) set -- -e 's|^latency_sample = .*|latency_sample = 1|' ;;
        every-scraped) set -- -e 's|^latency_sample = .*|latency_sample = 1\nlisten = "127.0.0.1:0"|' ;;
        esac
        derive throughput-gen.toml "$cfg" -e "s|^events = .*|events = $EVENTS|" "$@"
    done
    for i in $(seq 1 "$RUNS"); do
        for c in "${cases[@]}"; do # alternating, so drifting load hits every case alike
            if [ "$c" = every-scraped ]; then
                eps=$(scraped_run "$WORK/metrics-$c.toml" "$WORK/metrics-$c.$i.log")
            else
                eps=$(run_pipeline "$WORK/metrics-$c.toml" "$WORK/metrics-$c.$i.log")
            fi
            log "metrics-cost $c run $i: $eps events/s"
            record "metrics-$c" eps "$eps"
        done
    done
    echo
    echo "### (k) Metrics cost: workload (a), in-process generator, $EVENTS trades"
    echo
    echo "| latency timing | events/s | against off |"
    echo "|---|---|---|"
    local label
    for c in "${cases[@]}"; do
        case $c in
        off) label='off (`latency = false`): counters only' ;;
        sample-1024) label='every 1,024th event (`latency_sample = 1024`, as in (a))' ;;
        default) label='the default (no `latency` or `latency_sample` key)' ;;
        every) label='every event (`latency_sample = 1`)' ;;
        every-scraped) label='every event, endpoint on, /metrics scraped every second' ;;
        esac
        printf '| %s | %s [%s – %s] | %s |\n' "$label" \
            "$(meps "$(stat "metrics-$c" eps median)")" "$(meps "$(stat "metrics-$c" eps min)")" \
            "$(meps "$(stat "metrics-$c" eps max)")" \
            "$(ratio "$(stat "metrics-$c" eps median)" "$(stat "metrics-off" eps median)")"
    done
}

{
    echo "## ticklane benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    machine
    want throughput && throughput
    want latency && latency
    want waits && waits
    want micro && micro
    want kafka && kafka
    want checkpoint && checkpoint
    want itch && itch
    want itch-latency && itch_latency
    want influxdb && influxdb
    want metrics-cost && metrics_cost
    want postgres && postgres
    echo
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- raw values: $TSV; logs and derived configs: $WORK"
} | tee "$WORK/results.md"
