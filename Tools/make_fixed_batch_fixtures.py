#!/usr/bin/env python3
"""A model exported as torch.onnx.export does it by default: no dynamic axes, so the graph fixes
its batch at 1, in the input's shape and in the shapes its reshapes were traced with.

Writes Tests/Fixtures/fixed_batch/vit/:
  model.onnx   the architecture fixtures' ViT (Tools/make_architecture_fixtures.py: the same seeded
               weights, rebuilt and checked against the committed logits), TorchScript exporter,
               opset 17, traced at batch 1 with no dynamic_axes (its attention reshapes to
               [17, 4, 8]: tokens, batch x heads, head size)
  input.npy    the fixture's two images                                        float32 [2, 3, 32, 32]
  logits.npy   onnxruntime's logits, one image at a time                       float32 [2, 10]
Run after make_architecture_fixtures.py:  python3 Tools/make_fixed_batch_fixtures.py
"""
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_architecture_fixtures as maf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "fixed_batch", "vit")


def main():
    model, x, _ = maf.rebuilt("vit")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x[:1],), path, opset_version=17, input_names=["input"], output_names=["logits"], dynamo=False)
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 32, 32], session.get_inputs()[0].shape
    logits = np.concatenate([session.run(None, {"input": x[i:i + 1].numpy()})[0] for i in range(x.shape[0])])
    try:
        session.run(None, {"input": x.numpy()})
        raise AssertionError("onnxruntime ran the fixed-batch graph on two images")
    except ort.capi.onnxruntime_pybind11_state.InvalidArgument:
        pass
    np.save(os.path.join(OUT, "input.npy"), x.numpy())
    np.save(os.path.join(OUT, "logits.npy"), logits.astype(np.float32))
    print(f"{path}: {os.path.getsize(path)} bytes, logits {logits.shape}")


if __name__ == "__main__":
    sys.exit(main())
