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

    /// Every primitive, in float64: the oracle, and the host fallback of the other backends.
    public func supports(_ primitive: Primitive) -> Bool { true }
    public var details: BackendDetails { BackendDetails(facts: [("arithmetic", "float64 on the host")]) }

    public init() {}

    // MARK: Float64 access, for finite differences

    /// An array of float64 values (`values.count == shape.count`, checked).
    public func array(_ shape: Shape, _ values: [Double]) -> DeviceArray {
        precondition(values.count == shape.count, "\(values.count) values for \(shape)")
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

    public func gemm(_ a: DeviceArray, _ b: DeviceArray, plan: GemmPlan, alpha: Float, bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray {
        let (m, n, k, transposeA, transposeB) = (plan.m, plan.n, plan.k, plan.transposeA, plan.transposeB)
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

    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan,
                       activation: UnaryOp) throws -> DeviceArray {
        let (os, p) = (plan.output, plan.params)
        let xv = try values(x), wv = try values(weight), bv = try bias.map(values), rv = try residual.map(values)
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
                        let o = ((b * cout + co) * oh + oy) * ow + ox
                        out[o] = activation.apply(acc + (rv?[o] ?? 0))
                    }
                }
            }
        }
        return array(os, out)
    }

    public func conv2dBackwardInput(_ gy: DeviceArray, weight: DeviceArray, plan: ConvPlan) throws -> DeviceArray {
        let (os, p, inputShape) = (plan.output, plan.params, plan.input)
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
    private func forEachWindow(_ plan: PoolPlan, _ body: (Int, [Int], Double) -> Void) {
        let (shape, os, p) = (plan.input, plan.output, plan.params)
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
    }

    public func pool2d(_ x: DeviceArray, plan: PoolPlan) throws -> DeviceArray {
        let xv = try values(x)
        var out: [Double] = []
        forEachWindow(plan) { _, idx, divisor in
            switch plan.params.kind {
            case .max: out.append(idx.map { xv[$0] }.max() ?? -.infinity)
            case .average: out.append(idx.reduce(0) { $0 + xv[$1] } / divisor)
            }
        }
        return array(plan.output, out)
    }

    public func pool2dBackward(_ gy: DeviceArray, input x: DeviceArray, plan: PoolPlan) throws -> DeviceArray {
        let xv = try values(x), gv = try values(gy)
        var dx = [Double](repeating: 0, count: x.shape.count)
        forEachWindow(plan) { o, idx, divisor in
            switch plan.params.kind {
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

    public func unary(_ x: DeviceArray, plan: UnaryPlan) throws -> DeviceArray {
        array(x.shape, try values(x).map { plan.op.apply($0) })
    }

    public func unaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, plan: UnaryBackwardPlan) throws -> DeviceArray {
        let (op, valueIsOutput) = (plan.op, plan.valueIsOutput)
        let g = try values(gradOutput), v = try values(value)
        return array(value.shape, (0..<g.count).map { i in
            g[i] * (valueIsOutput ? op.derivative(output: v[i]) : op.derivative(input: v[i]))
        })
    }

    public func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, plan: BroadcastPlan) throws -> DeviceArray {
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

    public func reduce(_ op: ReduceOp, _ x: DeviceArray, plan: ReducePlan) throws -> DeviceArray {
        let xv = try values(x)
        let out = (0..<plan.outputCount).map { o -> Double in
            let base = plan.baseOffset(o)
            let items = (0..<plan.reducedCount).map { xv[base + plan.reducedOffset($0)] }
            switch op {
            case .sum: return items.reduce(0, +)
            case .mean: return items.reduce(0, +) / Double(items.count)
            case .max: return items.reduce(-Double.infinity) { Swift.max($0, $1) }
            case .min: return items.reduce(Double.infinity) { Swift.min($0, $1) }
            }
        }
        return array(plan.outputShape, out)
    }

    public func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input x: DeviceArray, plan: ReducePlan) throws -> DeviceArray {
        let g = try values(gradOutput), xv = try values(x)
        var dx = [Double](repeating: 0, count: x.shape.count)
        for o in 0..<plan.outputCount {
            let base = plan.baseOffset(o)
            let idx = (0..<plan.reducedCount).map { base + plan.reducedOffset($0) }
            switch op {
            case .sum: for i in idx { dx[i] = g[o] }
            case .mean: for i in idx { dx[i] = g[o] / Double(idx.count) }
            case .max, .min:
                let m = op == .max ? idx.map { xv[$0] }.reduce(-Double.infinity, Swift.max) : idx.map { xv[$0] }.reduce(Double.infinity, Swift.min)
                let ties = idx.filter { xv[$0] == m }
                for i in ties { dx[i] = g[o] / Double(ties.count) }
            }
        }
        return array(x.shape, dx)
    }

    /// A row's mean and `1 / sqrt(variance + epsilon)`.
    private func rowStatistics(_ row: ArraySlice<Double>, epsilon: Float) -> (mean: Double, inv: Double) {
        let mean = row.reduce(0, +) / Double(row.count)
        let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(row.count)
        return (mean, 1 / (variance + Double(epsilon)).squareRoot())
    }

    public func layerNorm(_ x: DeviceArray, scale: DeviceArray, bias: DeviceArray?, plan: LayerNormPlan) throws -> DeviceArray {
        let (xv, s, b) = (try values(x), try values(scale), try bias.map(values))
        let c = plan.columns
        var out = [Double](repeating: 0, count: xv.count)
        for r in 0..<plan.rows {
            let (mean, inv) = rowStatistics(xv[(r * c)..<((r + 1) * c)], epsilon: plan.epsilon)
            for j in 0..<c { out[r * c + j] = (xv[r * c + j] - mean) * inv * s[j] + (b?[j] ?? 0) }
        }
        return array(x.shape, out)
    }

    public func layerNormBackward(_ gradOutput: DeviceArray, input x: DeviceArray, scale: DeviceArray, plan: LayerNormPlan) throws -> DeviceArray {
        let (g, xv, s) = (try values(gradOutput), try values(x), try values(scale))
        let c = plan.columns
        var out = [Double](repeating: 0, count: xv.count)
        for r in 0..<plan.rows {
            let (mean, inv) = rowStatistics(xv[(r * c)..<((r + 1) * c)], epsilon: plan.epsilon)
            var meanG = 0.0, meanGX = 0.0
            for j in 0..<c {
                let gs = g[r * c + j] * s[j]
                meanG += gs
                meanGX += gs * (xv[r * c + j] - mean) * inv
            }
            (meanG, meanGX) = (meanG / Double(c), meanGX / Double(c))
            for j in 0..<c {
                let xhat = (xv[r * c + j] - mean) * inv
                out[r * c + j] = inv * (g[r * c + j] * s[j] - meanG - xhat * meanGX)
            }
        }
        return array(x.shape, out)
    }

    public func softmax(_ x: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray {
        let (outer, n, inner, log) = (plan.outer, plan.extent, plan.inner, plan.log)
        let xv = try values(x)
        var out = [Double](repeating: 0, count: xv.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let idx = (0..<n).map { (o * n + $0) * inner + i }
                let m = idx.map { xv[$0] }.reduce(-Double.infinity, Swift.max)
                let sum = idx.reduce(0.0) { $0 + exp(xv[$1] - m) }
                for j in idx { out[j] = log ? xv[j] - m - Foundation.log(sum) : exp(xv[j] - m) / sum }
            }
        }
        return array(x.shape, out)
    }

    public func softmaxBackward(_ gy: DeviceArray, output y: DeviceArray, plan: SoftmaxPlan) throws -> DeviceArray {
        let (outer, n, inner, log) = (plan.outer, plan.extent, plan.inner, plan.log)
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

    public func resizeBilinear(_ x: DeviceArray, plan: ResizePlan) throws -> DeviceArray {
        let (height, width, alignCorners) = (plan.output[2], plan.output[3], plan.alignCorners)
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

    public func resizeBilinearBackward(_ gy: DeviceArray, plan: ResizePlan) throws -> DeviceArray {
        let (inputShape, alignCorners) = (plan.input, plan.alignCorners)
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

    private func maskValues(_ plan: MaskPlan) throws -> [Double] {
        var labels: [Int]?
        switch plan.spec {
        case .segments(let l, _, _), .ranks(let l, _, _): labels = try values(l).map { Int($0) }
        default: break
        }
        var out: [Double] = []
        out.reserveCapacity(plan.sampleCount * plan.height * plan.width)
        let spec = plan.spec.expandedOnHost
        for n in 0..<plan.sampleCount {
            for y in 0..<plan.height {
                for x in 0..<plan.width {
                    out.append(try spec.hostValue(sample: n, y: y, x: x, height: plan.height, width: plan.width, labels: labels))
                }
            }
        }
        return out
    }

    public func masks(plan: MaskPlan) throws -> DeviceArray {
        array(plan.outputShape, try maskValues(plan))
    }

    public func composite(image: DeviceArray, baseline: DeviceArray, plan: CompositePlan) throws -> DeviceArray {
        let (c, h, w, count) = (plan.channels, plan.masks.height, plan.masks.width, plan.masks.sampleCount)
        let m = try maskValues(plan.masks)
        let xv = try values(image), bv = try values(baseline)
        var out = [Double](repeating: 0, count: count * c * h * w)
        for n in 0..<count {
            for ch in 0..<c {
                for p in 0..<(h * w) {
                    let mv = m[n * h * w + p]
                    out[(n * c + ch) * h * w + p] = xv[ch * h * w + p] * mv + bv[ch * h * w + p] * (1 - mv)
                }
            }
        }
        return array(plan.outputShape, out)
    }

    // MARK: Device noise and running sums (float32 by definition: the same bits as every backend)

    public func noise(_ item: DeviceArray, plan: NoisePlan) throws -> DeviceArray {
        let x = try values(item).map(Float.init), per = plan.item.count
        var out = [Float](repeating: 0, count: plan.copies * per)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                for k in 0..<plan.copies {
                    CounterRandom.addNoise(xp.baseAddress!, op.baseAddress! + k * per, elements: 0..<per, sigma: plan.sigma,
                                           seed: plan.seed, stream: plan.firstStream &+ UInt64(k))
                }
            }
        }
        return array(plan.outputShape, out.map(Double.init))
    }

    public func runningSum(_ rows: DeviceArray, state: DeviceArray?, plan: RunningSumPlan) throws -> DeviceArray {
        let r = try values(rows).map(Float.init)
        var st = try state.map { try values($0).map(Float.init) } ?? [Float](repeating: 0, count: 4 * plan.itemCount)
        r.withUnsafeBufferPointer { rp in
            st.withUnsafeMutableBufferPointer { sp in
                RunningSum.add(rp.baseAddress!, rows: plan.rows, item: plan.itemCount, state: sp.baseAddress!,
                               absolute: plan.absolute, elements: 0..<plan.itemCount)
            }
        }
        return array(plan.stateShape, st.map(Double.init))
    }

    // MARK: Data movement (float64, so finite differences stay exact)

    public func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray {
        array(plan.outputShape, plan.apply(try inputs.map(values), fill: Double(plan.fill ?? 0)))
    }
}
