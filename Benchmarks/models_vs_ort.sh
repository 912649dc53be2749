#!/usr/bin/env bash
# Forward rows of MobileNetV2, SqueezeNet 1.1 and the demo model, onnxruntime and xai-bench back to
# back on the same ONNX files (the peer script covers only the ResNets). After a release build and
# `bash Benchmarks/peers/setup.sh` (or PEER_PY naming another venv's python):
#
#   bash Benchmarks/models_vs_ort.sh OUT
#
# Then the same models and ResNet-50 once more with the two runtimes alternating batch by batch in
# one process (xai through its Python package on the release build's libxaic.so): on this noisy VM
# those ratios are the ones to quote (see models_vs_ort.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
PY="${PEER_PY:-$HOME/.xai-peerenv/bin/python}"
[ -x "$PY" ] || { echo "no peer venv at $PY: run Benchmarks/peers/setup.sh first (or set PEER_PY)" >&2; exit 2; }
{ grep -m1 "model name" /proc/cpuinfo; grep -m1 -o "avx512f" /proc/cpuinfo || echo "no avx512f"; } > "$OUT/cpu.txt"
"$PY" "$ROOT/Benchmarks/models_vs_ort.py" "$OUT" | tee "$OUT/ort_models.txt"
"$ROOT/.build/release/xai-bench" models --device cpu \
    --models "$OUT/mobilenet_v2.onnx,$OUT/squeezenet1_1.onnx,$ROOT/Demo/model.onnx" \
    --json "$OUT/xai_models.json" | tee "$OUT/xai_models.txt"
"$PY" "$ROOT/Benchmarks/models_vs_ort.py" "$OUT" --interleaved --models mobilenet_v2,squeezenet1_1,resnet50,demo \
    | tee "$OUT/interleaved.txt"
