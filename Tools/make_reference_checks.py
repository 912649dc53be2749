#!/usr/bin/env python3
"""Reference checks against the established libraries (torchvision, Captum, pytorch-grad-cam,
onnxruntime, lime), for the places where a reimplementation most easily drifts: preprocessing
arithmetic, non-zero IG baselines with odd step counts, CAM maps resized to a non-square input, a
realistic-size model, and LIME's sample weights. Everything is computed by calling the libraries
themselves; nothing re-types their formulas. Arrays are float32 unless noted.

Tests/Fixtures/preprocessing/  (torchvision.transforms v1 on PIL pictures; manifest.json holds the geometry)
  landscape.png, portrait.png       seeded procedural RGB pictures, 301x203 and 180x257 (W x H): a different
                                    smooth gradient per channel, hard-edged shapes, a 1-pixel checkerboard and noise
  <name>_imagenet_256_224.npy       Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(imagenet)])  [3, 224, 224]
  <name>_imagenet_224_224.npy       the same with Resize(224)                                                 [3, 224, 224]
  <name>_imagenet_64_56x72.npy      Resize(64), CenterCrop((56, 72)) (H=56, W=72)                             [3, 56, 72]
                                    (Resize: PIL bilinear, antialiased; long side int()-truncated; CenterCrop offsets
                                    int(round(d / 2.0)), Python's round-half-to-even; a crop wider than the resized
                                    picture is zero-padded first: portrait's 56x72 case)
Tests/Fixtures/methods/<model>/     (small_resnet, mobile_block of make_fixtures.py; their input.npy and target.npy)
  ig_baseline.npy                   seeded uniform(-1, 1) baseline [1, 3, H, W], broadcast by Captum to the batch
  ig_baseline_<rule>_<steps>.npy    captum IntegratedGradients with that baseline                            [2, 3, H, W]
                                    for gausslegendre_7, gausslegendre_25, middle_7, middle_25, left_7
  ig_baseline.json                  Captum's (signed) convergence deltas, alphas and step sizes per case
Tests/Fixtures/cam_resized/
  model.onnx                        make_fixtures.SmallResNet, seeded, opset 17, input "input" [batch, 3, 40, 56]
                                    (H=40, W=56; dynamic batch axis), output "logits" [batch, 10]
  input.npy                         seeded uniform(-1, 1)                                                    [2, 3, 40, 56]
  target.npy                        int64 [2]: sample 0's argmax, sample 1's second-highest logit
  logits.npy                        onnxruntime                                                              [2, 10]
  <method>_resized.npy              pytorch-grad-cam cam(input_tensor=x, targets=[ClassifierOutputTarget]) at layer2:
                                    relu, min-max scaled, cv2.resize (INTER_LINEAR) to the input, min-max again [2, 40, 56]
  <method>_raw.npy                  the same call's max(get_cam_image(...), 0) before scaling/resizing        [2, 5, 7]
                                    for gradcam, xgradcam, layercam, gradcampp
Tests/Fixtures/models/squeezenet1_1/
  model.onnx                        torchvision squeezenet1_1 (no download), torch.manual_seed + make_fixtures.randomize,
                                    opset 17, input "input" [batch, 3, 224, 224], output "logits" [batch, 1000]
  input.npy                         seeded uniform(-1, 1)                                                    [2, 3, 224, 224]
  logits.npy                        onnxruntime CPU EP, sequential, 1 thread                                 [2, 1000]
  target.npy                        int64 [2]: sample 0's argmax, sample 1's second-highest logit
  grad_input.npy                    PyTorch d(sum_b logits[b, target[b]]) / d input                          [2, 3, 224, 224]
  manifest.json                     versions, ONNX size, op histogram, ort-vs-torch difference
Tests/Fixtures/lime/               (lime 0.2.0.1's own code path: LimeImageExplainer.explain_instance on a 13-segment
                                    picture, num_samples=40, kernel_width=0.25, distance_metric='cosine')
  rows.npy                          the 0/1 rows lime drew (row 0 all ones)                                 [40, 13]
  distances.npy                     float64 sklearn pairwise_distances(rows, rows[0], 'cosine') as lime calls it [40]
  weights.npy                       float64 lime's default kernel sqrt(exp(-d^2 / 0.25^2)) (explainer.base.kernel_fn) [40]
  predictions.npy                   float64 the toy classifier's probabilities for the 40 samples            [40, 2]
  coefficients.npy                  float64 lime's Ridge coefficients for label 1, by segment               [13]
  manifest.json                     versions, intercept, score, and what lime gives for an all-zero row
Run:  python3 Tools/make_reference_checks.py [preprocessing|ig|cam|squeezenet|lime ...]   (default: all)
(after make_fixtures.py; CPU only, a minute or two on two cores).
"""
import collections
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def version(pkg):
    return importlib.metadata.version(pkg)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# 1. Preprocessing
# ---------------------------------------------------------------------------------------------

PICTURES = {"landscape": (301, 203, 1000), "portrait": (180, 257, 1001)}  # name -> (W, H, seed)
PRE_CASES = [("imagenet_256_224", 256, (224, 224)), ("imagenet_224_224", 224, (224, 224)),
             ("imagenet_64_56x72", 64, (56, 72))]  # (suffix, Resize size, CenterCrop (H, W))


def make_picture(w, h, seed):
    """Smooth, channel-distinct gradients plus hard edges, a 1-pixel checkerboard and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / (w - 1), yy / (h - 1)
    r = 40 + 180 * u                                    # red: left to right
    g = 30 + 190 * v                                    # green: top to bottom
    b = 128 + 100 * np.sin(2 * np.pi * (1.5 * u + 0.7 * v))   # blue: oblique waves
    img = np.stack([r, g, b], -1)
    # a hard-edged rectangle and disc, at fractional positions so they straddle resampled pixels
    img[(xx >= 0.13 * w) & (xx < 0.41 * w) & (yy >= 0.57 * h) & (yy < 0.83 * h)] = [250, 20, 60]
    img[(xx - 0.68 * w) ** 2 + (yy - 0.31 * h) ** 2 < (0.17 * min(w, h)) ** 2] = [10, 240, 200]
    # thin diagonal stripes and a 1-pixel checkerboard patch (aliasing shows here first)
    stripes = ((xx + 2 * yy) % 9 < 2) & (yy > 0.05 * h) & (yy < 0.3 * h) & (xx < 0.45 * w)
    img[stripes] = [0, 0, 0]
    checker = ((xx + yy) % 2 == 0) & (xx > 0.55 * w) & (xx < 0.9 * w) & (yy > 0.6 * h) & (yy < 0.9 * h)
    img[checker] = [255, 255, 255]
    img += rng.normal(0, 8, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def center_crop_geometry(rh, rw, ch, cw):
    """torchvision.transforms.functional.center_crop's arithmetic (v0.29): padding, then offsets
    in the resized picture (negative where the crop reaches into the padding)."""
    pad = [(cw - rw) // 2 if cw > rw else 0, (ch - rh) // 2 if ch > rh else 0,
           (cw - rw + 1) // 2 if cw > rw else 0, (ch - rh + 1) // 2 if ch > rh else 0]
    ph, pw = rh + pad[1] + pad[3], rw + pad[0] + pad[2]
    if ph == ch and pw == cw:
        top, left = 0, 0
    else:
        top, left = int(round((ph - ch) / 2.0)), int(round((pw - cw) / 2.0))
    return pad, left - pad[0], top - pad[1]


def preprocessing():
    import PIL
    import torchvision
    from PIL import Image
    from torchvision import transforms
    from torchvision.transforms import functional as TF

    out = os.path.join(FIXTURES, "preprocessing")
    os.makedirs(out, exist_ok=True)
    manifest = {"script": "Tools/make_reference_checks.py", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                "pipeline": "transforms.Compose([Resize(resize), CenterCrop(crop), ToTensor(), Normalize(mean, std)]) "
                            "on the PNG opened with PIL and converted to RGB; Resize: PIL BILINEAR, antialias=True",
                "geometry_notes": "resized long side = int(resize * long / short) (truncation); crop offsets "
                                  "int(round((resized - crop) / 2.0)) with Python's round-half-to-even; a crop larger "
                                  "than the resized picture is zero-padded (pad left/top = d // 2, right/bottom = "
                                  "(d + 1) // 2) and offsets are then measured in the padded picture. "
                                  "crop_box_original = crop offsets (relative to the unpadded resized picture) and crop "
                                  "size times scale_x = W / resized_w, scale_y = H / resized_h.",
                "pictures": {}, "cases": {}}
    for name, (w, h, seed) in PICTURES.items():
        png = os.path.join(out, f"{name}.png")
        Image.fromarray(make_picture(w, h, seed)).save(png)
        img = Image.open(png).convert("RGB")
        assert img.size == (w, h)
        manifest["pictures"][name] = {"file": f"{name}.png", "width": w, "height": h, "seed": seed}
        for suffix, resize, (ch, cw) in PRE_CASES:
            tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop((ch, cw)), transforms.ToTensor(),
                                     transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
            x = tf(img).numpy().astype(np.float32)
            assert x.shape == (3, ch, cw), x.shape
            file = f"{name}_{suffix}.npy"
            np.save(os.path.join(out, file), x)
            # The geometry, from torchvision's own size helper and center_crop's arithmetic.
            rh, rw = TF._compute_resized_output_size((h, w), [resize])
            assert transforms.Resize(resize)(img).size == (rw, rh)
            pad, left, top = center_crop_geometry(rh, rw, ch, cw)
            # Cross-check: plain PIL resize + pad + crop reproduces the transform bit for bit.
            resized = np.asarray(img.resize((rw, rh), Image.BILINEAR), dtype=np.float32) / 255
            padded = np.pad(resized, ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)))
            crop = padded[top + pad[1]:top + pad[1] + ch, left + pad[0]:left + pad[0] + cw]
            manual = ((crop - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)).transpose(2, 0, 1)
            assert np.abs(manual - x).max() < 1e-6, np.abs(manual - x).max()
            sx, sy = w / rw, h / rh
            short, long = min(w, h), max(w, h)
            naive_long = int(np.floor(resize * long / short + 0.5))
            naive_rw, naive_rh = (naive_long, resize) if w > h else (resize, naive_long)
            manifest["cases"][file[:-4]] = {
                "file": file, "picture": name, "shape": list(x.shape), "resize": resize, "crop_hw": [ch, cw],
                "resized_wh": [rw, rh], "crop_offsets_resized": {"left": left, "top": top},
                "padding_ltrb": pad, "padded": any(pad), "scale_x": sx, "scale_y": sy,
                "crop_box_original": {"left": left * sx, "top": top * sy, "width": cw * sx, "height": ch * sy},
                "naive_half_up": {"resized_wh": [naive_rw, naive_rh],
                                  "crop_offsets_floor": {"left": (naive_rw - cw) // 2, "top": (naive_rh - ch) // 2}},
            }
            print(f"preprocessing {file}: resized {rw}x{rh}, crop left {left} top {top}, pad {pad}")
    dump(os.path.join(out, "manifest.json"), manifest)


# ---------------------------------------------------------------------------------------------
# 2. Integrated Gradients with a non-zero baseline
# ---------------------------------------------------------------------------------------------

IG_MODELS = ["small_resnet", "mobile_block"]
IG_CASES = [("gausslegendre", "gausslegendre", 7), ("gausslegendre", "gausslegendre", 25),
            ("middle", "riemann_middle", 7), ("middle", "riemann_middle", 25), ("left", "riemann_left", 7)]


def fixture_model(name):
    """The model of make_fixtures.py / make_method_fixtures.py, same construction and seeds."""
    i = list(mf.MODELS).index(name)
    torch.manual_seed(100 + i)
    model = mf.MODELS[name][0]().eval()
    mf.randomize(model, 200 + i)
    return model, i


def integrated_gradients():
    import captum
    from captum.attr import IntegratedGradients
    from captum.attr._utils.approximation_methods import approximation_parameters

    for name in IG_MODELS:
        model, i = fixture_model(name)
        x = torch.from_numpy(np.load(os.path.join(mf.OUT, name, "input.npy")))
        target = torch.tensor(np.load(os.path.join(mf.OUT, name, "target.npy")).tolist())
        folder = os.path.join(FIXTURES, "methods", name)
        os.makedirs(folder, exist_ok=True)
        seed = 500 + i
        baseline = np.random.default_rng(seed).uniform(-1, 1, (1,) + tuple(x.shape[1:])).astype(np.float32)
        np.save(os.path.join(folder, "ig_baseline.npy"), baseline)
        manifest = {"script": "Tools/make_reference_checks.py", "torch": torch.__version__, "captum": captum.__version__,
                    "model": name, "input": f"Tests/Fixtures/models/{name}/input.npy",
                    "target": np.load(os.path.join(mf.OUT, name, "target.npy")).tolist(),
                    "baseline": {"file": "ig_baseline.npy", "shape": list(baseline.shape),
                                 "distribution": "numpy default_rng(seed).uniform(-1, 1)", "seed": seed,
                                 "note": "one image, broadcast by Captum to the batch"},
                    "internal_batch_size": None,
                    "delta_note": "Captum's return_convergence_delta, signed: sum(attr) - (F(x) - F(baseline)) per image",
                    "cases": {}}
        for rule, method, steps in IG_CASES:
            attr, delta = IntegratedGradients(model).attribute(
                x, baselines=torch.from_numpy(baseline), target=target, n_steps=steps, method=method,
                return_convergence_delta=True)
            file = f"ig_baseline_{rule}_{steps}.npy"
            np.save(os.path.join(folder, file), attr.detach().numpy().astype(np.float32))
            step_sizes, alphas = (f(steps) for f in approximation_parameters(method))
            manifest["cases"][f"{rule}_{steps}"] = {"file": file, "method": method, "n_steps": steps,
                                                    "delta": delta.detach().tolist(),
                                                    "alphas": list(alphas), "step_sizes": list(step_sizes)}
            print(f"ig {name} {rule}_{steps}: delta {delta.detach().tolist()}")
        dump(os.path.join(folder, "ig_baseline.json"), manifest)


# ---------------------------------------------------------------------------------------------
# 3. pytorch-grad-cam maps at input resolution, non-square input
# ---------------------------------------------------------------------------------------------

CAM_SIZE = (40, 56)  # H, W
CAM_LAYER = "layer2"  # make_method_fixtures.CASES["small_resnet"]


def cam_resized():
    import onnx
    import onnxruntime as ort
    import pytorch_grad_cam
    import cv2
    from pytorch_grad_cam import GradCAM, GradCAMElementWise, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    out = os.path.join(FIXTURES, "cam_resized")
    os.makedirs(out, exist_ok=True)
    h, w = CAM_SIZE
    torch.manual_seed(700)
    model = mf.SmallResNet().eval()
    mf.randomize(model, 701)
    x = torch.from_numpy(np.random.default_rng(702).uniform(-1, 1, (2, 3, h, w)).astype(np.float32))
    path = os.path.join(out, "model.onnx")
    torch.onnx.export(model, (x,), path, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    onnx_model = onnx.load(path)
    onnx.checker.check_model(onnx_model)
    layer_value = mf.onnx_value_of_module(onnx_model, CAM_LAYER)
    logits = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        torch_logits = model(x).numpy()
    order = np.argsort(-logits, axis=1)
    target = np.array([order[0, 0], order[1, 1]], dtype=np.int64)
    np.save(os.path.join(out, "input.npy"), x.numpy())
    np.save(os.path.join(out, "target.npy"), target)
    np.save(os.path.join(out, "logits.npy"), logits.astype(np.float32))
    layer = dict(model.named_modules())[CAM_LAYER]
    methods = {}
    for cam_name, cam_cls in [("gradcam", GradCAM), ("xgradcam", XGradCAM), ("layercam", LayerCAM),
                              ("gradcampp", GradCAMPlusPlus), ("hirescam", HiResCAM), ("gradcamelementwise", GradCAMElementWise)]:
        cam = cam_cls(model=model, target_layers=[layer])
        raws = []
        original = cam.get_cam_image

        def recording(*args, original=original, raws=raws, **kwargs):
            result = original(*args, **kwargs)
            raws.append(np.array(result))
            return result
        cam.get_cam_image = recording
        resized = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in target])
        cam.activations_and_grads.release()
        assert len(raws) == 1
        raw = np.maximum(raws[0], 0).astype(np.float32)
        assert resized.shape == (2, h, w), resized.shape
        assert (raw.reshape(2, -1).max(1) > 0).all(), f"{cam_name}: a degenerate (all-zero) map"
        np.save(os.path.join(out, f"{cam_name}_resized.npy"), resized.astype(np.float32))
        np.save(os.path.join(out, f"{cam_name}_raw.npy"), raw)
        methods[cam_name] = {"class": cam_cls.__name__, "resized": f"{cam_name}_resized.npy",
                             "raw": f"{cam_name}_raw.npy", "raw_shape": list(raw.shape)}
        print(f"cam {cam_name}: raw {raw.shape}, resized {resized.shape}")
    manifest = {"script": "Tools/make_reference_checks.py", "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": ort.__version__, "grad-cam": version("grad-cam"), "opencv": cv2.__version__,
                "numpy": np.__version__, "model": "make_fixtures.SmallResNet, torch.manual_seed(700), randomize(701)",
                "opset": 17, "input_shape": [2, 3, h, w], "input_seed": 702, "dynamic_axes": "batch",
                "target": target.tolist(), "target_rule": "sample 0: argmax; sample 1: second-highest logit",
                "layer_module": CAM_LAYER, "layer_value": layer_value,
                "ort_vs_torch_max_abs": float(np.abs(logits - torch_logits).max()),
                "resized_definition": "cam(input_tensor=x, targets=[ClassifierOutputTarget(t)]): per image "
                                      "r = max(raw, 0); r = r - min(r); r = r / (1e-7 + max(r)); "
                                      "cv2.resize(r, (W, H)) (INTER_LINEAR, half-pixel centres); then once more "
                                      "m - min(m), / (1e-7 + max)",
                "raw_definition": "max(get_cam_image(...), 0) recorded inside the same call", "methods": methods}
    dump(os.path.join(out, "manifest.json"), manifest)


# ---------------------------------------------------------------------------------------------
# 4. squeezenet1_1
# ---------------------------------------------------------------------------------------------

ALLOWED_OPS = set("Conv Relu MaxPool Concat Dropout GlobalAveragePool AveragePool Flatten Reshape Gemm Add Mul Softmax "
                  "Identity Constant Shape Gather Unsqueeze Squeeze ReduceMean Pad Slice Cast ConstantOfShape "
                  "BatchNormalization Clip Sigmoid HardSigmoid HardSwish Tanh LeakyRelu Transpose MatMul Sub Div "
                  "LogSoftmax".split())


def squeezenet():
    import onnx
    import onnxruntime as ort
    import torchvision

    out = os.path.join(mf.OUT, "squeezenet1_1")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(800)
    model = torchvision.models.squeezenet1_1(weights=None).eval()
    mf.randomize(model, 801)
    x = torch.from_numpy(np.random.default_rng(802).uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32))
    path = os.path.join(out, "model.onnx")
    torch.onnx.export(model, (x[:1],), path, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    onnx_model = onnx.load(path)
    onnx.checker.check_model(onnx_model)
    ops = collections.Counter(n.op_type for n in onnx_model.graph.node)
    unsupported = sorted(set(ops) - ALLOWED_OPS)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    logits = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    order = np.argsort(-logits, axis=1)
    target = np.array([order[0, 0], order[1, 1]], dtype=np.int64)
    xg = x.clone().requires_grad_(True)
    torch_logits = model(xg)
    grad, = torch.autograd.grad(torch_logits[torch.arange(2), torch.from_numpy(target)].sum(), xg)
    assert float(grad.abs().max()) > 0
    np.save(os.path.join(out, "input.npy"), x.numpy())
    np.save(os.path.join(out, "logits.npy"), logits.astype(np.float32))
    np.save(os.path.join(out, "target.npy"), target)
    np.save(os.path.join(out, "grad_input.npy"), grad.numpy().astype(np.float32))
    tl = torch_logits.detach().numpy()
    size = os.path.getsize(path)
    manifest = {"script": "Tools/make_reference_checks.py", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                "numpy": np.__version__,
                "model": "torchvision.models.squeezenet1_1(weights=None), torch.manual_seed(800), "
                         "make_fixtures.randomize(model, 801)",
                "opset": 17, "input": [2, 3, 224, 224], "input_seed": 802, "dynamic_axes": "batch",
                "ort": "CPUExecutionProvider, ORT_SEQUENTIAL, 1 intra-op and 1 inter-op thread",
                "target": target.tolist(), "target_rule": "sample 0: argmax; sample 1: second-highest logit",
                "onnx_bytes": size, "parameters": int(sum(p.numel() for p in model.parameters())),
                "ops": dict(sorted(ops.items())), "ops_outside_importer_list": unsupported,
                "ort_vs_torch_max_abs": float(np.abs(logits - tl).max()),
                "ort_vs_torch_rel_l2": float(np.linalg.norm(logits - tl) / np.linalg.norm(tl)),
                "logit_range": [float(logits.min()), float(logits.max())]}
    dump(os.path.join(out, "manifest.json"), manifest)
    print(f"squeezenet1_1: {size} bytes, ops {dict(ops)}, outside list {unsupported}, "
          f"ort vs torch {manifest['ort_vs_torch_rel_l2']:.2e}")


# ---------------------------------------------------------------------------------------------
# 5. LIME sample weights
# ---------------------------------------------------------------------------------------------

LIME_SEGMENTS, LIME_SAMPLES, LIME_SEED = 13, 40, 900


def lime_weights():
    import sklearn
    import sklearn.metrics
    from lime import lime_image

    out = os.path.join(FIXTURES, "lime")
    os.makedirs(out, exist_ok=True)
    m = LIME_SEGMENTS
    # A 6 x 26 picture whose segments are column pairs 0..12; the classifier scores segment brightness.
    image = np.random.default_rng(LIME_SEED).uniform(0, 1, (6, 2 * m, 3))

    def segmentation_fn(img):
        return np.tile(np.arange(img.shape[1]) // 2, (img.shape[0], 1))

    seg_weights = np.linspace(-1, 1, m)

    def classifier_fn(batch):
        s = np.array([[b[:, 2 * k:2 * k + 2].mean() for k in range(m)] for b in batch]) @ seg_weights
        p = 1 / (1 + np.exp(-4 * s))
        return np.stack([1 - p, p], 1)

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=LIME_SEED)
    captured = {}
    kernel_fn = explainer.base.kernel_fn
    base_explain = explainer.base.explain_instance_with_data

    def recording_kernel(d):
        weights = kernel_fn(d)
        captured["weights"] = np.array(weights)
        return weights

    def recording_explain(data, labels, distances, *args, **kwargs):
        captured.update(data=np.array(data), labels=np.array(labels), distances=np.array(distances))
        return base_explain(data, labels, distances, *args, **kwargs)
    explainer.base.kernel_fn = recording_kernel
    explainer.base.explain_instance_with_data = recording_explain
    explanation = explainer.explain_instance(image, classifier_fn, labels=(1,), top_labels=None, hide_color=0,
                                             num_features=m, num_samples=LIME_SAMPLES, batch_size=10,
                                             segmentation_fn=segmentation_fn, distance_metric="cosine")
    rows, distances, weights = captured["data"], captured["distances"], captured["weights"]
    assert rows.shape == (LIME_SAMPLES, m) and (rows[0] == 1).all()
    # lime's call, repeated independently, gives the same numbers.
    again = sklearn.metrics.pairwise_distances(rows, rows[0].reshape(1, -1), metric="cosine").ravel()
    assert np.array_equal(again, distances)
    assert np.array_equal(kernel_fn(again), weights)
    coef = np.zeros(m)
    for k, c in explanation.local_exp[1]:
        coef[k] = c
    np.save(os.path.join(out, "rows.npy"), rows.astype(np.float32))
    np.save(os.path.join(out, "distances.npy"), distances.astype(np.float64))
    np.save(os.path.join(out, "weights.npy"), weights.astype(np.float64))
    np.save(os.path.join(out, "predictions.npy"), captured["labels"].astype(np.float64))
    np.save(os.path.join(out, "coefficients.npy"), coef)
    # An all-zero row (lime never draws one on purpose, since row 0 is all ones, but randint can).
    zero = np.zeros((1, m))
    zero_d = sklearn.metrics.pairwise_distances(zero, rows[0].reshape(1, -1), metric="cosine").ravel()
    zero_w = kernel_fn(zero_d)
    manifest = {"script": "Tools/make_reference_checks.py", "lime": version("lime"), "scikit-learn": sklearn.__version__,
                "numpy": np.__version__, "segments": m, "num_samples": LIME_SAMPLES, "random_state": LIME_SEED,
                "kernel_width": 0.25, "kernel": "lime_image.LimeImageExplainer's default: sqrt(exp(-d**2 / width**2)), "
                                                "called as explainer.base.kernel_fn",
                "distance": "sklearn.metrics.pairwise_distances(data, data[0].reshape(1, -1), metric='cosine').ravel()",
                "source": "rows, distances and weights recorded inside LimeImageExplainer.explain_instance "
                          "(data_labels draws random_state.randint(0, 2, (num_samples, M)) after one randint for "
                          "the segmentation seed, then sets row 0 to ones)",
                "rows_dtype_in_lime": str(rows.dtype), "all_zero_rows_drawn": int((rows.sum(1) == 0).sum()),
                "all_zero_row": {"distance": float(zero_d[0]), "weight": float(zero_w[0]),
                                 "note": "sklearn's cosine distance treats a zero vector as having zero similarity "
                                         "(normalize() leaves it at zero), so d = 1.0, not NaN; weight = exp(-8)"},
                "explanation_label": 1, "hide_color": 0, "classifier": "p1 = sigmoid(4 * sum_k w_k * mean(segment k)), w = linspace(-1, 1, 13)",
                "ridge": {"regressor": "lime default Ridge(alpha=1, fit_intercept=True), weighted by weights.npy",
                          "intercept": float(explanation.intercept[1]), "score": float(np.ravel(explanation.score)[0]),
                          "local_pred": [float(v) for v in np.ravel(explanation.local_pred)]}}
    dump(os.path.join(out, "manifest.json"), manifest)
    print(f"lime: distances {distances[:4]}..., weights {weights[:4]}..., zero row d={zero_d[0]} w={zero_w[0]}")


SECTIONS = {"preprocessing": preprocessing, "ig": integrated_gradients, "cam": cam_resized,
            "squeezenet": squeezenet, "lime": lime_weights}


def main():
    torch.set_num_threads(2)
    chosen = sys.argv[1:] or list(SECTIONS)
    for name in chosen:
        SECTIONS[name]()


if __name__ == "__main__":
    main()
