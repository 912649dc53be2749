#!/usr/bin/env bash
# Explain an image folder with a Slurm job array: task i of N runs `xai explain --shard i/N`.
# Task i writes OUT/shard-i (its own results.jsonl: appends from several machines to one file are
# not atomic on NFS); a requeued or resubmitted task skips what it already wrote, so `sbatch` this
# again after a failure and only the missing images run. Merge when all are done:
#   cat OUT/shard-*/results.jsonl > OUT/results.jsonl
#
#   sbatch docs/examples/slurm-array.sh MODEL.onnx /data/images /data/xai-out
#
#SBATCH --job-name=xai-explain
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
set -euo pipefail
MODEL="$1" IMAGES="$2" OUT="$3"
SHARDS=8  # the number of tasks in --array above
exec xai explain "$MODEL" "$IMAGES" --method gradcam,ig --out "$OUT/shard-$SLURM_ARRAY_TASK_ID" --quiet \
     --shard "$SLURM_ARRAY_TASK_ID/$SHARDS"
