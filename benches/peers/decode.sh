#!/usr/bin/env bash
# Decode + resize per core: curate (full decode, and DCT-domain scaled) against Pillow (plain,
# and draft) on the same 400 photos, in one run. Makes its own venv (Pillow, numpy); not CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${CURATE_PEERS_VENV:-$HOME/.cache/curate-peers-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import PIL, numpy" 2>/dev/null || "$venv/bin/pip" install -q pillow numpy
export CURATE_DECODE_DIR="${CURATE_DECODE_DIR:-$(mktemp -d)}"
# Per core: both sides pinned to one CPU (the image crate's JPEG decoder would otherwise use a
# second thread, which embedding, one image per worker, does not have to give).
cargo bench -p curate-stdlib --bench decode --no-run
taskset -c 0 cargo bench -p curate-stdlib --bench decode
OMP_NUM_THREADS=1 taskset -c 0 "$venv/bin/python" benches/peers/decode.py
