#!/usr/bin/env bash
# Alias resolution and alias move latency under 32 concurrent connections, and the metadata routes under
# 64, on a registry of 1,000 models x 10 versions whose cache images have been built. Run by hand (not in CI): bash bench/releases.sh [seconds]. Needs wrk (installed here if missing and run as root).
# Prints wrk's latency distribution for each run; record the figures in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
export MODELS=${MODELS:-1000} VERSIONS=${VERSIONS:-10}
# shellcheck source=bench/lib.sh
source bench/lib.sh
install_missing wrk -- wrk
release_binary
work=$(mktemp -d)
"$MODELREG_BIN" serve --port 0 --data "$work/data" --log-level error >"$work/out" 2>"$work/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/out" 2>/dev/null); do sleep 0.1; done
export MODELREG_TOKEN=$(cat "$work/data/admin.token")
start=$(date +%s)
python3 bench/seed_releases.py "$url" "$MODELREG_TOKEN" "$MODELS" "$VERSIONS"
echo "seeding took $(( $(date +%s) - start )) s; database $(du -h "$work/data/registry.sqlite" | cut -f1)"
# Each published variant queues two cache images; a registry in service has built them, so wait for that
# rather than measure the builder.
# (Records are rows of the database since ea5dcd3, files under images/ before; counting both measures either.)
built() {
    files=$(find "$work/data/images" -name '*.json' 2>/dev/null | wc -l)
    rows=$(python3 -c 'import sqlite3,sys
try: print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT COUNT(*) FROM cache_images").fetchone()[0])
except sqlite3.Error: print(0)' "$work/data/registry.sqlite")
    echo $(( files + rows ))
}
until [ "$(built)" -ge $(( MODELS * VERSIONS * 2 )) ]; do sleep 2; done
echo "cache images built after $(( $(date +%s) - start )) s"

run() {
    echo; echo "== $1 =="
    shift
    wrk --latency "$@" "$url" | grep -E 'Latency|50%|75%|90%|99%|Requests/sec|Non-2xx|errors'
}
OPERATION=resolve run "resolve (GET manifests/@prod or :N), 32 connections" -t2 -c32 -d"${seconds}s" -s bench/wrk/releases.lua
OPERATION=move run "alias move (PUT aliases/canary), 32 connections" -t2 -c32 -d"${seconds}s" -s bench/wrk/releases.lua
# The server keeps its answers to metadata reads until the model changes: a first pass fills that, as the
# reads of a registry in service do, and is shown apart. wrk with two threads competes with the server's
# two event loops for the machine's two cores; one wrk thread drives more than the server answers.
OPERATION=metadata run "metadata routes, first 5 s (answers not kept yet), 64 connections, 1 wrk thread" -t1 -c64 -d5s -s bench/wrk/releases.lua
OPERATION=metadata run "metadata routes (model, versions, aliases, manifest), 64 connections, 1 wrk thread" -t1 -c64 -d"${seconds}s" -s bench/wrk/releases.lua
OPERATION=metadata run "metadata routes, 64 connections, 2 wrk threads" -t2 -c64 -d"${seconds}s" -s bench/wrk/releases.lua
echo; echo "== resolve and move at once, 16 connections each =="
OPERATION=move wrk --latency -t1 -c16 -d"${seconds}s" -s bench/wrk/releases.lua "$url" >"$work/move.txt" &
mover=$!
OPERATION=resolve wrk --latency -t1 -c16 -d"${seconds}s" -s bench/wrk/releases.lua "$url" | grep -E 'Latency|50%|90%|99%|Requests/sec' | sed 's/^/resolve /'
wait $mover
grep -E 'Latency|50%|90%|99%|Requests/sec' "$work/move.txt" | sed 's/^/move    /'
echo; echo "server memory: $(ps -o rss= -p $server | awk '{printf "%.0f MiB RSS", $1/1024}')"
