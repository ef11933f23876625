#!/usr/bin/env bash
# The one command every engine below runs: embed shard INDEX of COUNT of a workspace that all
# workers see (a shared filesystem: NFS, Lustre, a ReadWriteMany volume), reading the images
# from wherever the manifest says (local paths, or s3:// / gs:// / az:// / http(s):// URLs).
#
#   embed-shard.sh WORKSPACE COUNT [INDEX] [MODEL]
#
# INDEX defaults to the engine's own task index: SLURM_ARRAY_TASK_ID (Slurm job arrays),
# JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or CURATE_SHARD_INDEX (anything else).
# Shards split the images by content hash, the same way on every run. Each writes its own
# atomic part files into the workspace's cache, so shards never touch each other's output,
# and a shard that is killed and run again embeds only what it had not finished. The next
# command on the workspace (any `curate embed`, `similar`, ...) merges the parts into the store.
# Workers with their own copies of the workspace: collect the copies on one machine and run
# `curate -C MAIN merge COPY...`.
#
# CURATE_STEP picks the sharded step (default embed): embed, predict, index (the ANN index of
# the shard's vectors; `similar` searches a whole set) or dedupe (nearest neighbours and
# perceptual hashes for `duplicates`; run it once the vectors are merged). The import's scan
# shards too: `curate -C WS import SRC --shard I/N`, then `curate -C WS import SRC`.
set -euo pipefail
ws="${1:?usage: embed-shard.sh WORKSPACE COUNT [INDEX] [MODEL]}"
count="${2:?usage: embed-shard.sh WORKSPACE COUNT [INDEX] [MODEL]}"
index="${3:-${SLURM_ARRAY_TASK_ID:-${JOB_COMPLETION_INDEX:-${CURATE_SHARD_INDEX:?no shard index: pass INDEX or set SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX / CURATE_SHARD_INDEX}}}}"
model=()
[ -n "${4:-}" ] && model=(--model "$4")
step="${CURATE_STEP:-embed}"
case "$step" in
    embed | predict | index | dedupe) ;;
    *) echo "CURATE_STEP=$step: expected embed, predict, index or dedupe" >&2; exit 2 ;;
esac
exec "${CURATE:-curate}" -C "$ws" "$step" --shard "$index/$count" "${model[@]}"
