import Foundation

// Index arithmetic shared by the host backends (reference and CPU) and mirrored by the OpenCL
// kernels, so that there is one definition of each op's semantics on the host.

/// How a reduction walks its input: outputs enumerate the kept axes, each output sums over the
/// reduced axes. Axes of extent 1 are dropped from both lists.
public struct ReducePlan: Sendable {
    public let outputShape: Shape
    public let keptDims: [Int], keptStrides: [Int]
    public let reducedDims: [Int], reducedStrides: [Int]
    public var outputCount: Int { keptDims.reduce(1, *) }
    public var reducedCount: Int { reducedDims.reduce(1, *) }

    public init(input: Shape, axes: [Int], op: String) throws {
        var set = Set<Int>()
        for a in axes {
            guard let n = input.normalizedAxis(a) else {
                throw XAIError.invalidArgument(op: op, message: "axis \(a) out of range for \(input)")
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
        outputShape = Shape(out)
        keptDims = kd; keptStrides = ks; reducedDims = rd; reducedStrides = rs
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

/// Strided reads of two operands broadcast to a common output shape.
public struct BroadcastPlan: Sendable {
    public let outputShape: Shape
    public let aStrides: [Int], bStrides: [Int]

    public init(_ a: Shape, _ b: Shape, op: String) throws {
        guard let out = Shape.broadcast(a, b) else {
            throw XAIError.shapeMismatch(op: op, message: "\(a) and \(b) do not broadcast")
        }
        outputShape = out
        aStrides = a.broadcastStrides(to: out)
        bStrides = b.broadcastStrides(to: out)
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

/// One output coordinate's bilinear source: `v = (1 - t) * in[i0] + t * in[i1]`.
@inline(__always)
public func bilinearSource(_ dst: Int, inSize: Int, outSize: Int, alignCorners: Bool) -> (i0: Int, i1: Int, t: Double) {
    let src: Double
    if alignCorners {
        src = outSize > 1 ? Double(dst) * Double(inSize - 1) / Double(outSize - 1) : 0
    } else {
        src = max((Double(dst) + 0.5) * Double(inSize) / Double(outSize) - 0.5, 0)
    }
    let i0 = min(Int(src), inSize - 1)
    let i1 = min(i0 + 1, inSize - 1)
    return (i0, i1, src - Double(i0))
}

/// One pooling window along an axis: the clipped input range and the divisor's extent
/// (PyTorch semantics, shared with `pool.cl`).
@inline(__always)
public func poolWindow(_ o: Int, size: Int, kernel: Int, stride: Int, padBefore: Int, padAfter: Int) -> (start: Int, end: Int, paddedExtent: Int) {
    let start = o * stride - padBefore
    let endPadded = min(start + kernel, size + padAfter)
    return (max(start, 0), min(endPadded, size), endPadded - start)
}

extension MaskSpec {
    /// Host evaluation of one mask value, the reference for the device kernels.
    public func hostValue(sample n: Int, y: Int, x: Int, height: Int, width: Int, labels: [Int]? = nil) -> Double {
        switch self {
        case .segments(_, let keep, let words):
            guard let labels else { preconditionFailure("segment masks need the label values") }
            let s = labels[y * width + x]
            return (keep[n * words + s / 32] >> UInt32(s % 32)) & 1 == 1 ? 1 : 0
        case .rectangles(let rects):
            let r = rects[n]
            return (y >= r.top && y < r.top + r.height && x >= r.left && x < r.left + r.width) ? 0 : 1
        case .grids(let cells, let gh, let gw, let uh, let uw, let shifts):
            let (dy, dx) = shifts[n]
            let sy = bilinearSource(y + dy, inSize: gh, outSize: uh, alignCorners: false)
            let sx = bilinearSource(x + dx, inSize: gw, outSize: uw, alignCorners: false)
            let base = n * gh * gw
            func c(_ i: Int, _ j: Int) -> Double { Double(cells[base + i * gw + j]) }
            let top = (1 - sx.t) * c(sy.i0, sx.i0) + sx.t * c(sy.i0, sx.i1)
            let bottom = (1 - sx.t) * c(sy.i1, sx.i0) + sx.t * c(sy.i1, sx.i1)
            return (1 - sy.t) * top + sy.t * bottom
        }
    }
}

extension UnaryOp {
    /// Host evaluation in float64 (the reference; the CPU backend uses the float32 twin below).
    public func apply(_ x: Double) -> Double {
        switch self {
        case .identity: return x
        case .relu: return x > 0 ? x : 0
        case .clip(let lo, let hi): return min(max(x, Double(lo)), Double(hi))
        case .leakyRelu(let a): return x >= 0 ? x : Double(a) * x
        case .sigmoid: return 1 / (1 + exp(-x))
        case .tanh: return Foundation.tanh(x)
        case .silu: return x / (1 + exp(-x))
        case .hardSigmoid(let a, let b): return min(max(Double(a) * x + Double(b), 0), 1)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        }
    }

    /// Derivative at input `x`.
    public func derivative(input x: Double) -> Double {
        switch self {
        case .identity: return 1
        case .relu: return x > 0 ? 1 : 0
        case .clip(let lo, let hi): return (x > Double(lo) && x < Double(hi)) ? 1 : 0
        case .leakyRelu(let a): return x >= 0 ? 1 : Double(a)
        case .sigmoid: let s = 1 / (1 + exp(-x)); return s * (1 - s)
        case .tanh: let t = Foundation.tanh(x); return 1 - t * t
        case .silu: let s = 1 / (1 + exp(-x)); return s * (1 + x * (1 - s))
        case .hardSigmoid(let a, let b): let v = Double(a) * x + Double(b); return (v > 0 && v < 1) ? Double(a) : 0
        case .hardSwish: return x < -3 ? 0 : (x > 3 ? 1 : (2 * x + 3) / 6)
        }
    }

    /// Derivative expressed through the output `y` (valid where ``derivativeFromOutput``).
    public func derivative(output y: Double) -> Double {
        switch self {
        case .identity: return 1
        case .relu: return y > 0 ? 1 : 0
        case .clip(let lo, let hi): return (y > Double(lo) && y < Double(hi)) ? 1 : 0
        case .leakyRelu(let a): return y >= 0 ? 1 : Double(a)
        case .sigmoid: return y * (1 - y)
        case .tanh: return 1 - y * y
        default: return .nan
        }
    }

    /// Float32 evaluation for the CPU backend's epilogues.
    @inline(__always) public func apply(_ x: Float) -> Float {
        switch self {
        case .identity: return x
        case .relu: return x > 0 ? x : 0
        case .clip(let lo, let hi): return min(max(x, lo), hi)
        case .leakyRelu(let a): return x >= 0 ? x : a * x
        case .sigmoid: return 1 / (1 + expf(-x))
        case .tanh: return Foundation.tanhf(x)
        case .silu: return x / (1 + expf(-x))
        case .hardSigmoid(let a, let b): return min(max(a * x + b, 0), 1)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        }
    }
}


/// Operand checks shared by every backend, so that each op rejects bad shapes with the same error.
public enum Check {
    /// `(m, n, k)` of `op(a) * op(b)` (+ a bias of `n` elements).
    public static func gemm(_ a: Shape, _ b: Shape, transposeA: Bool, transposeB: Bool, bias: Shape?) throws -> (m: Int, n: Int, k: Int) {
        guard a.rank == 2, b.rank == 2 else {
            throw XAIError.shapeMismatch(op: "gemm", message: "operands \(a) and \(b) must be 2-D")
        }
        let (m, k) = transposeA ? (a[1], a[0]) : (a[0], a[1])
        let (kb, n) = transposeB ? (b[1], b[0]) : (b[0], b[1])
        guard k == kb else { throw XAIError.shapeMismatch(op: "gemm", message: "inner dimensions \(k) and \(kb) differ (\(a) x \(b))") }
        if let bias, bias.count != n { throw XAIError.shapeMismatch(op: "gemm", message: "bias \(bias) for \(n) columns") }
        return (m, n, k)
    }

    /// `(outer, extent, inner)` of a shape split around `axis`.
    public static func around(_ shape: Shape, axis: Int, op: String) throws -> (Int, Int, Int) {
        guard let a = shape.normalizedAxis(axis) else { throw XAIError.invalidArgument(op: op, message: "axis \(axis) out of range for \(shape)") }
        return (shape.dims[..<a].reduce(1, *), shape[a], shape.dims[(a + 1)...].reduce(1, *))
    }

    public static func unaryBackward(_ op: UnaryOp, gradient: Shape, value: Shape, valueIsOutput: Bool) throws {
        guard gradient == value else {
            throw XAIError.shapeMismatch(op: "unaryBackward(\(op))", message: "gradient \(gradient) vs value \(value)")
        }
        guard !valueIsOutput || op.derivativeFromOutput else {
            throw XAIError.invalidArgument(op: "unaryBackward(\(op))", message: "derivative needs the op's input, not its output")
        }
    }

    public static func resize(_ x: Shape, height: Int, width: Int) throws {
        guard x.rank == 4, height > 0, width > 0 else {
            throw XAIError.invalidArgument(op: "resizeBilinear", message: "input \(x) to \(height)x\(width)")
        }
    }

    public static func resizeBackward(_ gradient: Shape, input: Shape) throws {
        guard input.rank == 4, gradient.rank == 4, gradient[0] == input[0], gradient[1] == input[1] else {
            throw XAIError.shapeMismatch(op: "resizeBilinearBackward", message: "gradient \(gradient) for input \(input)")
        }
    }

    public static func composite(image: Shape, baseline: Shape) throws {
        guard image.rank == 4, image[0] == 1, baseline == image else {
            throw XAIError.shapeMismatch(op: "composite", message: "image \(image) and baseline \(baseline) must both be [1, C, H, W]")
        }
    }
}
