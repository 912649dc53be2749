#!/usr/bin/env bash
# xai's explanation metrics beside Quantus 0.6 and Captum 0.9 on ResNet-50, back to back on one
# machine (only ratios from one such run mean anything).
#
#   bash Benchmarks/metrics_side_by_side.sh OUT            # from the project root, after a release build
#
# Env: METRIC_PY, a python with quantus==0.6.0, captum, torch and torchvision (the peer venv has
# no quantus: python3 -m venv V && V/bin/pip install quantus==0.6.0 captum torch torchvision);
# IG_STEPS (50) and LIME_SAMPLES (100) for the sensitivity rows, on both sides.
set -uo pipefail
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
PY="${METRIC_PY:-python3}"
IG_STEPS="${IG_STEPS:-50}"; LIME_SAMPLES="${LIME_SAMPLES:-100}"
{ grep -m1 "model name" /proc/cpuinfo; grep -m1 -o "avx512f" /proc/cpuinfo || echo "no avx512f"; } > "$OUT/cpu.txt"
git rev-parse --short HEAD > "$OUT/commit.txt"
"$PY" Benchmarks/metrics_vs_peers.py --json "$OUT/metric_peers.json" --ig-steps "$IG_STEPS" --lime-samples "$LIME_SAMPLES" > "$OUT/peers.txt" 2>&1
.build/release/xai-bench metrics --model resnet50 --ig-steps "$IG_STEPS" --lime-samples "$LIME_SAMPLES" \
    --compare "$OUT/metric_peers.json" --json "$OUT/xai_metrics.json" > "$OUT/xai_metrics.txt" 2>&1
cat "$OUT/xai_metrics.txt"
