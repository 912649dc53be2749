import XAI
import XAITestSupport

/// One row of the op table: random inputs, a forward built from backend primitives, and optionally
/// its backward (gradients of `sum(seed * forward)` with respect to `gradientInputs`).
struct OpCase {
    let name: String
    let inputs: [Tensor]
    let forward: (any Backend, [DeviceArray]) throws -> DeviceArray
    var gradientInputs: [Int] = []
    var backward: ((any Backend, [DeviceArray], DeviceArray) throws -> [DeviceArray])? = nil
}

nonisolated(unsafe) private var seedCounter: UInt64 = 1000
private func rand(_ shape: Shape, _ range: ClosedRange<Float> = -1...1) -> Tensor {
    seedCounter += 1
    return Tensor.uniform(shape, in: range, seed: seedCounter)
}

/// Conv cases: forward with bias+activation, and the bias/activation-free conv with its input backward.
private func convCases(_ name: String, x: Shape, w: Shape, _ p: Conv2DParams, activation: UnaryOp = .identity) -> [OpCase] {
    let xi = rand(x), wi = rand(w), bi = rand([w[0]])
    let fused = OpCase(name: "conv2d \(name) +bias \(activation)", inputs: [xi, wi, bi]) { be, a in
        try be.conv2d(a[0], weight: a[1], bias: a[2], params: p, activation: activation)
    }
    let plain = OpCase(name: "conv2d \(name)", inputs: [xi, wi], forward: { be, a in
        try be.conv2d(a[0], weight: a[1], bias: nil, params: p, activation: .identity)
    }, gradientInputs: [0], backward: { be, a, g in
        [try be.conv2dBackwardInput(g, weight: a[1], params: p, inputShape: a[0].shape)]
    })
    return [fused, plain]
}

private func poolCase(_ name: String, x: Shape, _ p: Pool2DParams) -> OpCase {
    OpCase(name: "pool2d \(name)", inputs: [rand(x)], forward: { be, a in try be.pool2d(a[0], params: p) },
           gradientInputs: [0], backward: { be, a, g in [try be.pool2dBackward(g, input: a[0], params: p)] })
}

private func binaryCase(_ op: BinaryOp, _ a: Shape, _ b: Shape) -> OpCase {
    let bRange: ClosedRange<Float> = op == .div ? 0.5...2 : -1...1
    return OpCase(name: "binary \(op) \(a) \(b)", inputs: [rand(a), rand(b, bRange)], forward: { be, x in
        try be.binary(op, x[0], x[1])
    }, gradientInputs: [0, 1], backward: { be, x, g in
        let (da, db) = try be.binaryBackward(op, gradOutput: g, a: x[0], b: x[1])
        return [da, db]
    })
}

private func unaryCases(_ op: UnaryOp, range: ClosedRange<Float> = -4...4, shape: Shape = [2, 3, 4, 5]) -> [OpCase] {
    let x = rand(shape, range)
    var cases = [OpCase(name: "unary \(op) \(shape)", inputs: [x], forward: { be, a in try be.unary(op, a[0]) },
                        gradientInputs: [0], backward: { be, a, g in
        [try be.unaryBackward(op, gradOutput: g, value: a[0], valueIsOutput: false)]
    })]
    if op.derivativeFromOutput {
        cases.append(OpCase(name: "unary \(op) (backward from output)", inputs: [x], forward: { be, a in try be.unary(op, a[0]) },
                            gradientInputs: [0], backward: { be, a, g in
            [try be.unaryBackward(op, gradOutput: g, value: try be.unary(op, a[0]), valueIsOutput: true)]
        }))
    }
    return cases
}

private func reduceCase(_ op: ReduceOp, _ x: Shape, _ axes: [Int]) -> OpCase {
    OpCase(name: "reduce \(op) \(x) axes \(axes)", inputs: [rand(x)], forward: { be, a in try be.reduce(op, a[0], axes: axes) },
           gradientInputs: [0], backward: { be, a, g in [try be.reduceBackward(op, gradOutput: g, input: a[0], axes: axes)] })
}

private func softmaxCase(_ x: Shape, axis: Int, log: Bool, range: ClosedRange<Float> = -3...3) -> OpCase {
    OpCase(name: "\(log ? "logSoftmax" : "softmax") \(x) axis \(axis) in \(range)", inputs: [rand(x, range)], forward: { be, a in
        try be.softmax(a[0], axis: axis, log: log)
    }, gradientInputs: [0], backward: { be, a, g in
        [try be.softmaxBackward(g, output: try be.softmax(a[0], axis: axis, log: log), axis: axis, log: log)]
    })
}

private func resizeCase(_ x: Shape, _ h: Int, _ w: Int, alignCorners: Bool) -> OpCase {
    OpCase(name: "resizeBilinear \(x) -> \(h)x\(w) alignCorners \(alignCorners)", inputs: [rand(x)], forward: { be, a in
        try be.resizeBilinear(a[0], height: h, width: w, alignCorners: alignCorners)
    }, gradientInputs: [0], backward: { be, a, g in
        [try be.resizeBilinearBackward(g, inputShape: a[0].shape, alignCorners: alignCorners)]
    })
}

/// Mask cases: inputs are image, baseline and (for segments) the label map; the descriptions are built
/// from seeded random numbers.
private func maskCases() -> [OpCase] {
    var rng = SeededGenerator(seed: 77)
    let (c, h, w) = (3, 7, 9)
    let image = rand([1, c, h, w]), baseline = rand([1, c, h, w])
    let segmentCount = 37  // two 32-bit words per sample
    let labels = Tensor.uniform([h, w], in: 0...Float(segmentCount) - 0.01, seed: 78)
    let labelTensor = try! Tensor(shape: [h, w], scalars: labels.scalars.map { $0.rounded(.down) })
    let samples = 5
    let keep = (0..<(samples * 2)).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
    let rects = (0..<4).map { _ in
        MaskRect(top: Int(rng.next() % 9) - 1, left: Int(rng.next() % 10) - 1, height: 1 + Int(rng.next() % 5), width: 1 + Int(rng.next() % 6))
    }
    let (gh, gw, uh, uw) = (4, 5, 12, 15)
    let shifts = (0..<3).map { _ in (Int(rng.next() % UInt64(uh - h + 1)), Int(rng.next() % UInt64(uw - w + 1))) }
    let cells = (0..<(3 * gh * gw)).map { _ in rng.nextUnitFloat() }
    // A random order of the 63 pixels, and counts from none to all.
    var order = Array(0..<(h * w))
    for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    let rankTensor = try! Tensor(shape: [h, w], scalars: order.map(Float.init))
    let counts = [0, 5, 31, h * w, 17]

    let specs: [(String, ([DeviceArray]) -> MaskSpec)] = [
        ("segments", { a in .segments(labels: a[2], keep: keep, wordsPerSample: 2) }),
        ("rectangles", { _ in .rectangles(rects) }),
        ("grids", { _ in .grids(cells: cells, gridH: gh, gridW: gw, upsampledH: uh, upsampledW: uw, shifts: shifts) }),
        // Drawn by the device's kernel, by the host elsewhere: the same bits or the case fails. The
        // shift ranges differ along the two axes, and the masks' indices need their high words and
        // carry into them (2^33 - 2 to 2^33 + 1).
        ("random grids", { _ in .randomGrids(RandomGrids(seed: 0x1_0000_0079, first: (1 << 33) - 2, count: 4, gridH: gh, gridW: gw,
                                                         keepProbability: 0.4, cellH: uh - h + 1, cellW: uw - w + 1, upsampledH: uh, upsampledW: uw)) }),
        ("ranks deleting", { a in .ranks(ranks: a[3], counts: counts, firstKept: false) }),
        ("ranks inserting", { a in .ranks(ranks: a[3], counts: counts, firstKept: true) }),
    ]
    return specs.flatMap { name, spec in [
        OpCase(name: "masks \(name)", inputs: [image, baseline, labelTensor, rankTensor]) { be, a in
            try be.masks(spec(a), height: h, width: w)
        },
        OpCase(name: "composite \(name)", inputs: [image, baseline, labelTensor, rankTensor]) { be, a in
            try be.composite(image: a[0], baseline: a[1], masks: spec(a))
        },
    ] }
}

/// Permute, slice, pad and concat, each with its backward written as its adjoint data movement.
private func dataMovementCases() -> [OpCase] {
    let perm = [0, 2, 3, 1]
    let inverse = [0, 3, 1, 2]
    return [
        OpCase(name: "permute NCHW->NHWC", inputs: [rand([2, 3, 4, 5])], forward: { be, a in try be.permute(a[0], perm) },
               gradientInputs: [0], backward: { be, _, g in [try be.permute(g, inverse)] }),
        OpCase(name: "slice", inputs: [rand([2, 5, 6, 7])], forward: { be, a in try be.slice(a[0], starts: [1, 1, 2, 0], sizes: [1, 3, 3, 5]) },
               gradientInputs: [0], backward: { be, _, g in [try be.pad(g, before: [1, 1, 2, 0], after: [0, 1, 1, 2], value: 0)] }),
        OpCase(name: "pad", inputs: [rand([1, 2, 3, 4])], forward: { be, a in try be.pad(a[0], before: [0, 1, 2, 0], after: [1, 0, 1, 3], value: 0.5) },
               gradientInputs: [0], backward: { be, _, g in [try be.slice(g, starts: [0, 1, 2, 0], sizes: [1, 2, 3, 4])] }),
        OpCase(name: "concat channels", inputs: [rand([2, 3, 4, 5]), rand([2, 2, 4, 5])], forward: { be, a in try be.concat([a[0], a[1]], axis: 1) },
               gradientInputs: [0, 1], backward: { be, _, g in
            [try be.slice(g, starts: [0, 0, 0, 0], sizes: [2, 3, 4, 5]), try be.slice(g, starts: [0, 3, 0, 0], sizes: [2, 2, 4, 5])]
        }),
        // Strided copies whose innermost axis is not contiguous on one side, and merged axes.
        OpCase(name: "permute reversed 3-D", inputs: [rand([3, 4, 5])], forward: { be, a in try be.permute(a[0], [2, 1, 0]) },
               gradientInputs: [0], backward: { be, _, g in [try be.permute(g, [2, 1, 0])] }),
        OpCase(name: "concat last axis, three parts", inputs: [rand([2, 3, 2]), rand([2, 3, 5]), rand([2, 3, 1])],
               forward: { be, a in try be.concat([a[0], a[1], a[2]], axis: -1) }),
        OpCase(name: "concat batch axis", inputs: [rand([1, 2, 3, 3]), rand([2, 2, 3, 3])], forward: { be, a in try be.concat([a[0], a[1]], axis: 0) }),
        OpCase(name: "pad every axis", inputs: [rand([2, 3, 4])], forward: { be, a in try be.pad(a[0], before: [1, 0, 2], after: [0, 2, 1], value: -0.25) }),
        // Only unit axes move: a view of the same elements, no copy.
        OpCase(name: "permute moving unit axes", inputs: [rand([1, 5, 1, 4])], forward: { be, a in try be.permute(a[0], [2, 1, 0, 3]) }),
        OpCase(name: "permute unit axes and two others", inputs: [rand([1, 5, 1, 4])], forward: { be, a in try be.permute(a[0], [2, 3, 0, 1]) }),
        OpCase(name: "slice inner box", inputs: [rand([3, 6, 7])], forward: { be, a in try be.slice(a[0], starts: [1, 2, 3], sizes: [2, 3, 4]) }),
        // Transposes that run as tiles on the CPU, with partial tiles and bands on both sides.
        OpCase(name: "permute NCHW->NHWC in tiles", inputs: [rand([2, 35, 9, 19])], forward: { be, a in try be.permute(a[0], [0, 2, 3, 1]) },
               gradientInputs: [0], backward: { be, _, g in [try be.permute(g, [0, 3, 1, 2])] }),
        OpCase(name: "permute NHWC->NCHW in tiles", inputs: [rand([2, 9, 19, 35])], forward: { be, a in try be.permute(a[0], [0, 3, 1, 2]) }),
        OpCase(name: "permute heads in tiles", inputs: [rand([3, 70, 2, 17])], forward: { be, a in try be.permute(a[0], [0, 2, 3, 1]) }),
        // torch.roll (Swin's shifted windows), either direction, and its adjoint the opposite roll.
        OpCase(name: "roll", inputs: [rand([2, 7, 9, 3])], forward: { be, a in try be.roll(a[0], axis: 1, shift: 3) },
               gradientInputs: [0], backward: { be, _, g in [try be.roll(g, axis: 1, shift: -3)] }),
        OpCase(name: "roll back past the extent", inputs: [rand([2, 7, 9, 3])], forward: { be, a in try be.roll(a[0], axis: -2, shift: -13) },
               gradientInputs: [0], backward: { be, _, g in [try be.roll(g, axis: 2, shift: 13)] }),
        // Slices with steps (Swin's patch merging) and their adjoint, the picks put back into zeros.
        OpCase(name: "stepped slice", inputs: [rand([2, 5, 9, 8])],
               forward: { be, a in try be.slice(a[0], starts: [0, 1, 0, 1], counts: [2, 2, 3, 4], steps: [1, 2, 4, 2]) },
               gradientInputs: [0], backward: { be, _, g in [try be.unslice(g, into: [2, 5, 9, 8], starts: [0, 1, 0, 1], steps: [1, 2, 4, 2])] }),
        // Moving nothing: views.
        OpCase(name: "slice of everything", inputs: [rand([2, 3, 4])], forward: { be, a in try be.slice(a[0], starts: [0, 0, 0], sizes: [2, 3, 4]) }),
        OpCase(name: "pad of nothing", inputs: [rand([2, 3, 4])], forward: { be, a in try be.pad(a[0], before: [0, 0, 0], after: [0, 0, 0], value: 1) }),
    ]
}

/// The composites transformers are built from: batched matrix products with broadcast batch axes
/// (attention's `Q K^T` and `A V`, a linear layer on tokens) and layer normalisation, forward and
/// backward to every activation operand.
private func transformerCases() -> [OpCase] {
    var cases: [OpCase] = []
    for (a, b, ta, tb) in [([2, 3, 5, 4], [2, 3, 4, 6], false, false), ([2, 3, 5, 4], [2, 3, 6, 4], false, true),
                           ([2, 1, 5, 4], [3, 4, 7], false, false), ([2, 7, 6], [6, 5], false, false), ([3, 4, 5], [3, 4, 6], true, false),
                           // Large enough for the CPU's oneDNN matmul (one call over the batch, operands read in place).
                           ([2, 3, 40, 32], [2, 3, 48, 32], false, true), ([2, 1, 40, 32], [3, 32, 48], false, false),
                           ([3, 32, 40], [1, 32, 50], true, false), ([2, 50, 40], [40, 60], false, false)] {
        // The large ones forward only: their backward is the same composite of transposed
        // products, and finite differences in float64 would take seconds per element count.
        let large = a.reduce(1, *) > 1000
        cases.append(OpCase(name: "batchedMatMul \(a) x \(b) tA \(ta) tB \(tb)", inputs: [rand(Shape(a)), rand(Shape(b))], forward: { be, x in
            try be.batchedMatMul(x[0], x[1], transposeA: ta, transposeB: tb)
        }, gradientInputs: ta || tb || large ? [] : [0, 1], backward: ta || tb || large ? nil : { be, x, g in
            let r = try be.batchedMatMulBackward(gradOutput: g, a: x[0], b: x[1], needed: [0, 1])
            return [r[0]!, r[1]!]
        }))
    }
    // With a bias of the last extent: one GEMM starting from it (2-D weight), or added after.
    for (a, b) in [([2, 7, 6], [6, 5]), ([2, 3, 5, 4], [2, 3, 4, 6]), ([2, 60, 40], [40, 70])] {
        cases.append(OpCase(name: "batchedMatMul \(a) x \(b) + bias", inputs: [rand(Shape(a)), rand(Shape(b)), rand([b[b.count - 1]])]) { be, x in
            try be.batchedMatMul(x[0], x[1], bias: x[2])
        })
    }
    for (x, axes) in [([2, 5, 8], [2]), ([2, 3, 4, 6], [2, 3])] {
        let normalized = Shape(axes.map { x[$0] })
        cases.append(OpCase(name: "layerNorm \(x) axes \(axes)", inputs: [rand(Shape(x), -2...3), rand(normalized, 0.5...1.5), rand(normalized)], forward: { be, a in
            try be.layerNorm(a[0], axes: axes, epsilon: 1e-5, scale: a[1], bias: a[2])
        }, gradientInputs: [0], backward: { be, a, g in
            [try be.layerNormBackward(g, input: a[0], axes: axes, epsilon: 1e-5, scale: a[1])]
        }))
    }
    // No bias; and a scale broadcast along a normalised axis (composed from reductions, not the primitive).
    cases.append(OpCase(name: "layerNorm [4, 7, 33] no bias", inputs: [rand([4, 7, 33], -2...3), rand([33], 0.5...1.5)], forward: { be, a in
        try be.layerNorm(a[0], axes: [-1], epsilon: 1e-6, scale: a[1], bias: nil)
    }, gradientInputs: [0], backward: { be, a, g in [try be.layerNormBackward(g, input: a[0], axes: [-1], epsilon: 1e-6, scale: a[1])] }))
    cases.append(OpCase(name: "layerNorm [2, 3, 4, 6] axes [2, 3] broadcast scale", inputs: [rand([2, 3, 4, 6], -2...3), rand([6], 0.5...1.5), rand([6])],
                        forward: { be, a in try be.layerNorm(a[0], axes: [2, 3], epsilon: 1e-5, scale: a[1], bias: a[2]) },
                        gradientInputs: [0], backward: { be, a, g in [try be.layerNormBackward(g, input: a[0], axes: [2, 3], epsilon: 1e-5, scale: a[1])] }))
    // Einsum as attention writes it, a linear layer, a permutation; with gradients from the
    // gradient equations (out,other->operand).
    let einsums: [(String, [Shape])] = [("bhid,bhjd->bhij", [[2, 3, 4, 5], [2, 3, 6, 5]]), ("bhij,bhjd->bhid", [[2, 3, 4, 6], [2, 3, 6, 5]]),
                                        ("bij,jk->bik", [[2, 4, 5], [5, 3]]), ("ij,jk", [[3, 4], [4, 5]]), ("abc->cab", [[2, 3, 4]]),
                                        ("abc,bcd->ad", [[2, 3, 4], [3, 4, 5]])]
    for (text, shapes) in einsums {
        // A test table: an equation that does not parse is a bug in the table.
        let equation = try! EinsumEquation(text, operands: shapes.count)
        cases.append(OpCase(name: "einsum \(text)", inputs: shapes.map { rand($0) }, forward: { be, x in try equation.evaluate(x, on: be) },
                            gradientInputs: Array(0..<shapes.count), backward: { be, x, g in
            try (0..<shapes.count).map { i in
                guard let ge = equation.gradientEquation(i) else { throw XAIError.unsupported(op: "einsum", reason: "no gradient equation") }
                return try ge.evaluate([g] + x.indices.filter { $0 != i }.map { x[$0] }, on: be)
            }
        }))
    }
    // Summed-out letters (forward only).
    for (text, shapes) in [("abc,cd->ad", [Shape([2, 3, 4]), [4, 5]]), ("ij->i", [[3, 4]])] {
        // A test table: an equation that does not parse is a bug in the table.
        let equation = try! EinsumEquation(text, operands: shapes.count)
        cases.append(OpCase(name: "einsum \(text)", inputs: shapes.map { rand($0) }) { be, x in try equation.evaluate(x, on: be) })
    }
    // A middle axis normalised, the scale broadcast over the last: composed, never the primitive.
    cases.append(OpCase(name: "layerNorm [3, 6, 4] axis 1 scale [6, 4]", inputs: [rand([3, 6, 4], -2...3), rand([6, 4], 0.5...1.5)], forward: { be, a in
        try be.layerNorm(a[0], axes: [1], epsilon: 1e-5, scale: a[1], bias: nil)
    }, gradientInputs: [0], backward: { be, a, g in [try be.layerNormBackward(g, input: a[0], axes: [1], epsilon: 1e-5, scale: a[1])] }))
    return cases
}

/// The op table: random shapes with odd sizes, stride 2, asymmetric padding, groups, dilation,
/// ceil-mode pooling and batches above one.
nonisolated(unsafe) let opCases: [OpCase] = {
    var cases: [OpCase] = []
    cases += convCases("3x3 pad 1", x: [2, 3, 7, 9], w: [4, 3, 3, 3], Conv2DParams(padding: 1), activation: .relu)
    cases += convCases("3x2 stride 2 asymmetric pad", x: [1, 4, 9, 8], w: [5, 4, 3, 2],
                       Conv2DParams(strides: (2, 2), pads: (1, 0, 2, 1)), activation: .sigmoid)
    cases += convCases("dilation 2", x: [2, 2, 11, 10], w: [3, 2, 3, 3], Conv2DParams(padding: 2, dilation: 2), activation: .silu)
    cases += convCases("groups 2", x: [1, 4, 8, 7], w: [6, 2, 3, 3], Conv2DParams(padding: 1, groups: 2), activation: .hardSwish)
    cases += convCases("depthwise stride 2", x: [2, 5, 9, 8], w: [5, 1, 3, 3], Conv2DParams(stride: 2, padding: 1, groups: 5), activation: .relu6)
    cases += convCases("depthwise multiplier 2", x: [1, 3, 6, 7], w: [6, 1, 3, 3], Conv2DParams(padding: 1, groups: 3), activation: .tanh)
    cases += convCases("pointwise", x: [2, 6, 5, 7], w: [8, 6, 1, 1], Conv2DParams(), activation: .leakyRelu(alpha: 0.1))
    cases += convCases("1x1 stride 2", x: [1, 6, 7, 9], w: [4, 6, 1, 1], Conv2DParams(stride: 2), activation: .hardSigmoid(alpha: 0.2, beta: 0.5))
    cases += convCases("7x7 stride 2 pad 3", x: [1, 3, 13, 11], w: [4, 3, 7, 7], Conv2DParams(stride: 2, padding: 3), activation: .clip(-0.5, 0.5))
    // A stem whose input gradient the CPU backend gathers from oneDNN's column product: filters
    // past one channel block, unequal strides, one-sided pads and a dilation.
    cases += convCases("stem 5x4 strides (2,1) pads (2,1,1,2) dilation (1,2)", x: [2, 3, 12, 13], w: [20, 3, 5, 4],
                       Conv2DParams(strides: (2, 1), pads: (2, 1, 1, 2), dilations: (1, 2)), activation: .relu)
    // Depthwise and grouped convolutions with asymmetric pads, unequal strides and dilations: the
    // geometry each backend's depthwise and grouped paths must get right, forward and backward.
    cases += convCases("depthwise strides (2,1) pads (1,0,2,1) dilation (1,2)", x: [2, 4, 9, 10], w: [4, 1, 3, 3],
                       Conv2DParams(strides: (2, 1), pads: (1, 0, 2, 1), dilations: (1, 2), groups: 4), activation: .relu)
    cases += convCases("depthwise multiplier 2 strides (1,3) pads (0,2,1,0)", x: [1, 3, 8, 11], w: [6, 1, 3, 2],
                       Conv2DParams(strides: (1, 3), pads: (0, 2, 1, 0), groups: 3), activation: .identity)
    cases += convCases("groups 3 strides (1,2) pads (0,1,1,0) dilation (2,1)", x: [2, 6, 9, 8], w: [9, 2, 3, 2],
                       Conv2DParams(strides: (1, 2), pads: (0, 1, 1, 0), dilations: (2, 1), groups: 3), activation: .leakyRelu(alpha: 0.3))

    // A ResNet block's end: relu(conv(x) + bias + skip), the residual fused into the convolution.
    let rx = rand([2, 6, 7, 9]), rw = rand([16, 6, 3, 3]), rb = rand([16]), skip = rand([2, 16, 7, 9])
    cases.append(OpCase(name: "conv2d 3x3 + bias + residual relu", inputs: [rx, rw, rb, skip]) { be, a in
        try be.conv2d(a[0], weight: a[1], bias: a[2], residual: a[3], params: Conv2DParams(padding: 1), activation: .relu)
    })
    cases.append(OpCase(name: "conv2d depthwise stride 2 + residual", inputs: [rand([1, 5, 8, 8]), rand([5, 1, 3, 3]), rand([1, 5, 4, 4])]) { be, a in
        try be.conv2d(a[0], weight: a[1], bias: nil, residual: a[2], params: Conv2DParams(stride: 2, padding: 1, groups: 5), activation: .identity)
    })

    let ga = rand([5, 7]), gb = rand([7, 3])
    cases.append(OpCase(name: "gemm", inputs: [ga, gb]) { be, a in
        try be.gemm(a[0], a[1], transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity)
    })
    cases.append(OpCase(name: "gemm transposed alpha bias relu", inputs: [rand([7, 5]), rand([3, 7]), rand([3])]) { be, a in
        try be.gemm(a[0], a[1], transposeA: true, transposeB: true, alpha: 0.5, bias: a[2], activation: .relu)
    })
    cases.append(OpCase(name: "gemm odd tiles", inputs: [rand([67, 45]), rand([45, 70])]) { be, a in
        try be.gemm(a[0], a[1], transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity)
    })
    // Large enough for the CPU backend to split the product over cores: by rows, then by columns.
    cases.append(OpCase(name: "gemm split by rows", inputs: [rand([150, 90]), rand([90, 70])]) { be, a in
        try be.gemm(a[0], a[1], transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity)
    })
    // Bias and activation fused into the CPU's oneDNN matmul (GELU's post-op); alpha without a bias.
    cases.append(OpCase(name: "gemm with bias and GELU", inputs: [rand([120, 64]), rand([64, 96]), rand([96])]) { be, a in
        try be.gemm(a[0], a[1], transposeA: false, transposeB: false, alpha: 1, bias: a[2], activation: .gelu)
    })
    cases.append(OpCase(name: "gemm scaled, transposed B", inputs: [rand([120, 64]), rand([96, 64])]) { be, a in
        try be.gemm(a[0], a[1], transposeA: false, transposeB: true, alpha: 0.125, bias: nil, activation: .identity)
    })
    cases.append(OpCase(name: "gemm split by columns, transposed, bias", inputs: [rand([90, 40]), rand([200, 90]), rand([200])]) { be, a in
        try be.gemm(a[0], a[1], transposeA: true, transposeB: true, alpha: 1.5, bias: a[2], activation: .sigmoid)
    })
    // One row or one column of the product (a classifier at batch 1, and its backward): every
    // transpose, with bias and alpha, unsplit and split over the CPU's cores.
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        for (m, n, k) in [(1, 9, 6), (1, 300, 70), (8, 1, 5), (300, 1, 70)] {
            let a = rand(ta ? [k, m] : [m, k]), b = rand(tb ? [n, k] : [k, n])
            cases.append(OpCase(name: "gemm \(m)x\(n)x\(k) tA \(ta) tB \(tb) bias", inputs: [a, b, rand([n])]) { be, x in
                try be.gemm(x[0], x[1], transposeA: ta, transposeB: tb, alpha: 0.75, bias: x[2], activation: .identity)
            })
        }
    }
    cases.append(OpCase(name: "fullyConnected", inputs: [rand([3, 10]), rand([4, 10]), rand([4])], forward: { be, a in
        try be.fullyConnected(a[0], weight: a[1], bias: a[2])
    }, gradientInputs: [0], backward: { be, a, g in [try be.fullyConnectedBackwardInput(g, weight: a[1])] }))

    cases.append(poolCase("max 3x3 stride 2 pad 1", x: [2, 3, 9, 8], Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1))))
    cases.append(poolCase("max 3x3 stride 2 ceil", x: [1, 2, 10, 9], Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), ceilMode: true)))
    cases.append(poolCase("max 2x3 stride (1,2) asymmetric pad", x: [2, 2, 6, 9], Pool2DParams(.max, kernel: (2, 3), stride: (1, 2), padding: (1, 0, 0, 2))))
    cases.append(poolCase("avg 3x3 stride 2 pad 1 ceil include pad", x: [1, 3, 10, 9],
                          Pool2DParams(.average, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1), ceilMode: true, countIncludePad: true)))
    cases.append(poolCase("avg 3x3 stride 2 pad 1 ceil exclude pad", x: [1, 3, 10, 9],
                          Pool2DParams(.average, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1), ceilMode: true, countIncludePad: false)))
    cases.append(poolCase("avg 2x2", x: [2, 3, 8, 6], Pool2DParams(.average, kernel: (2, 2))))
    cases.append(OpCase(name: "globalAveragePool", inputs: [rand([2, 3, 5, 7])], forward: { be, a in try be.globalAveragePool(a[0]) },
                        gradientInputs: [0], backward: { be, a, g in [try be.globalAveragePoolBackward(g, input: a[0])] }))
    // Tokens [N, C, T] (Hugging Face's Swin pools them with AdaptiveAvgPool1d).
    cases.append(OpCase(name: "globalAveragePool over tokens", inputs: [rand([2, 6, 7])], forward: { be, a in try be.globalAveragePool(a[0]) },
                        gradientInputs: [0], backward: { be, a, g in [try be.globalAveragePoolBackward(g, input: a[0])] }))

    cases.append(binaryCase(.sub, [2, 3, 4, 5], [1, 3, 1, 1]))
    // Same shapes take the contiguous loops; every op both ways round.
    for op in BinaryOp.allCases { cases.append(binaryCase(op, [2, 3, 4, 5], [2, 3, 4, 5])) }
    cases.append(binaryCase(.mul, [2, 1, 4, 5], [3, 1, 1]))
    cases.append(binaryCase(.div, [3, 4], [2, 1, 4]))
    cases.append(binaryCase(.mul, [2, 3, 4, 5], [1]))
    for op: UnaryOp in [.identity, .relu, .relu6, .clip(-1, 2), .leakyRelu(alpha: 0.2), .sigmoid, .tanh, .silu,
                        .hardSigmoid(alpha: 0.2, beta: 0.5), .hardSwish, .gelu, .geluTanh, .erf, .exp, .pow(2), .pow(3)] {
        cases += unaryCases(op)
    }
    // Functions defined for positive inputs only.
    for op: UnaryOp in [.sqrt, .pow(0.5), .pow(-1)] { cases += unaryCases(op, range: 0.25...4) }
    // Large enough for the CPU backend to hand GELU to oneDNN's vectorised primitive.
    for op: UnaryOp in [.gelu, .geluTanh] { cases += unaryCases(op, shape: [2, 8, 300]) }
    cases += transformerCases()
    cases.append(reduceCase(.sum, [2, 3, 4, 5], [1, 3]))
    cases.append(reduceCase(.mean, [2, 3, 4, 5], [2, 3]))
    cases.append(reduceCase(.max, [2, 3, 4, 5], [1]))
    cases.append(reduceCase(.sum, [3, 4, 5], [0, 1, 2]))
    cases.append(reduceCase(.max, [4, 7], [-1]))
    cases.append(reduceCase(.min, [2, 3, 4, 5], [2, 3]))
    cases.append(reduceCase(.min, [3, 7], [0]))
    cases.append(softmaxCase([2, 5, 3], axis: 1, log: false))
    cases.append(softmaxCase([3, 7], axis: -1, log: true))
    cases.append(softmaxCase([2, 10], axis: 1, log: false))
    // Rows past the 8 summing lanes, with a wide range (attention scores).
    cases.append(softmaxCase([3, 4, 37], axis: -1, log: false))
    cases.append(softmaxCase([2, 29], axis: 1, log: true))
    // Along a middle or first axis (the strided loops), with values far beyond exp's float range:
    // only the per-row maximum, every element of it, keeps the exponentials finite.
    cases.append(softmaxCase([2, 5, 3], axis: 1, log: false, range: -300...300))
    cases.append(softmaxCase([4, 3, 2], axis: 0, log: true, range: -300...300))
    cases.append(resizeCase([1, 2, 5, 7], 11, 13, alignCorners: false))
    cases.append(resizeCase([2, 1, 7, 6], 4, 9, alignCorners: true))
    cases.append(resizeCase([1, 1, 9, 8], 4, 5, alignCorners: false))
    cases += maskCases()
    cases += dataMovementCases()
    return cases
}()
