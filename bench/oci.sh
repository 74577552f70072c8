#!/usr/bin/env bash
# Issue 20's benchmark: the OCI Distribution API under /v2/ against CNCF distribution (Debian's docker-registry),
# both driven by skopeo over loopback with a warm page cache. A 1 GiB model (4 safetensors files of 256 MiB:
# a header naming one F16 tensor, then random bytes) is published with `modelreg push`, so the registry serves it as a ModelPack artifact (one raw layer
# per file); skopeo copies that artifact into distribution, so both hold the same manifest, config and blobs.
# Run by hand (never in CI):
#
#     bash bench/oci.sh [runs]        # best of `runs` (default 3) for every timing
#
# pull: `skopeo copy docker://…/bench/oci:1 dir:OUT` from each registry (skopeo checks every blob's digest),
#       OUT removed before each run.
# push: `skopeo copy dir:LAYOUT docker://…/bench/push-RUN:1` into each registry. Both registries skip a blob
#       they already hold (skopeo asks HEAD /v2/NAME/blobs/DIGEST first; modelreg answers 200 for any stored
#       blob whatever the repository, distribution only within the repository, unless it mounts), so a fresh
#       name alone would not make modelreg receive the bytes. Before each push run (untimed) LAYOUT is
#       therefore rebuilt from the pulled artifact with 4 new safetensors files of the same sizes: new
#       layer digests, the config's modelfs.diffIds rewritten to them (and its revision and the manifest's
#       dev.modelreg.manifest.digest annotation, which named the old modelreg manifest, dropped), so every
#       push moves all the bytes. The files must be well-formed safetensors: modelreg reads the header of every
#       .safetensors file pushed over /v2/ and refuses the manifest (MANIFEST_INVALID) if it does not parse. If
#       modelreg refuses the push, its row reads "n/a" with skopeo's first error line.
#
# Needs docker-registry and skopeo (installed here if missing and run as root). Prints a Markdown table of
# seconds and ratios and the servers' peak RSS; record it in bench/RESULTS.md. BENCH_MIB (default 1024) sets
# the model's size.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${BENCH_MIB:-1024}

# shellcheck source=bench/lib.sh
source bench/lib.sh
install_missing docker-registry skopeo -- docker-registry skopeo
release_binary
scratch_work modelreg-oci-bench

# Peak resident memory of a running process: reset_peak PID starts a new peak (Linux ≥ 4.0), peak_mib PID
# reads it (VmHWM) in MiB.
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# SAFETENSORS_PY: Python defining safetensors_chunks(size), the bytes of a well-formed safetensors file of
# exactly `size` bytes (a multiple of 8): an 8-byte header length, a JSON header padded with spaces to a
# multiple of 8 naming one F16 tensor over the rest, then random bytes, in pieces of 8 MiB.
SAFETENSORS_PY='
import json, os, struct
def safetensors_chunks(size, step=8 << 20):
    header_len = 128
    data = size - 8 - header_len
    header = json.dumps({"weight": {"dtype": "F16", "shape": [data // 2], "data_offsets": [0, data]}}).encode()
    assert len(header) <= header_len and data % 2 == 0
    yield struct.pack("<Q", header_len) + header + b" " * (header_len - len(header))
    while data > 0:
        yield os.urandom(min(step, data))
        data -= step
'

mkdir -p "$work/model"
python3 - "$work/model" "$((mib << 18))" <<PY
import os, sys
$SAFETENSORS_PY
for i in range(1, 5):
    with open(os.path.join(sys.argv[1], f"model-0000{i}-of-00004.safetensors"), "wb") as f:
        for chunk in safetensors_chunks(int(sys.argv[2])):
            f.write(chunk)
PY

# --- modelreg -----------------------------------------------------------------------------------------
start_server "$work/data" "$work/server.out"
mr_pid=$server
pids+=("$mr_pid")
export XDG_CACHE_HOME=$work/cache
"$MODELREG_BIN" push "$work/model" bench/oci:1 --no-inspect --quiet >/dev/null
mr=${MODELREG_URL#http://}
mr_creds=modelreg:$MODELREG_TOKEN

# --- CNCF distribution (no auth, filesystem storage) --------------------------------------------------
registry_port=$(free_port)
reg=127.0.0.1:$registry_port
cat >"$work/registry.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry }, delete: { enabled: true } }
http: { addr: $reg }
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
pids+=("$reg_pid")
until curl -s -o /dev/null "http://$reg/v2/"; do sleep 0.05; done
skopeo copy --quiet --src-tls-verify=false --src-creds "$mr_creds" --dest-tls-verify=false \
    "docker://$mr/bench/oci:1" "docker://$reg/bench/oci:1"
# The same artifact in both, byte for byte.
[ "$(skopeo inspect --raw --tls-verify=false --creds "$mr_creds" "docker://$mr/bench/oci:1" | sha256sum)" = \
    "$(skopeo inspect --raw --tls-verify=false "docker://$reg/bench/oci:1" | sha256sum)" ]

# --- pull ---------------------------------------------------------------------------------------------
find "$work/data" "$work/registry" -type f -exec cat {} + >/dev/null
pull_clear() { rm -rf "$work/out"; }
mr_pull() { skopeo copy --quiet --src-tls-verify=false --src-creds "$mr_creds" "docker://$mr/bench/oci:1" "dir:$work/out"; }
reg_pull() { skopeo copy --quiet --src-tls-verify=false "docker://$reg/bench/oci:1" "dir:$work/out"; }
reset_peak "$mr_pid"
reset_peak "$reg_pid"
best mr_pull pull_clear mr_pull
mr_pull_rss=$(peak_mib "$mr_pid")
best reg_pull pull_clear reg_pull
reg_pull_rss=$(peak_mib "$reg_pid")
# The pulls were whole: every layer's bytes are the model's (skopeo also checked each digest).
pull_clear && mr_pull
(cd "$work/model" && sha256sum ./* | cut -d' ' -f1 | sort) >"$work/model.sums"
[ "$(cd "$work/out" && sha256sum ./* | cut -d' ' -f1 | sort | grep -xFf "$work/model.sums" | wc -l)" = 4 ]
cp -r "$work/out" "$work/template"
pull_clear
reg_pull
diff -r "$work/template" "$work/out" >/dev/null

# --- push ---------------------------------------------------------------------------------------------
# new_layout: $work/layout, the pulled artifact with new random layers (see the top of this file).
new_layout() {
    rm -rf "$work/layout"
    python3 - "$work/template" "$work/layout" <<PY
import hashlib, json, os, sys
$SAFETENSORS_PY
template, layout = sys.argv[1], sys.argv[2]
os.makedirs(layout)
manifest = json.load(open(os.path.join(template, "manifest.json")))
def write_blob(data_chunks):
    h, tmp = hashlib.sha256(), os.path.join(layout, "tmp")
    with open(tmp, "wb") as f:
        for chunk in data_chunks:
            h.update(chunk)
            f.write(chunk)
    os.rename(tmp, os.path.join(layout, h.hexdigest()))
    return "sha256:" + h.hexdigest()
renamed = {}
for layer in manifest["layers"]:
    new = write_blob(safetensors_chunks(layer["size"]))
    renamed[layer["digest"]] = new
    layer["digest"] = new
config = json.load(open(os.path.join(template, manifest["config"]["digest"].split(":")[1])))
config["modelfs"]["diffIds"] = [renamed[d] for d in config["modelfs"]["diffIds"]]
config.get("descriptor", {}).pop("revision", None)
config_bytes = json.dumps(config, separators=(",", ":")).encode()
manifest["config"]["digest"] = write_blob([config_bytes])
manifest["config"]["size"] = len(config_bytes)
manifest.get("annotations", {}).pop("dev.modelreg.manifest.digest", None)
json.dump(manifest, open(os.path.join(layout, "manifest.json"), "w"), separators=(",", ":"))
open(os.path.join(layout, "version"), "w").write("Directory Transport Version: 1.1\n")
PY
}
push_run=0
push_prepare() { push_run=$((push_run + 1)); new_layout; }
mr_push() {
    skopeo copy --quiet --dest-tls-verify=false --dest-creds "$mr_creds" "dir:$work/layout" "docker://$mr/bench/push-$push_run:1"
}
reg_push() { skopeo copy --quiet --dest-tls-verify=false "dir:$work/layout" "docker://$reg/bench/push-$push_run:1"; }
# modelreg may refuse pushes: try once first, and time it only if it works.
push_prepare
if mr_push >"$work/mr-push.err" 2>&1; then
    reset_peak "$mr_pid"
    best mr_push push_prepare mr_push
    mr_push_rss=$(peak_mib "$mr_pid")
    mr_push_s=${result[mr_push]}
else
    mr_push_s="n/a (push not served: $(grep -m1 -v "^+" "$work/mr-push.err" | sed "s/^time=\"[^\"]*\" level=fatal msg=//" | tr "|" "/"))"
    mr_push_rss=
fi
reset_peak "$reg_pid"
best reg_push push_prepare reg_push
reg_push_rss=$(peak_mib "$reg_pid")
# The last push arrived whole.
pull_clear
skopeo copy --quiet --src-tls-verify=false "docker://$reg/bench/push-$push_run:1" "dir:$work/out"
diff -r "$work/layout" "$work/out" >/dev/null
if [ -n "$mr_push_rss" ]; then push_ratio=$(ratio "$mr_push_s" "${result[reg_push]}"); else push_ratio=n/a; fi

echo "| $mib MiB model, 4 files, skopeo copy | modelreg s | distribution s | ratio |"
echo "|---|---:|---:|---:|"
echo "| pull (docker:// → dir:) | ${result[mr_pull]} | ${result[reg_pull]} | $(ratio "${result[mr_pull]}" "${result[reg_pull]}") |"
echo "| push (dir: → docker://, new blobs) | $mr_push_s | ${result[reg_push]} | $push_ratio |"
echo
echo "peak RSS MiB during the pulls: modelreg $mr_pull_rss, docker-registry $reg_pull_rss"
echo "peak RSS MiB during the pushes: modelreg ${mr_push_rss:-n/a}, docker-registry $reg_push_rss"
