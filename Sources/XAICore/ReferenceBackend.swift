import Foundation

/// Float64 values held by the ``ReferenceBackend``.
public final class ReferenceStorage: DeviceStorage {
    public let values: [Double]
    init(_ values: [Double]) { self.values = values }
}

/// A plain-Swift float64 implementation of every primitive: slow, obvious, and the oracle that
/// the CPU and OpenCL backends are tested against.
public final class ReferenceBackend: Backend {
    public let device = Device.cpu
    public let name = "reference (float64)"
    public let memoryBudget = 1 << 30

    public init() {}

    // MARK: Float64 access, for finite differences

    public func array(_ shape: Shape, _ values: [Double]) -> DeviceArray {
        precondition(values.count == shape.count)
        return DeviceArray(shape: shape, storage: ReferenceStorage(values))
    }

    public func values(_ a: DeviceArray) throws -> [Double] {
        guard let s = a.storage as? ReferenceStorage else {
            throw XAIError.wrongDevice(op: "reference", expected: name, got: String(describing: type(of: a.storage)))
        }
        return s.values
    }

    // MARK: Memory

    public func upload(_ tensor: Tensor) throws -> DeviceArray {
        array(tensor.shape, tensor.scalars.map(Double.init))
    }

    public func download(_ a: DeviceArray) throws -> Tensor {
        try Tensor(shape: a.shape, scalars: try values(a).map(Float.init))
    }

    public func filled(_ shape: Shape, value: Float) throws -> DeviceArray {
        array(shape, [Double](repeating: Double(value), count: shape.count))
    }

    // MARK: Linear algebra

    public func gemm(_ a: DeviceArray, _ b: DeviceArray, transposeA: Bool, transposeB: Bool, alpha: Float,
                     bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        let (m, n, k) = try Check.gemm(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB, bias: bias?.shape)
        let av = try values(a), bv = try values(b)
        let biasV = try bias.map(values)
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    let x = transposeA ? av[p * m + i] : av[i * k + p]
                    let y = transposeB ? bv[j * k + p] : bv[p * n + j]
                    acc += x * y
                }
                out[i * n + j] = activation.apply(Double(alpha) * acc + (biasV?[j] ?? 0))
            }
        }
        return array([m, n], out)
    }

    // MARK: Convolution

    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, params p: Conv2DParams,
                       activation: UnaryOp) throws -> DeviceArray {
        let os = try p.outputShape(input: x.shape, weight: weight.shape)
        if let bias, bias.shape.count != os[1] { throw XAIError.shapeMismatch(op: "conv2d", message: "bias \(bias.shape) for \(os[1]) channels") }
        let xv = try values(x), wv = try values(weight), bv = try bias.map(values)
        let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (oh, ow) = (os[2], os[3])
        let cinG = cin / p.groups, coutG = cout / p.groups
        var out = [Double](repeating: 0, count: os.count)
        for b in 0..<n {
            for co in 0..<cout {
                let g = co / coutG
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var acc = bv?[co] ?? 0
                        for ci in 0..<cinG {
                            for ky in 0..<kh {
                                let iy = oy * p.strideH - p.padTop + ky * p.dilationH
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * p.strideW - p.padLeft + kx * p.dilationW
                                    if ix < 0 || ix >= w { continue }
                                    acc += xv[((b * cin + g * cinG + ci) * h + iy) * w + ix] * wv[((co * cinG + ci) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        out[((b * cout + co) * oh + oy) * ow + ox] = activation.apply(acc)
                    }
                }
            }
        }
        return array(os, out)
    }

    public func conv2dBackwardInput(_ gy: DeviceArray, weight: DeviceArray, params p: Conv2DParams,
                                    inputShape: Shape) throws -> DeviceArray {
        let os = try p.outputShape(input: inputShape, weight: weight.shape)
        guard gy.shape == os else { throw XAIError.shapeMismatch(op: "conv2dBackwardInput", message: "gradient \(gy.shape), expected \(os)") }
        let gv = try values(gy), wv = try values(weight)
        let (n, cin, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (oh, ow) = (os[2], os[3])
        let cinG = cin / p.groups, coutG = cout / p.groups
        var dx = [Double](repeating: 0, count: inputShape.count)
        for b in 0..<n {
            for co in 0..<cout {
                let g = co / coutG
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let gval = gv[((b * cout + co) * oh + oy) * ow + ox]
                        for ci in 0..<cinG {
                            for ky in 0..<kh {
                                let iy = oy * p.strideH - p.padTop + ky * p.dilationH
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * p.strideW - p.padLeft + kx * p.dilationW
                                    if ix < 0 || ix >= w { continue }
                                    dx[((b * cin + g * cinG + ci) * h + iy) * w + ix] += gval * wv[((co * cinG + ci) * kh + ky) * kw + kx]
                                }
                            }
                        }
                    }
                }
            }
        }
        return array(inputShape, dx)
    }

    // MARK: Pooling

    /// Calls `body(outputIndex, inputIndexes, divisor)` for every pooling window.
    private func forEachWindow(_ shape: Shape, _ p: Pool2DParams, _ body: (Int, [Int], Double) -> Void) throws -> Shape {
        let os = try p.outputShape(input: shape)
        let (h, w) = (shape[2], shape[3])
        for plane in 0..<(shape[0] * shape[1]) {
            for oy in 0..<os[2] {
                let wy = poolWindow(oy, size: h, kernel: p.kernelH, stride: p.strideH, padBefore: p.padTop, padAfter: p.padBottom)
                for ox in 0..<os[3] {
                    let wx = poolWindow(ox, size: w, kernel: p.kernelW, stride: p.strideW, padBefore: p.padLeft, padAfter: p.padRight)
                    var idx: [Int] = []
                    for iy in wy.start..<wy.end { for ix in wx.start..<wx.end { idx.append((plane * h + iy) * w + ix) } }
                    let divisor = p.countIncludePad ? Double(wy.paddedExtent * wx.paddedExtent) : Double(idx.count)
                    body((plane * os[2] + oy) * os[3] + ox, idx, divisor)
                }
            }
        }
        return os
    }

    public func pool2d(_ x: DeviceArray, params p: Pool2DParams) throws -> DeviceArray {
        let xv = try values(x)
        var out: [Double] = []
        let os = try forEachWindow(x.shape, p) { _, idx, divisor in
            switch p.kind {
            case .max: out.append(idx.map { xv[$0] }.max() ?? -.infinity)
            case .average: out.append(idx.reduce(0) { $0 + xv[$1] } / divisor)
            }
        }
        return array(os, out)
    }

    public func pool2dBackward(_ gy: DeviceArray, input x: DeviceArray, params p: Pool2DParams) throws -> DeviceArray {
        let xv = try values(x), gv = try values(gy)
        guard gy.shape == (try p.outputShape(input: x.shape)) else {
            throw XAIError.shapeMismatch(op: "pool2dBackward", message: "gradient \(gy.shape) for input \(x.shape), \(p)")
        }
        var dx = [Double](repeating: 0, count: x.shape.count)
        _ = try forEachWindow(x.shape, p) { o, idx, divisor in
            switch p.kind {
            case .max:
                var best = -1
                for i in idx where best < 0 || xv[i] > xv[best] { best = i }
                if best >= 0 { dx[best] += gv[o] }
            case .average:
                for i in idx { dx[i] += gv[o] / divisor }
            }
        }
        return array(x.shape, dx)
    }

    // MARK: Elementwise

    public func unary(_ op: UnaryOp, _ x: DeviceArray) throws -> DeviceArray {
        array(x.shape, try values(x).map { op.apply($0) })
    }

    public func unaryBackward(_ op: UnaryOp, gradOutput: DeviceArray, value: DeviceArray, valueIsOutput: Bool) throws -> DeviceArray {
        try Check.unaryBackward(op, gradient: gradOutput.shape, value: value.shape, valueIsOutput: valueIsOutput)
        let g = try values(gradOutput), v = try values(value)
        return array(value.shape, (0..<g.count).map { i in
            g[i] * (valueIsOutput ? op.derivative(output: v[i]) : op.derivative(input: v[i]))
        })
    }

    public func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray) throws -> DeviceArray {
        let plan = try BroadcastPlan(a.shape, b.shape, op: "binary(\(op))")
        let av = try values(a), bv = try values(b)
        let out = (0..<plan.outputShape.count).map { i -> Double in
            let (ia, ib) = plan.offsets(i)
            switch op {
            case .add: return av[ia] + bv[ib]
            case .sub: return av[ia] - bv[ib]
            case .mul: return av[ia] * bv[ib]
            case .div: return av[ia] / bv[ib]
            }
        }
        return array(plan.outputShape, out)
    }

    // MARK: Reductions

    public func reduce(_ op: ReduceOp, _ x: DeviceArray, axes: [Int]) throws -> DeviceArray {
        let plan = try ReducePlan(input: x.shape, axes: axes, op: "reduce(\(op))")
        let xv = try values(x)
        let out = (0..<plan.outputCount).map { o -> Double in
            let base = plan.baseOffset(o)
            let items = (0..<plan.reducedCount).map { xv[base + plan.reducedOffset($0)] }
            switch op {
            case .sum: return items.reduce(0, +)
            case .mean: return items.reduce(0, +) / Double(items.count)
            case .max: return items.max()!
            }
        }
        return array(plan.outputShape, out)
    }

    public func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input x: DeviceArray, axes: [Int]) throws -> DeviceArray {
        let plan = try ReducePlan(input: x.shape, axes: axes, op: "reduceBackward(\(op))")
        guard gradOutput.shape.count == plan.outputCount else {
            throw XAIError.shapeMismatch(op: "reduceBackward(\(op))", message: "gradient \(gradOutput.shape) for output \(plan.outputShape)")
        }
        let g = try values(gradOutput), xv = try values(x)
        var dx = [Double](repeating: 0, count: x.shape.count)
        for o in 0..<plan.outputCount {
            let base = plan.baseOffset(o)
            let idx = (0..<plan.reducedCount).map { base + plan.reducedOffset($0) }
            switch op {
            case .sum: for i in idx { dx[i] = g[o] }
            case .mean: for i in idx { dx[i] = g[o] / Double(idx.count) }
            case .max:
                let m = idx.map { xv[$0] }.max()!
                let ties = idx.filter { xv[$0] == m }
                for i in ties { dx[i] = g[o] / Double(ties.count) }
            }
        }
        return array(x.shape, dx)
    }

    /// Splits a shape around `axis` into (outer, extent, inner).
    public func softmax(_ x: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray {
        let (outer, n, inner) = try Check.around(x.shape, axis: axis, op: "softmax")
        let xv = try values(x)
        var out = [Double](repeating: 0, count: xv.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let idx = (0..<n).map { (o * n + $0) * inner + i }
                let m = idx.map { xv[$0] }.max()!
                let sum = idx.reduce(0.0) { $0 + exp(xv[$1] - m) }
                for j in idx { out[j] = log ? xv[j] - m - Foundation.log(sum) : exp(xv[j] - m) / sum }
            }
        }
        return array(x.shape, out)
    }

    public func softmaxBackward(_ gy: DeviceArray, output y: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray {
        let (outer, n, inner) = try Check.around(y.shape, axis: axis, op: "softmaxBackward")
        let g = try values(gy), yv = try values(y)
        var dx = [Double](repeating: 0, count: yv.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let idx = (0..<n).map { (o * n + $0) * inner + i }
                if log {
                    let s = idx.reduce(0.0) { $0 + g[$1] }
                    for j in idx { dx[j] = g[j] - exp(yv[j]) * s }
                } else {
                    let s = idx.reduce(0.0) { $0 + g[$1] * yv[$1] }
                    for j in idx { dx[j] = yv[j] * (g[j] - s) }
                }
            }
        }
        return array(y.shape, dx)
    }

    // MARK: Resampling

    public func resizeBilinear(_ x: DeviceArray, height: Int, width: Int, alignCorners: Bool) throws -> DeviceArray {
        try Check.resize(x.shape, height: height, width: width)
        let xv = try values(x)
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        var out = [Double](repeating: 0, count: planes * height * width)
        for p in 0..<planes {
            for oy in 0..<height {
                let sy = bilinearSource(oy, inSize: h, outSize: height, alignCorners: alignCorners)
                for ox in 0..<width {
                    let sx = bilinearSource(ox, inSize: w, outSize: width, alignCorners: alignCorners)
                    func v(_ i: Int, _ j: Int) -> Double { xv[(p * h + i) * w + j] }
                    let top = (1 - sx.t) * v(sy.i0, sx.i0) + sx.t * v(sy.i0, sx.i1)
                    let bottom = (1 - sx.t) * v(sy.i1, sx.i0) + sx.t * v(sy.i1, sx.i1)
                    out[(p * height + oy) * width + ox] = (1 - sy.t) * top + sy.t * bottom
                }
            }
        }
        return array([x.shape[0], x.shape[1], height, width], out)
    }

    public func resizeBilinearBackward(_ gy: DeviceArray, inputShape: Shape, alignCorners: Bool) throws -> DeviceArray {
        try Check.resizeBackward(gy.shape, input: inputShape)
        let g = try values(gy)
        let (planes, h, w, oh, ow) = (inputShape[0] * inputShape[1], inputShape[2], inputShape[3], gy.shape[2], gy.shape[3])
        var dx = [Double](repeating: 0, count: inputShape.count)
        for p in 0..<planes {
            for oy in 0..<oh {
                let sy = bilinearSource(oy, inSize: h, outSize: oh, alignCorners: alignCorners)
                for ox in 0..<ow {
                    let sx = bilinearSource(ox, inSize: w, outSize: ow, alignCorners: alignCorners)
                    let gv = g[(p * oh + oy) * ow + ox]
                    dx[(p * h + sy.i0) * w + sx.i0] += gv * (1 - sy.t) * (1 - sx.t)
                    dx[(p * h + sy.i0) * w + sx.i1] += gv * (1 - sy.t) * sx.t
                    dx[(p * h + sy.i1) * w + sx.i0] += gv * sy.t * (1 - sx.t)
                    dx[(p * h + sy.i1) * w + sx.i1] += gv * sy.t * sx.t
                }
            }
        }
        return array(inputShape, dx)
    }

    // MARK: Perturbation

    private func maskValues(_ spec: MaskSpec, height: Int, width: Int) throws -> [Double] {
        try spec.validate(height: height, width: width)
        var labels: [Int]?
        if case .segments(let l, _, _) = spec { labels = try values(l).map { Int($0) } }
        var out: [Double] = []
        out.reserveCapacity(spec.sampleCount * height * width)
        for n in 0..<spec.sampleCount {
            for y in 0..<height {
                for x in 0..<width { out.append(spec.hostValue(sample: n, y: y, x: x, height: height, width: width, labels: labels)) }
            }
        }
        return out
    }

    public func masks(_ spec: MaskSpec, height: Int, width: Int) throws -> DeviceArray {
        array([spec.sampleCount, 1, height, width], try maskValues(spec, height: height, width: width))
    }

    public func composite(image: DeviceArray, baseline: DeviceArray, masks spec: MaskSpec) throws -> DeviceArray {
        try Check.composite(image: image.shape, baseline: baseline.shape)
        let (c, h, w) = (image.shape[1], image.shape[2], image.shape[3])
        let m = try maskValues(spec, height: h, width: w)
        let xv = try values(image), bv = try values(baseline)
        var out = [Double](repeating: 0, count: spec.sampleCount * c * h * w)
        for n in 0..<spec.sampleCount {
            for ch in 0..<c {
                for p in 0..<(h * w) {
                    let mv = m[n * h * w + p]
                    out[(n * c + ch) * h * w + p] = xv[ch * h * w + p] * mv + bv[ch * h * w + p] * (1 - mv)
                }
            }
        }
        return array([spec.sampleCount, c, h, w], out)
    }

    // MARK: Data movement (float64, so finite differences stay exact)

    public func permute(_ x: DeviceArray, _ perm: [Int]) throws -> DeviceArray {
        let (v, s) = try Movement.permute(try values(x), x.shape, perm)
        return array(s, v)
    }

    public func slice(_ x: DeviceArray, starts: [Int], sizes: [Int]) throws -> DeviceArray {
        let (v, s) = try Movement.slice(try values(x), x.shape, starts: starts, sizes: sizes)
        return array(s, v)
    }

    public func pad(_ x: DeviceArray, before: [Int], after: [Int], value: Float) throws -> DeviceArray {
        let (v, s) = try Movement.pad(try values(x), x.shape, before: before, after: after, value: Double(value))
        return array(s, v)
    }

    public func concat(_ xs: [DeviceArray], axis: Int) throws -> DeviceArray {
        let (v, s) = try Movement.concat(try xs.map { (try values($0), $0.shape) }, axis: axis)
        return array(s, v)
    }
}
