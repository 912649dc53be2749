// Validated operands. Each primitive's checked entry point (Backend+Checked.swift) builds one of
// these plans from the caller's arrays; a plan exists only for operands that fit the op, so the
// backends, which receive plans, assume valid input and check nothing but where their memory lives.
// The plans also carry what every backend would otherwise recompute (output shapes, extents,
// strides).

/// `op(a) * op(b)` with `a` `[M, K]` (or `[K, M]`), `b` `[K, N]` (or `[N, K]`) and an optional bias of `N`.
public struct GemmPlan: Sendable, Hashable {
    public let m: Int, n: Int, k: Int
    public let transposeA: Bool, transposeB: Bool
    /// Row strides of the operands as stored (their second extent).
    public let lda: Int, ldb: Int

    public init(a: Shape, b: Shape, transposeA: Bool, transposeB: Bool, bias: Shape?) throws {
        guard a.rank == 2, b.rank == 2 else {
            throw XAIError.shapeMismatch(op: "gemm", expected: "2-D operands", got: [a, b])
        }
        let (m, k) = transposeA ? (a[1], a[0]) : (a[0], a[1])
        let (kb, n) = transposeB ? (b[1], b[0]) : (b[0], b[1])
        guard k == kb else {
            throw XAIError.shapeMismatch(op: "gemm", expected: "equal inner dimensions (\(k) and \(kb) differ)", got: [a, b])
        }
        if let bias, bias.count != n {
            throw XAIError.shapeMismatch(op: "gemm", expected: "a bias of \(n) values", got: [a, b, bias])
        }
        (self.m, self.n, self.k) = (m, n, k)
        (self.transposeA, self.transposeB) = (transposeA, transposeB)
        (lda, ldb) = (a[1], b[1])
    }

    public var outputShape: Shape { [m, n] }
}

/// Matrix products over broadcast batch axes: `a` `batchA + [M, K]` (or `[K, M]` stored), `b`
/// `batchB + [K, N]` (or `[N, K]`), output `batch + [M, N]`. The three batch shapes have one rank;
/// an operand's extent is the output's or 1 (broadcast).
public struct BatchedGemmPlan: Sendable, Hashable {
    public let batch: [Int], batchA: [Int], batchB: [Int]
    public let m: Int, n: Int, k: Int
    public let transposeA: Bool, transposeB: Bool

    public init(a: Shape, b: Shape, transposeA: Bool, transposeB: Bool) throws {
        guard a.rank >= 2, b.rank >= 2 else {
            throw XAIError.shapeMismatch(op: "MatMul", expected: "operands of rank 2 or more", got: [a, b])
        }
        let (ra, rb) = (a.rank, b.rank)
        let (m, k) = transposeA ? (a[ra - 1], a[ra - 2]) : (a[ra - 2], a[ra - 1])
        let (kb, n) = transposeB ? (b[rb - 1], b[rb - 2]) : (b[rb - 2], b[rb - 1])
        guard k == kb else {
            throw XAIError.shapeMismatch(op: "MatMul", expected: "the same inner extent (\(k) and \(kb))", got: [a, b])
        }
        let own = (Array(a.dims.dropLast(2)), Array(b.dims.dropLast(2)))
        guard let batch = Shape.broadcast(Shape(own.0), Shape(own.1)) else {
            throw XAIError.shapeMismatch(op: "MatMul", expected: "batch axes that broadcast together", got: [a, b])
        }
        func padded(_ d: [Int]) -> [Int] { [Int](repeating: 1, count: batch.rank - d.count) + d }
        (self.batch, batchA, batchB) = (batch.dims, padded(own.0), padded(own.1))
        (self.m, self.n, self.k) = (m, n, k)
        (self.transposeA, self.transposeB) = (transposeA, transposeB)
    }

    /// A plain GEMM: no batch axes.
    public init(_ gemm: GemmPlan) {
        (batch, batchA, batchB) = ([], [], [])
        (m, n, k) = (gemm.m, gemm.n, gemm.k)
        (transposeA, transposeB) = (gemm.transposeA, gemm.transposeB)
    }

    public var outputShape: Shape { Shape(batch + [m, n]) }
}

/// A 2-D convolution: input `[N, Cin, H, W]`, weight `[Cout, Cin / groups, kH, kW]`, output `[N, Cout, OH, OW]`.
public struct ConvPlan: Sendable, Hashable {
    public let input: Shape, weight: Shape, output: Shape
    public let params: Conv2DParams
    /// Computed by an exact algorithm (direct, not Winograd): every pass whose activations a
    /// backward pass differentiates. Winograd's rounding flips ReLUs whose input is near zero and
    /// sends a gradient down other paths (VGG16's input gradient: 1e-2 from PyTorch's, 1.5e-6 direct).
    public var exact = true

    public var n: Int { input[0] }
    public var inputChannels: Int { input[1] }
    public var height: Int { input[2] }
    public var width: Int { input[3] }
    public var outputChannels: Int { weight[0] }
    public var kernelHeight: Int { weight[2] }
    public var kernelWidth: Int { weight[3] }
    public var outputHeight: Int { output[2] }
    public var outputWidth: Int { output[3] }
    /// Input and output channels of one group.
    public var inputChannelsPerGroup: Int { input[1] / params.groups }
    public var outputChannelsPerGroup: Int { weight[0] / params.groups }
    /// One filter per channel.
    public var isDepthwise: Bool { params.groups == input[1] && params.groups == weight[0] }
    /// The layer without its batch, as tuning tables name it: input channels and size, weight,
    /// stride, pads, dilation, groups (`c64x56x56 w64x64x3x3 s1x1 p1,1,1,1 d1x1 g1`).
    public var layer: String {
        let p = params
        return "c\(input.dims.dropFirst().map(String.init).joined(separator: "x")) w\(weight.dims.map(String.init).joined(separator: "x"))"
            + " s\(p.strideH)x\(p.strideW) p\(p.padTop),\(p.padLeft),\(p.padBottom),\(p.padRight) d\(p.dilationH)x\(p.dilationW) g\(p.groups)"
    }
    /// A 1x1, stride-1, unpadded, ungrouped convolution: a plain matrix product per image.
    public var isPointwise: Bool { params.isPointwise(weight: weight) }

    /// The forward convolution of `input` by `weight` (plus a bias of `Cout` values, plus a
    /// residual shaped like the output).
    public init(input: Shape, weight: Shape, bias: Shape?, residual: Shape? = nil, params: Conv2DParams) throws {
        output = try params.outputShape(input: input, weight: weight)
        if let bias, bias.count != weight[0] {
            throw XAIError.shapeMismatch(op: "conv2d", expected: "a bias of \(weight[0]) values", got: [input, weight, bias])
        }
        if let residual, residual != output {
            throw XAIError.shapeMismatch(op: "conv2d", expected: "a residual shaped like the output \(output)", got: [input, weight, residual])
        }
        self.input = input
        self.weight = weight
        self.params = params
    }

    /// The gradient with respect to an input of `inputShape`, given the gradient of the output.
    public init(gradient: Shape, weight: Shape, inputShape: Shape, params: Conv2DParams) throws {
        output = try params.outputShape(input: inputShape, weight: weight)
        guard gradient == output else {
            throw XAIError.shapeMismatch(op: "conv2dBackwardInput", expected: "an output gradient of \(output)", got: [gradient, weight, inputShape])
        }
        input = inputShape
        self.weight = weight
        self.params = params
    }
}

/// Max or average pooling of `[N, C, H, W]`.
public struct PoolPlan: Sendable, Hashable {
    public let input: Shape, output: Shape
    public let params: Pool2DParams

    public init(input: Shape, params: Pool2DParams) throws {
        output = try params.outputShape(input: input)
        self.input = input
        self.params = params
    }

    /// The backward of pooling `input`, given the output's gradient.
    public init(gradient: Shape, input: Shape, params: Pool2DParams) throws {
        try self.init(input: input, params: params)
        guard gradient == output else {
            throw XAIError.shapeMismatch(op: "pool2dBackward", expected: "an output gradient of \(output) (\(params))", got: [gradient, input])
        }
    }

    /// Planes (`N * C`).
    public var planes: Int { input[0] * input[1] }
}

/// A pointwise function over an array of any shape.
public struct UnaryPlan: Sendable, Hashable {
    public let op: UnaryOp
    public let shape: Shape
    public init(_ op: UnaryOp, shape: Shape) { self.op = op; self.shape = shape }
}

/// `gradOutput * op'(.)` from the op's input (or its output when `valueIsOutput`).
public struct UnaryBackwardPlan: Sendable, Hashable {
    public let op: UnaryOp
    public let shape: Shape
    public let valueIsOutput: Bool

    public init(_ op: UnaryOp, gradient: Shape, value: Shape, valueIsOutput: Bool) throws {
        guard gradient == value else {
            throw XAIError.shapeMismatch(op: "unaryBackward(\(op))", expected: "a gradient shaped like the value", got: [gradient, value])
        }
        guard !valueIsOutput || op.derivativeFromOutput else {
            throw XAIError.unsupported(op: "unaryBackward(\(op))", reason: "its derivative needs the op's input, not its output")
        }
        self.op = op
        shape = value
        self.valueIsOutput = valueIsOutput
    }
}

/// Strided reads of two operands broadcast to a common output shape (numpy rules).
public struct BroadcastPlan: Sendable, Hashable {
    public let outputShape: Shape
    public let aStrides: [Int], bStrides: [Int]
    /// The two operands have the same shape (no broadcasting).
    public let sameShape: Bool

    public init(_ a: Shape, _ b: Shape, op: String) throws {
        guard let out = Shape.broadcast(a, b) else {
            throw XAIError.shapeMismatch(op: op, expected: "shapes that broadcast", got: [a, b])
        }
        outputShape = out
        aStrides = a.broadcastStrides(to: out)
        bStrides = b.broadcastStrides(to: out)
        sameShape = a == b
    }

    /// Offsets into `a` and `b` of output element `i`.
    @inline(__always) public func offsets(_ i: Int) -> (Int, Int) {
        var rem = i, oa = 0, ob = 0
        var d = outputShape.rank - 1
        while d >= 0 {
            let c = rem % outputShape.dims[d]
            rem /= outputShape.dims[d]
            oa += c * aStrides[d]; ob += c * bStrides[d]
            d -= 1
        }
        return (oa, ob)
    }
}

/// How a reduction walks its input: outputs enumerate the kept axes, each output sums over the
/// reduced axes. Axes of extent 1 are dropped from both lists.
public struct ReducePlan: Sendable, Hashable {
    public let inputShape: Shape
    public let outputShape: Shape
    public let keptDims: [Int], keptStrides: [Int]
    public let reducedDims: [Int], reducedStrides: [Int]
    public var outputCount: Int { keptDims.reduce(1, *) }
    public var reducedCount: Int { reducedDims.reduce(1, *) }

    public init(input: Shape, axes: [Int], op: String) throws {
        var set = Set<Int>()
        for a in axes {
            guard let n = input.normalizedAxis(a) else {
                throw XAIError.invalidArgument(parameter: "axes", value: "\(axes)", reason: "\(op): axis \(a) is out of range for \(input)")
            }
            set.insert(n)
        }
        let strides = input.strides
        var out = input.dims
        var kd: [Int] = [], ks: [Int] = [], rd: [Int] = [], rs: [Int] = []
        for i in 0..<input.rank {
            if set.contains(i) {
                out[i] = 1
                if input[i] != 1 { rd.append(input[i]); rs.append(strides[i]) }
            } else if input[i] != 1 {
                kd.append(input[i]); ks.append(strides[i])
            }
        }
        inputShape = input
        outputShape = Shape(out)
        keptDims = kd; keptStrides = ks; reducedDims = rd; reducedStrides = rs
    }

    /// The backward of reducing `input`, given a gradient with one value per output.
    public init(gradient: Shape, input: Shape, axes: [Int], op: String) throws {
        try self.init(input: input, axes: axes, op: op)
        guard gradient.count == outputCount else {
            throw XAIError.shapeMismatch(op: op, expected: "a gradient of the output's \(outputShape) elements", got: [gradient, input])
        }
    }

    /// Offset in the input of output element `o` (reduced coordinates at zero).
    @inline(__always) public func baseOffset(_ o: Int) -> Int { Self.offset(o, keptDims, keptStrides) }
    /// Offset of the `r`-th reduced element relative to the base offset.
    @inline(__always) public func reducedOffset(_ r: Int) -> Int { Self.offset(r, reducedDims, reducedStrides) }

    @inline(__always) static func offset(_ linear: Int, _ dims: [Int], _ strides: [Int]) -> Int {
        var rem = linear, off = 0
        var i = dims.count - 1
        while i >= 0 {
            off += (rem % dims[i]) * strides[i]
            rem /= dims[i]
            i -= 1
        }
        return off
    }
}

/// Softmax along one axis of a shape split into `(outer, extent, inner)`.
public struct SoftmaxPlan: Sendable, Hashable {
    public let shape: Shape
    public let outer: Int, extent: Int, inner: Int
    public let log: Bool

    public init(_ shape: Shape, axis: Int, log: Bool) throws {
        guard let a = shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "softmax: out of range for \(shape)")
        }
        self.shape = shape
        (outer, extent, inner) = (shape.dims[..<a].reduce(1, *), shape[a], shape.dims[(a + 1)...].reduce(1, *))
        self.log = log
    }

    /// The backward, given the softmax output and its gradient.
    public init(gradient: Shape, output: Shape, axis: Int, log: Bool) throws {
        guard gradient == output else {
            throw XAIError.shapeMismatch(op: "softmaxBackward", expected: "a gradient shaped like the output", got: [gradient, output])
        }
        try self.init(output, axis: axis, log: log)
    }
}

/// Layer normalisation over the trailing axes from `axis` on: `rows` rows of `columns` values,
/// with a scale (and bias) of one value per column.
public struct LayerNormPlan: Sendable, Hashable {
    public let shape: Shape
    public let rows: Int, columns: Int
    public let epsilon: Float

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for an axis out of range or a
    ///   negative or non-finite epsilon, ``XAIError/shapeMismatch(op:expected:got:)`` for a scale or
    ///   bias that is not one value per normalised element.
    public init(_ shape: Shape, axis: Int, epsilon: Float, scale: Shape, bias: Shape?) throws {
        guard let a = shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "layerNorm: out of range for \(shape)")
        }
        guard epsilon >= 0, epsilon.isFinite else {
            throw XAIError.invalidArgument(parameter: "epsilon", value: "\(epsilon)", reason: "layerNorm: must be finite and not negative")
        }
        self.shape = shape
        (rows, columns) = (shape.dims[..<a].reduce(1, *), shape.dims[a...].reduce(1, *))
        guard scale.count == columns, (bias?.count ?? columns) == columns else {
            throw XAIError.shapeMismatch(op: "layerNorm", expected: "a scale and bias of \(columns) values (the normalised axes of \(shape))",
                                         got: [scale] + (bias.map { [$0] } ?? []))
        }
        self.epsilon = epsilon
    }
}

/// Bilinear resizing of the two spatial axes of `[N, C, H, W]` (PyTorch `interpolate` semantics).
public struct ResizePlan: Sendable, Hashable {
    public let input: Shape, output: Shape
    public let alignCorners: Bool

    public init(input: Shape, height: Int, width: Int, alignCorners: Bool) throws {
        guard input.rank == 4 else { throw XAIError.shapeMismatch(op: "resizeBilinear", expected: "a 4-D input", got: [input]) }
        guard height > 0, width > 0 else {
            throw XAIError.invalidArgument(parameter: "size", value: "\(height)x\(width)", reason: "resizeBilinear: the output size must be positive")
        }
        self.input = input
        output = Shape([input[0], input[1], height, width])
        self.alignCorners = alignCorners
    }

    /// The backward of resizing an input of `inputShape` to the gradient's size.
    public init(gradient: Shape, inputShape: Shape, alignCorners: Bool) throws {
        guard inputShape.rank == 4, gradient.rank == 4, gradient[0] == inputShape[0], gradient[1] == inputShape[1], gradient.count > 0 else {
            throw XAIError.shapeMismatch(op: "resizeBilinearBackward", expected: "4-D gradient and input with equal N and C", got: [gradient, inputShape])
        }
        input = inputShape
        output = gradient
        self.alignCorners = alignCorners
    }

    public var planes: Int { input[0] * input[1] }
}

/// Masks for `sampleCount` perturbed copies of an `height x width` image, checked against the image
/// (and, for segments, against the label values, read once per label array).
public struct MaskPlan: Sendable {
    public let spec: MaskSpec
    public let height: Int, width: Int
    /// The checked range of the segment labels (segment masks only).
    public let labelRange: LabelRange?

    public init(_ spec: MaskSpec, height: Int, width: Int, labelRange: LabelRange?) throws {
        guard height > 0, width > 0 else {
            throw XAIError.invalidArgument(parameter: "size", value: "\(height)x\(width)", reason: "masks: the image size must be positive")
        }
        switch spec {
        case .segments(let labels, let keep, let words):
            guard labels.shape.count == height * width else {
                throw XAIError.shapeMismatch(op: "mask(segments)", expected: "a label map of \(height)x\(width) values", got: [labels.shape])
            }
            guard words > 0, keep.count % words == 0 else {
                throw XAIError.invalidArgument(parameter: "wordsPerSample", value: "\(words)",
                                               reason: "mask(segments): \(keep.count) words is not a multiple of it")
            }
            guard let r = labelRange else {
                throw XAIError.invalidArgument(parameter: "labels", value: "", reason: "mask(segments): the label values were not checked")
            }
            let limit = words * 32
            guard r.finite && r.lo >= 0 && Double(r.hi) < Double(limit) else {
                let bad = !r.finite ? "a non-finite label" : (r.lo < 0 ? "label \(r.lo)" : "label \(r.hi)")
                throw XAIError.invalidArgument(parameter: "labels", value: bad, reason: "mask(segments): outside 0..<\(limit)")
            }
        case .rectangles:
            break
        case .grids(let cells, let gh, let gw, let uh, let uw, let shifts):
            guard gh > 0, gw > 0, uh > 0, uw > 0, cells.count == shifts.count * gh * gw else {
                throw XAIError.shapeMismatch(op: "mask(grids)", expected: "\(shifts.count) grids of \(gh)x\(gw) cells", got: [Shape([cells.count])])
            }
            for (dy, dx) in shifts where dy < 0 || dx < 0 || dy + height > uh || dx + width > uw {
                throw XAIError.invalidArgument(parameter: "shifts", value: "(\(dy),\(dx))", reason: "mask(grids): crops outside the \(uh)x\(uw) upsampled grid")
            }
        case .randomGrids(let r):
            guard r.gridH > 0, r.gridW > 0, r.upsampledH > 0, r.upsampledW > 0, r.count >= 0, r.first >= 0, r.cellH >= 1, r.cellW >= 1,
                  r.gridH <= 1 << 12, r.gridW <= 1 << 12 else {
                throw XAIError.invalidArgument(parameter: "grids", value: "\(r.count) of \(r.gridH)x\(r.gridW) from \(r.first)",
                                               reason: "mask(randomGrids): sizes must be positive (grids at most 4096 a side)")
            }
            guard r.cellH - 1 + height <= r.upsampledH, r.cellW - 1 + width <= r.upsampledW else {
                throw XAIError.invalidArgument(parameter: "shifts", value: "up to (\(r.cellH - 1),\(r.cellW - 1))",
                                               reason: "mask(randomGrids): crops outside the \(r.upsampledH)x\(r.upsampledW) upsampled grid")
            }
        case .ranks(let ranks, let counts, _):
            let pixels = height * width
            guard ranks.shape.count == pixels else {
                throw XAIError.shapeMismatch(op: "mask(ranks)", expected: "a rank map of \(height)x\(width) values", got: [ranks.shape])
            }
            guard pixels <= 1 << 24 else {
                throw XAIError.invalidArgument(parameter: "size", value: "\(height)x\(width)", reason: "mask(ranks): more pixels than float32 ranks hold exactly (2^24)")
            }
            guard let r = labelRange else {
                throw XAIError.invalidArgument(parameter: "ranks", value: "", reason: "mask(ranks): the rank values were not checked")
            }
            guard r.finite && r.lo >= 0 && Double(r.hi) < Double(pixels) else {
                let bad = !r.finite ? "a non-finite rank" : (r.lo < 0 ? "rank \(r.lo)" : "rank \(r.hi)")
                throw XAIError.invalidArgument(parameter: "ranks", value: bad, reason: "mask(ranks): outside 0..<\(pixels)")
            }
            if let bad = counts.first(where: { !(0...pixels).contains($0) }) {
                throw XAIError.invalidArgument(parameter: "counts", value: "\(bad)", reason: "mask(ranks): outside 0...\(pixels)")
            }
        }
        self.spec = spec
        self.height = height
        self.width = width
        self.labelRange = labelRange
    }

    public var sampleCount: Int { spec.sampleCount }
    public var outputShape: Shape { [spec.sampleCount, 1, height, width] }
}

/// Perturbed copies `image * m + baseline * (1 - m)` of an image `[1, C, H, W]`.
public struct CompositePlan: Sendable {
    public let masks: MaskPlan
    public let channels: Int

    public init(image: Shape, baseline: Shape, masks: MaskPlan) throws {
        guard image.rank == 4, image[0] == 1, baseline == image, image[2] == masks.height, image[3] == masks.width else {
            throw XAIError.shapeMismatch(op: "composite", expected: "image and baseline both [1, C, \(masks.height), \(masks.width)]", got: [image, baseline])
        }
        self.masks = masks
        channels = image[1]
    }

    public var outputShape: Shape { [masks.sampleCount, channels, masks.height, masks.width] }
}

/// The smallest and largest value of a label map, and whether all are finite.
public struct LabelRange: Sendable, Hashable {
    public let lo: Float, hi: Float, finite: Bool

    public init(of values: some Sequence<Float>) {
        var lo = Float.infinity, hi = -Float.infinity, finite = true
        for v in values { if !v.isFinite { finite = false } else { lo = min(lo, v); hi = max(hi, v) } }
        (self.lo, self.hi, self.finite) = (lo, hi, finite)
    }
}

/// Noisy copies of one item: `out[k] = item + sigma * z` with `z` stream `firstStream + k` of
/// ``CounterRandom`` under `seed`, value `i` for element `i`.
public struct NoisePlan: Sendable {
    /// The item's shape, `[1, ...]`.
    public let item: Shape
    public let copies: Int
    public let sigma: Float
    public let seed: UInt64
    public let firstStream: UInt64

    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` for an item that is not one batch row;
    ///   ``XAIError/invalidArgument(parameter:value:reason:)`` naming `copies` or `sigma`.
    public init(item: Shape, copies: Int, sigma: Float, seed: UInt64, firstStream: UInt64) throws {
        guard item.rank >= 1, item[0] == 1, item.count >= 1 else {
            throw XAIError.shapeMismatch(op: "noise", expected: "one non-empty item [1, ...]", got: [item])
        }
        guard copies >= 1, copies <= Int(Int32.max) / item.count else {
            throw XAIError.invalidArgument(parameter: "copies", value: "\(copies)", reason: "noise: 1 to \(Int(Int32.max) / item.count) copies of \(item)")
        }
        guard sigma.isFinite, sigma >= 0 else {
            throw XAIError.invalidArgument(parameter: "sigma", value: "\(sigma)", reason: "noise: the standard deviation must be finite and non-negative")
        }
        (self.item, self.copies, self.sigma, self.seed, self.firstStream) = (item, copies, sigma, seed, firstStream)
    }

    public var outputShape: Shape { Shape([copies] + item.dims.dropFirst()) }
}

/// Running sums of a stream of rows for a mean, a mean square or a variance: the rows `[count, ...]`
/// are added one after another, in order, to a state `[4, item]` holding the sum and the sum of
/// squares, each with its Neumaier compensation. Each element sees the same additions whatever
/// the rows' batching, so the result is bit for bit the same for every batch size and backend.
public struct RunningSumPlan: Sendable {
    /// The number of values in one row.
    public let itemCount: Int
    public let rows: Int
    /// Whether each value's magnitude is summed instead of the value.
    public let absolute: Bool

    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` when the state does not hold four
    ///   rows of the rows' item.
    public init(rows: Shape, state: Shape?, absolute: Bool) throws {
        guard rows.rank >= 1, rows[0] >= 1, rows.count >= 1 else {
            throw XAIError.shapeMismatch(op: "runningSum", expected: "rows [count >= 1, ...]", got: [rows])
        }
        let item = rows.count / rows[0]
        if let state, state.count != 4 * item || state[0] != 4 {
            throw XAIError.shapeMismatch(op: "runningSum", expected: "a state [4, \(item)]", got: [rows, state])
        }
        (itemCount, self.rows, self.absolute) = (item, rows[0], absolute)
    }

    public var stateShape: Shape { [4, itemCount] }
}
