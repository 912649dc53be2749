#!/usr/bin/env python3
"""Reference values for input invariance (Sources/XAIMetrics/InputInvariance.swift), from Quantus 0.6.0.

Inputs: the small_resnet fixture model and its two 64x64 images; saliency (max |gradient| over
channels) and Gradient x Input (summed over channels) of the predicted logit, computed by torch
running the ONNX graph op by op (Tools/make_quantus_randomisation_fixtures.py's GraphModule).

The shifted model is xai's: the first convolution's padding moved into a Pad filled with the shift
and its bias b - shift * sum W (per output channel), built here from the ONNX initializers and
checked against the original model (logits of x + shift on it against those of x). Quantus's
`add_mean_shift_to_first_layer` is replaced by one that returns it, so what Quantus computes is
the rest: the explanation of the shifted input on the shifted model, `np.isclose(atol=1e-4)`. Its
input is shifted by a `perturb_func` that shifts every value: Quantus 0.6.0's default,
`baseline_replacement_by_shift`, leaves the first value of each image unshifted. Quantus as it
comes (its shift, and its shifted model: the bias alone, `torch.unique(...)[0]` of the first
layer's response to a constant input, so its zero padding is not shifted) is also run, for the
record (`quantus_own`).

- quantus: `InputInvariance(input_shift=shift)`, its scores (True or False) per method, image and
  shift; quantus_own: the same with Quantus's shifted model.
- reference: per image, the largest |map - map'|, ||map - map'|| / ||map|| (numpy, float64).

Run with quantus==0.6.0, torch, onnxruntime (see requirements-fixtures.txt):
    python Tools/make_quantus_invariance_fixtures.py
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import quantus
import torch
from quantus.helpers.model import pytorch_model

sys.path.insert(0, os.path.dirname(__file__))
from make_quantus_randomisation_fixtures import GraphModule  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "small_resnet")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "metrics", "quantus_invariance")
SHIFTS = (-1.0, 0.7)


def shifted(model, initializers, shift):
    """xai's shifted graph: Pad(input, shift) -> the first Conv without padding, bias b - shift * sum W."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    values = dict(initializers)
    graph = m.graph
    name = graph.input[0].name
    index, node = next((i, n) for i, n in enumerate(graph.node) if name in n.input)
    assert node.op_type == "Conv" and list(node.input).count(name) == 1
    w = values[node.input[1]].astype(np.float64)
    b = values[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros(w.shape[0])
    values[node.input[2]] = (b - shift * w.reshape(w.shape[0], -1).sum(axis=1)).astype(np.float32)
    pads = next(list(a.ints) for a in node.attribute if a.name == "pads")
    for a in node.attribute:
        if a.name == "pads":
            del a.ints[:]
            a.ints.extend([0, 0, 0, 0])
    values["pads"] = np.array([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], np.int64)
    values["value"] = np.array(shift, np.float32)
    pad = onnx.helper.make_node("Pad", [name, "pads", "value"], ["padded"], name="pad")
    node.input[0] = "padded"
    graph.node.insert(index, pad)
    return m, values


class PadGraphModule(GraphModule):
    """GraphModule with constant Pad (pads and value from the initializers)."""

    def forward(self, x):
        import torch.nn.functional as F
        graph = self.graph
        pads = next((n for n in graph.node if n.op_type == "Pad"), None)
        if pads is None:
            return super().forward(x)
        p = [int(v) for v in self.values["pads"]]
        x = F.pad(x, (p[3], p[7], p[2], p[6]), value=float(self.values["value"]))
        rest = onnx.GraphProto()
        rest.CopyFrom(graph)
        del rest.node[:]
        rest.node.extend([n for n in graph.node if n.op_type != "Pad"])
        rest.input[0].name = "padded"
        return GraphModule(rest, {k: v.numpy() for k, v in self.values.items() if k not in ("pads", "value")}).forward(x)


class FirstConvModel(torch.nn.Module):
    """The model with its first convolution an nn.Conv2d (the first of its modules, where Quantus's
    own shift goes) and the rest of the graph after it."""

    def __init__(self, model, initializers):
        super().__init__()
        graph = model.graph
        node = next(n for n in graph.node if graph.input[0].name in n.input)
        a = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        w = initializers[node.input[1]]
        self.conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=a["strides"], padding=a["pads"][:2])
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(w.copy()))
            self.conv.bias.copy_(torch.from_numpy(initializers[node.input[2]].copy()))
        rest = onnx.GraphProto()
        rest.CopyFrom(graph)
        del rest.node[:]
        rest.node.extend([n for n in graph.node if n.name != node.name])
        rest.input[0].name = node.output[0]
        self.rest = GraphModule(rest, {k: v.astype(np.float32) for k, v in initializers.items()})
        self.channel_first = True

    def forward(self, x):
        return self.rest(self.conv(x))


def shift_every_value(arr, indices, indexed_axes, input_shift, **kwargs):
    """The shift added to every input value. Quantus 0.6.0's own `baseline_replacement_by_shift`,
    given every index, leaves the first value of each image unshifted."""
    return (arr + input_shift).astype(arr.dtype)


def saliency(model, inputs, targets, **kwargs):
    x = torch.tensor(np.asarray(inputs, np.float32), requires_grad=True)
    model(x)[torch.arange(x.shape[0]), torch.as_tensor(np.asarray(targets), dtype=torch.long)].sum().backward()
    return x.grad.abs().amax(dim=1, keepdim=True).numpy().astype(np.float32)


def input_x_gradient(model, inputs, targets, **kwargs):
    x = torch.tensor(np.asarray(inputs, np.float32), requires_grad=True)
    model(x)[torch.arange(x.shape[0]), torch.as_tensor(np.asarray(targets), dtype=torch.long)].sum().backward()
    return (x * x.grad).sum(dim=1, keepdim=True).detach().numpy().astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(MODEL, "model.onnx")
    model = onnx.load(path)
    x = np.load(os.path.join(MODEL, "input.npy"))
    logits = ort.InferenceSession(path).run(None, {"input": x})[0]
    targets = logits.argmax(axis=1)
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    original = GraphModule(model.graph, {k: v.astype(np.float32) for k, v in initializers.items()}).eval()
    first_conv = FirstConvModel(model, initializers).eval()
    with torch.no_grad():
        assert np.abs(first_conv(torch.from_numpy(x)).numpy() - logits).max() < 1e-4
    methods = {"saliency": saliency, "inputxgrad": input_x_gradient}
    result = {"script": "Tools/make_quantus_invariance_fixtures.py", "quantus": quantus.__version__, "torch": torch.__version__,
              "onnxruntime": ort.__version__, "model": "models/small_resnet", "targets": targets.tolist(), "cases": []}
    real_shift = pytorch_model.PyTorchModel.add_mean_shift_to_first_layer
    try:
        for shift in SHIFTS:
            m, values = shifted(model, initializers, shift)
            twin = PadGraphModule(m.graph, {k: v for k, v in values.items()}).eval()
            with torch.no_grad():
                moved = torch.from_numpy(x + np.float32(shift))
                change = float(np.abs(twin(moved).numpy() - logits).max())
            assert change < 1e-4, f"the shifted model differs from the original by {change}"
            case = {"shift": shift, "logit_change": change, "methods": {}}
            for name, fn in methods.items():
                maps = fn(original, x, targets)
                again = fn(twin, x + np.float32(shift), targets)
                d = np.abs(maps.astype(np.float64) - again.astype(np.float64)).reshape(len(x), -1)
                norms = np.linalg.norm(maps.astype(np.float64).reshape(len(x), -1), axis=1)
                entry = {"largest_change": d.max(axis=1).tolist(), "relative_change": (np.linalg.norm(d, axis=1) / norms).tolist()}
                pytorch_model.PyTorchModel.add_mean_shift_to_first_layer = lambda self, input_shift, shape: twin
                entry["quantus"] = [bool(v) for v in quantus.InputInvariance(input_shift=shift, perturb_func=shift_every_value, disable_warnings=True)(
                    model=original, x_batch=x, y_batch=targets, a_batch=maps, channel_first=True, explain_func=fn, device="cpu")]
                pytorch_model.PyTorchModel.add_mean_shift_to_first_layer = real_shift
                entry["quantus_own"] = [bool(v) for v in quantus.InputInvariance(input_shift=shift, disable_warnings=True)(
                    model=first_conv, x_batch=x, y_batch=targets, a_batch=maps, channel_first=True, explain_func=fn, device="cpu")]
                case["methods"][name] = entry
            result["cases"].append(case)
    finally:
        pytorch_model.PyTorchModel.add_mean_shift_to_first_layer = real_shift
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
