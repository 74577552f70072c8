#!/usr/bin/env bash
# libFuzzer over the reference parser, the manifest decoder (and the cache image layout and memory estimate
# of what it decodes), the safetensors, GGUF and config.json inspection, and the cache image extractor.
#
#     bash bench/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# Builds the Fuzz/ package with AddressSanitizer and libFuzzer's coverage, refreshes the seed corpora
# (Fuzz/seeds.py) and runs each target for the given time. The corpora grow across runs in Fuzz/.build-corpus/<target>; a
# crash, leak, timeout or out-of-memory input lands in Fuzz/.build-artifacts/<target>/. Prints a table
# (runs executed, corpus size, crashes) and exits non-zero when any target found something.
# FUZZ_CONFIGURATION=debug builds faster and fuzzes slower; FUZZ_TARGETS="fuzz-gguf ..." runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
configuration=${FUZZ_CONFIGURATION:-release}
targets=${FUZZ_TARGETS:-fuzz-reference fuzz-manifest fuzz-safetensors fuzz-gguf fuzz-config fuzz-archive}
# The coverage -sanitize=fuzzer implies, without its libFuzzer main (see Fuzz/Package.swift).
flags=(-c "$configuration" --package-path Fuzz -Xswiftc -sanitize=address
       -Xswiftc -sanitize-coverage=edge,indirect-calls,trace-cmp,inline-8bit-counters,pc-table)

start=$(date +%s)
swift build "${flags[@]}" >&2
bin=$(swift build "${flags[@]}" --show-bin-path)
echo "built in $(( $(date +%s) - start )) s" >&2

corpora=Fuzz/.build-corpus artifacts=Fuzz/.build-artifacts logs=Fuzz/.build-logs
mkdir -p "$corpora" "$logs"
python3 Fuzz/seeds.py "$corpora"
mkdir -p "$corpora/fuzz-archive"
MODELREG_FUZZ_WRITE_SEED="$corpora/fuzz-archive/seed-genuine-hf.tar" "$bin/fuzz-archive"

# A trap goes straight to libFuzzer's handler, which saves the input, rather than through Swift's backtracer.
export SWIFT_BACKTRACE=enable=no
printf '%-18s %8s %12s %8s %8s\n' target seconds runs corpus crashes
failed=0
for target in $targets; do
    rm -rf "${artifacts:?}/$target"
    mkdir -p "$artifacts/$target" "$corpora/$target"
    status=0
    dictionary=()
    case $target in fuzz-manifest | fuzz-safetensors | fuzz-config) dictionary=(-dict=Fuzz/json.dict) ;; esac
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a forged count must not become an allocation.
    "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 "${dictionary[@]}" \
        -artifact_prefix="$artifacts/$target/" "$corpora/$target" >"$logs/$target.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -1)
    corpus=$(find "$corpora/$target" -type f | wc -l)
    crashes=$(find "$artifacts/$target" -type f | wc -l)
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
    printf '%-18s %8s %12s %8s %8s\n' "$target" "$seconds" "${runs:-?}" "$corpus" "$crashes"
    if [ "$crashes" -ne 0 ]; then
        failed=1
        echo "--- $target (exit $status): $logs/$target.log" >&2
        grep -E -A25 '^(==[0-9]+==ERROR|Fatal error|.*Fatal error:|SUMMARY|INFO: a leak)' "$logs/$target.log" | head -60 >&2 || tail -40 "$logs/$target.log" >&2
        ls "$artifacts/$target" >&2
    fi
done
exit "$failed"
