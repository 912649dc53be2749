#!/usr/bin/env bash
# xai against the peers (onnxruntime, PyTorch, Captum, pytorch-grad-cam) on one machine, back to back.
# Machines of this kind differ (Zen 3/AVX2 and Zen 4/AVX-512 have both been seen; sgemm 166-241
# GFLOP/s), so only ratios from one such run mean anything.
#
#   bash Benchmarks/peers/setup.sh                         # once: the pinned peer venv (a few GB)
#   bash Benchmarks/peers/side_by_side.sh . OUT [MODEL]    # from the project root, after a release build
#
# Env: XAI_METHODS and PEER_METHODS override the rows; PEER_PY the venv's python.
set -uo pipefail
PROJ="$(cd "$1" && pwd)"; OUT="$2"; MODEL="${3:-resnet50}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PEER_PY:-$HOME/.xai-peerenv/bin/python}"
[ -x "$PY" ] || { echo "no peer venv at $PY: run $HERE/setup.sh first (or set PEER_PY)" >&2; exit 2; }
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"; BENCH="$PROJ/.build/release/xai-bench"
{ grep -m1 "model name" /proc/cpuinfo; grep -m1 -o "avx512f" /proc/cpuinfo || echo "no avx512f"; } > "$OUT/cpu.txt"
( cd "$PROJ" && git rev-parse --short HEAD ) > "$OUT/commit.txt"
"$BENCH" models --device cpu --models "$MODEL" --json "$OUT/xai_models.json" > "$OUT/xai_models.txt" 2>&1
"$BENCH" methods --device cpu --model "$MODEL" --methods "${XAI_METHODS:-ig,gradcam,occlusion,kernelshap,lime}" \
    --repeat 3 --json "$OUT/xai_methods.json" > "$OUT/xai_methods.txt" 2>&1
# the peer script writes next to itself: run a scratch copy so the committed figures here stay untouched
SCR="$OUT/peer_scratch"; rm -rf "$SCR"; mkdir -p "$SCR"; cp "$HERE"/peer_bench.py "$SCR/"
"$PY" "$SCR/peer_bench.py" --model "$MODEL" --methods "${PEER_METHODS:-forward_b1,forward_b32,ort_forward_b1,ort_forward_b32,fwd_bwd_input_b1,captum_integrated_gradients,captum_layergradcam,gradcam_gradcam,captum_occlusion,captum_kernelshap,captum_lime}" \
    > "$OUT/peers.txt" 2>&1
cp "$SCR/results_$MODEL.json" "$OUT/peers.json" 2>/dev/null
echo "xai: $OUT/xai_models.txt, $OUT/xai_methods.txt; peers: $OUT/peers.txt, $OUT/peers.json"
