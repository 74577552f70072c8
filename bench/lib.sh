# Shared by the benchmark scripts: the binary, a server, timing. Source it from the repository's top directory.

# release_binary: MODELREG_BIN, built in release mode unless it is given.
release_binary() {
    if [ -z "${MODELREG_BIN:-}" ]; then
        swift build -c release --product modelreg >/dev/null
        MODELREG_BIN=$PWD/.build/release/modelreg
    fi
}

# install_missing COMMAND... -- PACKAGE...: installs the Debian packages unless every COMMAND is already there.
install_missing() {
    local missing=0
    while [ "$1" != -- ]; do
        command -v "$1" >/dev/null || missing=1
        shift
    done
    shift
    if [ "$missing" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}

# scratch_work NAME: `work`, a new directory /var/tmp/NAME.XXXXXX, and `pids`, the background servers to stop;
# when the script exits, however it ends, the servers are killed and the directory removed.
scratch_work() {
    work=$(mktemp -d "/var/tmp/$1.XXXXXX")
    pids=()
    trap stop_scratch_work EXIT
}
stop_scratch_work() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

# start_server DATA OUTPUT: `modelreg serve` on a free port with its data in DATA; sets `server` (its pid)
# and exports MODELREG_URL and MODELREG_TOKEN for the clients.
start_server() {
    "$MODELREG_BIN" serve --data "$1" --port 0 --log-level error >"$2" 2>&1 &
    server=$!
    until grep -q 'listening on' "$2" 2>/dev/null; do sleep 0.05; done
    export MODELREG_URL MODELREG_TOKEN
    MODELREG_URL=$(grep -o 'http://[0-9.:]*' "$2" | head -1)
    MODELREG_TOKEN=$(cat "$1/admin.token")
}

# wait_for_images REF: returns once the registry has built the cache images of REF's default variant. It
# pre-warms them after every publish (each layout's archive hashed once, a pass over the model's bytes per
# layout): a transfer timed meanwhile would share the CPU with that work, which a pod started later does not
# meet. Gives up after 10 minutes.
wait_for_images() {
    local deadline=$((SECONDS + 600))
    until "$MODELREG_BIN" show "$1" --variant default --json | python3 -c '
import json, sys
states = [image["state"] for image in json.load(sys.stdin)["images"]]
sys.exit(0 if states and all(state in ("ready", "failed") for state in states) else 1)'; do
        if ((SECONDS > deadline)); then
            echo "error: the cache images of $1 were not built within 10 minutes" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# settle_memory: the next command gets memory this VM holds. The VM hands memory it has not used for about 2 s
# back to its host (virtio-balloon's free page reporting), and touching such memory again cost about 2.3 s a
# GiB here (a `dd` of 1 GiB into the page cache: 0.18 s right after a delete, 2.4 s a few seconds later), so a
# run's time depended on which pages it happened to get. Writing BENCH_SETTLE_MIB (default 3072) into a file
# of the page cache and deleting it just before each timed run gives every run, of every tool, memory that is
# backed already. Page-cache pages, not anonymous or tmpfs memory: touching 3 GiB of either left a pull of
# 2 GiB (which fills new page-cache pages) at 1.4-3.7 s, the first run after a push nearly always slow (its
# kernel time tripled); after a page-cache file, 1.36-1.67 s (bench/RESULTS.md, issue 22).
settle_memory() {
    dd if=/dev/zero of="${work:-/var/tmp}/settle-memory" bs=1M count="${BENCH_SETTLE_MIB:-3072}" status=none
    rm -f "${work:-/var/tmp}/settle-memory"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# best KEY PREPARE COMMAND...: result[KEY] = the best seconds of `runs` runs of COMMAND, with PREPARE (a
# function name or :) and settle_memory run untimed before each. Runs in this shell, so servers restarted by
# PREPARE stay known.
declare -A result
best() {
    local key=$1 prepare=$2
    shift 2
    local best_time="" start end
    for _ in $(seq "$runs"); do
        $prepare
        settle_memory
        start=$(now)
        "$@" >/dev/null 2>&1
        end=$(now)
        best_time=$(python3 -c "a='$best_time'; t=$end-$start; print(f'{min(float(a),t) if a else t:.3f}')")
    done
    result[$key]=$best_time
}

# ratio A B: A/B with two decimals.
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# start_nginx DIR ROOT: nginx as the benchmarks compare against it (`sendfile on`, 2 workers) serving ROOT on
# a free port, its configuration and logs in DIR; sets nginx_port and adds its pid to `pids`.
start_nginx() {
    local dir=$1 root=$2
    nginx_port=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    server {
        listen 127.0.0.1:$nginx_port;
        root $root;
    }
}
CONF
    nginx -c "$dir/nginx.conf" -p "$dir" &
    pids+=("$!")
    until curl -s -o /dev/null "http://127.0.0.1:$nginx_port/"; do sleep 0.05; done
}
