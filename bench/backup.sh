#!/usr/bin/env bash
# Backup and restore of a registry holding GIB GiB of blobs (default 4): a full backup against `cp -r` of
# the data directory, an incremental backup with nothing changed, a remote backup through the server, and
# a restore (every blob verified). Run by hand (not in CI): bash bench/backup.sh [GIB] [WORKDIR].
# Record the table in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-4}
swift build -c release --product modelreg >/dev/null
binary=$PWD/.build/release/modelreg
work=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/modelreg-bench-XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The registry: a model of 256 MiB files of random bytes, pushed through a release server.
mkdir -p "$work/model"
for i in $(seq 1 $((gib * 4))); do
    head -c $((256 << 20)) /dev/urandom > "$work/model/part-$i.bin"
done
"$binary" serve --data "$work/data" --port 0 --log-level warning > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
export MODELREG_URL=$(grep -o 'http://[0-9.:]*' "$work/server.out")
export MODELREG_TOKEN=$(cat "$work/data/admin.token")
"$binary" push "$work/model" bench:1.0 --no-inspect >/dev/null 2>&1
rm -rf "$work/model"
size=$(du -sb "$work/data" | cut -f1)

seconds() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.2f}')" "$1" "$2"; }
timed() {
    local start end
    sync
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    seconds "$start" "$end"
}
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]) / 2**20:.0f}')" "$size" "$1"; }

# The machine may be shared: each full copy runs three times, alternating, and the fastest run counts.
best() { printf '%s\n' "$@" | sort -g | head -1; }
copies=() syncs=() fulls=() remotes=() restores=()
for round in 1 2 3; do
    copies+=("$(timed cp -r "$work/data" "$work/copy")"); rm -rf "$work/copy"
    syncs+=("$(timed sh -c "cp -r '$work/data' '$work/copy' && sync")"); rm -rf "$work/copy"
    rm -rf "$work/repo" "$work/remote-repo" "$work/restored"
    fulls+=("$(timed "$binary" backup --to "$work/repo" --data "$work/data")")
    remotes+=("$(timed "$binary" backup --to "$work/remote-repo")")
    restores+=("$(timed "$binary" restore --from "$work/repo" --data "$work/restored")")
done
copy=$(best "${copies[@]}") copy_sync=$(best "${syncs[@]}") full=$(best "${fulls[@]}")
remote=$(best "${remotes[@]}") restore=$(best "${restores[@]}")
incremental=$(timed "$binary" backup --to "$work/repo" --data "$work/data")
remote_incremental=$(timed "$binary" backup --to "$work/remote-repo")
verify=$(timed "$binary" backup verify --repo "$work/repo" --read-data)
scrub=$(timed "$binary" verify --data "$work/restored")

printf '| %-44s | %8s | %8s |\n' operation seconds "MiB/s"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "----------" "----------"
row() { printf '| %-44s | %8s | %8s |\n' "$1" "$2" "${3:-$(rate "$2")}"; }
row "cp -r of the data directory" "$copy"
row "cp -r, then sync" "$copy_sync"
row "backup --data (full)" "$full"
row "backup --data (incremental, nothing changed)" "$incremental" "-"
row "backup through the server (full)" "$remote"
row "backup through the server (incremental)" "$remote_incremental" "-"
row "backup verify --read-data" "$verify"
row "restore (every blob verified)" "$restore"
row "verify --data (rehash every blob)" "$scrub"
echo "registry: $(python3 -c "print(f'{$size / 2**30:.2f}')") GiB in $(find "$work/data/blobs" -type f | wc -l) blobs"
