#!/usr/bin/env bash
# Recreate the peer-baseline Python environment (Captum, lime, shap, grad-cam, ...)
# with one command, from the repository root or anywhere:
#
#     bash Benchmarks/peers/setup.sh        # venv at ~/.xai-peerenv (what side_by_side.sh uses)
#     bash Benchmarks/peers/setup.sh DIR    # venv at DIR (then PEER_PY=DIR/bin/python for the scripts)
#
# The venv lives OUTSIDE the repository (it is several GB: PyPI's torch wheel
# pulls the CUDA libraries even though everything here runs on the CPU).
# Versions are pinned to the ones measured in RESULTS.md; needs only PyPI.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HOME/.xai-peerenv}"
PY="${PYTHON:-python3}"

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# Top-level packages, exactly as measured (pip resolves the rest).
"$VENV/bin/python" -m pip install \
    torch==2.15.0 torchvision==0.29.2 \
    captum==0.9.0 lime==0.2.0.1 shap==0.51.0 grad-cam==1.5.7 \
    scikit-image==0.26.0 scikit-learn==1.9.1 \
    onnx==1.23.2 onnxruntime==1.32.0 \
    numpy==2.4.6 pillow==13.0.0
# TorchRay (the RISE peer: Captum has none) without its declared dependencies: pycocotools and
# pymongo serve its benchmark datasets, which RISE never touches; what rise() imports (matplotlib,
# packaging) the packages above already bring (lime, scikit-image, captum).
"$VENV/bin/python" -m pip install --no-deps torchray==1.0.0.2
"$VENV/bin/python" -c "import torch, torchvision, captum, lime, shap, pytorch_grad_cam, skimage, onnx, onnxruntime; from torchray.attribution.rise import rise_class; print('peer env OK: torch', torch.__version__)"
if [ "$VENV" = "$HOME/.xai-peerenv" ]; then PREFIX=""; else PREFIX="PEER_PY=$VENV/bin/python "; fi
echo "run: ${PREFIX}bash $HERE/side_by_side.sh PROJECT_DIR OUT_DIR [resnet50|resnet18]   (after a release build)"
