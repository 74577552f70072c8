#!/usr/bin/env bash
# Issue 19's benchmark: a 1 GiB model (4 files of 256 MiB of random bytes) downloaded over loopback with a warm
# page cache by `huggingface_hub.snapshot_download` through the registry's /hf, by `modelreg pull`, and by
# curl from nginx (sendfile, 2 workers) followed by `sha256sum -c`, 4 files at a time each. Run by hand (never
# in CI):
#
#     bash bench/hub.sh [runs]        # best of `runs` (default 3) for every timing
#
# Needs nginx (nginx-light, installed here if missing and run as root) and huggingface_hub. Prints a Markdown
# table of seconds and ratios; record it in bench/RESULTS.md. BENCH_MIB (default 1024) sets the model's size.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${BENCH_MIB:-1024}

# shellcheck source=bench/lib.sh
source bench/lib.sh
install_missing nginx -- nginx-light
release_binary
scratch_work modelreg-hub-bench

mkdir -p "$work/model"
for i in 1 2 3 4; do head -c $((mib << 18)) /dev/urandom >"$work/model/model-0000$i-of-00004.safetensors"; done
(cd "$work/model" && sha256sum ./* >"$work/SHA256SUMS")
cat "$work"/model/* >/dev/null

start_server "$work/data" "$work/server.out"
pids+=("$server")
export XDG_CACHE_HOME=$work/cache
"$MODELREG_BIN" push "$work/model" bench/hub:1 --no-inspect --quiet
"$MODELREG_BIN" alias set bench/hub prod 1 >/dev/null

# --- the Hub protocol: snapshot_download into a fresh cache ---------------------------------------------
export HF_ENDPOINT=$MODELREG_URL/hf HF_TOKEN=$MODELREG_TOKEN HF_HOME=$work/hf-home HF_HUB_DISABLE_PROGRESS_BARS=1
export HF_HUB_DISABLE_TELEMETRY=1
hub_clear() { rm -rf "$work/hf-cache"; }
hub_download() {
    python3 -c 'import sys; from huggingface_hub import snapshot_download; snapshot_download("bench/hub", revision="prod", cache_dir=sys.argv[1], max_workers=4)' "$work/hf-cache"
}

# --- modelreg pull (verified, 4 files at a time) ------------------------------------------------------
pull_clear() { rm -rf "$work/pulled"; }
pull() { "$MODELREG_BIN" pull bench/hub@prod --dest "$work/pulled" --quiet; }

# --- nginx + curl + sha256sum -------------------------------------------------------------------------
mkdir -p "$work/nginx/root/bench/hub"
cp "$work"/model/* "$work/nginx/root/bench/hub/"
chmod 755 "$work"
chmod -R a+rX "$work/nginx"
start_nginx "$work/nginx" "$work/nginx/root"
curl_clear() { rm -rf "$work/curl"; mkdir -p "$work/curl"; cp "$work/SHA256SUMS" "$work/curl/"; }
curl_download() {
    (cd "$work/curl" && ls "$work/model" | xargs -P 4 -I{} curl -sf -o {} "http://127.0.0.1:$nginx_port/bench/hub/{}" &&
        sha256sum --quiet -c SHA256SUMS)
}

best hub hub_clear hub_download
best pull pull_clear pull
best curl curl_clear curl_download
# The downloads were whole and right.
hub_clear && hub_download && (cd "$work"/hf-cache/models--bench--hub/snapshots/* && sha256sum --quiet -c "$work/SHA256SUMS")

echo "| $mib MiB model, 4 files | seconds | ratio to nginx + curl + sha256sum |"
echo "|---|---:|---:|"
echo "| snapshot_download through /hf | ${result[hub]} | $(ratio "${result[hub]}" "${result[curl]}") |"
echo "| modelreg pull (verified) | ${result[pull]} | $(ratio "${result[pull]}" "${result[curl]}") |"
echo "| nginx + curl + sha256sum -c | ${result[curl]} | 1.00 |"
