#!/usr/bin/env bash
# Object storage and shards (release build), on the example's 1,400 images, in one run:
#  1. `curate import` + `curate embed` reading the images from a local S3 server (moto_server,
#     on 127.0.0.1) against reading the same images from local disk;
#  2. the shard overhead: N `curate embed --shard i/N` processes (run one after another, so the
#     sum is the work they add) plus the merge (`curate embed` on the workspace, which compacts),
#     against one `curate embed`; and the same for `curate import --shard`.
# Each figure is the best of RUNS (default 2) runs of the whole command, start-up included, with a
# cold embedding cache. Uses the test venv (moto, boto3), as the tests do; not CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
runs="${RUNS:-2}"
shards="${SHARDS:-4}"
model="${MODEL:-mobilenet}"
venv="${CURATE_TEST_VENV:-$HOME/.cache/curate-test-venv}"
[ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install -q "moto[server]==5.1.22"
export CARGO_TARGET_DIR="${CURATE_RELEASE_TARGET:-$HOME/.cache/curate-release}"
[ -n "${CURATE_BIN:-}" ] || cargo build --release --locked -q
bin="${CURATE_BIN:-$CARGO_TARGET_DIR/release/curate}"
work=$(mktemp -d)
source benches/cluster/s3.sh
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
start_s3

best() { # command... : prints the best wall time of $runs runs (a fresh copy of the workspace each)
    local best=""
    for _ in $(seq "$runs"); do
        local t
        /usr/bin/time -f "%e" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
        t=$(cat "$work/time")
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    done
    echo "$best"
}
import_embed() { # media
    rm -rf "$work/ws"; make_ws "$work/ws" "$1"
    "$bin" -C "$work/ws" import samples.csv >/dev/null && "$bin" -C "$work/ws" embed --model "$model" >/dev/null
}
sharded_embed() {
    rm -rf "$work/ws"; make_ws "$work/ws" local
    "$bin" -C "$work/ws" import samples.csv >/dev/null
    for i in $(seq 0 $((shards - 1))); do "$bin" -C "$work/ws" embed --model "$model" --shard "$i/$shards" >/dev/null; done
    "$bin" -C "$work/ws" embed --model "$model" >/dev/null
}
single_embed() {
    rm -rf "$work/ws"; make_ws "$work/ws" local
    "$bin" -C "$work/ws" import samples.csv >/dev/null
    "$bin" -C "$work/ws" embed --model "$model" >/dev/null
}
sharded_import() {
    rm -rf "$work/ws"; make_ws "$work/ws" "$1"
    for i in $(seq 0 $((shards - 1))); do "$bin" -C "$work/ws" import samples.csv --shard "$i/$shards" >/dev/null; done
    "$bin" -C "$work/ws" import samples.csv >/dev/null
}
single_import() {
    rm -rf "$work/ws"; make_ws "$work/ws" "$1"
    "$bin" -C "$work/ws" import samples.csv >/dev/null
}
export -f make_ws import_embed sharded_embed single_embed sharded_import single_import
export bin work repo model shards

# Every run must have embedded all 1,400 images (the last run's workspace is checked).
embedded() {
    "$bin" -C "$work/ws" embed --model "$model" --json | grep -q '"cached": 1400' || { echo "not every image was embedded in $1" >&2; exit 1; }
}
scanned() {
    "$bin" -C "$work/ws" run /dev/stdin <<< 'open().filter("hash IS NULL").len()' | grep -qx 0 || { echo "unreadable images in $1" >&2; exit 1; }
}
local_s=$(best bash -c 'import_embed local'); embedded "import + embed, local"
s3_s=$(best bash -c 'import_embed s3'); embedded "import + embed, S3"
one=$(best bash -c single_embed); embedded "one process"
many=$(best bash -c sharded_embed); embedded "shards"
imp_local=$(best bash -c 'single_import local'); scanned "import, local"
imp_s3=$(best bash -c 'single_import s3'); scanned "import, S3"
imp_sharded=$(best bash -c 'sharded_import s3'); scanned "import shards, S3"
n=1400
printf "%-52s %8s %10s %8s\n" "step (1,400 images, $model)" "seconds" "images/s" "ratio"
printf "%-52s %8s %10.0f %8s\n" "import + embed, local disk" "$local_s" "$(echo "$n / $local_s" | bc -l)" "1.00"
printf "%-52s %8s %10.0f %8.2f\n" "import + embed, S3 (moto on 127.0.0.1)" "$s3_s" "$(echo "$n / $s3_s" | bc -l)" "$(echo "$s3_s / $local_s" | bc -l)"
printf "%-52s %8s %10s %8s\n" "import (scan), local disk" "$imp_local" "" "1.00"
printf "%-52s %8s %10s %8.2f\n" "import (scan), S3" "$imp_s3" "" "$(echo "$imp_s3 / $imp_local" | bc -l)"
printf "%-52s %8s %10s %8.2f\n" "import (scan), S3, $shards shards + the manifest run" "$imp_sharded" "" "$(echo "$imp_sharded / $imp_s3" | bc -l)"
printf "%-52s %8s %10s %8s\n" "embed, one process" "$one" "" "1.00"
printf "%-52s %8s %10s %8.2f\n" "embed, $shards shards one after another + merge" "$many" "" "$(echo "$many / $one" | bc -l)"
