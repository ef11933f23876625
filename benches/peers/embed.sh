#!/usr/bin/env bash
# End-to-end `curate embed` (release build) with tract and with onnxruntime, against Python
# onnxruntime + Pillow (benches/peers/embed.py) doing the same preprocessing, on the same
# images in one run: 400 photos (random crops of the assets' photos, 640 x 480, JPEG q90) and
# the example's 1,200 CIFAR-10 thumbnails, pinned to 1 core and to 2 cores. Each figure is
# the best of RUNS (default 2) cold-cache runs of the whole command, start-up included; peak
# resident memory from /usr/bin/time. Makes its own venv (Pillow, numpy, onnxruntime);
# not CI. The onnxruntime backend loads the venv's library, as users' installs would.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
assets="${CURATE_ASSETS:-$repo/../shared/assets}"
runs="${RUNS:-2}"
venv="${CURATE_PEERS_VENV:-$HOME/.cache/curate-peers-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import PIL, numpy, onnxruntime" 2>/dev/null || "$venv/bin/pip" install -q pillow numpy onnxruntime==1.32.0
export CARGO_TARGET_DIR="${CURATE_RELEASE_TARGET:-$HOME/.cache/curate-release}"
cargo build --release --locked -q
bin="$CARGO_TARGET_DIR/release/curate"
model="$repo/examples/people/models/mobilenetv2_imagenet.onnx"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make_ws() { # name, then fill $work/name/media
    "$bin" init "$work/$1" --name "$1" >/dev/null
    cat >>"$work/$1/curate.toml" <<TOML

[models.mobilenet]
path = "$model"
input = [224, 224]
layout = "nchw"
channels = "rgb"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
embedding = "embedding"
TOML
}
make_ws photos
"$venv/bin/python" benches/peers/embed.py make-photos "$assets/images/photos" "$work/photos/media" 400
make_ws cifar
mkdir -p "$work/cifar/media" && cp -r examples/people/media/cifar "$work/cifar/media/"
for set in photos cifar; do
    "$bin" -C "$work/$set" import "$work/$set/media" >/dev/null
    find "$work/$set/media" -type f \( -name '*.jpg' -o -name '*.png' \) | sort >"$work/$set.list"
done

# best images/s and its peak RSS (MB) over $runs runs of a command that embeds $n images
best() {
    local n=$1; shift
    local best_rate=0 best_mem=0
    for _ in $(seq "$runs"); do
        rm -rf "$work"/*/.curate/embeddings
        /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
        read -r secs kb <"$work/time"
        local rate mem
        rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
        mem=$(( kb / 1024 ))
        if awk -v a="$rate" -v b="$best_rate" 'BEGIN { exit !(a > b) }'; then best_rate=$rate; best_mem=$mem; fi
    done
    echo "$best_rate $best_mem"
}

printf "%-7s %-7s %18s %18s %18s %9s %9s\n" set threads "curate tract" "curate onnxrt" "python onnxrt" tract/py onnxrt/py
for set in photos cifar; do
    n=$(wc -l <"$work/$set.list")
    for threads in 1 2; do
        cpus=$([ "$threads" = 1 ] && echo 0 || echo 0,1)
        read -r tr tm < <(best "$n" taskset -c "$cpus" env RAYON_NUM_THREADS="$threads" "$bin" -C "$work/$set" --runtime tract embed)
        read -r orr om < <(best "$n" taskset -c "$cpus" env RAYON_NUM_THREADS="$threads" CURATE_PYTHON="$venv/bin/python" "$bin" -C "$work/$set" --runtime onnxruntime embed)
        read -r pr pm < <(best "$n" taskset -c "$cpus" env OMP_NUM_THREADS="$threads" "$venv/bin/python" benches/peers/embed.py run "$model" "$threads" "$work/$set.list")
        printf "%-7s %-7s %11s/s %4sM %11s/s %4sM %11s/s %4sM %8.2fx %8.2fx\n" "$set($n)" "$threads" "$tr" "$tm" "$orr" "$om" "$pr" "$pm" \
            "$(awk -v a="$tr" -v b="$pr" 'BEGIN { print a / b }')" "$(awk -v a="$orr" -v b="$pr" 'BEGIN { print a / b }')"
    done
done
