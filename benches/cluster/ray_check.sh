#!/usr/bin/env bash
# The check on a real engine (not CI): a local Ray head (`ray start --head --num-cpus=2`, from
# the test venv), 4 shards of `curate embed` reading the images from a local S3 server as Ray
# tasks (examples/cluster/ray_driver.py, unchanged), one shard's curate process killed with
# SIGKILL mid-run so that Ray's retry re-runs it, then the merge; the stores must equal, byte for
# byte, those of one process embedding the same images. Prints what happened and exits non-zero
# on any difference.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
model="${MODEL:-mobilenet}"
venv="${CURATE_TEST_VENV:-$HOME/.cache/curate-test-venv}"
"$venv/bin/python" -c "import ray" 2>/dev/null || "$venv/bin/pip" install -q "ray==2.52.1"
export CARGO_TARGET_DIR="${CURATE_RELEASE_TARGET:-$HOME/.cache/curate-release}"
[ -n "${CURATE_BIN:-}" ] || cargo build --release --locked -q
export CURATE="${CURATE_BIN:-$CARGO_TARGET_DIR/release/curate}"
work=$(mktemp -d)
source benches/cluster/s3.sh
cleanup() { "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; kill "$moto" 2>/dev/null || true; rm -rf "$work" "/tmp/ray-$$"; }
trap cleanup EXIT
start_s3
export CI=true

make_ws "$work/single" s3
"$CURATE" -C "$work/single" import samples.csv >/dev/null
cp -r "$work/single" "$work/ray"
started=$(date +%s.%N)
"$CURATE" -C "$work/single" embed --model "$model"
echo "one process: $(echo "$(date +%s.%N) - $started" | bc) s"

# Workers inherit the head's environment: the AWS_* variables and CURATE.
"$venv/bin/ray" start --head --num-cpus=2 --disable-usage-stats --temp-dir="/tmp/ray-$$" > "$work/ray-start.log" 2>&1 || { echo "ray start failed:"; tail -20 "$work/ray-start.log"; exit 1; }
started=$(date +%s.%N)
RAY_ADDRESS=auto "$venv/bin/python" examples/cluster/ray_driver.py "$work/ray" 4 "$model" > "$work/driver.out" 2> "$work/driver.err" &
driver=$!
# Kill shard 2's curate mid-run: once it has written its first part (part names carry the pid).
for _ in $(seq 1200); do pgrep -f -- "curate -C .* embed --shard 2/4" >/dev/null && break; sleep 0.1; done
victim=$(pgrep -f -- "curate -C .* embed --shard 2/4" | head -1 || true)
[ -n "$victim" ] || { echo "shard 2/4 never started"; exit 1; }
own_parts() { find "$work/ray/.curate/embeddings" -name "part-*-$victim-*.arrow" 2>/dev/null | wc -l; }
for _ in $(seq 1200); do [ "$(own_parts)" -ge 1 ] && break; sleep 0.05; done
parts=$(own_parts)
kill -9 "$victim"
echo "killed shard 2/4 (pid $victim) after it wrote $parts part(s) of 256 images"
wait "$driver" || { echo "the driver failed:"; tail -20 "$work/driver.err"; exit 1; }
echo "4 shards (one killed and retried by Ray) + merge: $(echo "$(date +%s.%N) - $started" | bc) s"
cat "$work/driver.out"

status=0
for f in "$work"/single/.curate/embeddings/*/*; do
    name=${f#"$work/single/"}
    case "$name" in *.lock) continue ;; esac
    if cmp -s "$f" "$work/ray/$name"; then echo "identical: $name ($(stat -c %s "$f") bytes)"; else echo "DIFFERENT: $name"; status=1; fi
done
extra=$(cd "$work/ray" && ls .curate/embeddings/*/ | grep -v -e '\.lock$' -e '^$' -e ':$' | sort | comm -23 - <(cd "$work/single" && ls .curate/embeddings/*/ | grep -v -e '\.lock$' -e '^$' -e ':$' | sort) || true)
[ -z "$extra" ] || echo "left beside the store (a part the kill cut short, removed by a compaction an hour on): $extra"
exit $status
