#!/usr/bin/env bash
# Issue 22's fleet scenario, CPU cost and memory: a 1 GiB model (4 files of 256 MiB, random bytes) pushed
# once, then fetched by 8 pods at once, over loopback with a warm page cache. Run by hand (never in CI):
#
#     bash bench/fleet.sh [runs]        # best of `runs` (default 3) for every timing
#
# fleet:  8 concurrent `modelreg fetch NAME:1 --dest POD_i` (each pod its own directory, no node cache),
#         against nginx (`sendfile on`, 2 workers) serving the same 4 files to 8 concurrent clients that
#         each `curl` the 4 files and `sha256sum -c` them.
# CPU:    user+sys seconds of the server and of the client for one verified `pull` of the model, as cycles
#         per byte at the CPU's clock (perf's hardware counters are not available in this VM).
# memory: peak RSS of the server (a fresh process) and of the largest client while 8 `pull`s of the model run
#         at once.
# With PROFILE=1, also records `perf record` (cpu-clock) of the server and of the client during one pull and
# prints where the samples fall (hashing, copies, allocation, HTTP framing, the kernel).
#
# Needs nginx (installed here if missing and run as root). Prints Markdown tables; record them in
# bench/RESULTS.md. BENCH_MIB (default 1024) sets the model's size, BENCH_PODS (default 8) the fleet's.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${BENCH_MIB:-1024}
pods=${BENCH_PODS:-8}

# shellcheck source=bench/lib.sh
source bench/lib.sh
install_missing nginx -- nginx-light
release_binary
scratch_work modelreg-fleet

mkdir -p "$work/model"
for i in 1 2 3 4; do head -c $((mib << 18)) /dev/urandom >"$work/model/model-0000$i-of-00004.safetensors"; done
bytes=$((mib << 20))

start_server "$work/data" "$work/server.out"
pids+=("$server")
export XDG_CACHE_HOME=$work/cache
"$MODELREG_BIN" push "$work/model" bench/fleet:1 --no-inspect --quiet
wait_for_images bench/fleet:1

# --- the fleet -----------------------------------------------------------------------------------------
fleet_modelreg() {
    local jobs=() i
    for i in $(seq "$pods"); do
        "$MODELREG_BIN" fetch bench/fleet:1 --dest "$work/pods/$i" --timeout 10m --quiet &
        jobs+=("$!")
    done
    for job in "${jobs[@]}"; do wait "$job"; done
}
clear_pods() { rm -rf "$work/pods"; }

mkdir -p "$work/nginx/root"
cp -l "$work/model"/* "$work/nginx/root/"
(cd "$work/nginx/root" && sha256sum ./* >"$work/SHA256SUMS")
chmod 755 "$work"
chmod -R a+rX "$work/nginx/root"
start_nginx "$work/nginx" "$work/nginx/root"
urls=$(cd "$work/model" && for f in *; do printf 'http://127.0.0.1:%s/%s ' "$nginx_port" "$f"; done)
fleet_nginx() {
    local jobs=() i
    for i in $(seq "$pods"); do
        mkdir -p "$work/pods/$i"
        # shellcheck disable=SC2086
        (cd "$work/pods/$i" && curl -sf --remote-name-all $urls && sha256sum --quiet -c "$work/SHA256SUMS") &
        jobs+=("$!")
    done
    for job in "${jobs[@]}"; do wait "$job"; done
}

best fleet_modelreg clear_pods fleet_modelreg
best fleet_nginx clear_pods fleet_nginx
clear_pods

# --- CPU of one verified pull ----------------------------------------------------------------------------
# cpu_seconds PID: user+sys seconds the process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
hz=$(awk -F: '/cpu MHz/ {printf "%.0f", $2 * 1e6; exit}' /proc/cpuinfo)
cycles_per_byte() { python3 -c "print(f'{$1 * $hz / $bytes:.2f}')"; }
rm -rf "$work/pull"
before=$(cpu_seconds "$server")
/usr/bin/time -o "$work/client.time" -f "%U %S" "$MODELREG_BIN" pull bench/fleet:1 --dest "$work/pull" --quiet
server_cpu=$(python3 -c "print(f'{$(cpu_seconds "$server") - $before:.3f}')")
client_cpu=$(awk '{printf "%.3f", $1 + $2}' "$work/client.time")

echo "| $pods pods, $mib MiB model (4 files) | modelreg fetch s | nginx + curl + sha256sum -c s | ratio |"
echo "|---|---|---|---|"
echo "| all pods done | ${result[fleet_modelreg]} | ${result[fleet_nginx]} | $(ratio "${result[fleet_modelreg]}" "${result[fleet_nginx]}") |"
echo
echo "| one verified pull of $mib MiB | CPU s (user+sys) | cycles per byte (at $((hz / 1000000)) MHz) |"
echo "|---|---|---|"
echo "| server | $server_cpu | $(cycles_per_byte "$server_cpu") |"
echo "| client | $client_cpu | $(cycles_per_byte "$client_cpu") |"
echo
if [ "${PROFILE:-0}" = 1 ]; then
    rm -rf "$work/pull"
    perf record -q -e cpu-clock -F 999 -g -p "$server" -o "$work/server.perf" 2>/dev/null &
    recorder=$!
    sleep 0.5
    perf record -q -e cpu-clock -F 999 -g -o "$work/client.perf" -- \
        "$MODELREG_BIN" pull bench/fleet:1 --dest "$work/pull" --quiet 2>/dev/null
    kill -INT "$recorder"
    wait "$recorder" || true
    for side in server client; do
        echo "### $side: the 25 hottest symbols (self time)"
        echo '```'
        # awk reads the whole report (an early `head` would end the pipeline with SIGPIPE, and the script).
        perf report -i "$work/$side.perf" --no-children --sort dso,symbol --stdio 2>/dev/null |
            awk '/^ +[0-9.]+%/ && ++n <= 25 {print $1, $2, $3, $4}'
        echo '```'
    done
fi

# --- memory with 8 concurrent pulls -----------------------------------------------------------------------
kill "$server"
wait "$server" 2>/dev/null || true
start_server "$work/data" "$work/server2.out"
pids+=("$server")
rm -rf "$work/pulls"
jobs=()
for i in $(seq "$pods"); do
    /usr/bin/time -o "$work/rss-$i" -f %M "$MODELREG_BIN" pull bench/fleet:1 --dest "$work/pulls/$i" --quiet &
    jobs+=("$!")
done
for job in "${jobs[@]}"; do wait "$job"; done
server_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$server/status")
client_rss=$(cat "$work"/rss-* | sort -n | tail -1 | awk '{printf "%.0f", $1/1024}')

echo "peak RSS MiB with $pods concurrent pulls of the model: server $server_rss, largest client $client_rss"
