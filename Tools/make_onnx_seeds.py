#!/usr/bin/env python3
"""Seeds and regression inputs for the ONNX fuzz target (Fuzz/Corpus/onnx/): one small model per op
family that transformer and modern-CNN exports brought in (LayerNormalization, Gelu, Erf, Pow,
batched MatMul, Split, Expand, Gather from activations, stepped Slice, ReduceL2, and the shape and
mask arithmetic: Equal, Where, Mod, Range, ScatterND, GatherND, Tile, ...; Resize of constants and
the IsNaN guard on attention), and hostile variants of
each (out-of-range axes and indices, sizes that do not add up, counts that would allocate terabytes).
`make test` replays every file (FuzzCorpusTests): each must load and run forward and backward, or be
refused with an XAIError naming what is wrong; `make fuzz` starts from them.

    python3 Tools/make_onnx_seeds.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "Corpus", "onnx")


def const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def model(name, nodes, inits, x_shape=(1, 3, 4, 4), y_shape=None, opset=20):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)
    g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_onnx_seeds")
    m.ir_version = 9
    with open(os.path.join(OUT, f"arch_{name}.onnx"), "wb") as f:
        f.write(m.SerializeToString())


def n(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(5)
    f32 = lambda shape: rng.standard_normal(shape).astype(np.float32)
    tokens = [n("Reshape", ["x", "tok_shape"], ["t"])]
    tok_shape = const("tok_shape", [1, 3, 16])
    # A transformer block's pieces on [1, 3, 16] tokens.
    model("layernorm_gelu", tokens + [n("LayerNormalization", ["t", "s", "b"], ["ln"], axis=-1, epsilon=1e-5),
                                      n("Gelu", ["ln"], ["y"], approximate="tanh")],
          [tok_shape, numpy_helper.from_array(f32([16]), "s"), numpy_helper.from_array(f32([16]), "b")])
    model("layernorm_bad_axis", tokens + [n("LayerNormalization", ["t", "s"], ["y"], axis=7)],
          [tok_shape, numpy_helper.from_array(f32([16]), "s")])
    model("erf_pow_sqrt", tokens + [n("Erf", ["t"], ["e"]), n("Pow", ["e", "two"], ["p"]), n("Sqrt", ["p"], ["y"])],
          [tok_shape, const("two", 2.0, np.float32)])
    model("pow_activation_exponent", tokens + [n("Pow", ["t", "t"], ["y"])], [tok_shape])
    model("attention", tokens + [n("Transpose", ["t"], ["tt"], perm=[0, 2, 1]), n("MatMul", ["t", "tt"], ["s"]),
                                 n("Softmax", ["s"], ["a"], axis=-1), n("MatMul", ["a", "t"], ["y"])], [tok_shape])
    model("einsum_attention", tokens + [n("Einsum", ["t", "t"], ["s"], equation="bid,bjd->bij"), n("Softmax", ["s"], ["a"], axis=-1),
                                        n("Einsum", ["a", "t"], ["y"], equation="bij,bjd->bid")], [tok_shape])
    model("einsum_ellipsis", [n("Einsum", ["x", "x"], ["y"], equation="...ij,...jk->...ik")], [])
    model("einsum_diagonal", [n("Einsum", ["x"], ["y"], equation="aii->a")], [])
    model("einsum_rank_mismatch", [n("Einsum", ["x", "x"], ["y"], equation="abc,abc->ab")], [])
    model("instancenorm", [n("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)],
          [numpy_helper.from_array(np.array([0.5, 1.0, 2.0], np.float32), "s"), numpy_helper.from_array(np.array([0.1, -0.2, 0.3], np.float32), "b")])
    model("instancenorm_bad_scale", [n("InstanceNormalization", ["x", "s", "b"], ["y"])],
          [numpy_helper.from_array(f32([5]), "s"), numpy_helper.from_array(f32([5]), "b")])
    model("matmul_mismatch", tokens + [n("MatMul", ["t", "t"], ["y"])], [tok_shape])
    model("matmul_broadcast", [n("MatMul", ["x", "w"], ["y"])], [numpy_helper.from_array(f32([2, 1, 4, 5]), "w")])
    model("split_equal", [n("Split", ["x"], ["a", "b"], axis=2, num_outputs=2), n("Add", ["a", "b"], ["y"])], [], opset=18)
    model("split_sizes_bad", [n("Split", ["x", "sizes"], ["a", "b"], axis=1), n("Add", ["a", "a"], ["y"])], [const("sizes", [1, 5])])
    model("expand_gather", [n("Expand", ["x", "shape"], ["e"]), n("Gather", ["e", "idx"], ["y"], axis=1)],
          [const("shape", [2, 3, 1, 1]), const("idx", [2, 0, -1])])
    model("expand_bad", [n("Expand", ["x", "shape"], ["y"])], [const("shape", [2, 5, 4, 4])])
    model("gather_out_of_range", [n("Gather", ["x", "idx"], ["y"], axis=1)], [const("idx", [3])])
    model("stepped_slice", [n("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
          [const("st", [0, 1]), const("en", [4, 4]), const("ax", [2, 3]), const("sp", [2, 2])])
    model("slice_negative_step", [n("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
          [const("st", [3]), const("en", [0]), const("ax", [2]), const("sp", [-1])])
    model("reduce_l2_sum_max", [n("ReduceL2", ["x", "ax"], ["l2"], keepdims=1), n("ReduceMax", ["x", "ax"], ["mx"], keepdims=1),
                                n("Add", ["l2", "mx"], ["y"])], [const("ax", [2, 3])])
    # Shape and mask arithmetic as exporters write it, then used by a Reshape.
    shape_ops = [n("Shape", ["x"], ["s"]), n("Gather", ["s", "zero"], ["batch"], axis=0), n("Range", ["zero", "four", "one"], ["r"]),
                 n("Mod", ["r", "three"], ["m"]), n("Equal", ["m", "zero"], ["eq"]), n("Not", ["eq"], ["ne"]),
                 n("Where", ["ne", "r", "zero"], ["w"]), n("ScatterND", ["w", "sidx", "supd"], ["sc"]),
                 n("GatherND", ["sc", "gidx"], ["gn"]), n("Tile", ["gn", "reps"], ["tl"]), n("Div", ["tl", "two_i"], ["d"]),
                 n("ReduceSum", ["d"], ["rs"], keepdims=1), n("Concat", ["batch_1", "rs", "minus"], ["target"], axis=0),
                 n("Unsqueeze", ["batch", "zero_axes"], ["batch_1"]), n("Reshape", ["x", "target"], ["y"])]
    model("shape_arithmetic", shape_ops,
          [const("zero", 0), const("one", 1), const("four", 4), const("three", 3), const("sidx", [[0]]), const("supd", [1]),
           const("gidx", [[1], [2]]), const("reps", [1]), const("two_i", [2]), const("minus", [-1]), const("zero_axes", [0])])
    model("range_huge", [n("Range", ["zero", "big", "one"], ["r"]), n("Reshape", ["x", "r"], ["y"])],
          [const("zero", 0), const("big", 1 << 60), const("one", 1)])
    model("tile_huge", [n("Tile", ["x", "reps"], ["y"])], [const("reps", [1, 1, 1 << 40, 1 << 40])])
    model("scatternd_out_of_range", [n("Shape", ["x"], ["s"]), n("ScatterND", ["s", "idx", "upd"], ["t"]), n("Reshape", ["x", "t"], ["y"])],
          [const("idx", [[9]]), const("upd", [1])])
    model("range_zero_delta", [n("Range", ["zero", "four", "zero"], ["r"]), n("Reshape", ["x", "r"], ["y"])],
          [const("zero", 0), const("four", 4)])
    # Resize of constants (position embeddings, bias tables), of an activation (refused), and hostile
    # scales and sizes; the NaN guard the dynamo exporter puts on attention, and one on a non-softmax.
    table = numpy_helper.from_array(f32([1, 3, 2, 2]), "table")
    model("resize_cubic_table", [n("Resize", ["table", "", "", "sizes"], ["r"], mode="cubic", coordinate_transformation_mode="half_pixel"),
                                 n("Add", ["x", "r"], ["y"])], [table, const("sizes", [1, 3, 4, 4])])
    model("resize_linear_scales", [n("Resize", ["table", "", "scales"], ["r"], mode="linear"), n("Add", ["x", "r"], ["y"])],
          [table, const("scales", [1, 1, 2, 2], np.float32)])
    model("resize_nearest_axes", [n("Resize", ["table", "", "", "sizes"], ["r"], mode="nearest", axes=[2, 3]), n("Add", ["x", "r"], ["y"])],
          [table, const("sizes", [4, 4])], opset=18)
    model("resize_activation", [n("Resize", ["x", "", "scales"], ["y"], mode="linear")], [const("scales", [1, 1, 2, 2], np.float32)])
    model("resize_zero_scale", [n("Resize", ["table", "", "scales"], ["r"], mode="linear"), n("Add", ["x", "r"], ["y"])],
          [table, const("scales", [1, 1, 0, 1e-30], np.float32)])
    model("resize_nan_scale", [n("Resize", ["table", "", "scales"], ["r"], mode="cubic"), n("Add", ["x", "r"], ["y"])],
          [table, const("scales", [1, 1, float("nan"), 2], np.float32)])
    model("resize_huge_sizes", [n("Resize", ["table", "", "", "sizes"], ["r"], mode="nearest"), n("Add", ["x", "r"], ["y"])],
          [table, const("sizes", [1, 3, 1 << 40, 1 << 40])])
    model("resize_bad_mode", [n("Resize", ["table", "", "scales"], ["r"], mode="bicubic"), n("Add", ["x", "r"], ["y"])],
          [table, const("scales", [1, 1, 2, 2], np.float32)])
    model("resize_crop", [n("Resize", ["table", "roi", "scales"], ["r"], coordinate_transformation_mode="tf_crop_and_resize"),
                          n("Add", ["x", "r"], ["y"])], [table, const("roi", [0, 0, 0, 0, 1, 1, 1, 1], np.float32),
                                                         const("scales", [1, 1, 2, 2], np.float32)])
    model("nan_guard_softmax", tokens + [n("Softmax", ["t"], ["a"], axis=-1), n("IsNaN", ["a"], ["isnan"]),
                                         n("Where", ["isnan", "zero_f", "a"], ["y"])], [tok_shape, const("zero_f", 0.0, np.float32)])
    model("nan_guard_activation", [n("Exp", ["x"], ["e"]), n("IsNaN", ["e"], ["isnan"]), n("Where", ["isnan", "zero_f", "e"], ["y"])],
          [const("zero_f", 0.0, np.float32)])
    model("global_pool_tokens", tokens + [n("GlobalAveragePool", ["t"], ["y"])], [tok_shape])
    print(f"wrote {len([f for f in os.listdir(OUT) if f.startswith('arch_')])} seeds to {OUT}")


if __name__ == "__main__":
    main()
