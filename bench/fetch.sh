#!/usr/bin/env bash
# Cache images and `modelreg fetch`, over loopback with a warm page cache. Run by hand (never in CI):
#
#     bash bench/fetch.sh [runs]        # best of `runs` (default 3) for every timing
#
# Measures, for a 1 GiB file and a 4 x 512 MiB model: `modelreg fetch` (stream, extract, verify every
# file while writing, rename into place) against the plain reference `curl IMAGE | tar -x` followed by
# `sha256sum` of the files; the warm-node rerun of `fetch`; a new pod's fetch from a full node cache (every
# cached file hashed before it is linked) against `sha256sum` alone; and, for a 4 GiB model (8 x 512 MiB), how long
# the background image build takes after the push and what the images cost on disk.
# Prints Markdown tables; record them in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
# The single file's size; each of the 4 shards is half of it. Smaller only to try the script out.
mib=${BENCH_MIB:-1024}
# shellcheck source=bench/lib.sh
source bench/lib.sh

release_binary
work=$(mktemp -d /var/tmp/modelreg-fetch-bench.XXXXXX)
server=""
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

start_server "$work/data" "$work/server.out"
export XDG_CACHE_HOME=$work/cache

# Random bytes, so nothing compresses or deduplicates.
mkdir -p "$work/single" "$work/sharded" "$work/large"
head -c $((mib << 20)) /dev/urandom >"$work/single/model.safetensors"
for i in 1 2 3 4; do head -c $((mib << 19)) /dev/urandom >"$work/sharded/model-0000$i-of-00004.safetensors"; done
for i in 1 2 3 4 5 6 7 8; do head -c $((mib << 19)) /dev/urandom >"$work/large/model-0000$i-of-00008.safetensors"; done

# image_state NAME DIGEST: the flat image's state and digest, as "state digest size".
image_state() {
    curl -sf -H "Authorization: Bearer $MODELREG_TOKEN" "$MODELREG_URL/v1/models/$1/images/$2" |
        python3 -c 'import json,sys; i={x["layout"]: x for x in json.load(sys.stdin)["images"]}["flat"]; print(i["state"], i.get("digest") or "-", i["size"])'
}
# push_and_wait NAME DIR: pushes, then prints the manifest digest and the seconds from the end of the push
# until both layouts' images are ready.
push_and_wait() {
    local digest start
    digest=$("$MODELREG_BIN" push "$2" "$1:1" --no-inspect --quiet --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
    start=$(now)
    until curl -sf -H "Authorization: Bearer $MODELREG_TOKEN" "$MODELREG_URL/v1/models/$1/images/$digest" |
        python3 -c 'import json,sys; sys.exit(0 if all(i["state"]=="ready" for i in json.load(sys.stdin)["images"]) else 1)'; do
        sleep 0.02
    done
    echo "$digest $(python3 -c "print(f'{$(now)-$start:.3f}')")"
}

for set in single sharded; do
    read -r digest _ < <(push_and_wait "bench/$set" "$work/$set")
    url="$MODELREG_URL/v1/models/bench/$set/images/$digest/flat"
    clear_fetch() { rm -rf "$work/fetch-dest"; }
    best "$set,fetch" clear_fetch "$MODELREG_BIN" fetch "bench/$set:1" --dest "$work/fetch-dest" --timeout 10m
    best "$set,warm" : "$MODELREG_BIN" fetch "bench/$set:1" --dest "$work/fetch-dest" --timeout 10m
    # A new pod on a node whose cache (same mount: linked) holds every file: each is hashed before use.
    "$MODELREG_BIN" fetch "bench/$set:1" --dest "$work/cache-seed" --cache "$work/node-cache" --timeout 10m 2>/dev/null
    clear_cached() { rm -rf "$work/cached-dest"; }
    best "$set,cached" clear_cached "$MODELREG_BIN" fetch "bench/$set:1" --dest "$work/cached-dest" --cache "$work/node-cache" --timeout 10m
    best "$set,sha" : sh -c "sha256sum '$work/$set'/* >/dev/null"
    clear_tar() { rm -rf "$work/tar-dest"; mkdir -p "$work/tar-dest"; }
    best "$set,tar" clear_tar sh -c "curl -sf -H 'Authorization: Bearer $MODELREG_TOKEN' '$url' | tar -x -C '$work/tar-dest' && sha256sum '$work/tar-dest'/* >/dev/null"
    best "$set,tar_only" clear_tar sh -c "curl -sf -H 'Authorization: Bearer $MODELREG_TOKEN' '$url' | tar -x -C '$work/tar-dest'"
done

read -r large_digest large_build < <(push_and_wait "bench/large" "$work/large")
large_bytes=$(find "$work/large" -type f -printf "%s\n" | awk '{s+=$1} END {printf "%.0f\n", s}')
read -r _ _ flat_size < <(image_state "bench/large" "$large_digest")
# The records are rows of the metadata store: their columns' bytes, as the database stores them.
records=$(python3 - "$work/data/registry.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
row = db.execute("""SELECT SUM(LENGTH(c.manifest_digest) + LENGTH(c.layout) + COALESCE(LENGTH(c.digest), 0) + 8
                           + LENGTH(c.built_at) + COALESCE(LENGTH(c.error), 0))
                    FROM cache_images c JOIN models m ON c.model_id = m.id WHERE m.name = 'bench/large'""").fetchone()
print(row[0] or 0)
PY
)

echo "| data | modelreg fetch s | curl \| tar -x + sha256sum s | ratio | curl \| tar -x alone s | warm rerun s | from the node cache, hashed s | sha256sum alone s |"
echo "|---|---|---|---|---|---|---|---|"
for set in single sharded; do
    label=$([ $set = single ] && echo "$mib MiB file" || echo "4 x $((mib / 2)) MiB")
    echo "| $label | ${result[$set,fetch]} | ${result[$set,tar]} | $(ratio "${result[$set,fetch]}" "${result[$set,tar]}") | ${result[$set,tar_only]} | ${result[$set,warm]} | ${result[$set,cached]} | ${result[$set,sha]} |"
done
echo
echo "| 8 x $((mib / 2)) MiB model | value |"
echo "|---|---|"
echo "| model bytes | $large_bytes |"
echo "| image build, both layouts, after the push (s) | $large_build |"
echo "| flat image bytes beyond the files (tar headers) | $((flat_size - large_bytes)) ($(python3 -c "print(f'{100*($flat_size-$large_bytes)/$large_bytes:.5f}')") %) |"
echo "| image records in the database, both layouts (bytes of their columns) | $records ($(python3 -c "print(f'{100*$records/$large_bytes:.5f}')") %) |"
