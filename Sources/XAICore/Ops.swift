/// Pointwise functions, used standalone and as the fused epilogue of convolution and GEMM.
public enum UnaryOp: Hashable, Sendable, CustomStringConvertible {
    case identity
    case relu
    /// min(max(x, lo), hi); ReLU6 is `clip(0, 6)`.
    case clip(Float, Float)
    case leakyRelu(alpha: Float)
    case sigmoid
    case tanh
    /// x * sigmoid(x).
    case silu
    /// max(0, min(1, alpha * x + beta)); ONNX defaults alpha 0.2, beta 0.5.
    case hardSigmoid(alpha: Float, beta: Float)
    /// x * relu6(x + 3) / 6.
    case hardSwish
    /// x * Phi(x) = x/2 (1 + erf(x / sqrt 2)), the exact GELU (PyTorch's default, ONNX `Gelu`).
    case gelu
    /// x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GELU's tanh approximation (`approximate="tanh"`).
    case geluTanh
    /// The error function (TorchScript exports GELU through it).
    case erf
    case exp
    case sqrt
    /// x^p for a constant exponent (ONNX `Pow` with a constant second input; LayerNorm's x^2).
    case pow(Float)

    public static let relu6 = UnaryOp.clip(0, 6)

    /// Integer code shared with the OpenCL kernels (`elementwise.cl`).
    public var code: Int32 {
        switch self {
        case .identity: return 0
        case .relu: return 1
        case .clip: return 2
        case .leakyRelu: return 3
        case .sigmoid: return 4
        case .tanh: return 5
        case .silu: return 6
        case .hardSigmoid: return 7
        case .hardSwish: return 8
        case .gelu: return 9
        case .geluTanh: return 10
        case .erf: return 11
        case .exp: return 12
        case .sqrt: return 13
        case .pow: return 14
        }
    }

    /// The op's two float parameters (unused ones are 0).
    public var parameters: (Float, Float) {
        switch self {
        case .clip(let lo, let hi): return (lo, hi)
        case .leakyRelu(let a): return (a, 0)
        case .hardSigmoid(let a, let b): return (a, b)
        case .pow(let p): return (p, 0)
        default: return (0, 0)
        }
    }

    /// Whether the derivative can be computed from the output alone, so a fused epilogue
    /// need not keep its input for the backward pass.
    public var derivativeFromOutput: Bool {
        switch self {
        case .identity, .relu, .clip, .sigmoid, .tanh, .exp, .sqrt: return true
        case .leakyRelu(let a): return a > 0
        case .silu, .hardSigmoid, .hardSwish, .gelu, .geluTanh, .erf, .pow: return false
        }
    }

    public var description: String {
        switch self {
        case .identity: return "identity"
        case .relu: return "relu"
        case .clip(let lo, let hi): return "clip(\(lo),\(hi))"
        case .leakyRelu(let a): return "leakyRelu(\(a))"
        case .sigmoid: return "sigmoid"
        case .tanh: return "tanh"
        case .silu: return "silu"
        case .hardSigmoid(let a, let b): return "hardSigmoid(\(a),\(b))"
        case .hardSwish: return "hardSwish"
        case .gelu: return "gelu"
        case .geluTanh: return "geluTanh"
        case .erf: return "erf"
        case .exp: return "exp"
        case .sqrt: return "sqrt"
        case .pow(let p): return "pow(\(p))"
        }
    }
}

/// Elementwise binary ops with numpy broadcasting.
public enum BinaryOp: Int32, Hashable, Sendable, CaseIterable {
    case add = 0, sub = 1, mul = 2, div = 3
}

/// Reductions over a set of axes.
public enum ReduceOp: Int32, Hashable, Sendable, CaseIterable {
    case sum = 0, mean = 1, max = 2, min = 3
}

/// Convolution geometry. Weights are `[Cout, Cin / groups, kH, kW]`.
public struct Conv2DParams: Hashable, Sendable {
    public var strideH = 1, strideW = 1
    public var padTop = 0, padLeft = 0, padBottom = 0, padRight = 0
    public var dilationH = 1, dilationW = 1
    public var groups = 1

    /// Per-axis strides and dilations (H, W) and per-side pads, as ONNX spells them.
    public init(strides: (Int, Int), pads: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0),
                dilations: (Int, Int) = (1, 1), groups: Int = 1) {
        (strideH, strideW) = strides
        (padTop, padLeft, padBottom, padRight) = pads
        (dilationH, dilationW) = dilations
        self.groups = groups
    }

    /// Symmetric padding on all sides.
    public init(stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) {
        self.init(strides: (stride, stride), pads: (padding, padding, padding, padding), dilations: (dilation, dilation), groups: groups)
    }

    /// A 1x1, stride-1, unpadded, ungrouped convolution: a plain matrix product per image.
    public func isPointwise(weight: Shape) -> Bool {
        weight.rank == 4 && weight[2] == 1 && weight[3] == 1 && strideH == 1 && strideW == 1 && groups == 1
            && padTop == 0 && padLeft == 0 && padBottom == 0 && padRight == 0
    }

    /// One filter per channel (`groups == Cin == Cout`).
    public func isDepthwise(input: Shape, weight: Shape) -> Bool {
        groups == input[1] && groups == weight[0]
    }

    /// Output shape for `input` `[N, Cin, H, W]` and `weight` `[Cout, Cin/groups, kH, kW]`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for bad geometry (strides,
    ///   dilations, groups, pads), ``XAIError/shapeMismatch(op:expected:got:)`` naming both shapes
    ///   when they do not fit.
    public func outputShape(input: Shape, weight: Shape) throws -> Shape {
        func fail(_ expected: String) -> XAIError { .shapeMismatch(op: "conv2d", expected: "\(expected) (\(self))", got: [input, weight]) }
        guard groups >= 1, strideH >= 1, strideW >= 1, dilationH >= 1, dilationW >= 1, min(padTop, padLeft, padBottom, padRight) >= 0,
              max(strideH, strideW, dilationH, dilationW, padTop, padLeft, padBottom, padRight) <= 1 << 20 else {
            throw XAIError.invalidArgument(parameter: "conv2d", value: description, reason: "strides, dilations and groups must be positive, pads not negative")
        }
        guard input.rank == 4, weight.rank == 4 else { throw fail("a 4-D input and weight") }
        guard input[1] % groups == 0, weight[0] % groups == 0 else { throw fail("channels divisible by \(groups) groups") }
        guard weight[1] * groups == input[1] else { throw fail("a weight of \(input[1] / groups) input channels per group") }
        let oh = (input[2] + padTop + padBottom - dilationH * (weight[2] - 1) - 1) / strideH + 1
        let ow = (input[3] + padLeft + padRight - dilationW * (weight[3] - 1) - 1) / strideW + 1
        guard weight[2] >= 1, weight[3] >= 1, input[2] + padTop + padBottom >= dilationH * (weight[2] - 1) + 1,
              input[3] + padLeft + padRight >= dilationW * (weight[3] - 1) + 1, oh > 0, ow > 0 else {
            throw fail("a kernel no larger than the padded input")
        }
        return Shape([input[0], weight[0], oh, ow])
    }
}

extension Conv2DParams: CustomStringConvertible {
    public var description: String {
        "stride \(strideH)x\(strideW) pad (t\(padTop) l\(padLeft) b\(padBottom) r\(padRight)) dilation \(dilationH)x\(dilationW) groups \(groups)"
    }
}

/// Pooling geometry (max or average).
public struct Pool2DParams: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Int32, Hashable, Sendable { case max = 0, average = 1 }

    public var kind: Kind
    public var kernelH, kernelW: Int
    public var strideH, strideW: Int
    public var padTop = 0, padLeft = 0, padBottom = 0, padRight = 0
    /// Round the output size up, as PyTorch/ONNX `ceil_mode` (a window must start inside the input or left padding).
    public var ceilMode = false
    /// Average pooling divides by the whole window, padding included (ONNX `count_include_pad`).
    public var countIncludePad = false

    public init(_ kind: Kind, kernel: (Int, Int), stride: (Int, Int)? = nil,
                padding: (top: Int, left: Int, bottom: Int, right: Int) = (0, 0, 0, 0),
                ceilMode: Bool = false, countIncludePad: Bool = false) {
        self.kind = kind
        (kernelH, kernelW) = kernel
        (strideH, strideW) = stride ?? kernel
        (padTop, padLeft, padBottom, padRight) = padding
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
    }

    private func extent(_ size: Int, _ k: Int, _ s: Int, _ p0: Int, _ p1: Int) -> Int {
        let span = size + p0 + p1 - k
        if span < 0 { return 0 }
        var out = (ceilMode ? (span + s - 1) / s : span / s) + 1
        // The last window must start inside the input or the leading padding (PyTorch's rule).
        if ceilMode, (out - 1) * s >= size + p0 { out -= 1 }
        return out
    }

    /// Output shape for an `[N, C, H, W]` input.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for bad geometry,
    ///   ``XAIError/shapeMismatch(op:expected:got:)`` for an input that is not 4-D or smaller than the window.
    public func outputShape(input: Shape) throws -> Shape {
        guard kernelH >= 1, kernelW >= 1, strideH >= 1, strideW >= 1, min(padTop, padLeft, padBottom, padRight) >= 0,
              padTop < kernelH, padBottom < kernelH, padLeft < kernelW, padRight < kernelW,
              max(kernelH, kernelW, strideH, strideW) <= 1 << 20 else {
            throw XAIError.invalidArgument(parameter: "pool2d", value: description, reason: "kernel and strides must be positive, pads smaller than the kernel")
        }
        guard input.rank == 4 else { throw XAIError.shapeMismatch(op: "pool2d", expected: "a 4-D input", got: [input]) }
        let oh = extent(input[2], kernelH, strideH, padTop, padBottom)
        let ow = extent(input[3], kernelW, strideW, padLeft, padRight)
        guard oh > 0, ow > 0 else { throw XAIError.shapeMismatch(op: "pool2d", expected: "an input no smaller than the window (\(self))", got: [input]) }
        return Shape([input[0], input[1], oh, ow])
    }

    public var description: String {
        "\(kind) pool \(kernelH)x\(kernelW) stride \(strideH)x\(strideW) pad (t\(padTop) l\(padLeft) b\(padBottom) r\(padRight))" +
            (ceilMode ? " ceil" : "") + (countIncludePad ? " count_include_pad" : "")
    }
}

/// A rectangle replaced by the baseline in one perturbed sample (rows `top..<top+height`).
public struct MaskRect: Hashable, Sendable {
    public var top, left, height, width: Int
    public init(top: Int, left: Int, height: Int, width: Int) {
        self.top = top; self.left = left; self.height = height; self.width = width
    }
}

/// Compact descriptions of a batch of masks; the backend expands them to full resolution on the
/// device. A mask value of 1 keeps the image, 0 shows the baseline.
public enum MaskSpec: Sendable {
    /// Superpixels: `labels` is an `[H, W]` array of segment ids (0..<segmentCount, stored as floats,
    /// uploaded once per image); `keep` holds one bit per segment per sample, `wordsPerSample`
    /// 32-bit words each, bit `s % 32` of word `s / 32` set = segment `s` kept.
    case segments(labels: DeviceArray, keep: [UInt32], wordsPerSample: Int)
    /// Occlusion windows: 0 inside each sample's rectangle, 1 elsewhere.
    case rectangles([MaskRect])
    /// RISE grids: `cells` is `[N, gridH, gridW]` (values in [0, 1]); each grid is bilinearly
    /// upsampled (half-pixel centres, clamped at the edges) to `upsampledH x upsampledW` and cropped at
    /// `shifts[n] = (dy, dx)` to the image size.
    case grids(cells: [Float], gridH: Int, gridW: Int, upsampledH: Int, upsampledW: Int, shifts: [(Int, Int)])
    /// RISE grids drawn by the counter-based generator where the masks are built (``RandomGrids``):
    /// the same masks as ``grids`` of ``RandomGrids/expanded``, with nothing per mask crossing to
    /// the device.
    case randomGrids(RandomGrids)
    /// Pixel orders (deletion and insertion curves): `ranks` is an `[H, W]` array of each pixel's
    /// place in the order (0 first; integers stored as floats, exact below 2^24, uploaded once per
    /// image). In sample `n` the pixels ranked below `counts[n]` keep the image when `firstKept`
    /// (insertion) or show the baseline when not (deletion); the other pixels the other way.
    case ranks(ranks: DeviceArray, counts: [Int], firstKept: Bool)

    /// Number of samples described.
    public var sampleCount: Int {
        switch self {
        case .segments(_, let keep, let words): return words > 0 ? keep.count / words : 0
        case .rectangles(let r): return r.count
        case .grids(_, _, _, _, _, let shifts): return shifts.count
        case .randomGrids(let r): return r.count
        case .ranks(_, let counts, _): return counts.count
        }
    }
}
