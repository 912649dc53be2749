#!/usr/bin/env python3
"""Reference fixtures for the model tests (issue: graph executor and ONNX import).

Exports small CNNs with seeded weights to ONNX and writes, next to each model, as .npy:
  input.npy        float32 [2, 3, H, W] seeded random input
  logits.npy       onnxruntime logits for that input
  target.npy       int64 [2] the logit each sample's gradient is taken of
  grad_input.npy   PyTorch d(sum_b logits[b, target[b]]) / d input
  grad_<k>.npy     the same gradient with respect to two intermediate activations, whose ONNX
                   value names are listed in manifest.json
Run:  python3 Tools/make_fixtures.py   (writes Tests/Fixtures/models/); CI never needs Python.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "models")


class PlainCNN(nn.Module):
    """conv-relu-maxpool-conv-relu, flatten through x.view(x.size(0), -1) (Shape/Gather arithmetic), linear."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2, padding=(1, 0))
        self.relu2 = nn.ReLU()
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(12 * 4 * 3, 10)

    def forward(self, x):
        x = self.relu2(self.conv2(self.pool(self.relu1(self.conv1(x)))))
        x = self.avg(x)
        return self.fc(x.view(x.size(0), -1))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.gap(x), 1))


class MobileBlock(nn.Module):
    """MobileNetV2-style inverted residual with squeeze-excitation and hard-swish."""
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(24, 24, 3, 1, 1, groups=24, bias=False), nn.BatchNorm2d(24), nn.Hardswish())
        self.se_pool = nn.AdaptiveAvgPool2d(1)
        self.se_fc1 = nn.Conv2d(24, 6, 1)
        self.se_relu = nn.ReLU()
        self.se_fc2 = nn.Conv2d(6, 24, 1)
        self.se_gate = nn.Sigmoid()
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.Conv2d(8, 32, 1), nn.ReLU6())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(self.expand(x))
        y = y * self.se_gate(self.se_fc2(self.se_relu(self.se_fc1(self.se_pool(y)))))
        x = x + self.project(y)
        x = self.head(x)
        return self.fc(x.mean((2, 3)))


class Fire(nn.Module):
    def __init__(self, cin, s, e):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, s, 1)
        self.squeeze_act = nn.ReLU()
        self.e1 = nn.Conv2d(s, e, 1)
        self.e1_act = nn.ReLU()
        self.e3 = nn.Conv2d(s, e, 3, padding=1)
        self.e3_act = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_act(self.squeeze(x))
        return torch.cat([self.e1_act(self.e1(x)), self.e3_act(self.e3(x))], 1)


class SqueezeBlock(nn.Module):
    """SqueezeNet-style: ceil-mode max pools, fire modules with Concat, a standalone BatchNorm
    (not after a convolution, so the exporter cannot fuse it), 1x1-conv classifier, global pooling."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fire1 = Fire(16, 4, 8)
        self.bn = nn.BatchNorm2d(16)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.fire2 = Fire(16, 6, 12)
        self.classifier = nn.Conv2d(24, 10, 1)
        self.cls_act = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.bn(self.fire1(x)))
        x = self.cls_act(self.classifier(self.fire2(x)))
        return torch.flatten(self.gap(x), 1)


class OpZoo(nn.Module):
    """The remaining importer ops: LeakyRelu, Tanh, HardSigmoid, Sub, Div, Pad, Transpose, MatMul,
    Squeeze/Unsqueeze, average pooling with ceil_mode and count_include_pad=False, LogSoftmax."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.act1 = nn.LeakyReLU(0.1)
        self.pool = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.conv2 = nn.Conv2d(6, 8, 3, dilation=2)
        self.act2 = nn.Tanh()
        self.gate = nn.Hardsigmoid()
        self.proj = nn.Parameter(torch.zeros(8, 10))

    def forward(self, x):
        x = self.act1(self.conv1(x))
        x = F.pad(x, (1, 2, 0, 1), value=0.25)
        x = self.pool(x)
        x = self.act2(self.conv2(x))
        x = (x - 0.1) / (1.5 + self.gate(x))
        x = x.permute(0, 2, 3, 1)                   # NHWC
        x = x.mean(dim=(1, 2), keepdim=True)        # [N, 1, 1, 8]
        x = x.squeeze(1).squeeze(1)                 # [N, 8]
        return F.log_softmax(x @ self.proj, dim=1)


# name -> (model, input size (H, W), opset, two intermediate modules whose outputs get gradients)
MODELS = {
    "plain_cnn": (PlainCNN, (32, 28), 13, ["relu1", "relu2"]),
    "small_resnet": (SmallResNet, (64, 64), 17, ["layer1.relu2", "layer2.relu2"]),
    "mobile_block": (MobileBlock, (40, 40), 18, ["expand.2", "head.1"]),
    "squeeze_block": (SqueezeBlock, (48, 44), 11, ["fire1.e3_act", "fire2.e1_act"]),
    "op_zoo": (OpZoo, (30, 26), 18, ["act1", "act2"]),
}


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
            if m.bias is not None:
                m.bias.data = torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1
        if isinstance(m, OpZoo):
            m.proj.data = torch.randn(m.proj.shape, generator=g)
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2
            m.running_mean = torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5


def onnx_value_of_module(onnx_model, module_name):
    """The ONNX value produced by a module: the output of the last node in its scope."""
    parts = module_name.split(".")
    # Attribute children are scoped by name, Sequential children by "parent.index".
    scopes = ["/" + "/".join(parts) + "/",
              "/" + "/".join(parts[:-1] + [".".join(parts[-2:])]) + "/" if len(parts) > 1 else None]
    last = None
    for n in onnx_model.graph.node:
        if any(s and n.name.startswith(s) for s in scopes):
            last = n.output[0]
    if last is None:
        raise SystemExit(f"no ONNX node for module {module_name}")
    return last


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"script": "Tools/make_fixtures.py", "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__, "models": {}}
    for i, (name, (cls, (h, w), opset, taps)) in enumerate(MODELS.items()):
        torch.manual_seed(100 + i)
        model = cls().eval()
        randomize(model, 200 + i)
        folder = os.path.join(OUT, name)
        os.makedirs(folder, exist_ok=True)
        x = torch.from_numpy(np.random.default_rng(300 + i).uniform(-1, 1, (2, 3, h, w)).astype(np.float32))
        path = os.path.join(folder, "model.onnx")
        torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        onnx_model = onnx.load(path)
        onnx.checker.check_model(onnx_model)
        tap_values = [onnx_value_of_module(onnx_model, t) for t in taps]

        logits = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
        target = np.array([1, 3], dtype=np.int64)

        acts = {}
        hooks = [dict(model.named_modules())[t].register_forward_hook(
            lambda m, inp, out, t=t: acts.__setitem__(t, out)) for t in taps]
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        for hk in hooks:
            hk.remove()
        loss = out[torch.arange(2), torch.from_numpy(target)].sum()
        grads = torch.autograd.grad(loss, [xg] + [acts[t] for t in taps])

        np.save(os.path.join(folder, "input.npy"), x.numpy())
        np.save(os.path.join(folder, "logits.npy"), logits.astype(np.float32))
        np.save(os.path.join(folder, "target.npy"), target)
        np.save(os.path.join(folder, "grad_input.npy"), grads[0].numpy().astype(np.float32))
        for k, g in enumerate(grads[1:]):
            np.save(os.path.join(folder, f"grad_{k}.npy"), g.numpy().astype(np.float32))
        if name == "plain_cnn":
            # The same model with its weights in a side file (ONNX external data).
            onnx.save_model(onnx.load(path), os.path.join(folder, "model_external.onnx"), save_as_external_data=True,
                            all_tensors_to_one_file=True, location="model_external.onnx.data", size_threshold=0)
        rel = float(np.linalg.norm(logits - out.detach().numpy()) / np.linalg.norm(out.detach().numpy()))
        manifest["models"][name] = {"opset": opset, "input": [2, 3, h, w], "taps": taps, "tap_values": tap_values,
                                    "ort_vs_torch_rel_l2": rel,
                                    "ops": sorted({n.op_type for n in onnx_model.graph.node})}
        print(f"{name}: opset {opset}, ops {manifest['models'][name]['ops']}, ort vs torch {rel:.2e}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    sys.exit(main())
