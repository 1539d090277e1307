#!/usr/bin/env bash
# Runs ticklane's cargo-fuzz targets (fuzz/, docs/fuzzing.md) on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]
#
# SECONDS-PER-TARGET defaults to 60; 0 only replays the seeds and saved regressions (a quick check).
# With no TARGET, every target in fuzz/Cargo.toml runs, one after the other.
#
# For each target: replay fuzz/seeds/<t> and fuzz/regressions/<t> once, then fuzz for SECONDS with
# libFuzzer's -max_total_time, growing fuzz/corpus/<t> (not committed) from the seeds and using
# fuzz/dict/<dict> where there is one. A crash, panic, timeout (60 s on one input) or out-of-memory in any
# target makes the script exit 1 (after the other targets have run); the input is in fuzz/artifacts/<t>/
# and the log in fuzz/logs/<t>.log.
#
# Environment:
#   FUZZ_SANITIZER  none (default; works on stable), or address/leak/... (needs nightly features: the
#                   script then sets RUSTC_BOOTSTRAP=1, which the stable toolchain accepts for -Zsanitizer,
#                   and builds into fuzz/target-<sanitizer>/)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_len=8192 -jobs=2 -workers=2"
set -euo pipefail

seconds=${1:-60}
[[ $# -gt 0 ]] && shift
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [seconds-per-target] [target...]" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it (cargo install --locked cargo-fuzz)" >&2
    cargo install --locked cargo-fuzz
fi

sanitizer=${FUZZ_SANITIZER:-none}
if [[ $sanitizer != none ]] && ! rustc --version | grep -q nightly; then
    # -Zsanitizer is a nightly flag; the stable toolchain ships the sanitizer runtimes and accepts it under
    # RUSTC_BOOTSTRAP=1.
    export RUSTC_BOOTSTRAP=1
fi
flags=(--sanitizer "$sanitizer")
# A sanitizer build gets its own target dir, so it and the default build do not keep rebuilding each other.
[[ $sanitizer != none ]] && flags+=(--target-dir "target-$sanitizer")

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

dict_of() {
    case $1 in
        csv_line) echo dict/csv.dict ;;
        json_object) echo dict/json.dict ;;
        config_parse) echo dict/config.dict ;;
    esac
}

echo "building ${#targets[@]} fuzz target(s) (sanitizer: $sanitizer)" >&2
for t in "${targets[@]}"; do
    cargo fuzz build "${flags[@]}" "$t"
done

mkdir -p logs
failed=()
summary=()
for t in "${targets[@]}"; do
    log=logs/$t.log
    : >"$log"
    status=ok

    # 1. Replay the seeds and the saved regressions (each input once).
    replay=()
    for d in "seeds/$t" "regressions/$t"; do
        [[ -d $d ]] && [[ -n $(ls -A "$d") ]] && replay+=("$d")
    done
    if [[ ${#replay[@]} -gt 0 ]]; then
        if ! cargo fuzz run "${flags[@]}" "$t" "${replay[@]}" -- -runs=0 >>"$log" 2>&1; then
            status="FAILED on a saved input (${replay[*]})"
        fi
    fi

    # 2. Fuzz.
    execs=0
    if [[ $seconds -gt 0 ]]; then
        mkdir -p "corpus/$t"
        corpora=("corpus/$t")
        [[ -d seeds/$t ]] && corpora+=("seeds/$t")
        args=(-max_total_time="$seconds" -timeout=60 -print_final_stats=1)
        dict=$(dict_of "$t")
        [[ -n $dict ]] && args+=(-dict="$dict")
        # shellcheck disable=SC2206
        args+=(${FUZZ_ARGS:-})
        echo "fuzzing $t for ${seconds}s" >&2
        if ! cargo fuzz run "${flags[@]}" "$t" "${corpora[@]}" -- "${args[@]}" >>"$log" 2>&1; then
            status=$([[ $status == ok ]] && echo "FAILED while fuzzing" || echo "$status; FAILED while fuzzing")
        fi
        execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
        if [[ -z $execs ]]; then
            execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
        fi
    fi

    if [[ $status != ok ]]; then
        failed+=("$t")
        grep -m1 -A2 'panicked at' "$log" >&2 || grep -m1 'ERROR: libFuzzer' "$log" >&2 || true
        grep -o "Test unit written to .*" "$log" >&2 || true
    fi
    summary+=("$(printf '%-16s %5ss %12s execs  %s' "$t" "$seconds" "${execs:-0}" "$status")")
done

echo
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashed: ${failed[*]} (logs in fuzz/logs/, inputs in fuzz/artifacts/)" >&2
    exit 1
fi
