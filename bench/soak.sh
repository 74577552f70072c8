#!/usr/bin/env bash
# Soak: mixed pushes and pulls against one release server for a while, sampling the server's memory.
# Run by hand (not in CI):
#
#     bash bench/soak.sh [seconds] [clients]     # default 600 s, 4 clients
#
# Each client loops: push a new version of a small model (2 x 4 MiB of fresh random bytes plus a shared
# 4 MiB file), pull one of its last five versions and compare it with what was pushed. Prints the server's RSS
# every 30 s, the operations done and every failure; memory must stay flat. Record in bench/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
seconds=${1:-600}
clients=${2:-4}
release_binary
work=$(mktemp -d /var/tmp/modelreg-soak.XXXXXX)
server=""
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
start_server "$work/data" "$work/server.out"
export XDG_CACHE_HOME=$work/cache
head -c $((4 << 20)) /dev/urandom >"$work/shared.bin"
end=$(( $(date +%s) + seconds ))

client() {
    local id=$1 version=0 pushes=0 pulls=0 failures=0
    local model=$work/client-$id
    while [ "$(date +%s)" -lt "$end" ]; do
        version=$((version + 1))
        rm -rf "$model" && mkdir -p "$model"
        head -c $((4 << 20)) /dev/urandom >"$model/a.bin"
        head -c $((4 << 20)) /dev/urandom >"$model/b.bin"
        ln "$work/shared.bin" "$model/shared.bin"
        if "$MODELREG_BIN" push "$model" "soak/c$id:$version" --no-inspect --quiet >/dev/null 2>>"$work/failures"; then
            pushes=$((pushes + 1))
            cp -r "$model" "$work/pushed-$id-$version"
        else
            failures=$((failures + 1))
        fi
        local pick=$(( version - RANDOM % 5 ))
        if [ "$pick" -ge 1 ] && [ -d "$work/pushed-$id-$pick" ]; then
            rm -rf "$work/pulled-$id"
            if "$MODELREG_BIN" pull "soak/c$id:$pick" --dest "$work/pulled-$id" --quiet >/dev/null 2>>"$work/failures" &&
                diff -r "$work/pushed-$id-$pick" "$work/pulled-$id" >/dev/null; then
                pulls=$((pulls + 1))
            else
                failures=$((failures + 1))
            fi
        fi
        # Keep only the last few pushed trees: the disk is not what is measured.
        rm -rf "$work/pushed-$id-$((version - 5))"
    done
    echo "$pushes $pulls $failures" >"$work/result-$id"
}

for id in $(seq "$clients"); do client "$id" & done
echo "| seconds | server RSS MiB |"
echo "|---|---|"
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
    echo "| $(( $(date +%s) - start )) | $(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$server/status") |"
    sleep 30
done
wait $(jobs -p | grep -v "^$server$") 2>/dev/null || true
echo "| $(( $(date +%s) - start )) | $(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$server/status") |"
cat "$work"/result-* | awk '{p+=$1; l+=$2; f+=$3} END {printf "\n%d pushes, %d verified pulls, %d failures\n", p, l, f}'
echo "peak server RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$server/status")"
[ ! -s "$work/failures" ] || { echo "failures:"; cat "$work/failures"; }
