#!/usr/bin/env python3
"""Reference fixtures for ONNX Resize of constants (position-embedding and bias-table interpolation
in DINOv2, BEiT and other vision transformers): one small model per attribute combination, its
output computed by onnxruntime.

Each model resizes a seeded random constant `[1, 2, 5, 7]` (so xai folds it at load) and adds the
graph input `x`, shaped like the result:  y = Resize(table) + x.  Next to each `<case>.onnx`:
  <case>.x.npy   float32 seeded random input
  <case>.y.npy   onnxruntime's output for it
Cases cover nearest (every rounding), linear and cubic (two `a`, exclude_outside), every coordinate
transformation mode but tf_crop_and_resize, scales and sizes, upsampling and downsampling on one
call, opset 10's two-input form and opset 18's `axes`.
Run:  python3 Tools/make_resize_fixtures.py   (writes Tests/Fixtures/resize/); CI never needs Python.
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "resize")

# (name, opset, attributes, scales or None, sizes or None, axes)
CASES = [
    ("linear_half_pixel_sizes", 13, {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, None, [1, 2, 9, 4], None),
    ("linear_align_corners_scales", 13, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 1.6, 0.6], None, None),
    ("linear_asymmetric_axes", 18, {"mode": "linear", "coordinate_transformation_mode": "asymmetric", "axes": [2, 3]}, None, [9, 4], [2, 3]),
    ("linear_half_pixel_symmetric", 19, {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}, [1, 1, 1.7, 0.75], None, None),
    ("cubic_half_pixel_scales", 13, {"mode": "cubic", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 1.6, 0.6], None, None),
    ("cubic_align_corners_sizes", 13, {"mode": "cubic", "coordinate_transformation_mode": "align_corners"}, None, [1, 2, 8, 11], None),
    ("cubic_pytorch_half_pixel_exclude", 13, {"mode": "cubic", "coordinate_transformation_mode": "pytorch_half_pixel",
                                              "cubic_coeff_a": -0.5, "exclude_outside": 1}, None, [1, 2, 3, 12], None),
    ("cubic_pytorch_half_pixel_to_one", 13, {"mode": "cubic", "coordinate_transformation_mode": "pytorch_half_pixel"}, None, [1, 2, 1, 10], None),
    ("nearest_default", 13, {"mode": "nearest"}, [1, 1, 2, 1.5], None, None),
    ("nearest_asymmetric_floor", 13, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     None, [1, 2, 9, 4], None),
    ("nearest_align_corners_ceil", 13, {"mode": "nearest", "coordinate_transformation_mode": "align_corners", "nearest_mode": "ceil"},
     None, [1, 2, 8, 3], None),
    ("nearest_half_pixel_prefer_ceil", 13, {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                                            "nearest_mode": "round_prefer_ceil"}, [1, 1, 0.6, 2.5], None, None),
    ("nearest_opset10", 10, {"mode": "nearest"}, [1, 1, 2, 3], None, None),
]


def model(opset, attributes, scales, sizes, table, shape=("c", "h", "w")):
    nodes, inits = [], [numpy_helper.from_array(table, "table")]
    attributes = dict(attributes)
    if opset < 11:
        inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
        inputs = ["table", "scales"]
    else:
        inputs = ["table", ""]
        if scales is not None:
            inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
            inputs += ["scales"]
        else:
            inputs += ["", "sizes"]
            inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
    nodes.append(helper.make_node("Resize", inputs, ["r"], name="resize", **attributes))
    nodes.append(helper.make_node("Add", ["r", "x"], ["y"], name="add"))
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *shape])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2026)
    manifest = []
    for i, (name, opset, attributes, scales, sizes, axes) in enumerate(CASES):
        table = rng.uniform(-1, 1, (1, 2, 5, 7)).astype(np.float32)
        # The output's shape from a first session, then the model again with it (only the batch dynamic).
        probe = ort.InferenceSession(model(opset, attributes, scales, sizes, table).SerializeToString(), providers=["CPUExecutionProvider"])
        shape = probe.run(None, {"x": np.zeros((1, 1, 1, 1), np.float32)})[0].shape
        m = model(opset, attributes, scales, sizes, table, shape[1:])
        onnx.checker.check_model(m)
        path = os.path.join(OUT, name + ".onnx")
        onnx.save(m, path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        y = session.run(None, {"x": x})[0]
        np.save(os.path.join(OUT, name + ".x.npy"), x)
        np.save(os.path.join(OUT, name + ".y.npy"), y)
        manifest.append({"case": name, "opset": opset, "output": list(shape)})
        print(name, shape)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"onnxruntime": ort.__version__, "cases": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
