#!/usr/bin/env bash
# The one-call GPU check, on the device machine (bare CUDA image, no Swift, no network), from the
# checkout's root, after `bash Tools/gpu/pack.sh` here made .gpu/ (carry it):
#
#   bash Tools/gpu/run.sh            # results go to $OUT (the device tool's folder) or ./gpu-out
#
# Steps, each under its own time limit so one slow step cannot eat the others' time, and all under
# one budget for the call (XAI_GPU_BUDGET seconds from the start, 480 unless set: the device tool
# allows 600 s a call and 15 minutes a session, start-up included, so this leaves time for the files
# to come back and for a short rerun). A step gets at most what is left of the budget and is skipped,
# saying so, when under 10 s are left; so the steps run in order of what the issue's goal table needs
# (XAI_GPU_QUICK=1 shortens every row, for a check of the script itself):
#   1. find the NVIDIA OpenCL driver (an ICD file naming it, libnvidia-opencl.so.1 from ldconfig or
#      under /usr/local/nvidia) and give the packed ICD loader a vendors folder pointing at it;
#   2. `xai devices` (the device facts);
#   3. the peer rows on CUDA: cuBLAS fp32 sgemm, ResNet-50 forward/backward, Captum,
#      pytorch-grad-cam and TorchRay's RISE (Tools/gpu/cuda_peers.py; captum, grad-cam and torchray from .gpu/whl);
#   4. the op-case, method and model tests, whose backend list includes the GPU;
#   5. `xai-bench tune`: the GEMM search (our tiled kernel's tile shapes, CLBlast) within 60 s, its
#      winner cached (XAI_CACHE_DIR) so the benchmarks after it run on the tuned GEMM; then each
#      ResNet-50 convolution under both lowerings (im2col, implicit GEMM) and Winograd F(2x2)/F(4x4), then under both
#      lowerings on the tensor cores (tf32, 3xtf32) beside the product-count default, the fastest per layer cached;
#   6. the goal table's rows on --device gpu, with --json: `xai-bench ops` (the GEMM), `models`
#      (ResNet-50 at batch 32, which brings batch 1, and 256), `methods` beside the CUDA peer rows of
#      step 3, then batch 32 and 256 under --precision tf32 (beside PyTorch's default TF32 convolutions);
#   7. what steers the next session's work, after the goal rows: batch 1's kernel profile; batch 32
#      under tf32 with im2col and with implicit convolutions everywhere, and under 3xtf32; then
#      `xai-bench precision` (maps under each beside fp32); batch 1 with and without the smaller
#      tiles for small grids, fp32 and tf32; NVIDIA's build reports (registers, spills); a short
#      `xai explain`'s wall time with every program compiled from source and from the kernel binary
#      cache; then ViT-B/16 (exported there when torchvision is in the image);
#   8. the issue's goal table (Tools/gpu/goals.py: every goal row beside its peer, met or not) and the
#      tests' summary, in goals.md.
# Without an NVIDIA OpenCL driver it says so, skips 4-7 and still returns the CUDA rows.
# $OUT gets log.txt (everything, in order), goals.md and one JSON per bench (at most 8 files come
# back: the tensor-core rows' JSON stays in $ROWS, read by step 8).
set -uo pipefail
ROOT="$(pwd)"
OUT="${OUT:-$ROOT/gpu-out}"; mkdir -p "$OUT"
LOG="$OUT/log.txt"; : > "$LOG"
# A reused folder (./gpu-out) must not lend an earlier call's rows to this call's table.
(cd "$OUT" && rm -f goals.md tests.txt cuda_peers.json xai_tune.json xai_ops.json xai_models.json xai_models256.json xai_methods.json)
QUICK="${XAI_GPU_QUICK:-0}"
say() { echo "$*" | tee -a "$LOG"; }
BUDGET="${XAI_GPU_BUDGET:-480}"
case "$BUDGET" in ''|*[!0-9]*) echo "XAI_GPU_BUDGET must be a whole number of seconds, not '$BUDGET'" >&2; exit 2;; esac
BUDGET=$((10#$BUDGET))   # decimal even with a leading zero
DEADLINE=$((SECONDS + BUDGET))
# step NAME SECONDS CMD...: runs CMD with a time limit, output appended to the log. The limit is
# cut to what is left of the call's budget (5 s kept for the summary); under 10 s left, the step
# is skipped (SKIPPED=1) and the log says so.
SKIPPED=0
step() {
    local name="$1" limit="$2"; shift 2
    local left=$((DEADLINE - SECONDS - 5))
    SKIPPED=0
    if [ "$left" -lt 10 ]; then
        say "== $name: skipped, the call's budget (XAI_GPU_BUDGET=${BUDGET}s) is spent"
        SKIPPED=1
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "== $name (limit ${limit}s, $(date -u +%T))"
    local t0=$SECONDS
    timeout -k 5 "$limit" "$@" >> "$LOG" 2>&1
    local rc=$?
    say "== $name: exit $rc after $((SECONDS - t0))s$([ $rc = 124 ] && echo ' (time limit)')"
    return $rc
}

[ -f .gpu/pack.tar.xz ] || { say "no .gpu/pack.tar.xz: run Tools/gpu/pack.sh first and carry .gpu"; exit 2; }
PACK=/tmp/xai-pack; rm -rf "$PACK"; mkdir -p "$PACK"
tar -xJf .gpu/pack.tar.xz -C "$PACK" || { say "could not unpack .gpu/pack.tar.xz"; exit 2; }
say "== pack: $(tr '\n' ';' < "$PACK/MANIFEST")"
say "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi')"

# The tests open their fixtures by the path they were compiled at: point it at this checkout.
SRC_ROOT="$(sed -n 's/^source_root //p' "$PACK/MANIFEST")"
if [ -n "$SRC_ROOT" ] && [ "$SRC_ROOT" != "$ROOT" ] && [ ! -e "$SRC_ROOT" ]; then
    mkdir -p "$(dirname "$SRC_ROOT")" && ln -s "$ROOT" "$SRC_ROOT"
fi

# 1. The NVIDIA OpenCL driver.
find_nvidia_opencl() {
    local f lib
    for f in /etc/OpenCL/vendors/*.icd; do
        [ -f "$f" ] && grep -qi nvidia "$f" && { lib="$(head -1 "$f" | xargs)"; [ -n "$lib" ] && { echo "$lib"; return; }; }
    done
    lib="$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1/ {print $NF; exit}')"
    [ -n "$lib" ] && { echo "$lib"; return; }
    find /usr/local/nvidia /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib -maxdepth 3 -name 'libnvidia-opencl.so*' 2>/dev/null | sort | head -1
}
NV_LIB="$(find_nvidia_opencl)"
# Without a driver found, the loader keeps its default vendors folder (PoCL in a local check).
OCL_ICD_VENDORS="${OCL_ICD_VENDORS:-/etc/OpenCL/vendors}"
LIBPATH="$PACK/lib"
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && LIBPATH="$LIBPATH:$d"; done
if [ -n "$NV_LIB" ]; then
    OCL_ICD_VENDORS="$PACK/vendors"; mkdir -p "$OCL_ICD_VENDORS"
    echo "$NV_LIB" > "$OCL_ICD_VENDORS/nvidia.icd"
    case "$NV_LIB" in /*) LIBPATH="$LIBPATH:$(dirname "$NV_LIB")";; esac
    say "== NVIDIA OpenCL driver: $NV_LIB"
else
    say "== NVIDIA OpenCL driver: NOT FOUND (no ICD file naming it, not in ldconfig -p, not under /usr/local/nvidia): the OpenCL steps are skipped; the CUDA peer rows still run"
fi
# The GEMM tuning cache of this call only (step 5 writes it, steps 6 and 7 read it).
XAI_CACHE_DIR=/tmp/xai-cache; rm -rf "$XAI_CACHE_DIR"
# Rows for the goal table beyond the eight files that come back.
ROWS=/tmp/xai-rows; rm -rf "$ROWS"; mkdir -p "$ROWS"
XENV=(env LD_LIBRARY_PATH="$LIBPATH" OCL_ICD_VENDORS="$OCL_ICD_VENDORS" XAI_CACHE_DIR="$XAI_CACHE_DIR")

# 2. Device facts.
step "xai devices" 60 "${XENV[@]}" "$PACK/bin/xai" devices
HAVE_GPU=0
"${XENV[@]}" "$PACK/bin/xai" devices 2>/dev/null | grep -q '^gpu:0' && ! "${XENV[@]}" "$PACK/bin/xai" devices 2>/dev/null | grep -q 'not a GPU' && HAVE_GPU=1
# XAI_GPU_ANY_DEVICE=1 takes OpenCL device 0 whatever it is (PoCL here): a check of the script itself.
[ "${XAI_GPU_ANY_DEVICE:-0}" = 1 ] && "${XENV[@]}" "$PACK/bin/xai" devices 2>/dev/null | grep -q '^gpu:0' && HAVE_GPU=1
[ -n "$NV_LIB" ] && [ "$HAVE_GPU" = 0 ] && say "== the NVIDIA driver was found but xai lists no GPU: see the devices output above"

# 3. The CUDA peer rows (torch is the image's; captum, grad-cam, ttach and torchray come as wheels).
if [ -d .gpu/whl ] && "${XAI_PEER_PY:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/xai-site .gpu/whl/*.whl >> "$LOG" 2>&1; then
    export PYTHONPATH=/tmp/xai-site${PYTHONPATH:+:$PYTHONPATH}
fi
PY="${XAI_PEER_PY:-python3}"
PEER_ARGS=(); [ "$QUICK" = 1 ] && PEER_ARGS=(--quick)
step "CUDA peers (PyTorch, Captum, pytorch-grad-cam, TorchRay)" 120 env PYTHONUNBUFFERED=1 "$PY" Tools/gpu/cuda_peers.py "$OUT/cuda_peers.json" "${PEER_ARGS[@]}"

if [ "$HAVE_GPU" = 1 ]; then
    # 4. Tests: every op case, method reference and model check runs on each backend, the GPU included.
    TESTS=XAIBackendTests.OpCaseTests,XAIBackendTests.TieBreakingTests,XAIBackendTests.KernelLibraryTests,XAIBackendTests.ErrorTests
    TESTS=$TESTS,XAIMethodTests.MethodReferenceTests,XAIMethodTests.PerturbationTests,XAIMethodTests.ReferenceCheckTests
    TESTS=$TESTS,XAIModelTests.ONNXFixtureTests,XAIModelTests.ZooTests,XAIBackendTests.GEMMTuningTests
    TESTS=$TESTS,XAIModelTests.ArchitectureFixtureTests,XAIModelTests.HuggingFaceFixtureTests
    # Issue 32: the device noise has the CPU's bits on NVIDIA's compiler too (no contraction, IEEE
    # division and square root), SmoothGrad and IG move what they should, fused residuals, pinned staging.
    TESTS=$TESTS,XAIBackendTests.CounterRandomTests,XAIMethodTests.DeviceResidencyTests,XAIBackendTests.LaunchTests
    # Implicit-GEMM convolutions: the bits of im2col on both engines, on NVIDIA's compiler too.
    TESTS=$TESTS,XAIBackendTests.ImplicitConvolutionTests
    # Tensor cores: gemm_mma and conv_mma_* with mma.sync as inline PTX (and emulated) against float64 and cvt.rna.
    TESTS=$TESTS,XAIBackendTests.TensorCoreTests
    # Smaller tiles for small grids: every step of each ladder gives the configured tile's bits (the PTX too).
    TESTS=$TESTS,XAIBackendTests.TileChoiceTests
    # Compiled programs kept between processes: NVIDIA's binaries loaded back, the same bits, damaged entries compiled again.
    TESTS=$TESTS,XAIBackendTests.ProgramBinaryCacheTests
    # Fused gradient stores: every input-gradient kernel's sum and derivative have the composition's bits, ResNet and MobileNet backwards.
    TESTS=$TESTS,XAIBackendTests.GradientStoreTests
    step "tests on every backend (GPU included)" $([ "$QUICK" = 1 ] && echo 300 || echo 150) "${XENV[@]}" "$PACK/bin/xaiPackageTests.xctest" "$TESTS"

    # 5. The GEMM and lowering search; 6. and 7. benchmarks on the GPU with its winners.
    B="$PACK/bin/xai-bench"
    if [ "$QUICK" = 1 ]; then
        step "xai-bench tune" 180 "${XENV[@]}" "$B" tune --device gpu --seconds 5 --square 256 --repeat 1 --json "$OUT/xai_tune.json"
        step "xai-bench ops" 120 "${XENV[@]}" "$B" ops --device gpu --batches 1 --repeat 1 --gemm-size 512 --json "$OUT/xai_ops.json"
        step "xai-bench models" 300 "${XENV[@]}" "$B" models --device gpu --models resnet18 --batch 2 --repeat 1 --json "$OUT/xai_models.json"
        step "xai-bench methods" 300 "${XENV[@]}" "$B" methods --device gpu --model resnet18 --methods gradcam,occlusion --repeat 1 --slow-budget 1 --json "$OUT/xai_methods.json"
    else
        step "xai-bench tune" 180 "${XENV[@]}" "$B" tune --device gpu --seconds 60 --json "$OUT/xai_tune.json"
        # 6. The goal table's rows first: the GEMM (ops), ResNet-50 at batch 32 and 256 (batch 1 comes
        # with batch 32), the methods beside Captum (RISE beside TorchRay), then batch 32 and 256 under TF32 (PyTorch's default
        # for cuDNN convolutions, the tf32 goal's peer).
        step "xai-bench ops" 45 "${XENV[@]}" "$B" ops --device gpu --batches 1,32 --repeat 3 --json "$OUT/xai_ops.json"
        step "xai-bench models (batch 32)" 45 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 32 --repeat 5 --json "$OUT/xai_models.json"
        step "xai-bench models (batch 256)" 50 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 256 --repeat 3 --json "$OUT/xai_models256.json"
        step "xai-bench methods" 150 "${XENV[@]}" "$B" methods --device gpu --model resnet50 \
            --methods saliency,gradcam,ig,smoothgrad,occlusion,occlusion-full,lime,kernelshap,rise --repeat 3 --slow-budget 10 \
            $([ -s "$OUT/cuda_peers.json" ] && echo --compare "$OUT/cuda_peers.json") --json "$OUT/xai_methods.json"
        step "xai-bench models (batch 32, tf32)" 30 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 32 --repeat 5 --precision tf32 \
            --json "$ROWS/models_b32_tf32.json"
        step "xai-bench models (batch 256, tf32)" 40 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 256 --repeat 3 --precision tf32 \
            --json "$ROWS/models_b256_tf32.json"
        # 7. What steers later work. Device time by kernel (profiling events) and launches per pass at
        # batch 1, in log.txt.
        step "xai-bench models --profile (batch 1)" 30 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 1 --repeat 3 --profile --profile-rows 12
        # The same with every convolution an im2col GEMM on the tensor cores, then every one implicit (conv_mma_*;
        # the row above takes step 5's per-layer measurements under tf32).
        step "xai-bench models (batch 32, tf32, im2col)" 30 "${XENV[@]}" XAI_CONV_LOWERING=im2col "$B" models --device gpu --models resnet50 --batch 32 --repeat 5 --precision tf32
        step "xai-bench models (batch 32, tf32, implicit)" 30 "${XENV[@]}" XAI_CONV_LOWERING=implicit "$B" models --device gpu --models resnet50 --batch 32 --repeat 5 --precision tf32
        step "xai-bench models (batch 32, 3xtf32)" 30 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 32 --repeat 5 --precision 3xtf32
        step "xai-bench precision" 40 "${XENV[@]}" "$B" precision --device gpu --model resnet50 --methods saliency,gradcam,ig --images 2
        # Batch 1 with the configured tiles everywhere (the default shrinks them where a grid leaves
        # compute units idle: same bits), fp32 and tf32, against the default rows above and here.
        step "xai-bench models (batch 1, XAI_SMALL_TILES=off)" 20 "${XENV[@]}" XAI_SMALL_TILES=off "$B" models --device gpu --models resnet50 --batch 1 --repeat 5
        step "xai-bench models (batch 1, tf32)" 20 "${XENV[@]}" "$B" models --device gpu --models resnet50 --batch 1 --repeat 5 --precision tf32
        step "xai-bench models (batch 1, tf32, XAI_SMALL_TILES=off)" 20 "${XENV[@]}" XAI_SMALL_TILES=off "$B" models --device gpu --models resnet50 --batch 1 --repeat 5 --precision tf32
        # What NVIDIA's compiler made of the GEMM and tensor-core kernels: ptxas's registers and spills
        # (-cl-nv-verbose) and each kernel's private memory per work-item, in log.txt.
        step "kernel build reports (tensor cores, tiled GEMM)" 60 "${XENV[@]}" XAI_KERNEL_BUILD_LOG=1 "$PACK/bin/xaiPackageTests.xctest" \
            XAIBackendTests.TensorCoreTests/testConvolutionsRunOnTheTensorCoresAsImplicitGEMMs,XAIBackendTests.ImplicitConvolutionTests/testImplicitGEMMHasTheBitsOfIm2colAndMatchesFloat64
        # Start-up of a short `xai explain` (the demo model, one image): every program compiled from source
        # (XAI_PROGRAM_CACHE=off), then twice with the binary cache (the first run fills it, the second loads it).
        # Fresh output folders too: xai explain skips the maps a folder already holds (a rerun on a warm machine).
        rm -rf /tmp/xai-cache-explain /tmp/xai-explain-off /tmp/xai-explain-fill /tmp/xai-explain-load
        EX=(explain Demo/model.onnx Demo/samples/circle_1.png --device gpu --method saliency,gradcam)
        for run in "off" "fill" "load"; do
            t0=$(date +%s%N)
            step "xai explain, kernel binaries: $run" 60 env LD_LIBRARY_PATH="$LIBPATH" OCL_ICD_VENDORS="$OCL_ICD_VENDORS" XAI_CACHE_DIR=/tmp/xai-cache-explain \
                XAI_PROGRAM_CACHE=$([ $run = off ] && echo off || echo on) "$PACK/bin/xai" "${EX[@]}" --out "/tmp/xai-explain-$run"
            [ "$SKIPPED" = 1 ] || say "== xai explain, kernel binaries $run: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        done
        # ViT-B/16 (issue 34), where the image's Python has torchvision to export it (330 MB, not packed).
        if "$PY" -c "import torchvision" 2>/dev/null; then
            step "export ViT-B/16" 40 "$PY" -c "import torch, torchvision; torch.onnx.export(torchvision.models.vit_b_16().eval(), torch.randn(1, 3, 224, 224), '/tmp/vit_b_16.onnx', dynamo=False, opset_version=17, input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'batch'}})"
            # Rows in log.txt only: eight files at most come back.
            [ -s /tmp/vit_b_16.onnx ] && step "xai-bench models (ViT-B/16)" 60 "${XENV[@]}" "$B" models --device gpu --models /tmp/vit_b_16.onnx --batch 32 --repeat 3
        fi
    fi
fi
# 8. The goal table and the tests' summary (not under the budget: it reads files, in well under a second).
{
    # The standard library only: the system's python3 where there is one, else the peers'.
    timeout 30 "$(command -v python3 || echo "$PY")" Tools/gpu/goals.py "$OUT" "$ROWS" || echo "(Tools/gpu/goals.py failed: the rows are in log.txt and the JSON files)"
    echo; echo "tests:"; grep -E "error:|failed \(|Executed .* tests" "$LOG" | tail -15
} > "$OUT/goals.md" 2>&1
cat "$OUT/goals.md" >> "$LOG"
say "== done $(date -u +%T); files: $(cd "$OUT" && ls | tr '\n' ' ')"
