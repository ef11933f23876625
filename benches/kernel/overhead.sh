#!/usr/bin/env bash
# Jupyter kernel overhead (release build): the time from execute_request to execute_reply for a
# trivial cell and for a 96-tile contact sheet, against the same cell run by `curate run`, on a
# copy of the example workspace. `curate run`'s time per cell is the difference between a
# script of 1 + N copies of the cell and a script of one (start-up, workspace and first-call
# costs cancel), so both columns are the cell's own time plus what its front end adds. Makes a
# venv with jupyter_client (CURATE_TEST_VENV, as the tests do); not CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
venv="${CURATE_TEST_VENV:-$HOME/.cache/curate-test-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import jupyter_client" 2>/dev/null || "$venv/bin/pip" install -q jupyter_client==8.10.0
export CARGO_TARGET_DIR="${CURATE_RELEASE_TARGET:-$HOME/.cache/curate-release}"
cargo build --release --locked -q
bin="$CARGO_TARGET_DIR/release/curate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ws="$work/ws"
mkdir -p "$ws"
cp examples/people/curate.toml examples/people/manifest.parquet "$ws/"
ln -s "$repo/examples/people/media" "$ws/media"
ln -s "$repo/examples/people/models" "$ws/models"
"$bin" jupyter install --prefix "$work/jupyter" >/dev/null
export JUPYTER_PATH="$work/jupyter/share/jupyter" JUPYTER_RUNTIME_DIR="$work/runtime"
exec "$venv/bin/python" benches/kernel/overhead.py "$bin" "$ws"
