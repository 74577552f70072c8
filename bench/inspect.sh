#!/usr/bin/env bash
# Header-only inspection of a 10 GiB sparse safetensors file and a 10 GiB sparse GGUF file.
# Run by hand (not in CI): bash bench/inspect.sh [runs]. Prints a table; record it in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
swift build -c release --product modelreg >/dev/null
binary=.build/release/modelreg
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/make_sparse_models.py "$work" >/dev/null

printf '%-26s %10s %10s %10s %10s %12s\n' file size "min ms" "median ms" "max ms" "process ms"
for file in "$work"/sparse-10g.safetensors "$work"/sparse-10g.gguf; do
    times=()
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do
        times+=("$("$binary" inspect "$file" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"] * 1000)')")
    done
    wall=$(( ($(date +%s%N) - start) / runs / 1000000 ))
    sorted=$(printf '%s\n' "${times[@]}" | sort -g)
    printf '%-26s %10s %10.2f %10.2f %10.2f %12s\n' "$(basename "$file")" "$(du -h --apparent-size "$file" | cut -f1)" \
        "$(echo "$sorted" | head -1)" "$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")" "$(echo "$sorted" | tail -1)" "$wall"
done
