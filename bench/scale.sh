#!/usr/bin/env bash
# Scale-out (issue 18): modelreg on PostgreSQL metadata and S3 blobs, one replica and three, against the
# embedded default (SQLite and blobs in a data directory). Run by hand (never in CI):
#
#     bash bench/scale.sh
#     MODELS=200 VERSIONS=5 SIZE_MIB=1024 SECONDS_RUN=30 PULLS=8 RUNS=1 bash bench/scale.sh   # the defaults
#     MODELREG_BIN=/path/to/modelreg bash bench/scale.sh   # that binary, else this checkout's release build
#
# Starts its own PostgreSQL (Debian's postgresql package: initdb and pg_ctl, as nobody when run as root, its
# default durability: fsync and synchronous_commit on) and moto's S3 server (`python3 -m moto.server`, PyPI's
# moto[server]; everything in memory), on free loopback ports; everything is stopped and removed on exit.
# Measures, on a registry of MODELS x VERSIONS seeded through the API by bench/seed_releases.py:
#
# 1. the metadata routes (bench/wrk/releases.lua's OPERATION=metadata: a model, its versions, its aliases, a
#    manifest by @prod or :N) at 64 connections for SECONDS_RUN seconds, after 5 s that fill the kept answers:
#    (a) one replica on the embedded default, (b) one replica on PostgreSQL + S3, (c) three replicas on the
#    same database and bucket. wrk does not spread load itself, so (c) runs three wrk processes at once, one
#    a replica, of 22 + 21 + 21 connections, and merges their latency histograms (bench/wrk/scale.lua writes
#    them) into exact percentiles; (a) and (b) go through the same merge with one process of 64. One wrk
#    thread a process: on 2 cores wrk competes with the servers for the CPU (see bench/releases.sh).
# 2. PULLS (8) concurrent verified `modelreg pull` of a SIZE_MIB model (4 files of random bytes) through one
#    replica, with presigned redirects (the blobs come from S3 directly) and through one started with
#    --no-blob-redirect (the replica streams them from S3): the wall time until the last pull exits, and how
#    many failed (a failure is recorded, not retried: the aggregate MiB/s counts only the pulls that completed).
# 3. `modelreg push DIR bench/push:N --no-inspect` of one SIZE_MIB file of random bytes to the S3 backend
#    through a replica, against `aws s3 cp` of the same file to the same moto (awscli, installed with pip if
#    missing). A new file each run, so nothing is deduplicated.
# 4. every server's peak RSS (VmHWM of /proc/PID/status): the embedded one after (a); the three replicas at
#    the end, after all of it (replica 1 served (b), (c), the redirected pulls and the pushes; replica 2,
#    --no-blob-redirect, (c) and the streamed pulls; replica 3 only (c)).
#
# RUNS (default 1) repeats the pulls (a row a run) and the pushes (the best counts). moto is a Python server: it bounds every S3 figure here
# (seeding, pulls, pushes, aws s3 cp alike), far below a real object store. Needs wrk (installed if missing), psql, curl, python3
# with moto[server]. Prints Markdown tables; record them in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODELS=${MODELS:-200} VERSIONS=${VERSIONS:-5}
mib=${SIZE_MIB:-1024}
seconds=${SECONDS_RUN:-30}
pulls=${PULLS:-8}
runs=${RUNS:-1}
connections=64

command -v aws >/dev/null || python3 -m pip install --quiet awscli
# shellcheck source=bench/lib.sh
source bench/lib.sh
install_missing wrk -- wrk
release_binary
work=$(mktemp -d /var/tmp/modelreg-scale-bench.XXXXXX)
chmod 711 "$work"
declare -A pid url rss
helpers=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi; }
cleanup() {
    for p in "${pid[@]}" "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/pg/data/postmaster.pid" ] && as_postgres "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export XDG_CACHE_HOME=$work/cache

# --- PostgreSQL and moto --------------------------------------------------------------------------------
pg_port=$(free_port)
mkdir -p "$work/pg"
[ "$(id -u)" != 0 ] || chown 65534:65534 "$work/pg"
as_postgres "$pg_bin/initdb" -D "$work/pg/data" -U modelreg --auth=trust --encoding=UTF8 --locale=C -N >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$work/pg -c max_connections=200" \
    start >/dev/null
psql -q -h 127.0.0.1 -p "$pg_port" -U modelreg -d postgres -c 'CREATE DATABASE registry'
metadata_url="postgres://modelreg@127.0.0.1:$pg_port/registry?sslmode=disable"

moto_port=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
helpers+=("$!")
moto=http://127.0.0.1:$moto_port
until curl -s -o /dev/null "$moto/"; do sleep 0.1; done
curl -sf -X PUT "$moto/models" >/dev/null
blobs_url="s3://models/registry?endpoint=$moto&region=us-east-1"
printf 'AWS_ACCESS_KEY_ID=bench\nAWS_SECRET_ACCESS_KEY=bench-secret\n' >"$work/s3-credentials"
python3 -c 'import secrets; print(secrets.token_hex(24))' >"$work/admin.token"
export MODELREG_TOKEN
MODELREG_TOKEN=$(cat "$work/admin.token")

# serve NAME ARGUMENTS...: `modelreg serve` on a free port with the shared admin token; pid[NAME], url[NAME].
serve() {
    local name=$1
    shift
    "$MODELREG_BIN" serve --port 0 --data "$work/data-$name" --admin-token-file "$work/admin.token" \
        --log-level warning "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pid[$name]=$!
    # The first address: the line goes on to name the stores, the bucket's endpoint among them.
    until url[$name]=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$work/$name.out" 2>/dev/null | head -1 | cut -d' ' -f3)
        [ -n "${url[$name]}" ]; do
        kill -0 "${pid[$name]}" 2>/dev/null || { echo "server $name exited:" >&2; cat "$work/$name.err" >&2; exit 1; }
        sleep 0.1
    done
}
serve_scaled() {
    serve "$1" --metadata "$metadata_url" --blobs "$blobs_url" --blobs-credentials-file "$work/s3-credentials" "${@:2}"
}
elapsed() { python3 -c "print(f'{$(now) - $1:.3f}')"; }
hwm() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
# quiet PID: waits until PID has used under 5 % of a core for 2 s (its cache-image builder done with the seed).
quiet() {
    local before after
    while :; do
        before=$(awk '{print $14 + $15}' "/proc/$1/stat")
        sleep 2
        after=$(awk '{print $14 + $15}' "/proc/$1/stat")
        [ $((after - before)) -gt 10 ] || return 0
    done
}
seed() {
    local start
    start=$(date +%s)
    python3 bench/seed_releases.py "$1" "$MODELREG_TOKEN" "$MODELS" "$VERSIONS"
    quiet "$2"
    echo "seeded and quiet after $(($(date +%s) - start)) s"
}

# metadata KEY DURATION URL...: the metadata routes at 64 connections for DURATION seconds, split over the
# URLs (a wrk process of one thread each, all at once); result[KEY] = "p50 p90 p99 max requests/s errors".
metadata() {
    local key=$1 duration=$2 count i=0 share wrks=()
    shift 2
    count=$#
    rm -f "$work"/histogram-*
    for target in "$@"; do
        share=$((connections / count + (i < connections % count ? 1 : 0)))
        OPERATION=metadata HISTOGRAM=$work/histogram-$i wrk --latency -t1 -c$share -d"${duration}s" --timeout 5s \
            -s bench/wrk/scale.lua "$target" >"$work/wrk-$key-$i.txt" 2>&1 &
        wrks+=("$!")
        i=$((i + 1))
    done
    for w in "${wrks[@]}"; do wait "$w" || { cat "$work"/wrk-"$key"-*.txt >&2; exit 1; }; done
    result[$key]=$(python3 - "$work"/histogram-* <<'EOF'
import sys
counts, rate, errors = {}, 0.0, 0
for path in sys.argv[1:]:
    lines = open(path).read().split("\n")
    header = dict(line.split() for line in lines[:3])
    rate += int(header["requests"]) / (int(header["duration"]) / 1e6)
    errors += int(header["errors"])
    for line in lines[3:]:
        if line:
            value, count = map(int, line.split())
            counts[value] = counts.get(value, 0) + count
total = sum(counts.values())
def percentile(p):
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= total * p / 100:
            return value / 1000
print(f"{percentile(50):.2f} {percentile(90):.2f} {percentile(99):.2f} {max(counts) / 1000:.2f} {rate:.0f} {errors}")
EOF
)
    read -r p50 p90 p99 max rate errors <<<"${result[$key]}"
    echo "$key: p50 $p50 ms, p90 $p90 ms, p99 $p99 ms, max $max ms, $rate requests/s, $errors errors ($count wrk process(es))"
    # wrk's own figures, to check the merge against.
    for ((i = 0; i < count; i++)); do
        echo "  wrk $((i + 1)): $(grep -E '^ +(50|99)%|Requests/sec' "$work/wrk-$key-$i.txt" | tr -s ' ' | tr '\n' ' ')"
    done
}

# transactions: PostgreSQL's count of the registry database's transactions so far (committed and rolled back).
transactions() {
    psql -h 127.0.0.1 -p "$pg_port" -U modelreg -d postgres -Atc \
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'registry'"
}
# per_request KEY BEFORE: PostgreSQL transactions a request of the run KEY, from the count BEFORE it.
per_request() {
    local requests
    requests=$(cat "$work"/histogram-* | awk '$1 == "requests" {n += $2} END {print n}')
    echo "  PostgreSQL: $(python3 -c "print(f'{($(transactions) - $2) / $requests:.2f}')") transactions a request"
}

echo "$(date -u '+%F %T') UTC, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# --- 1. metadata routes ---------------------------------------------------------------------------------
echo "== (a) one replica, embedded (SQLite + data directory) =="
serve embedded
seed "${url[embedded]}" "${pid[embedded]}"
metadata embedded-warm 5 "${url[embedded]}"
metadata embedded "$seconds" "${url[embedded]}"
rss_embedded=$(hwm "${pid[embedded]}")
kill "${pid[embedded]}"
wait "${pid[embedded]}" 2>/dev/null || true
unset 'pid[embedded]'

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== (b) one replica, PostgreSQL + S3 =="
serve_scaled r1
seed "${url[r1]}" "${pid[r1]}"
metadata one-warm 5 "${url[r1]}"
before=$(transactions)
metadata one "$seconds" "${url[r1]}"
per_request one "$before"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== (c) three replicas, PostgreSQL + S3 =="
serve_scaled r2 --no-blob-redirect
serve_scaled r3
metadata three-warm 5 "${url[r1]}" "${url[r2]}" "${url[r3]}"
before=$(transactions)
metadata three "$seconds" "${url[r1]}" "${url[r2]}" "${url[r3]}"
per_request three "$before"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# --- 2. concurrent pulls ----------------------------------------------------------------------------------
# The model: 4 files of random bytes (nothing compresses or deduplicates), pushed through replica 1.
mkdir -p "$work/model" "$work/single"
for i in 1 2 3 4; do head -c $((mib << 18)) /dev/urandom >"$work/model/model-0000$i-of-00004.safetensors"; done
start=$(now)
MODELREG_URL=${url[r1]} "$MODELREG_BIN" push "$work/model" bench/big:1 --no-inspect --quiet --no-hash-cache >/dev/null
model_push=$(elapsed "$start")
echo "pushed the $mib MiB model of 4 files in $model_push s"
# concurrent_pulls KEY URL: PULLS verified pulls of the model at once through URL, each into a new directory;
# result[KEY] = "SECONDS FAILED": the seconds until the last exited, and how many exited with an error (a
# failure is a result here, not a reason to stop: each one's last line is printed).
concurrent_pulls() {
    local ps=() i failed=0 start
    rm -rf "$work"/pull-*
    start=$(now)
    for i in $(seq "$pulls"); do
        MODELREG_URL=$2 "$MODELREG_BIN" pull bench/big:1 --dest "$work/pull-$i" --quiet >"$work/pull-$i.log" 2>&1 &
        ps+=("$!")
    done
    for i in "${!ps[@]}"; do
        wait "${ps[$i]}" || { failed=$((failed + 1)); echo "  pull $((i + 1)) failed: $(tail -1 "$work/pull-$((i + 1)).log")"; }
    done
    result[$1]="$(elapsed "$start") $failed"
    echo "$1: ${result[$1]% *} s, $failed of $pulls failed"
}
for run in $(seq "$runs"); do
    concurrent_pulls "pulls-redirect-$run" "${url[r1]}"
    concurrent_pulls "pulls-stream-$run" "${url[r2]}"
done
rm -rf "$work"/pull-*
minimum() { printf '%s\n' "$@" | sort -g | head -1; }

# --- 3. push against aws s3 cp ----------------------------------------------------------------------------
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=$work/no-aws-config AWS_SHARED_CREDENTIALS_FILE=$work/no-aws-credentials
push_times=() aws_times=()
for run in $(seq "$runs"); do
    head -c $((mib << 20)) /dev/urandom >"$work/single/model.bin"
    start=$(now)
    MODELREG_URL=${url[r1]} "$MODELREG_BIN" push "$work/single" "bench/push:$run" --no-inspect --quiet --no-hash-cache >/dev/null
    push_times+=("$(elapsed "$start")")
    start=$(now)
    aws --endpoint-url "$moto" s3 cp "$work/single/model.bin" "s3://models/awscli/model-$run.bin" --only-show-errors
    aws_times+=("$(elapsed "$start")")
done
push=$(minimum "${push_times[@]}")
aws_cp=$(minimum "${aws_times[@]}")
echo "push of $mib MiB: modelreg ${push_times[*]} s, aws s3 cp ${aws_times[*]} s"

# --- 4. memory and the servers' logs ------------------------------------------------------------------------
for name in r1 r2 r3; do rss[$name]=$(hwm "${pid[$name]}"); done
moto_rss=$(ps -o rss= -p "${helpers[0]}" | awk '{printf "%.0f", $1/1024}')
for name in embedded r1 r2 r3; do
    if [ -s "$work/$name.err" ]; then
        echo "server $name logged $(wc -l <"$work/$name.err") lines on stderr; the first:"
        head -5 "$work/$name.err"
    fi
done

echo "$(date -u '+%F %T') UTC, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "MODELS=$MODELS VERSIONS=$VERSIONS SIZE_MIB=$mib SECONDS_RUN=$seconds PULLS=$pulls RUNS=$runs"
echo
echo "| setup | connections | p50 ms | p90 ms | p99 ms | max ms | requests/s | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for key in embedded one three; do
    read -r p50 p90 p99 max rate errors <<<"${result[$key]}"
    case $key in
        embedded) label="1 replica, embedded (SQLite + data directory)" split=64 ;;
        one) label="1 replica, PostgreSQL + S3" split=64 ;;
        three) label="3 replicas, PostgreSQL + S3" split="22 + 21 + 21" ;;
    esac
    echo "| $label | $split | $p50 | $p90 | $p99 | $max | $rate | $errors |"
done
echo
echo "| $pulls concurrent verified pulls of $mib MiB (4 files) through one replica | run | seconds | aggregate MiB/s | failed |"
echo "|---|---:|---:|---:|---:|"
for run in $(seq "$runs"); do
    for mode in redirect stream; do
        read -r time failed <<<"${result[pulls-$mode-$run]}"
        label=$([ $mode = redirect ] && echo "presigned redirects (from S3)" || echo "--no-blob-redirect (streamed by the replica)")
        echo "| $label | $run | $time | $(python3 -c "print(f'{($pulls - $failed) * $mib / $time:.0f}')") | $failed |"
    done
done
echo
echo "push of one $mib MiB file: modelreg $push s, aws s3 cp $aws_cp s, ratio $(ratio "$push" "$aws_cp")" \
    "(the $mib MiB model of 4 files took $model_push s)"
echo "peak RSS MiB: embedded ${rss_embedded}; replica 1 ${rss[r1]}, replica 2 ${rss[r2]}, replica 3 ${rss[r3]}; moto now $moto_rss"
