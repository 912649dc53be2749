#!/usr/bin/env python3
"""Peer baselines for image-classifier explanation (saliency / attribution) on CPU.

Measures wall-clock seconds per explained image for the tools a user would pick
instead of our engine (Captum, lime, shap, pytorch-grad-cam), plus plain
forward / backward passes and the machine's matmul ceiling, on torchvision
ResNet-18 / ResNet-50 at 224x224 with random (seeded) weights.

Run from the repository root with the peer venv (see Benchmarks/peers/setup.sh):

    python Benchmarks/peers/peer_bench.py --model resnet18 --methods all
    python Benchmarks/peers/peer_bench.py --model resnet50 --methods all
    python Benchmarks/peers/peer_bench.py --model resnet18 --quick      # short subset
    python Benchmarks/peers/peer_bench.py --render                      # RESULTS.md only

Results go to results_<model>[_quick].json next to this script; a full (non-quick)
run re-renders RESULTS.md there from every results_<model>.json present.
(side_by_side.sh runs a scratch copy, so the committed figures stay as they are.)
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

THREADS = 2
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, str(THREADS))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch.utils.flop_counter import flop_registry  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_REL = "Benchmarks/peers"  # how files are named in the output (no machine paths)

PACKAGES = ["torch", "torchvision", "captum", "lime", "shap", "grad-cam", "torchray",
            "scikit-image", "scikit-learn", "onnx", "onnxruntime", "numpy",
            "pillow", "opencv-python-headless", "scipy", "numba"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------
def package_versions():
    from importlib.metadata import version, PackageNotFoundError
    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def cpu_info():
    info = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        first = txt.split("\n\n")[0]
        for line in first.splitlines():
            if ":" not in line:
                continue
            k, v = [s.strip() for s in line.split(":", 1)]
            if k in ("model name", "cpu family", "model", "stepping", "cpu MHz"):
                info[k] = v
            if k == "flags":
                fl = set(v.split())
                info["simd"] = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16",
                                            "avx_vnni", "amx_tile") if f in fl]
    except OSError:
        pass
    return info


def blas_info():
    out = {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
           "torch_mkldnn": torch.backends.mkldnn.is_available()}
    try:
        b = np.__config__.CONFIG["Build Dependencies"]["blas"]
        out["numpy_blas"] = "%s %s" % (b.get("name"), b.get("version"))
    except Exception:
        out["numpy_blas"] = "unknown"
    return out


# --------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------
def time_calls(fn, repeats, budget_s, min_runs=1):
    """Run fn up to `repeats` times; stop early once `budget_s` seconds of timed
    runs have accumulated (but never before `min_runs`)."""
    times = []
    total = 0.0
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
        if len(times) >= min_runs and total >= budget_s:
            break
    return times


def matmul_ceiling(n=4096, repeats=3):
    res = {}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    a @ b  # warm-up
    ts = time_calls(lambda: a @ b, repeats, 1e9)
    res["numpy_sgemm_gflops"] = flops / statistics.median(ts) / 1e9
    res["numpy_sgemm_times_s"] = ts
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    torch.mm(ta, tb)
    ts = time_calls(lambda: torch.mm(ta, tb), repeats, 1e9)
    res["torch_sgemm_gflops"] = flops / statistics.median(ts) / 1e9
    res["torch_sgemm_times_s"] = ts
    res["n"] = n
    return res


# --------------------------------------------------------------------------
# data + model
# --------------------------------------------------------------------------
def load_image():
    """skimage.data.chelsea(), Resize(256) + CenterCrop(224) as in the ImageNet eval
    transform. Returns (hwc float32 in [0,1], normalized NCHW tensor)."""
    import skimage.data
    from PIL import Image
    from torchvision import transforms as T
    pil = Image.fromarray(skimage.data.chelsea())
    crop = T.Compose([T.Resize(256), T.CenterCrop(224)])(pil)
    hwc = np.asarray(crop, dtype=np.float32) / 255.0
    x = normalize_nchw(torch.from_numpy(hwc).permute(2, 0, 1)[None].contiguous())
    return np.ascontiguousarray(hwc), x


_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalize_nchw(x):
    return (x - _MEAN) / _STD


def build_model(name):
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(weights=None)
    m.eval()
    return m


class Counter:
    """Counts images pushed through model.forward (forward pre-hook)."""

    def __init__(self, model):
        self.images = 0
        self.calls = 0
        model.register_forward_pre_hook(self._hook)

    def _hook(self, mod, args):
        self.images += int(args[0].shape[0])
        self.calls += 1

    def reset(self):
        self.images = 0
        self.calls = 0


# --------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------
class Ctx:
    def __init__(self, model_name):
        self.model_name = model_name
        self.model = build_model(model_name)
        self.counter = Counter(self.model)
        self.hwc, self.x = load_image()
        with torch.inference_mode():
            logits = self.model(self.x)
        self.target = int(logits.argmax(1))
        self.counter.reset()
        self._slic = None

    def slic_mask(self):
        if self._slic is None:
            self._slic = slic_segments(self.hwc)
        return self._slic

    def predict_hwc_probs(self, batch):
        """classifier_fn for lime: (N,H,W,3) float in [0,1] -> softmax probs."""
        t = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return torch.softmax(self.model(normalize_nchw(t)), 1).numpy()

    def predict_hwc_logits(self, batch):
        t = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return self.model(normalize_nchw(t)).numpy()


def slic_segments(hwc):
    from skimage.segmentation import slic, relabel_sequential
    seg = slic(hwc, n_segments=70, compactness=10, start_label=0)  # -> 52 segments here
    seg, _, _ = relabel_sequential(seg)
    return seg


def quickshift_segments(hwc):
    from lime.wrappers.scikit_image import SegmentationAlgorithm
    fn = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2,
                               random_seed=0)
    return fn(hwc.astype(np.float64))


# Each method: (key, library, settings, kind, factory)
# factory(ctx, scale) -> zero-arg callable performing one explanation.
# kind: "fast" -> warm-up is one full run; "slow" -> warm-up is a reduced run
# (same code path and batch shapes, fewer samples); "nomodel" -> no network.
METHODS = []


def method(key, library, settings, kind="fast", grads=False, images_per_call=1):
    def deco(f):
        METHODS.append(dict(key=key, library=library, settings=settings, kind=kind,
                            grads=grads, images_per_call=images_per_call, factory=f))
        return f
    return deco


def _fwd_batch(ctx, n):
    xb = ctx.x.repeat(n, 1, 1, 1).contiguous()

    def run():
        with torch.inference_mode():
            ctx.model(xb)
    return run


@method("forward_b1", "torch", "inference_mode, batch 1")
def m_fwd1(ctx, scale):
    return _fwd_batch(ctx, 1)


@method("forward_b32", "torch", "inference_mode, batch 32 (throughput)", images_per_call=32)
def m_fwd32(ctx, scale):
    return _fwd_batch(ctx, 32)


@method("forward_b64", "torch", "inference_mode, batch 64 (throughput)", images_per_call=64)
def m_fwd64(ctx, scale):
    return _fwd_batch(ctx, 64)


def _fwd_batch_cl(ctx, n):
    xb = ctx.x.repeat(n, 1, 1, 1).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            ctx.model(xb)
    return run


@method("forward_b1_channels_last", "torch",
        "inference_mode, batch 1, input in channels_last (NHWC) memory format")
def m_fwd1cl(ctx, scale):
    return _fwd_batch_cl(ctx, 1)


@method("forward_b64_channels_last", "torch",
        "inference_mode, batch 64, channels_last input (what lime/shap's NHWC->permute feeds)",
        images_per_call=64)
def m_fwd64cl(ctx, scale):
    return _fwd_batch_cl(ctx, 64)


@method("fwd_bwd_input_b1", "torch", "autograd.grad(logit[target], input), batch 1", grads=True)
def m_fwdbwd(ctx, scale):
    def run():
        x = ctx.x.clone().requires_grad_(True)
        out = ctx.model(x)
        torch.autograd.grad(out[0, ctx.target], x)
    return run


@method("fwd_bwd_allgrads_b1", "torch",
        "logit[target].backward() (also weight grads), batch 1", grads=True)
def m_fwdbwd_all(ctx, scale):
    def run():
        ctx.model.zero_grad(set_to_none=True)
        x = ctx.x.clone().requires_grad_(True)
        out = ctx.model(x)
        out[0, ctx.target].backward()
    return run


_ORT = {}


def _ort_session(ctx):
    if ctx.model_name in _ORT:
        return _ORT[ctx.model_name]
    import onnxruntime as ort
    d = tempfile.mkdtemp(prefix="peer_onnx_")
    path = os.path.join(d, "model.onnx")
    torch.onnx.export(ctx.model, ctx.x, path, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      opset_version=17)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    _ORT[ctx.model_name] = sess
    return sess


def _ort_batch(ctx, n):
    sess = _ort_session(ctx)
    xb = ctx.x.repeat(n, 1, 1, 1).numpy()

    def run():
        sess.run(None, {"x": xb})
        ctx.counter.images += n  # not a torch call: count by hand
        ctx.counter.calls += 1
    return run


@method("ort_forward_b1", "onnxruntime", "CPU EP, 2 intra-op threads, opset 17, batch 1")
def m_ort1(ctx, scale):
    return _ort_batch(ctx, 1)


@method("ort_forward_b32", "onnxruntime", "CPU EP, 2 intra-op threads, batch 32 (throughput)",
        images_per_call=32)
def m_ort32(ctx, scale):
    return _ort_batch(ctx, 32)


@method("captum_saliency", "captum", "Saliency (abs grad), batch 1", grads=True)
def m_sal(ctx, scale):
    from captum.attr import Saliency
    a = Saliency(ctx.model)
    return lambda: a.attribute(ctx.x, target=ctx.target)


@method("captum_inputxgradient", "captum", "InputXGradient, batch 1", grads=True)
def m_ixg(ctx, scale):
    from captum.attr import InputXGradient
    a = InputXGradient(ctx.model)
    return lambda: a.attribute(ctx.x, target=ctx.target)


@method("captum_integrated_gradients", "captum",
        "IntegratedGradients n_steps=50, internal_batch_size=50, baseline 0", grads=True)
def m_ig(ctx, scale):
    from captum.attr import IntegratedGradients
    a = IntegratedGradients(ctx.model)
    return lambda: a.attribute(ctx.x, target=ctx.target, n_steps=50, internal_batch_size=50)


@method("captum_smoothgrad", "captum",
        "NoiseTunnel(Saliency) smoothgrad, nt_samples=50, nt_samples_batch_size=50, stdevs=0.15",
        grads=True)
def m_sg(ctx, scale):
    from captum.attr import NoiseTunnel, Saliency
    a = NoiseTunnel(Saliency(ctx.model))
    return lambda: a.attribute(ctx.x, nt_type="smoothgrad", nt_samples=50,
                               nt_samples_batch_size=50, stdevs=0.15, target=ctx.target)


@method("captum_layergradcam", "captum",
        "LayerGradCam(model.layer4) + upsample to 224", grads=True)
def m_lgc(ctx, scale):
    from captum.attr import LayerGradCam, LayerAttribution
    a = LayerGradCam(ctx.model, ctx.model.layer4)

    def run():
        attr = a.attribute(ctx.x, target=ctx.target)
        return LayerAttribution.interpolate(attr, (224, 224))
    return run


@method("captum_guidedbackprop", "captum", "GuidedBackprop, batch 1", grads=True)
def m_gbp(ctx, scale):
    from captum.attr import GuidedBackprop
    a = GuidedBackprop(ctx.model)
    return lambda: a.attribute(ctx.x, target=ctx.target)


@method("captum_lrp", "captum", "LRP with its default rules (epsilon 1e-9), batch 1", grads=True)
def m_captum_lrp(ctx, scale):
    from captum.attr import LRP
    a = LRP(ctx.model)
    return lambda: a.attribute(ctx.x, target=ctx.target)


@method("zennit_lrp_epsilon_plus_flat", "zennit", "Gradient attributor, EpsilonPlusFlat with the ResNet canonizer, batch 1", grads=True)
def m_zennit_lrp(ctx, scale):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer
    composite = EpsilonPlusFlat(canonizers=[ResNetCanonizer()])
    with torch.no_grad():
        onehot = torch.zeros_like(ctx.model(ctx.x))
    onehot[0, ctx.target] = 1

    def run():
        with Gradient(model=ctx.model, composite=composite) as attributor:
            return attributor(ctx.x, lambda output: output * onehot)
    return run


@method("captum_deconvolution", "captum", "Deconvolution, batch 1", grads=True)
def m_deconv(ctx, scale):
    from captum.attr import Deconvolution
    a = Deconvolution(ctx.model)
    return lambda: a.attribute(ctx.x, target=ctx.target)


@method("captum_guidedgradcam", "captum", "GuidedGradCam(model.layer4), nearest upsampling", grads=True)
def m_ggc(ctx, scale):
    from captum.attr import GuidedGradCam
    a = GuidedGradCam(ctx.model, ctx.model.layer4)
    return lambda: a.attribute(ctx.x, target=ctx.target)


@method("captum_gradientshap", "captum",
        "GradientShap n_samples=50, stdevs=0.0, one zero baseline (xai draws its points per sample, batches of its own)", grads=True)
def m_gshap(ctx, scale):
    import torch
    from captum.attr import GradientShap
    a = GradientShap(ctx.model)
    baselines = torch.zeros_like(ctx.x)
    return lambda: a.attribute(ctx.x, baselines=baselines, n_samples=50, stdevs=0.0, target=ctx.target)


@method("captum_deeplift", "captum", "DeepLift (rescale), one zero baseline, batch 1", grads=True)
def m_deeplift(ctx, scale):
    import torch
    from captum.attr import DeepLift
    a = DeepLift(ctx.model)
    baseline = torch.zeros_like(ctx.x)
    return lambda: a.attribute(ctx.x, baselines=baseline, target=ctx.target)


@method("captum_occlusion", "captum",
        "Occlusion window 3x16x16, strides 3x8x8, baseline 0, perturbations_per_eval=64 "
        "(729 windows)", kind="slow")
def m_occ(ctx, scale):
    from captum.attr import Occlusion
    a = Occlusion(ctx.model)
    strides = (3, 8, 8) if scale == "full" else (3, 16, 16)
    return lambda: a.attribute(ctx.x, target=ctx.target, sliding_window_shapes=(3, 16, 16),
                               strides=strides, baselines=0, perturbations_per_eval=64)


@method("slic_segmentation", "scikit-image", "slic(n_segments=70, compactness=10) on 224x224 -> 52 segments",
        kind="nomodel")
def m_slic(ctx, scale):
    return lambda: slic_segments(ctx.hwc)


@method("captum_lime", "captum",
        "Lime n_samples=1000, SLIC 52 segments (segmentation not timed), "
        "perturbations_per_eval=64, default SkLearnLasso", kind="slow")
def m_clime(ctx, scale):
    from captum.attr import Lime
    mask = torch.from_numpy(ctx.slic_mask()).long()[None, None]
    a = Lime(ctx.model)
    n = 1000 if scale == "full" else 128
    return lambda: a.attribute(ctx.x, target=ctx.target, feature_mask=mask, baselines=0,
                               n_samples=n, perturbations_per_eval=64)


@method("captum_kernelshap", "captum",
        "KernelShap n_samples=1000, SLIC 52 segments (segmentation not timed), "
        "perturbations_per_eval=64, baseline 0", kind="slow")
def m_cks(ctx, scale):
    from captum.attr import KernelShap
    mask = torch.from_numpy(ctx.slic_mask()).long()[None, None]
    a = KernelShap(ctx.model)
    n = 1000 if scale == "full" else 128
    return lambda: a.attribute(ctx.x, target=ctx.target, feature_mask=mask, baselines=0,
                               n_samples=n, perturbations_per_eval=64)


# Captum, lime, shap and pytorch-grad-cam have no RISE; TorchRay (facebookresearch) is the PyTorch
# library that has one. Its rise() weighs the masks by the sigmoid of every class's logit and sums
# the maps of all 1000 classes (one matmul per batch, about 1 % of the forwards' FLOPs at 4000
# masks); rise_class then keeps the target's.
@method("torchray_rise", "torchray",
        "rise_class num_masks=4000, num_cells=7, p=0.5, batch_size=64 (masks made on the "
        "model's device)", kind="slow")
def m_rise(ctx, scale):
    from torchray.attribution.rise import rise_class
    n = 4000 if scale == "full" else 256
    return lambda: rise_class(ctx.model, ctx.x, target=[ctx.target], num_masks=n, num_cells=7,
                              p=0.5, batch_size=64)


@method("lime_quickshift", "lime", "default segmentation alone: quickshift(kernel_size=4, "
        "max_dist=200, ratio=0.2) on 224x224 -> 32 segments", kind="nomodel")
def m_qs(ctx, scale):
    return lambda: quickshift_segments(ctx.hwc)


@method("lime_image", "lime",
        "LimeImageExplainer.explain_instance num_samples=1000, batch_size=64, top_labels=1, "
        "hide_color=0, default quickshift (included)", kind="slow")
def m_lime(ctx, scale):
    from lime.lime_image import LimeImageExplainer
    n = 1000 if scale == "full" else 128

    def run():
        e = LimeImageExplainer(random_state=0)
        return e.explain_instance(ctx.hwc.astype(np.float64), ctx.predict_hwc_probs,
                                  top_labels=1, hide_color=0, num_samples=n, batch_size=64,
                                  random_seed=0)
    return run


@method("shap_partition", "shap",
        "shap.Explainer(f, maskers.Image('blur(128,128)')) -> Partition, max_evals=1000, "
        "batch_size=64, outputs=top-1", kind="slow")
def m_shap(ctx, scale):
    import shap
    masker = shap.maskers.Image("blur(128,128)", ctx.hwc.shape)
    expl = shap.Explainer(ctx.predict_hwc_logits, masker)
    n = 1000 if scale == "full" else 128
    X = ctx.hwc[None]
    return lambda: expl(X, max_evals=n, batch_size=64,
                        outputs=shap.Explanation.argsort.flip[:1], silent=True)


def _cam(ctx, cls, target_cls=None, **attrs):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cam = cls(model=ctx.model, target_layers=[ctx.model.layer4[-1]])
    for k, v in attrs.items():
        setattr(cam, k, v)
    targets = [(target_cls or ClassifierOutputTarget)(ctx.target)]
    return lambda: cam(input_tensor=ctx.x, targets=targets)


@method("gradcam_gradcam", "grad-cam", "GradCAM, target layer4[-1]", grads=True)
def m_gc(ctx, scale):
    from pytorch_grad_cam import GradCAM
    return _cam(ctx, GradCAM)


@method("gradcam_gradcampp", "grad-cam", "GradCAMPlusPlus, target layer4[-1]", grads=True)
def m_gcpp(ctx, scale):
    from pytorch_grad_cam import GradCAMPlusPlus
    return _cam(ctx, GradCAMPlusPlus)


@method("gradcam_shapleycam", "grad-cam", "ShapleyCAM, target layer4[-1], ClassifierOutputReST target "
        "(its Hessian-vector product by double backward)", grads=True)
def m_shapley(ctx, scale):
    from pytorch_grad_cam import ShapleyCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST
    return _cam(ctx, ShapleyCAM, target_cls=ClassifierOutputReST)


@method("gradcam_hirescam", "grad-cam", "HiResCAM, target layer4[-1]", grads=True)
def m_hires(ctx, scale):
    from pytorch_grad_cam import HiResCAM
    return _cam(ctx, HiResCAM)


@method("gradcam_eigencam", "grad-cam", "EigenCAM, target layer4[-1] (no gradient)", grads=True)
def m_eigen(ctx, scale):
    from pytorch_grad_cam import EigenCAM
    return _cam(ctx, EigenCAM)


@method("gradcam_eigengradcam", "grad-cam", "EigenGradCAM, target layer4[-1]", grads=True)
def m_eigengrad(ctx, scale):
    from pytorch_grad_cam import EigenGradCAM
    return _cam(ctx, EigenGradCAM)


@method("gradcam_ablationcam", "grad-cam",
        "AblationCAM, target layer4[-1], batch_size=32 (one whole forward per layer4 channel)", kind="slow")
def m_ablation(ctx, scale):
    from pytorch_grad_cam import AblationCAM
    if scale != "full":
        return _fwd_batch(ctx, 32)
    return _cam(ctx, AblationCAM, batch_size=32)


@method("gradcam_fullgrad", "grad-cam", "FullGrad (every Conv2d/BatchNorm2d bias)", grads=True)
def m_fullgrad(ctx, scale):
    from pytorch_grad_cam import FullGrad
    cam = FullGrad(model=ctx.model, target_layers=[])
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    targets = [ClassifierOutputTarget(ctx.target)]
    return lambda: cam(input_tensor=ctx.x, targets=targets)


@method("gradcam_scorecam", "grad-cam",
        "ScoreCAM, target layer4[-1], batch_size=64 (one forward per layer4 channel)",
        kind="slow")
def m_scam(ctx, scale):
    from pytorch_grad_cam import ScoreCAM
    if scale != "full":
        # ScoreCAM has no sample-count knob: warm the batch-64 shapes instead.
        return _fwd_batch(ctx, 64)
    return _cam(ctx, ScoreCAM, batch_size=64)


QUICK = ["forward_b1", "fwd_bwd_input_b1", "captum_saliency", "captum_layergradcam",
         "gradcam_gradcam", "slic_segmentation", "lime_quickshift"]


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------
class _FlopCount(TorchDispatchMode):
    """FLOPs of conv/matmul aten ops (forward and backward) using torch's own
    flop formulas. Not FlopCounterMode itself: its module tracker puts
    multi-grad hooks on leaf inputs, which breaks captum's autograd.grad calls."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket not in flop_registry and func is not torch.ops.prim.device.default:
            with self:  # e.g. aten.conv2d under inference_mode: decompose to aten.convolution
                r = func.decompose(*args, **kwargs)
                if r is not NotImplemented:
                    return r
        out = func(*args, **kwargs)
        f = flop_registry.get(func._overloadpacket)
        if f is not None:
            self.total += f(*args, **kwargs, out_val=out)
        return out


def count_flops(fn):
    with _FlopCount() as fc:
        fn()
    return float(fc.total)


def run_method(ctx, m, args, fwd_flops):
    key = m["key"]
    rec = {k: m[k] for k in ("key", "library", "settings", "kind", "images_per_call")}
    try:
        if m["kind"] == "slow":
            warm = m["factory"](ctx, "warm")
            t0 = time.perf_counter()
            warm()
            rec["warmup"] = "reduced (%.1fs)" % (time.perf_counter() - t0)
            fn = m["factory"](ctx, "full")
            repeats, budget = args.slow_repeats, args.slow_budget_s
        else:
            fn = m["factory"](ctx, "full")
            t0 = time.perf_counter()
            fn()
            rec["warmup"] = "full (%.2fs)" % (time.perf_counter() - t0)
            repeats, budget = args.repeats, args.fast_budget_s
        ctx.counter.reset()
        times = time_calls(fn, repeats, budget, min_runs=1)
        runs = len(times)
        ipc = m["images_per_call"]
        rec["times_s"] = times
        rec["runs"] = runs
        rec["per_image_s"] = {"min": min(times) / ipc, "median": statistics.median(times) / ipc,
                              "max": max(times) / ipc}
        rec["model_images_per_call"] = ctx.counter.images / runs
        rec["model_calls_per_call"] = ctx.counter.calls / runs
        if m["kind"] == "nomodel":
            rec["flops_per_image"] = 0.0
        elif m["grads"]:
            rec["flops_per_image"] = count_flops(fn) / ipc
        else:
            rec["flops_per_image"] = rec["model_images_per_call"] * fwd_flops / ipc
        rec["forward_equivalents"] = rec["flops_per_image"] / fwd_flops
        med = rec["per_image_s"]["median"]
        rec["achieved_gflops"] = rec["flops_per_image"] / med / 1e9 if med > 0 else None
    except Exception as e:  # keep going; record the failure
        import traceback
        rec["error"] = "%s: %s" % (type(e).__name__, str(e)[:300])
        traceback.print_exc()
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18", help="resnet18, resnet50 or all")
    ap.add_argument("--methods", default="all", help="'all' or comma-separated keys")
    ap.add_argument("--quick", action="store_true", help="short subset: " + ",".join(QUICK))
    ap.add_argument("--repeats", type=int, default=5, help="timed runs for fast methods")
    ap.add_argument("--fast-budget-s", type=float, default=60.0,
                    help="stop repeating a fast method after this much timed time")
    ap.add_argument("--slow-repeats", type=int, default=3, help="timed runs for slow methods")
    ap.add_argument("--slow-budget-s", type=float, default=120.0,
                    help="stop repeating a slow method after this much timed time (>=1 run)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the matmul ceiling")
    ap.add_argument("--render", action="store_true", help="only re-render RESULTS.md")
    ap.add_argument("--list", action="store_true", help="list method keys")
    args = ap.parse_args()

    if args.list:
        for m in METHODS:
            print("%-28s %-13s %-8s %s" % (m["key"], m["library"], m["kind"], m["settings"]))
        return
    if args.render:
        render_md()
        return

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    models = ["resnet18", "resnet50"] if args.model == "all" else args.model.split(",")
    if args.quick:
        keys = QUICK
        args.repeats = min(args.repeats, 3)
    elif args.methods == "all":
        keys = [m["key"] for m in METHODS]
    else:
        keys = args.methods.split(",")
    unknown = set(keys) - {m["key"] for m in METHODS}
    if unknown:
        sys.exit("unknown methods: %s (see --list)" % ",".join(sorted(unknown)))
    sel = [m for m in METHODS if m["key"] in keys]

    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_info(), "blas": blas_info(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(), "packages": package_versions(),
        "quick": args.quick, "repeats": args.repeats, "slow_repeats": args.slow_repeats,
        "slow_budget_s": args.slow_budget_s, "argv": " ".join(["python", REPO_REL + "/peer_bench.py"] + sys.argv[1:]),
    }
    ceiling = None
    if not args.no_ceiling:
        print("[ceiling] 4096^3 sgemm ...", flush=True)
        ceiling = matmul_ceiling(4096, 1 if args.quick else 3)
        print("[ceiling] numpy %.1f GFLOP/s, torch %.1f GFLOP/s" %
              (ceiling["numpy_sgemm_gflops"], ceiling["torch_sgemm_gflops"]), flush=True)

    for name in models:
        ctx = Ctx(name)
        fwd_flops = count_flops(_fwd_batch(ctx, 1))
        ctx.counter.reset()
        print("[%s] forward FLOPs %.3f G (2 x MACs), target class %d" %
              (name, fwd_flops / 1e9, ctx.target), flush=True)
        out = {"env": env, "ceiling": ceiling, "model": name,
               "forward_flops": fwd_flops, "target": ctx.target, "results": []}
        suffix = "_quick" if args.quick else ""
        path = os.path.join(HERE, "results_%s%s.json" % (name, suffix))
        if not args.quick and args.methods != "all" and os.path.exists(path):
            # partial re-run: merge into existing results
            with open(path) as f:
                old = json.load(f)
            out["results"] = [r for r in old.get("results", []) if r["key"] not in keys]
            if ceiling is None:
                out["ceiling"] = old.get("ceiling")
        for m in sel:
            print("[%s] %s ..." % (name, m["key"]), flush=True)
            t0 = time.perf_counter()
            rec = run_method(ctx, m, args, fwd_flops)
            if "error" in rec:
                print("    ERROR %s" % rec["error"], flush=True)
            else:
                p = rec["per_image_s"]
                print("    %.4f / %.4f / %.4f s per image (min/med/max, %d runs), "
                      "%.1f fwd-equiv, %.1f GFLOP/s  [%.0fs wall]" %
                      (p["min"], p["median"], p["max"], rec["runs"],
                       rec["forward_equivalents"],
                       rec["achieved_gflops"] or 0.0, time.perf_counter() - t0), flush=True)
            out["results"] = [r for r in out["results"] if r["key"] != m["key"]] + [rec]
            order = {mm["key"]: i for i, mm in enumerate(METHODS)}
            out["results"].sort(key=lambda r: order.get(r["key"], 999))
            with open(path, "w") as f:
                json.dump(out, f, indent=1)
        del ctx
    if not args.quick:
        render_md()


# --------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------
def _fmt_s(s):
    if s >= 10:
        return "%.1f" % s
    if s >= 1:
        return "%.2f" % s
    if s >= 0.01:
        return "%.3f" % s
    return "%.4f" % s


def render_md():
    runs = []
    for name in ("resnet18", "resnet50"):
        p = os.path.join(HERE, "results_%s.json" % name)
        if os.path.exists(p):
            with open(p) as f:
                runs.append(json.load(f))
    if not runs:
        print("no results_*.json to render")
        return
    env = runs[0]["env"]
    ceiling = next((r["ceiling"] for r in runs if r.get("ceiling")), None)
    peak = max(ceiling["numpy_sgemm_gflops"], ceiling["torch_sgemm_gflops"]) if ceiling else None
    L = []
    L.append("# Peer baselines: CPU explanation (attribution) methods\n")
    L.append("Generated by `%s/peer_bench.py` (environment: `%s/setup.sh`). "
             "Do not edit by hand; re-run the bench (`--render` re-renders from the JSON files)."
             % (REPO_REL, REPO_REL))
    L.append("")
    L.append("## Machine and software\n")
    cpu = env["cpu"]
    L.append("- Date: %s" % ", ".join(sorted({r["env"]["date_utc"][:10] for r in runs})))
    L.append("- CPU: %s (family %s model %s, %s logical CPUs; %s), no GPU" %
             (cpu.get("model name"), cpu.get("cpu family"), cpu.get("model"),
              cpu.get("logical_cpus"), "/".join(cpu.get("simd", []))))
    L.append("- Threads: torch.set_num_threads(%d), interop 1; OMP/MKL/OPENBLAS_NUM_THREADS=%d; "
             "onnxruntime intra_op_num_threads=%d" % (env["torch_threads"], THREADS, THREADS))
    L.append("- Python %s; torch CPU capability %s, BLAS %s, oneDNN %s; numpy BLAS %s" %
             (env["python"], env["blas"]["torch_cpu_capability"], env["blas"]["torch_blas"],
              env["blas"]["torch_mkldnn"], env["blas"]["numpy_blas"]))
    L.append("- Packages: " + ", ".join("%s %s" % (k, v) for k, v in env["packages"].items()
                                         if v is not None))
    L.append("- Models: torchvision resnet18 / resnet50, `weights=None`, `torch.manual_seed(0)`, "
             "eval mode (no pretrained weights offline; speed does not depend on weight values). "
             "Input: `skimage.data.chelsea()`, Resize(256) + CenterCrop(224), ImageNet "
             "normalization, batch 1; target = argmax class.")
    if ceiling:
        L.append("- Compute ceiling (float32 4096x4096 matmul, median of %d): numpy %.1f GFLOP/s, "
                 "torch %.1f GFLOP/s. **Peak used for the FLOP floor: %.1f GFLOP/s.**" %
                 (len(ceiling["torch_sgemm_times_s"]), ceiling["numpy_sgemm_gflops"],
                  ceiling["torch_sgemm_gflops"], peak))
    for r in runs:
        L.append("- %s forward FLOPs at 224x224 (conv+linear, 2 x MACs, torch flop formulas): "
                 "%.3f GFLOP" % (r["model"], r["forward_flops"] / 1e9))
    L.append("")
    L.append("## How to read the table\n")
    L.append("- **s/image**: wall-clock seconds per explained image (min / median / max over "
             "`runs` timed runs). Fast methods: 1 full warm-up run, then up to %d runs. "
             "Slow methods (marked *slow*): 1 *reduced* warm-up (same code path and batch "
             "shapes, fewer samples/windows), then up to %d runs, stopping once %g s of timed "
             "runs have accumulated, so some have only 1 or 2 runs (see `runs`). Throughput "
             "rows divide the batch time by the batch size." %
             (max([rec.get("runs", 0) for r in runs for rec in r["results"]
                   if rec["kind"] != "slow"] or [5]),
              env.get("slow_repeats", 3), env.get("slow_budget_s", 120)))
    L.append("- **fwd-eq**: forward-equivalents per image = FLOPs actually executed by the "
             "network / FLOPs of one forward. Forward-only methods: images pushed through the "
             "model (counted with a forward pre-hook). Methods with gradients: FLOPs counted with "
             "torch's `flop_counter` formulas in a dispatch mode (a backward to the input costs ~1 forward; "
             "`.backward()` also computes weight gradients, ~2 forwards).")
    L.append("- **GFLOP/s**: network FLOPs per image / median s per image (segmentation, "
             "regressions and Python glue count as zero FLOPs).")
    L.append("- **x floor**: median s / (network FLOPs / peak), i.e. how far from running every "
             "needed conv/matmul FLOP at the measured sgemm peak.")
    L.append("")
    for r in runs:
        L.append("## %s\n" % r["model"])
        L.append("| method | library | settings | model | runs | s/image min / **median** / max | "
                 "fwd-eq | GFLOP/s | x floor |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for rec in r["results"]:
            name = rec["key"] + (" *(slow)*" if rec["kind"] == "slow" else "")
            if "error" in rec:
                L.append("| %s | %s | %s | %s | - | FAILED: %s | | | |" %
                         (name, rec["library"], rec["settings"], r["model"],
                          rec["error"].replace("|", "/")))
                continue
            p = rec["per_image_s"]
            s = "%s / **%s** / %s" % (_fmt_s(p["min"]), _fmt_s(p["median"]), _fmt_s(p["max"]))
            if rec["images_per_call"] > 1:
                s += " (%.1f img/s)" % (1.0 / p["median"])
            fe = rec["forward_equivalents"]
            fl = rec["flops_per_image"]
            if fl > 0 and peak:
                floor = fl / (peak * 1e9)
                ratio = "%.1f" % (p["median"] / floor)
                gf = "%.1f" % rec["achieved_gflops"]
                fes = "%.1f" % fe if fe < 100 else "%.0f" % fe
            else:
                ratio, gf, fes = "-", "-", "0"
            L.append("| %s | %s | %s | %s | %d | %s | %s | %s | %s |" %
                     (name, rec["library"], rec["settings"], r["model"], rec["runs"], s, fes, gf,
                      ratio))
        L.append("")
    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            L.append(f.read().rstrip() + "\n")
    with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
        f.write("\n".join(L))
    print("wrote %s/RESULTS.md" % REPO_REL)


if __name__ == "__main__":
    main()
