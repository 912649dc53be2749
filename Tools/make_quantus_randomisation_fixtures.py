#!/usr/bin/env python3
"""Reference values for MPRT, smooth MPRT and efficient MPRT (Sources/XAIMetrics/Randomisation.swift),
from Quantus 0.6.0.

Inputs: the small_resnet fixture model and its two 64x64 images. The explanation is gradient x input
summed over channels, of the target (predicted) logit: xai's `inputxgrad`, computed here by torch
running the ONNX graph op by op (checked against onnxruntime, on the original weights and on the
fully randomised ones), so its maps are signed, as eMPRT's histogram needs.

The randomised models are xai's, rebuilt here: the weighted layers (Conv, Gemm) from the output
backwards; layer `i` of that list has each parameter `p` (weight, then bias) redrawn as
`std * g`, `std` the original tensor's population standard deviation (float64, as Float), `g`
XAICore's `SeededGenerator.nextGaussian` (SplitMix64, Box-Muller in float64) seeded
`seed + 7919 i + p`. Stage `k` of `K` randomises the top (top-down) or the bottom (bottom-up)
`cut(k)` layers (ModelRandomisation.cut). Quantus's own randomisation (each module's
`reset_parameters`) cannot be reproduced in xai's ONNX graphs, so its
`get_random_layer_generator` is replaced by one that yields these models: what is compared is
everything else (the explanations of each model, the smoothing, the similarity, the entropy).

- mprt: Quantus's `MPRT` (abs, normalise, Spearman), top-down, its per-layer similarities.
- smooth_mprt: Quantus's `SmoothMPRT` (abs, normalise, Spearman), bottom-up, `nr_samples` 4 and
  `noise_magnitude` 0.1, its per-layer similarities. Its noise is xai's: `np.random.randn` returns
  the standard normals xai draws for copy `s` of image `b` (seed `(seed ^ 0x9E3779B97F4A7C15) +
  1000003 b + s`), the same for every model, and Quantus's `quantus.explain` (which SmoothMPRT
  calls in place of the metric's explain function) is the explanation above.
- efficient_mprt: Quantus's `EfficientMPRT` (its defaults: 100 bins, abs and normalise off): the
  relative rise of the discrete entropy from the original model's map to the fully randomised
  model's, and both entropies.
- entropies: scipy's entropy of NumPy's histogram of a few arrays (the maps above, and values
  placed on the bin edges) at a few bin counts, for ``EfficientModelRandomisation.discreteEntropy``.

Run with quantus==0.6.0, torch, onnxruntime (see requirements-fixtures.txt):
    python Tools/make_quantus_randomisation_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import quantus
import scipy.stats
import torch
from quantus.helpers.model import pytorch_model

sys.path.insert(0, os.path.dirname(__file__))
import make_metric_fixtures as mmf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "metrics", "quantus_randomisation")
MASK64 = (1 << 64) - 1
SEED, STEPS, SAMPLES, NOISE = 5, 3, 4, 0.1


def gaussian(seed, count):
    """XAICore's Tensor.gaussian(std: 1, seed:): SeededGenerator.nextGaussian, as Float."""
    g = mmf.splitmix(seed)
    out = np.empty(count, np.float32)
    for i in range(count):
        u1 = max((next(g) >> 11) * (1.0 / 9007199254740992.0), 1e-300)
        u2 = (next(g) >> 11) * (1.0 / 9007199254740992.0)
        out[i] = np.float32(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2))
    return out


def layers(model):
    """ModelRandomisation.layers: the weighted nodes from the output backwards, with their constants,
    in the order of xai's graph after its load-time rewrites. One of them moves: a convolution whose
    output only feeds a residual Add (its first operand that is such a convolution) is fused into
    the Add and takes its place (Graph.fusingResidualAdds), so in a downsampling block the second
    convolution comes after the shortcut's."""
    names = {i.name for i in model.graph.initializer}
    nodes = list(model.graph.node)
    readers = {}
    for node in nodes:
        for v in node.input:
            readers[v] = readers.get(v, 0) + 1
    producer = {o: i for i, node in enumerate(nodes) for o in node.output}
    place = {i: float(i) for i in range(len(nodes))}
    for i, node in enumerate(nodes):
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        for a, skip in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            c = producer.get(a)
            if c is not None and nodes[c].op_type == "Conv" and readers.get(a) == 1 and skip not in names:
                place[c] = i
                break
    out = []
    for i in sorted(range(len(nodes)), key=lambda i: place[i], reverse=True):
        node = nodes[i]
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            constants = [n for n in node.input[1:] if n and n in names]
            if constants:
                out.append((node.name, constants))
    return out


def cut(stage, steps, count):
    if stage == 0 or steps <= 1:
        return min(1, count)
    return min(count, max(stage + 1, math.ceil(count * stage / (steps - 1))))


def randomised(initializers, layer_list, count, order, seed):
    """ModelRandomisation.randomised: the initializers with `count` layers redrawn."""
    out = dict(initializers)
    indexed = list(enumerate(layer_list))
    chosen = indexed[:count] if order == "top-down" else indexed[len(indexed) - count:]
    for index, (_, params) in chosen:
        for p, name in enumerate(params):
            t = initializers[name]
            values = [float(v) for v in t.reshape(-1)]
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) * (v - mean) for v in values) / len(values))
            draw = np.float32(std) * gaussian((seed + 7919 * index + p) & MASK64, t.size)
            out[name] = (np.float32(0) + draw).astype(np.float32).reshape(t.shape)
    return out


class GraphModule(torch.nn.Module):
    """The ONNX graph run op by op in torch with the given initializers (the export folded the
    batch norms into the convolutions, so the torch twin's parameters are not the graph's)."""

    def __init__(self, graph, initializers):
        super().__init__()
        self.graph = graph
        self.values = {k: torch.from_numpy(v.copy()) for k, v in initializers.items()}

    def forward(self, x):
        import torch.nn.functional as F
        env = dict(self.values)
        env[self.graph.input[0].name] = x
        for node in self.graph.node:
            a = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
            ins = [env[i] for i in node.input if i]
            if node.op_type == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                assert pads[:2] == pads[2:], "symmetric padding only"
                y = F.conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, stride=a.get("strides", [1, 1]), padding=pads[:2],
                             dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
            elif node.op_type == "Relu":
                y = F.relu(ins[0])
            elif node.op_type == "MaxPool":
                pads = a.get("pads", [0, 0, 0, 0])
                y = F.max_pool2d(ins[0], a["kernel_shape"], stride=a.get("strides", [1, 1]), padding=pads[:2])
            elif node.op_type == "Add":
                y = ins[0] + ins[1]
            elif node.op_type == "GlobalAveragePool":
                y = ins[0].mean(dim=(2, 3), keepdim=True)
            elif node.op_type == "Flatten":
                y = torch.flatten(ins[0], a.get("axis", 1))
            elif node.op_type == "Gemm":
                b = ins[1].t() if a.get("transB", 0) else ins[1]
                y = a.get("alpha", 1.0) * ins[0] @ b + a.get("beta", 1.0) * ins[2]
            else:
                raise NotImplementedError(node.op_type)
            env[node.output[0]] = y
        return env[self.graph.output[0].name]


def torch_model(graph, initializers):
    return GraphModule(graph, initializers).eval()


def input_x_gradient(model, inputs, targets, **kwargs):
    """xai's inputxgrad: (x * d logit_t / dx) summed over channels, [N, 1, H, W]."""
    x = torch.tensor(np.asarray(inputs, np.float32), requires_grad=True)
    logits = model(x)
    logits[torch.arange(x.shape[0]), torch.as_tensor(np.asarray(targets), dtype=torch.long)].sum().backward()
    return (x * x.grad).sum(dim=1, keepdim=True).detach().numpy().astype(np.float32)


def rounding_case():
    """Values on and just below bin edges where the index from the value's place in the range is one
    bin off, both ways, so NumPy's correction by the edges decides (the range is the values' own)."""
    rng = np.random.default_rng(1)
    while True:
        lo, hi = sorted(rng.uniform(-5, 5, 2))
        bins = 7
        w = (hi - lo) / bins
        down = up = None
        for i in range(1, bins):
            e = i * w + lo
            for v in (e, np.nextafter(e, -np.inf)):
                j = min(int((v - lo) / (hi - lo) * bins), bins - 1)
                if v < j * w + lo:
                    down = v
                if j < bins - 1 and v >= (j + 1) * w + lo:
                    up = v
        if down is not None and up is not None:
            # Two more values in the bin below the top one, so the counts do not merely swap.
            return np.array([lo, hi, down, down, down, up, lo + 5.5 * w, lo + 5.5 * w] + list(rng.uniform(lo, hi, 6)))


def entropy(values, bins):
    histogram, _ = np.histogram(values, bins=bins)
    return float(scipy.stats.entropy(pk=histogram))


def stages(models):
    """A stand-in for PyTorchModel.get_random_layer_generator yielding xai's stage models."""
    def generator(model_interface, order="top_down", seed=42):
        yield from models
    return generator


def main():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(MODEL, "model.onnx")
    onnx_model = onnx.load(path)
    session = ort.InferenceSession(path)
    x = np.load(os.path.join(MODEL, "input.npy"))
    logits = session.run(None, {"input": x})[0]
    targets = logits.argmax(axis=1)
    initializers = {i.name: onnx.numpy_helper.to_array(i).astype(np.float32) for i in onnx_model.graph.initializer}
    graph = onnx_model.graph
    twin = torch_model(graph, initializers)
    with torch.no_grad():
        assert np.abs(twin(torch.from_numpy(x)).numpy() - logits).max() < 1e-4, "the torch graph does not match onnxruntime"
    layer_list = layers(onnx_model)
    count = len(layer_list)

    def stage_models(order):
        out = []
        for k in range(STEPS):
            c = cut(k, STEPS, count)
            out.append((f"stage{k}:{c}", torch_model(graph, randomised(initializers, layer_list, c, order, SEED))))
        return out

    # The randomised models against onnxruntime, so the reconstruction is checked where it runs.
    full = randomised(initializers, layer_list, count, "top-down", SEED)
    rebuilt = onnx.load(path)
    for init in rebuilt.graph.initializer:
        init.CopyFrom(onnx.numpy_helper.from_array(full[init.name], init.name))
    full_logits = ort.InferenceSession(rebuilt.SerializeToString()).run(None, {"input": x})[0]
    with torch.no_grad():
        assert np.abs(torch_model(graph, full)(torch.from_numpy(x)).numpy() - full_logits).max() < 1e-3
    bottom_full = randomised(initializers, layer_list, count, "bottom-up", SEED)
    assert all(np.array_equal(full[k], bottom_full[k]) for k in full), "both orders end on the same model"

    maps = input_x_gradient(twin, x, targets)
    np.save(os.path.join(OUT, "maps.npy"), maps[:, 0])
    real_generator = pytorch_model.PyTorchModel.get_random_layer_generator
    real_randn, real_explain = np.random.randn, quantus.explain
    result = {"script": "Tools/make_quantus_randomisation_fixtures.py", "quantus": quantus.__version__, "torch": torch.__version__,
              "onnxruntime": ort.__version__, "numpy": np.__version__, "model": "models/small_resnet", "method": "inputxgrad",
              "seed": SEED, "steps": STEPS, "samples": SAMPLES, "noise": NOISE, "targets": targets.tolist(), "layers": [n for n, _ in layer_list],
              "full_logits_first": full_logits[0, :3].tolist()}
    try:
        # MPRT, top-down: Quantus compares the given maps with each stage's.
        pytorch_model.PyTorchModel.get_random_layer_generator = stages(stage_models("top-down"))
        metric = quantus.MPRT(layer_order="top_down", return_average_correlation=False, return_last_correlation=False, skip_layers=False,
                              disable_warnings=True)
        scores = metric(model=twin, x_batch=x, y_batch=targets, a_batch=maps, channel_first=True, explain_func=input_x_gradient,
                        softmax=False, device="cpu")
        result["mprt"] = {"order": "top-down", "stages": {k: [float(v) for v in vs] for k, vs in scores.items() if k.startswith("stage")}}

        # Smooth MPRT, bottom-up, on xai's noise.
        n, c, h, w = x.shape
        noise = [np.stack([gaussian(((SEED ^ 0x9E3779B97F4A7C15) + 1000003 * b + s) & MASK64, c * h * w).reshape(c, h, w) for b in range(n)])
                 for s in range(SAMPLES - 1)]
        calls = {"randn": 0}

        def randn(*shape):
            s = calls["randn"] % (SAMPLES - 1)
            calls["randn"] += 1
            assert tuple(shape) == noise[s].shape
            return noise[s].astype(np.float64)

        np.random.randn = randn
        quantus.explain = lambda model, inputs, targets, **kwargs: input_x_gradient(model, inputs, targets)
        pytorch_model.PyTorchModel.get_random_layer_generator = stages(stage_models("bottom-up"))
        metric = quantus.SmoothMPRT(layer_order="bottom_up", nr_samples=SAMPLES, noise_magnitude=NOISE, seed=SEED, return_average_correlation=False,
                                    skip_layers=False, disable_warnings=True)
        scores = metric(model=twin, x_batch=x, y_batch=targets, a_batch=None, channel_first=True, explain_func=input_x_gradient,
                        softmax=False, device="cpu")
        np.random.randn, quantus.explain = real_randn, real_explain
        result["smooth_mprt"] = {"order": "bottom-up", "noise_first_values": noise[0][0].reshape(-1)[:4].tolist(),
                                 "stages": {k: [float(v) for v in vs] for k, vs in scores.items() if k.startswith("stage")}}

        # Efficient MPRT: only the last model yielded counts; it is the fully randomised one.
        fully = torch_model(graph, full)
        pytorch_model.PyTorchModel.get_random_layer_generator = stages([(f"layer{i}", fully) for i in range(count)])
        metric = quantus.EfficientMPRT(compute_extra_scores=True, disable_warnings=True)
        scores = metric(model=twin, x_batch=x, y_batch=targets, a_batch=maps, channel_first=True, explain_func=input_x_gradient,
                        softmax=True, device="cpu")
        before = metric.explanation_scores_by_layer["orig"]
        after = list(metric.explanation_scores_by_layer.values())[-1]
        result["efficient_mprt"] = {"scores": [float(v) for v in scores], "entropy_before": [float(v) for v in before],
                                    "entropy_after": [float(v) for v in after]}
        random_maps = input_x_gradient(fully, x, targets)[:, 0]
    finally:
        pytorch_model.PyTorchModel.get_random_layer_generator = real_generator
        np.random.randn, quantus.explain = real_randn, real_explain

    # The discrete entropy alone: the maps, and values on the bin edges.
    rng = np.random.default_rng(7)
    edges = np.linspace(-1.0, 3.0, 11)
    arrays = {"map0": maps[0, 0].astype(np.float64), "random_map1": random_maps[1].astype(np.float64),
              "edges": np.concatenate([edges, edges[2:5], rng.uniform(-1, 3, 40)]),
              "skewed": np.concatenate([rng.standard_normal(300) ** 3, [50.0]]),
              "two_values": np.array([0.0, 1.0, 1.0, 0.0, 1.0]), "rounding": rounding_case()}
    # The values as strings: Foundation's JSON reader on Linux does not round every double exactly,
    # and a value on a bin edge must arrive on it.
    result["entropies"] = [{"name": k, "values": [repr(float(e)) for e in v], "bins": bins, "entropy": entropy(v, bins)}
                           for k, v in arrays.items() for bins in (10, 100) if k not in ("map0", "random_map1", "rounding")]
    result["entropies"].append({"name": "rounding", "values": [repr(float(e)) for e in arrays["rounding"]], "bins": 7,
                                "entropy": entropy(arrays["rounding"], 7)})
    result["entropies"] += [{"name": k, "bins": bins, "entropy": entropy(v, bins)} for k, v in arrays.items() for bins in (7, 100)
                            if k in ("map0", "random_map1")]
    np.save(os.path.join(OUT, "random_maps.npy"), random_maps)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in result.items() if k in ("mprt", "smooth_mprt", "efficient_mprt")}, indent=1))


if __name__ == "__main__":
    main()
