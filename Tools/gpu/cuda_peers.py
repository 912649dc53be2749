#!/usr/bin/env python3
"""The peer rows on CUDA: what a user gets from PyTorch, Captum, pytorch-grad-cam and TorchRay on the same
GPU that `xai-bench --device gpu` runs on, with the settings of the CPU peer table
(Benchmarks/peers/peer_bench.py): torchvision ResNet-50 with seeded random weights, skimage's
chelsea at 224x224, the same method parameters.

Everything runs in strict fp32 (TF32 off for matmul and cuDNN) so that it compares with the OpenCL
path's fp32 kernels, except the forward rows whose keys end in `_tf32`: those run at PyTorch's
default precision (cuDNN convolutions in TF32, matmul in fp32), the row that `xai-bench models
--precision tf32` is held against. Times are wall clock around a `torch.cuda.synchronize()`.

Writes JSON in the peer format that `xai-bench methods --compare` reads ({"model", "results": [{key,
library, settings, per_image_s: {median, min, max}}]}) plus the cuBLAS ceiling.

    python3 Tools/gpu/cuda_peers.py OUT.json [--quick]

--quick (one timed run, 64 samples, coarse occlusion, batch 8 for the big-batch row) with
XAI_PEER_DEVICE=cpu checks the script itself on a machine without a GPU.
"""
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np
import torch
import torchvision

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True
DEV = torch.device(os.environ.get("XAI_PEER_DEVICE", "cuda"))


def sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats):
    """Median/min/max seconds of `repeats` synchronised calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def sgemm_gflops(n, repeats=5):
    a = torch.randn(n, n, device=DEV)
    b = torch.randn(n, n, device=DEV)
    t = timed(lambda: torch.mm(a, b), repeats)
    return 2.0 * n ** 3 / statistics.median(t) / 1e9


def image():
    import skimage.data
    from PIL import Image
    from torchvision import transforms as T
    crop = T.Compose([T.Resize(256), T.CenterCrop(224)])(Image.fromarray(skimage.data.chelsea()))
    hwc = np.asarray(crop, dtype=np.float32) / 255.0
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    x = (torch.from_numpy(hwc).permute(2, 0, 1)[None] - mean) / std
    return hwc, x.contiguous()


def slic_mask(hwc):
    from skimage.segmentation import slic, relabel_sequential
    seg, _, _ = relabel_sequential(slic(hwc, n_segments=70, compactness=10, start_label=0))
    return torch.from_numpy(seg).long()[None, None]


def main():
    out_path = sys.argv[1]
    quick = "--quick" in sys.argv
    repeats = 1 if quick else 3
    samples = 64 if quick else 1000
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval().to(DEV)
    hwc, x_cpu = image()
    x = x_cpu.to(DEV)
    with torch.inference_mode():
        target = int(model(x).argmax(1))
    mask = slic_mask(hwc).to(DEV)
    rows, results = [], []

    def row(key, library, settings, images, fn, reps=repeats):
        try:
            t = timed(fn, 1 if quick else reps)
            per = {"median": statistics.median(t) / images, "min": min(t) / images, "max": max(t) / images}
            results.append({"key": key, "library": library, "settings": settings, "per_image_s": per, "times_s": t})
            print(f"{key:32s} {per['median'] * 1e3:10.2f} ms/image  ({library}: {settings})", flush=True)
        except Exception as e:  # one failing row must not lose the others
            traceback.print_exc()
            results.append({"key": key, "library": library, "settings": settings, "error": f"{type(e).__name__}: {e}"[:300]})

    def forward(n):
        xb = x.repeat(n, 1, 1, 1).contiguous()

        def run():
            with torch.inference_mode():
                model(xb)
        return run

    def fwd_bwd():
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xi)[0, target], xi)

    sizes = (512, 1024) if quick else (4096, 8192)
    ceiling = {f"cublas_sgemm_{n}_gflops": sgemm_gflops(n) for n in sizes}
    print("fp32 sgemm: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items()), flush=True)
    row("forward_b1", "torch", "inference_mode, batch 1, CUDA fp32", 1, forward(1), 10)
    row("forward_b32", "torch", "inference_mode, batch 32, CUDA fp32", 32, forward(32), 5)
    big = 8 if quick else 256
    row(f"forward_b{big}", "torch", f"inference_mode, batch {big}, CUDA fp32", big, forward(big), 3)
    row("fwd_bwd_input_b1", "torch", "autograd.grad(logit[target], input), batch 1, CUDA fp32", 1, fwd_bwd, 10)
    # PyTorch's default precision: TF32 convolutions in cuDNN (allow_tf32 is true unless set), fp32 matmul.
    torch.backends.cudnn.allow_tf32 = True
    try:
        default = "inference_mode, batch {}, CUDA, PyTorch's default precision (cuDNN TF32 convolutions, fp32 matmul)"
        row("forward_b32_tf32", "torch", default.format(32), 32, forward(32), 5)
        row(f"forward_b{big}_tf32", "torch", default.format(big), big, forward(big), 3)
    finally:
        torch.backends.cudnn.allow_tf32 = False

    from captum.attr import (IntegratedGradients, KernelShap, LayerAttribution, LayerGradCam, Lime, NoiseTunnel,
                             Occlusion, Saliency)
    sal = Saliency(model)
    row("captum_saliency", "captum", "Saliency (abs grad), batch 1", 1, lambda: sal.attribute(x, target=target), 10)
    ig = IntegratedGradients(model)
    row("captum_integrated_gradients", "captum", "IntegratedGradients n_steps=50, internal_batch_size=50, baseline 0", 1,
        lambda: ig.attribute(x, target=target, n_steps=50, internal_batch_size=50))
    sg = NoiseTunnel(Saliency(model))
    row("captum_smoothgrad", "captum", "NoiseTunnel(Saliency) smoothgrad, nt_samples=50, nt_samples_batch_size=50, stdevs=0.15", 1,
        lambda: sg.attribute(x, nt_type="smoothgrad", nt_samples=50, nt_samples_batch_size=50, stdevs=0.15, target=target))
    lgc = LayerGradCam(model, model.layer4)
    row("captum_layergradcam", "captum", "LayerGradCam(model.layer4) + upsample to 224", 1,
        lambda: LayerAttribution.interpolate(lgc.attribute(x, target=target), (224, 224)), 10)
    occ = Occlusion(model)
    row("captum_occlusion", "captum", "Occlusion window 3x16x16, strides 3x8x8, baseline 0, perturbations_per_eval=64 (729 windows)", 1,
        lambda: occ.attribute(x, target=target, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16) if quick else (3, 8, 8), baselines=0,
                              perturbations_per_eval=64))
    lime = Lime(model)
    row("captum_lime", "captum", f"Lime n_samples={samples}, SLIC 52 segments (not timed), perturbations_per_eval=64", 1,
        lambda: lime.attribute(x, target=target, feature_mask=mask, baselines=0, n_samples=samples, perturbations_per_eval=64))
    ks = KernelShap(model)
    row("captum_kernelshap", "captum", f"KernelShap n_samples={samples}, SLIC 52 segments (not timed), perturbations_per_eval=64, baseline 0", 1,
        lambda: ks.attribute(x, target=target, feature_mask=mask, baselines=0, n_samples=samples, perturbations_per_eval=64))
    try:
        # Captum has no RISE; TorchRay's (facebookresearch) is the PyTorch one, the settings of
        # `xai-bench methods`' rise row (4000 masks, a 7x7 grid, p 0.5). It makes its masks on the GPU.
        from torchray.attribution.rise import rise_class
        masks = samples if quick else 4000
        row("torchray_rise", "torchray", f"rise_class num_masks={masks}, num_cells=7, p=0.5, batch_size=64", 1,
            lambda: rise_class(model, x, target=[target], num_masks=masks, num_cells=7, p=0.5, batch_size=64))
    except ImportError as e:
        print(f"TorchRay missing: {e}", flush=True)
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam = GradCAM(model=model, target_layers=[model.layer4[-1]])
        targets = [ClassifierOutputTarget(target)]
        row("gradcam_gradcam", "grad-cam", "GradCAM, target layer4[-1]", 1, lambda: cam(input_tensor=x, targets=targets), 10)
    except ImportError as e:
        print(f"pytorch-grad-cam missing: {e}", flush=True)

    versions = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if DEV.type == "cuda" else None}
    for name in ("captum", "torchray"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    report = {"model": "resnet50", "device": torch.cuda.get_device_name(0) if DEV.type == "cuda" else "cpu", "versions": versions, "ceiling": ceiling,
              "precision": "fp32 (TF32 off for matmul and cuDNN), except the _tf32 rows (PyTorch's default: cuDNN TF32)", "results": results}
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
