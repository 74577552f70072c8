#!/usr/bin/env bash
# Concurrent publishes of a model whose safetensors header is huge (issue 16.9). Run by hand (never in CI):
#
#     bash bench/publish.sh                                   # this checkout's release build alone
#     BASELINE_BIN=/path/to/other/modelreg bash bench/publish.sh   # both, a row each and the ratios
#
# A release server (`modelreg serve`) holds one weight blob: a safetensors file of many one-byte U8 tensors
# whose JSON header is BENCH_HEADER_MB (default 90) decimal megabytes, as PublishLoadTests builds it but
# larger; the format's limit is 100,000,000 bytes (SafetensorsHeader.maxHeaderLength). The blob is stored
# first by an opaque push (--no-inspect: no header parsed) and the server restarted, so its high-water mark
# counts only the measured publishes. Then BENCH_PUBLISHES (default 6) `modelreg push DIR bench/big:N`
# start at once, N = 1..6: each client reads the header itself, finds the blob stored and publishes an
# inspected manifest, which makes the server re-read the header of the stored file. Measured:
#
# - publishing period: from starting the pushes until the last one has exited and the server's CPU is
#   quiet (the client gives a publish 60 s, RegistryConnection.metadataTimeout; one that gives up leaves the
#   server parsing); also when the pushes exited, how many succeeded and how many versions were published;
# - readiness: from a separate process, `curl -w '%{time_total}'` of GET /health/ready every
#   BENCH_PROBE_INTERVAL seconds (default 0.1) through the period: max, median, how many took over 0.1 s
#   (issue 16.9's bound) and over 1 s (the probe timeout in deploy/);
# - the server's peak RSS: VmHWM of /proc/PID/status at the end (VmRSS is also sampled every 50 ms);
# - the largest client's peak RSS (`/usr/bin/time`), since the six pushes parse the header too.
#
# The binary measured first is MODELREG_BIN (else this checkout's release build, built as bench/lib.sh
# does), labelled BENCH_LABEL; with BASELINE_BIN, that binary too (labelled BASELINE_LABEL), measured
# first. BENCH_ROUNDS (default 1) repeats the rounds, alternating the binaries, a row each (the ratios
# only with one round): the slowest readiness answer varies from round to round. BENCH_CLIENT_NICE (default
# 0) runs the pushes at that niceness: at 19 they take only the CPU the server leaves, as clients on other
# machines would, so readiness measures the server under its own publishing load. Prints a Markdown table; record it in bench/RESULTS.md. Needs python3, curl, /usr/bin/time, and
# about 2 x 100 MB of disk a build under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
header_mb=${BENCH_HEADER_MB:-90}
publishes=${BENCH_PUBLISHES:-6}
probe_interval=${BENCH_PROBE_INTERVAL:-0.1}
rounds=${BENCH_ROUNDS:-1}
client_nice=${BENCH_CLIENT_NICE:-0}
label=${BENCH_LABEL:-this build}
baseline_label=${BASELINE_LABEL:-baseline}
# shellcheck source=bench/lib.sh
source bench/lib.sh

release_binary
fixed_bin=$MODELREG_BIN
baseline_bin=${BASELINE_BIN:-}
work=$(mktemp -d /var/tmp/modelreg-publish-bench.XXXXXX)
server=""
helpers=()
cleanup() {
    for pid in $server "${helpers[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export XDG_CACHE_HOME=$work/cache

# The model: one safetensors file of one-byte tensors, its header as close under the size as the entries
# allow, padded with spaces to a multiple of 8; and a config.json, as PublishLoadTests writes them.
read -r tensors header_bytes < <(python3 - "$work/model" "$(python3 -c "print(int($header_mb * 1e6))")" <<'EOF'
import os, struct, sys
directory, target = sys.argv[1], int(sys.argv[2])
os.makedirs(directory)
parts, size, count = [], 2, 0  # the braces
while True:
    entry = f'"model.layers.{count}.w":{{"dtype":"U8","shape":[1],"data_offsets":[{count},{count + 1}]}}'
    grown = size + len(entry) + (1 if count else 0)
    if grown > target - 7:
        break
    parts.append(entry)
    size, count = grown, count + 1
header = ("{" + ",".join(parts) + "}").encode()
header += b" " * (-len(header) % 8)
with open(os.path.join(directory, "model.safetensors"), "wb") as file:
    file.write(struct.pack("<Q", len(header)))
    file.write(header)
    file.write(b"\x01" * count)
with open(os.path.join(directory, "config.json"), "w") as file:
    file.write('{"model_type":"llama","architectures":["LlamaForCausalLM"]}')
print(count, len(header))
EOF
)

# kib FIELD: the server's FIELD (VmRSS, VmHWM) in KiB.
kib() { awk -v field="$1:" '$1 == field {print $2}' "/proc/$server/status"; }

# wait_idle: waits until the server has used under 0.05 s of CPU in each of two half seconds, and prints
# the time its last busy half second ended.
wait_idle() {
    local ticks previous quiet=0 busy
    busy=$(now)
    previous=$(awk '{print $14 + $15}' "/proc/$server/stat")
    while [ "$quiet" -lt 2 ]; do
        sleep 0.5
        ticks=$(awk '{print $14 + $15}' "/proc/$server/stat")
        if [ $((ticks - previous)) -le $(($(getconf CLK_TCK) / 20)) ]; then quiet=$((quiet + 1)); else quiet=0; busy=$(now); fi
        previous=$ticks
    done
    echo "$busy"
}

declare -A row
# measure KEY BINARY: one round of concurrent publishes against a fresh server of BINARY; fills row[KEY,*].
measure() {
    local key=$1 dir=$work/$1 start end exited pids=() failed=0 version pid
    MODELREG_BIN=$2
    mkdir -p "$dir"
    start_server "$dir/data" "$dir/seed.out"
    "$MODELREG_BIN" push "$work/model" bench/seed:1 --no-inspect --no-hash-cache --quiet --json >/dev/null
    kill "$server"
    wait "$server" || true
    start_server "$dir/data" "$dir/server.out"
    row[$key,idle]=$(kib VmRSS)

    (while kill -0 "$server" 2>/dev/null; do kib VmRSS 2>/dev/null || true; sleep 0.05; done) >"$dir/rss" &
    helpers=("$!")
    (while [ ! -e "$dir/stop" ]; do
        curl -s -o /dev/null --max-time 300 -w '%{http_code} %{time_total}\n' "$MODELREG_URL/health/ready" || true
        sleep "$probe_interval"
    done) >"$dir/probes" &
    helpers+=("$!")

    start=$(now)
    for version in $(seq "$publishes"); do
        nice -n "$client_nice" /usr/bin/time -f '%e %M' -o "$dir/push$version.time" \
            "$MODELREG_BIN" push "$work/model" "bench/big:$version" --no-hash-cache --quiet --json \
            >"$dir/push$version.json" 2>"$dir/push$version.err" &
        pids+=("$!")
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    exited=$(now)
    # A client that gave up leaves the server parsing: the period lasts until the server's CPU is quiet.
    end=$(wait_idle)
    python3 -c "import sys; sys.exit($end < $exited)" || end=$exited
    touch "$dir/stop"
    wait "${helpers[1]}"
    row[$key,hwm]=$(kib VmHWM)
    kill "${helpers[0]}" 2>/dev/null || true
    wait "${helpers[0]}" || true
    row[$key,published]=0
    for version in $(seq "$publishes"); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $MODELREG_TOKEN" \
            "$MODELREG_URL/v1/models/bench/big/versions/$version/variants/default")" != 200 ] ||
            row[$key,published]=$((row[$key,published] + 1))
    done
    kill "$server"
    wait "$server" || true
    server=""
    helpers=()

    row[$key,ok]=$((publishes - failed))
    row[$key,period]=$(python3 -c "print(f'{$end - $start:.1f}')")
    row[$key,exited]=$(python3 -c "print(f'{$exited - $start:.1f}')")
    read -r "row[$key,max]" "row[$key,median]" "row[$key,probes]" "row[$key,late]" "row[$key,slow]" "row[$key,bad]" < <(python3 - "$dir/probes" <<'EOF'
import statistics, sys
answers = [line.split() for line in open(sys.argv[1]) if line.strip()]
times = [float(t) for _, t in answers]
print(f"{max(times):.3f} {statistics.median(times):.3f} {len(times)} {sum(t > 0.1 for t in times)} {sum(t > 1 for t in times)} {sum(c != '200' for c, _ in answers)}")
EOF
    )
    row[$key,rss]=$(sort -n "$dir/rss" | tail -1)
    row[$key,client]=$(cut -d' ' -f2 "$dir"/push*.time | sort -n | tail -1)
    if [ "$failed" -gt 0 ]; then
        echo "$failed of $publishes pushes failed with $MODELREG_BIN; the first error:" >&2
        cat "$dir"/push*.err | grep -v '^$' | head -3 >&2
    fi
}

keys=()
for round in $(seq "$rounds"); do
    if [ -n "$baseline_bin" ]; then
        measure "baseline$round" "$baseline_bin"
        keys+=("baseline$round")
    fi
    measure "fixed$round" "$fixed_bin"
    keys+=("fixed$round")
done

mib() { python3 -c "print(f'{$1 / 1024:.0f}')"; }
header=$(python3 -c "print(f'{$header_bytes / 1e6:.1f} MB ({$tensors:,} tensors)')")
echo "| build | header | pushes ok (published) | pushes exited s | publishing s | readiness max s | readiness median s | probes (over 0.1 s, over 1 s) | server peak RSS MiB (VmHWM) | sampled max RSS MiB | idle RSS MiB | largest client RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for key in "${keys[@]}"; do
    name=$(case $key in baseline*) echo "$baseline_label" ;; *) echo "$label" ;; esac)
    [ "$rounds" = 1 ] || name="$name, round ${key//[a-z]/}"
    echo "| $name | $header | ${row[$key,ok]} of $publishes (${row[$key,published]}) | ${row[$key,exited]} | ${row[$key,period]} | ${row[$key,max]} | ${row[$key,median]} |" \
        "${row[$key,probes]} (${row[$key,late]}, ${row[$key,slow]}$([ "${row[$key,bad]}" = 0 ] || echo ", ${row[$key,bad]} not 200")) |" \
        "$(mib "${row[$key,hwm]}") | $(mib "${row[$key,rss]}") | $(mib "${row[$key,idle]}") | $(mib "${row[$key,client]}") |"
done
if [ -n "$baseline_bin" ] && [ "$rounds" = 1 ]; then
    echo "| ratio, baseline / this build | | | $(ratio "${row[baseline1,exited]}" "${row[fixed1,exited]}") | $(ratio "${row[baseline1,period]}" "${row[fixed1,period]}") |" \
        "$(ratio "${row[baseline1,max]}" "${row[fixed1,max]}") | $(ratio "${row[baseline1,median]}" "${row[fixed1,median]}") | |" \
        "$(ratio "${row[baseline1,hwm]}" "${row[fixed1,hwm]}") | $(ratio "${row[baseline1,rss]}" "${row[fixed1,rss]}") | | |"
fi
