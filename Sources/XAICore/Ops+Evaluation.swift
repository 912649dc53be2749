import Foundation

// The semantics of the ops on the host: pointwise functions, bilinear taps, pooling windows and
// mask values, shared by the reference and CPU backends and mirrored by the OpenCL kernels, so that
// each op has one definition.

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
    /// Host evaluation of one mask value, the reference for the device kernels. `labels` are the
    /// values of a segment mask's label map (validated by ``MaskPlan``); other masks need none.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a segment mask without labels.
    public func hostValue(sample n: Int, y: Int, x: Int, height: Int, width: Int, labels: [Int]? = nil) throws -> Double {
        guard n >= 0, n < sampleCount, y >= 0, y < height, x >= 0, x < width else {
            throw XAIError.invalidArgument(parameter: "sample", value: "\(n) (\(y), \(x))", reason: "outside the \(sampleCount) masks of \(height)x\(width)")
        }
        switch self {
        case .segments(_, let keep, let words):
            guard let labels, labels.count == height * width else {
                throw XAIError.invalidArgument(parameter: "labels", value: "", reason: "segment masks need the \(height)x\(width) label values")
            }
            let s = labels[y * width + x]
            guard s >= 0, s / 32 < words else { throw XAIError.invalidArgument(parameter: "labels", value: "\(s)", reason: "outside the keep bits") }
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
        case .randomGrids(let r):
            // One mask's grid drawn here; callers that read many values expand first (``expandedOnHost``).
            return try r.slice(n..<(n + 1)).expanded.hostValue(sample: 0, y: y, x: x, height: height, width: width)
        case .ranks(_, let counts, let firstKept):
            guard let labels, labels.count == height * width else {
                throw XAIError.invalidArgument(parameter: "ranks", value: "", reason: "rank masks need the \(height)x\(width) rank values")
            }
            return (labels[y * width + x] < counts[n]) == firstKept ? 1 : 0
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
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        case .tanh: return Foundation.tanh(x)
        case .silu: return x / (1 + Foundation.exp(-x))
        case .hardSigmoid(let a, let b): return min(max(Double(a) * x + Double(b), 0), 1)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh(Self.geluTanhScale * (x + 0.044715 * x * x * x)))
        case .erf: return Foundation.erf(x)
        case .exp: return Foundation.exp(x)
        case .sqrt: return x.squareRoot()
        case .pow(let p): return Foundation.pow(x, Double(p))
        }
    }

    /// sqrt(2 / pi), the tanh approximation's scale.
    static let geluTanhScale = (2 / Double.pi).squareRoot()

    /// Derivative at input `x`.
    public func derivative(input x: Double) -> Double {
        switch self {
        case .identity: return 1
        case .relu: return x > 0 ? 1 : 0
        case .clip(let lo, let hi): return (x > Double(lo) && x < Double(hi)) ? 1 : 0
        case .leakyRelu(let a): return x >= 0 ? 1 : Double(a)
        case .sigmoid: let s = 1 / (1 + Foundation.exp(-x)); return s * (1 - s)
        case .tanh: let t = Foundation.tanh(x); return 1 - t * t
        case .silu: let s = 1 / (1 + Foundation.exp(-x)); return s * (1 + x * (1 - s))
        case .hardSigmoid(let a, let b): let v = Double(a) * x + Double(b); return (v > 0 && v < 1) ? Double(a) : 0
        case .hardSwish: return x < -3 ? 0 : (x > 3 ? 1 : (2 * x + 3) / 6)
        case .gelu:
            // Phi(x) + x phi(x).
            return 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) + x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
        case .geluTanh:
            let t = Foundation.tanh(Self.geluTanhScale * (x + 0.044715 * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * Self.geluTanhScale * (1 + 3 * 0.044715 * x * x)
        case .erf: return 2 / Double.pi.squareRoot() * Foundation.exp(-x * x)
        case .exp: return Foundation.exp(x)
        case .sqrt: return 0.5 / x.squareRoot()
        case .pow(let p): return p == 0 ? 0 : Double(p) * Foundation.pow(x, Double(p) - 1)
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
        case .exp: return y
        case .sqrt: return 0.5 / y
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
        case .sigmoid: return 1 / (1 + Foundation.expf(-x))
        case .tanh: return Foundation.tanhf(x)
        case .silu: return x / (1 + Foundation.expf(-x))
        case .hardSigmoid(let a, let b): return min(max(a * x + b, 0), 1)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        case .gelu: return 0.5 * x * (1 + Foundation.erff(x * 0.70710678118654752))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x)))
        case .erf: return Foundation.erff(x)
        case .exp: return Foundation.expf(x)
        case .sqrt: return x.squareRoot()
        case .pow(let p): return p == 2 ? x * x : Foundation.powf(x, p)
        }
    }
}
