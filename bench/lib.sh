# Shared by the benchmark scripts: timing helpers. Source it from the repository's top directory.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# best KEY PREPARE COMMAND...: result[KEY] = the best seconds of `runs` runs of COMMAND, with PREPARE (a
# function name or :) run untimed before each. Runs in this shell, so servers restarted by PREPARE stay known.
declare -A result
best() {
    local key=$1 prepare=$2
    shift 2
    local best_time="" start end
    for _ in $(seq "$runs"); do
        $prepare
        start=$(now)
        "$@" >/dev/null 2>&1
        end=$(now)
        best_time=$(python3 -c "a='$best_time'; t=$end-$start; print(f'{min(float(a),t) if a else t:.3f}')")
    done
    result[$key]=$best_time
}

# ratio A B: A/B with two decimals.
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
