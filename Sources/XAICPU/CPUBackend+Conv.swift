import CBLAS
import CLoops
import Dispatch
import Foundation
import XAICore

extension CPUBackend {
    /// A convolution's extents unpacked from its plan, for the loops.
    struct ConvGeometry {
        let n, cin, h, w, cout, kh, kw, oh, ow, cinG, coutG: Int
        let p: Conv2DParams
        var k: Int { cinG * kh * kw }
        let isPointwise: Bool
        var isDepthwise: Bool { cinG == 1 && coutG == 1 }

        init(_ plan: ConvPlan) {
            (n, cin, h, w) = (plan.n, plan.inputChannels, plan.height, plan.width)
            (cout, kh, kw) = (plan.outputChannels, plan.kernelHeight, plan.kernelWidth)
            (oh, ow) = (plan.outputHeight, plan.outputWidth)
            isPointwise = plan.isPointwise
            cinG = plan.inputChannelsPerGroup
            coutG = plan.outputChannelsPerGroup
            p = plan.params
        }

        /// Output rows per band so that the band's im2col columns plus `outputRows` rows of output stay
        /// within `budget` bytes.
        func rowsPerChunk(budget: Int, outputRows: Int = 0) -> Int {
            max(1, min(oh, budget / 4 / max((k + outputRows) * ow, 1)))
        }
    }

    /// Fills `col` (`[k, rows * ow]`) with the receptive fields of output rows `oy0..<oy1` of one image group.
    private func im2col(_ g: ConvGeometry, _ x: UnsafeMutablePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ oy0: Int, _ oy1: Int, parallel: Bool) {
        let cols = (oy1 - oy0) * g.ow
        parallelFor(g.k, costPerItem: parallel ? cols : 0) { rows in
            for r in rows {
                let kx = r % g.kw, ky = (r / g.kw) % g.kh, ci = r / (g.kw * g.kh)
                let plane = x + ci * g.h * g.w
                var dst = col + r * cols
                for oy in oy0..<oy1 {
                    let iy = oy * g.p.strideH - g.p.padTop + ky * g.p.dilationH
                    if iy < 0 || iy >= g.h {
                        dst.update(repeating: 0, count: g.ow)
                    } else {
                        let src = plane + iy * g.w
                        let x0 = kx * g.p.dilationW - g.p.padLeft
                        for ox in 0..<g.ow {
                            let ix = x0 + ox * g.p.strideW
                            dst[ox] = (ix >= 0 && ix < g.w) ? src[ix] : 0
                        }
                    }
                    dst += g.ow
                }
            }
        }
    }

    /// Adds `col` back into the input gradient (the adjoint of ``im2col``); planes are disjoint per input channel.
    private func col2im(_ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ oy0: Int, _ oy1: Int, parallel: Bool) {
        let cols = (oy1 - oy0) * g.ow
        parallelFor(g.cinG, costPerItem: parallel ? g.kh * g.kw * cols : 0) { channels in
            for ci in channels {
                let plane = dx + ci * g.h * g.w
                for ky in 0..<g.kh {
                    for kx in 0..<g.kw {
                        var src = col + ((ci * g.kh + ky) * g.kw + kx) * cols
                        for oy in oy0..<oy1 {
                            let iy = oy * g.p.strideH - g.p.padTop + ky * g.p.dilationH
                            if iy >= 0 && iy < g.h {
                                let row = plane + iy * g.w
                                let x0 = kx * g.p.dilationW - g.p.padLeft
                                for ox in 0..<g.ow {
                                    let ix = x0 + ox * g.p.strideW
                                    if ix >= 0 && ix < g.w { row[ix] += src[ox] }
                                }
                            }
                            src += g.ow
                        }
                    }
                }
            }
        }
    }

    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan,
                       activation: UnaryOp) throws -> DeviceArray {
        if let dnnl, let y = try dnnlConvolution(x, weight: weight, bias: bias, residual: residual, plan: plan, activation: activation, dnnl) { return y }
        let params = plan.params
        let px = try ptr(x, "conv2d"), pw = try ptr(weight, "conv2d"), pb = try bias.map { try ptr($0, "conv2d") }
        let pr = try residual.map { try ptr($0, "conv2d") }
        let g = ConvGeometry(plan)
        let (out, py) = try allocate(plan.output)
        let plane = g.oh * g.ow

        if g.isDepthwise {
            depthwise(g, px, pw, pb, pr, py, activation)
            return out
        }
        // Work items are (image, group, band of output rows). A band's im2col columns and its output
        // block are sized to stay in cache, so im2col -> sgemm -> bias+activation run on hot data.
        let chunkRows = g.rowsPerChunk(budget: min(workspaceBudget, cacheBudget), outputRows: g.coutG)
        let chunks = (g.oh + chunkRows - 1) / chunkRows
        let colCount = g.isPointwise ? 0 : g.k * chunkRows * g.ow
        forEachItem(g.n * params.groups * chunks, workspace: colCount) { item, col, parallel in
            let b = item / (params.groups * chunks), grp = (item / chunks) % params.groups
            let oy0 = (item % chunks) * chunkRows, oy1 = min(oy0 + chunkRows, g.oh)
            let cols = (oy1 - oy0) * g.ow
            let xg = px + (b * g.cin + grp * g.cinG) * g.h * g.w
            let offset = (b * g.cout + grp * g.coutG) * plane + oy0 * g.ow
            let yg = py + offset
            let wg = pw + grp * g.coutG * g.k
            if g.isPointwise {
                sgemm(false, false, g.coutG, cols, g.k, 1, wg, g.k, xg + oy0 * g.ow, plane, 0, yg, plane, parallel: parallel)
            } else {
                im2col(g, xg, col!, oy0, oy1, parallel: parallel)
                sgemm(false, false, g.coutG, cols, g.k, 1, wg, g.k, col!, cols, 0, yg, plane, parallel: parallel)
            }
            parallelFor(g.coutG, costPerItem: parallel ? cols : 0) { rows in
                for co in rows {
                    epilogue(yg + co * plane, cols, bias: pb?[grp * g.coutG + co], residual: pr.map { $0 + offset + co * plane }, activation)
                }
            }
        }
        return out
    }

    /// `activation(v + bias + residual)` over one output row segment.
    @inline(__always)
    func epilogue(_ p: UnsafeMutablePointer<Float>, _ count: Int, bias: Float?, residual: UnsafeMutablePointer<Float>?, _ activation: UnaryOp) {
        let b = bias ?? 0
        if let residual { for i in 0..<count { p[i] += residual[i] } }
        switch activation {
        case .identity: if bias != nil { for i in 0..<count { p[i] += b } }
        case .relu: for i in 0..<count { p[i] = max(p[i] + b, 0) }
        default: for i in 0..<count { p[i] = activation.apply(p[i] + b) }
        }
    }

    /// Runs `body(item, workspace, parallelInside)` for independent work items. With at least one
    /// item per core, items are spread over the cores; with fewer, they run in turn and each splits
    /// its own im2col, GEMM and epilogue over the cores (`parallelInside`).
    func forEachItem(_ n: Int, workspace: Int, _ body: (Int, UnsafeMutablePointer<Float>?, Bool) -> Void) {
        let threads = n >= cores ? cores : 1
        if threads <= 1 {
            let col = workspace > 0 ? pool.take(workspace) : nil
            for b in 0..<n { body(b, col, true) }
            if let col { pool.give(col, workspace) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            let work = UncheckedSendable(escaping)
            let pool = self.pool
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let col = workspace > 0 ? pool.take(workspace) : nil
                for b in stride(from: t, to: n, by: threads) { work.value(b, col, false) }
                if let col { pool.give(col, workspace) }
            }
        }
    }

    /// One filter per channel: direct loops, parallel over planes.
    private func depthwise(_ g: ConvGeometry, _ px: UnsafeMutablePointer<Float>, _ pw: UnsafeMutablePointer<Float>,
                           _ pb: UnsafeMutablePointer<Float>?, _ pr: UnsafeMutablePointer<Float>?, _ py: UnsafeMutablePointer<Float>,
                           _ activation: UnaryOp) {
        parallelFor(g.n * g.cout, costPerItem: g.oh * g.ow * g.kh * g.kw) { planes in
            for pl in planes {
                let c = pl % g.cout
                let src = px + pl * g.h * g.w, wk = pw + c * g.kh * g.kw, dst = py + pl * g.oh * g.ow
                let b0 = pb?[c] ?? 0
                for oy in 0..<g.oh {
                    for ox in 0..<g.ow {
                        var acc = b0
                        for ky in 0..<g.kh {
                            let iy = oy * g.p.strideH - g.p.padTop + ky * g.p.dilationH
                            if iy < 0 || iy >= g.h { continue }
                            for kx in 0..<g.kw {
                                let ix = ox * g.p.strideW - g.p.padLeft + kx * g.p.dilationW
                                if ix >= 0 && ix < g.w { acc += src[iy * g.w + ix] * wk[ky * g.kw + kx] }
                            }
                        }
                        dst[oy * g.ow + ox] = activation.apply(acc + (pr?[pl * g.oh * g.ow + oy * g.ow + ox] ?? 0))
                    }
                }
            }
        }
    }

    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan) throws -> DeviceArray {
        // A stem (a few input channels, the image's gradient that every gradient method asks for)
        // runs faster as a column product plus col2im than on oneDNN's backward-data kernels, which
        // cannot block 3 channels. On ResNet-50's 7x7 stem at batch 1: backward data 6-11 ms a pass,
        // OpenBLAS's product plus col2im 4.0 ms, oneDNN's 1x1 product read in channel blocks plus a
        // gather 2.6 ms (dnnlStemBackward); the OpenBLAS path stays for configurations oneDNN refuses.
        let isStem = plan.input[1] <= 4 && plan.params.groups == 1
        if let dnnl, !isStem, let dx = try dnnlConvolutionBackward(gradOutput, weight: weight, plan: plan, dnnl) { return dx }
        if let dnnl, isStem, let dx = try dnnlStemBackward(gradOutput, weight: weight, plan: plan, dnnl) { return dx }
        let params = plan.params
        let pg = try ptr(gradOutput, "conv2dBackwardInput"), pw = try ptr(weight, "conv2dBackwardInput")
        let g = ConvGeometry(plan)
        let (out, pdx) = try allocate(plan.input)
        pdx.update(repeating: 0, count: plan.input.count)
        let plane = g.oh * g.ow

        if g.isDepthwise {
            parallelFor(g.n * g.cin, costPerItem: plane * g.kh * g.kw) { planes in
                for pl in planes {
                    let c = pl % g.cin
                    let gy = pg + pl * plane, wk = pw + c * g.kh * g.kw, dst = pdx + pl * g.h * g.w
                    for oy in 0..<g.oh {
                        for ox in 0..<g.ow {
                            let v = gy[oy * g.ow + ox]
                            for ky in 0..<g.kh {
                                let iy = oy * g.p.strideH - g.p.padTop + ky * g.p.dilationH
                                if iy < 0 || iy >= g.h { continue }
                                for kx in 0..<g.kw {
                                    let ix = ox * g.p.strideW - g.p.padLeft + kx * g.p.dilationW
                                    if ix >= 0 && ix < g.w { dst[iy * g.w + ix] += v * wk[ky * g.kw + kx] }
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
        // Bands of one (image, group) overlap in the input rows they write, so each item walks its
        // bands in turn; items write disjoint planes of the input gradient.
        let chunkRows = g.rowsPerChunk(budget: min(workspaceBudget, cacheBudget))
        let colCount = g.isPointwise ? 0 : g.k * chunkRows * g.ow
        forEachItem(g.n * params.groups, workspace: colCount) { item, col, parallel in
            let b = item / params.groups, grp = item % params.groups
            let dxg = pdx + (b * g.cin + grp * g.cinG) * g.h * g.w
            let gyg = pg + (b * g.cout + grp * g.coutG) * plane
            let wg = pw + grp * g.coutG * g.k
            if g.isPointwise {
                sgemm(true, false, g.k, plane, g.coutG, 1, wg, g.k, gyg, plane, 0, dxg, plane, parallel: parallel)
                return
            }
            var oy0 = 0
            while oy0 < g.oh {
                let oy1 = min(oy0 + chunkRows, g.oh)
                let cols = (oy1 - oy0) * g.ow
                sgemm(true, false, g.k, cols, g.coutG, 1, wg, g.k, gyg + oy0 * g.ow, plane, 0, col!, cols, parallel: parallel)
                col2im(g, col!, dxg, oy0, oy1, parallel: parallel)
                oy0 = oy1
            }
        }
        return out
    }
}

extension CPUBackend {
    /// The input gradient with `store` done in one pass over it, in place, chunk by chunk while
    /// the chunk is in cache: the add and the gate (xai_gradient_store) where every operand has
    /// the gradient's layout and the gate is ReLU's or clip's (the activations of the CNNs people
    /// explain; others take the same pass through their derivative). Operands in other layouts are
    /// composed, as the checked entry point would. Either way the bits of the add and the
    /// activation's backward run apart (``binary(_:_:_:plan:)``, ``unaryBackward(_:value:plan:)``).
    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan, store: GradientStore) throws -> DeviceArray? {
        let dx = try conv2dBackwardInput(gradOutput, weight: weight, plan: plan)
        let target = try storage(dx, "conv2dBackwardInput")
        // An operand's floats in the gradient's layout: `.some(nil)` for no operand, `nil` for one
        // in another layout (or of another backend).
        func inLayout(_ a: DeviceArray?) -> UnsafePointer<Float>?? {
            guard let a else { return .some(nil) }
            guard let s = a.storage as? CPUStorage, s.layout == target.layout, s.blockedShape == target.blockedShape,
                  s.count == target.count, target.layout == .plain || blockedStorage(a) != nil else { return nil }
            return .some(UnsafePointer(s.pointer))
        }
        guard case .some(let acc) = inLayout(store.accumulated), case .some(let y) = inLayout(store.activation?.output) else {
            return try store.composed(dx, on: self)
        }
        Self.fusedStores.add()
        let (pdx, count, op) = (target.pointer, target.count, store.activation?.op)
        let gate: (code: Int32, lo: Float, hi: Float)?
        switch op {
        case nil: gate = (0, 0, 0)
        case .relu?: gate = (1, 0, 0)
        case .clip(let lo, let hi)?: gate = (2, lo, hi)
        default: gate = nil
        }
        parallelFor(count, costPerItem: 4) { r in
            let i = r.lowerBound
            xai_gradient_store(pdx + i, acc.map { $0 + i }, y.map { $0 + i }, r.count, gate?.code ?? 0, gate?.lo ?? 0, gate?.hi ?? 0)
            // Other activations: their derivative from the output, as unaryBackward takes it.
            guard gate == nil, let op, let y else { return }
            for j in r { pdx[j] = pdx[j] * Float(op.derivative(output: Double(y[j]))) }
        }
        return dx
    }

    /// Gradient stores done in the one pass (operands in the gradient's layout) so far in this process.
    public static var fusedGradientStoreRuns: Int { fusedStores.value }
    private static let fusedStores = RunCounter()
}

/// A count shared by every thread.
final class RunCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    func add() { lock.lock(); count += 1; lock.unlock() }
}

/// Which convolution algorithm 3x3 stride-1 layers use on oneDNN (`XAI_CONV_ALGO=auto|direct|winograd`).
/// Every policy chooses by rule, never by timing, so two runs compute the same bits.
public enum ConvolutionPolicy: String, Sendable, CaseIterable {
    /// Exact where a gradient goes through, fast where none does: every pass a backward
    /// differentiates (saliency, IG, SmoothGrad, the CAMs' gradients) and every backward runs
    /// direct; forward-only passes (perturbation batches: occlusion, LIME, KernelSHAP, RISE) run
    /// Winograd where it applies: about 14 % faster, and maps within about 3e-3 of direct ones.
    case auto
    /// Direct convolution only, the default (bit-for-bit the same at every batch size and run).
    case direct
    /// Winograd wherever oneDNN offers it, gradient passes and the backward's flipped forward
    /// included (AVX-512 machines): faster, but a ReLU whose input is near zero may flip and send
    /// the gradient elsewhere (VGG16's input gradient 1e-2 from PyTorch's instead of 1.5e-6).
    case winograd

    public init?(_ text: String) { self.init(rawValue: text.lowercased()) }
}

extension CPUBackend {
    /// Whether oneDNN's Winograd applies to a layer: 3x3, stride 1, no dilation, ungrouped, on
    /// 16-channel blocks (its kernels are AVX-512 only in oneDNN 2.x).
    func winogradApplies(_ plan: ConvPlan, _ dnnl: OneDNN) -> Bool {
        let p = plan.params
        return dnnl.blockSize == 16 && plan.kernelHeight == 3 && plan.kernelWidth == 3 && p.strideH == 1 && p.strideW == 1
            && p.dilationH == 1 && p.dilationW == 1 && p.groups == 1 && plan.inputChannels >= 16
    }

    /// The convolution on oneDNN with channel-blocked activations, or `nil` when oneDNN refuses the
    /// configuration (the im2col path runs instead).
    func dnnlConvolution(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, residual: DeviceArray?, plan: ConvPlan,
                         activation: UnaryOp, _ dnnl: OneDNN) throws -> DeviceArray? {
        guard OneDNN.eltwise(activation) != nil || activation == .identity else { return nil }
        // The stem reads the picture as it is; every other layer reads and writes channel blocks.
        let block = CPULayout.channelBlocked(dnnl.blockSize)
        let xs = try storage(x, "conv2d")
        let sourceLayout: CPULayout = plan.inputChannels < 8 && xs.layout == .plain ? .plain : block
        let source = sourceLayout == .plain ? xs : try blocked(x, "conv2d", dnnl)
        let biasPointer = try bias.map { try ptr($0, "conv2d") }
        // The residual is added by a post-op reading it in the output's layout.
        let skip = try residual.map { try blocked($0, "conv2d", dnnl) }
        return try dnnl.choose(plan: plan, backward: false, eligible: winogradApplies(plan, dnnl) && tunedForWinograd(plan),
                               policy: convolutionPolicy) { algorithm in
            let key = OneDNN.ConvolutionKey(plan: plan, backward: false, hasBias: bias != nil, hasResidual: residual != nil,
                                            activation: activation == .identity ? nil : activation,
                                            sourceLayout: sourceLayout, destinationLayout: block, algorithm: algorithm)
            guard let conv = dnnl.convolution(key) else { return nil }
            let weights = try self.dnnlWeights(weight, for: conv, key: key, dnnl)
            let out = try self.allocateStorage(plan.output, layout: block)
            try dnnl.forward(conv, source: source.pointer, weights: weights.pointer, bias: biasPointer, residual: skip?.pointer,
                             destination: out.pointer)
            return DeviceArray(shape: plan.output, storage: out)
        }
    }

    /// A 1x1 convolution and the depthwise 3x3 one after it as one oneDNN primitive (its depthwise
    /// post-op): the 1x1's output is computed a few rows at a time and consumed from cache, never
    /// written whole. MobileNetV2's expansion outputs are its largest activations; at batch 32 the
    /// first block's pair took 8.5 ms fused against 13.8 ms apart. `nil` (the caller runs the two)
    /// where the pair does not fit: a stride other than 1 or 2, padding other than 1, a residual,
    /// an activation oneDNN lacks, or only a reference kernel.
    public func conv2dThenDepthwise(_ x: DeviceArray, pointwise: ConvolutionStep, depthwise: ConvolutionStep) throws -> DeviceArray? {
        guard let dnnl, dnnl.blockSize == 16 else { return nil }
        let (p, q) = (pointwise.plan.params, depthwise.plan.params)
        let channels = pointwise.plan.outputChannels
        guard pointwise.plan.kernelHeight == 1, pointwise.plan.kernelWidth == 1, p.groups == 1, p.strideH == 1, p.strideW == 1,
              p.padTop == 0, p.padLeft == 0, p.padBottom == 0, p.padRight == 0, p.dilationH == 1, p.dilationW == 1,
              depthwise.plan.kernelHeight == 3, depthwise.plan.kernelWidth == 3, q.groups == channels, depthwise.plan.outputChannels == channels,
              q.strideH == q.strideW, q.strideH == 1 || q.strideH == 2, q.dilationH == 1, q.dilationW == 1,
              q.padTop == 1, q.padLeft == 1, q.padBottom == 1, q.padRight == 1, let dwBias = depthwise.bias,
              OneDNN.eltwise(pointwise.activation) != nil || pointwise.activation == .identity,
              OneDNN.eltwise(depthwise.activation) != nil || depthwise.activation == .identity else { return nil }
        let block = CPULayout.channelBlocked(dnnl.blockSize)
        let key = OneDNN.ConvolutionKey(plan: pointwise.plan, backward: false, hasBias: pointwise.bias != nil, hasResidual: false,
                                        activation: pointwise.activation == .identity ? nil : pointwise.activation,
                                        sourceLayout: block, destinationLayout: block, algorithm: .direct,
                                        depthwise: .init(plan: depthwise.plan, activation: depthwise.activation == .identity ? nil : depthwise.activation))
        guard let conv = dnnl.convolution(key) else { return nil }
        let source = try blocked(x, "conv2d", dnnl)
        let weights = try dnnlWeights(pointwise.weight, for: conv, key: key, dnnl)
        let dwStorage = try storage(depthwise.weight, "conv2d")
        guard let wanted = conv.depthwiseWeightsDesc else { return nil }
        let dwWeights = try dwStorage.copy(.fusedDepthwise(OneDNN.Geometry(depthwise.plan, backward: false))) {
            let out = CPUStorage(count: dnnl.size(wanted) / 4, pool: self.pool)
            try dnnl.reorderDepthwiseWeights(dwStorage.pointer, into: out.pointer, for: conv, key: key)
            out.weightsDesc = conv.depthwiseWeightsDesc
            return out
        }
        guard let kept = dwWeights.weightsDesc, OneDNN.equal(kept, wanted) else { return nil }
        let out = try allocateStorage(depthwise.plan.output, layout: block)
        try dnnl.forward(conv, source: source.pointer, weights: weights.pointer, bias: try pointwise.bias.map { try ptr($0, "conv2d") },
                         depthwise: (dwWeights.pointer, try ptr(dwBias, "conv2d")), destination: out.pointer)
        return DeviceArray(shape: depthwise.plan.output, storage: out)
    }

    /// The gradient with respect to the input on oneDNN, or `nil` when refused: as the forward
    /// convolution by flipped weights where that applies (its algorithm by the policy: direct
    /// unless `winograd`), else by the backward-data primitive (see ``BackwardRoute``).
    func dnnlConvolutionBackward(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan, _ dnnl: OneDNN) throws -> DeviceArray? {
        let data = { try self.dnnlBackwardData(gradOutput, weight: weight, plan: plan, dnnl) }
        guard backwardRoute == .flippedForward, let flippedPlan = try flippedForwardPlan(plan, dnnl) else { return try data() }
        let flipped = {
            try self.dnnlConvolution(gradOutput, weight: try self.flippedTransposedWeights(weight, plan), bias: nil, residual: nil,
                                     plan: flippedPlan, activation: .identity, dnnl)
        }
        // Direct (exact) under the auto and direct policies, where it ran ResNet-50's forward +
        // backward about 5 % faster than backward data; Winograd under the winograd policy.
        switch backwardRoute {
        case .flippedForward: return try flipped() ?? data()
        case .backwardData: return try data()
        }
    }

    /// The forward convolution whose output is the input gradient of `plan`, where oneDNN's
    /// Winograd could run it: stride 1, no dilation, ungrouped, each pad below the kernel's size.
    /// Output pixel `y` of the layer read input rows `y - padTop + ky`, so input row `i` receives
    /// from output rows `i + padTop - ky`: a correlation with the kernel rotated by 180 degrees and
    /// `kh - 1 - padTop` rows of padding above (and `kh - 1 - padBottom` below).
    func flippedForwardPlan(_ plan: ConvPlan, _ dnnl: OneDNN) throws -> ConvPlan? {
        let p = plan.params, kh = plan.kernelHeight, kw = plan.kernelWidth
        guard winogradApplies(plan, dnnl), plan.outputChannels >= 16,
              max(p.padTop, p.padBottom) < kh, max(p.padLeft, p.padRight) < kw else { return nil }
        let params = Conv2DParams(strides: (1, 1), pads: (kh - 1 - p.padTop, kw - 1 - p.padLeft, kh - 1 - p.padBottom, kw - 1 - p.padRight))
        let flipped = try ConvPlan(input: plan.output, weight: Shape([plan.inputChannels, plan.outputChannels, kh, kw]), bias: nil, params: params)
        return flipped.output == plan.input ? flipped : nil
    }

    /// `weight` `[Cout, Cin, kh, kw]` as `[Cin, Cout, kh, kw]` with each kernel rotated by 180
    /// degrees, made once per weight array.
    func flippedTransposedWeights(_ weight: DeviceArray, _ plan: ConvPlan) throws -> DeviceArray {
        let s = try storage(weight, "conv2dBackwardInput")
        let pw = try ptr(weight, "conv2dBackwardInput")
        let (cout, cin, kh, kw) = (plan.outputChannels, plan.inputChannels, plan.kernelHeight, plan.kernelWidth)
        let flipped = s.copy(.flippedTransposed) {
            let out = CPUStorage(count: cout * cin * kh * kw, pool: self.pool)
            for o in 0..<cout {
                for i in 0..<cin {
                    let src = pw + (o * cin + i) * kh * kw, dst = out.pointer + (i * cout + o) * kh * kw
                    for t in 0..<kh * kw { dst[t] = src[kh * kw - 1 - t] }
                }
            }
            return out
        }
        return DeviceArray(shape: Shape([cin, cout, kh, kw]), storage: flipped)
    }

    /// The gradient with respect to the input on oneDNN's backward-data primitive, or `nil` when refused.
    func dnnlBackwardData(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan, _ dnnl: OneDNN) throws -> DeviceArray? {
        let block = CPULayout.channelBlocked(dnnl.blockSize)
        // Blocked even for the picture's 3 channels: oneDNN has no fast kernel writing a 3-channel plain gradient.
        let destinationLayout = block
        let gy = try blocked(gradOutput, "conv2dBackwardInput", dnnl)
        return try dnnl.choose(plan: plan, backward: true, eligible: winogradApplies(plan, dnnl), policy: convolutionPolicy) { algorithm in
            let key = OneDNN.ConvolutionKey(plan: plan, backward: true, hasBias: false, hasResidual: false, activation: nil, sourceLayout: destinationLayout,
                                            destinationLayout: block, algorithm: algorithm)
            guard let conv = dnnl.convolution(key) else { return nil }
            let weights = try self.dnnlWeights(weight, for: conv, key: key, dnnl)
            let out = try self.allocateStorage(plan.input, layout: destinationLayout)
            try dnnl.backwardData(conv, gradOutput: gy.pointer, weights: weights.pointer, gradInput: out.pointer)
            return DeviceArray(shape: plan.input, storage: out)
        }
    }

    /// The input gradient of a stem (a few input channels) as im2col's adjoint: the columns
    /// `W^T x gy` (one row per input channel and tap) by oneDNN's 1x1 convolution, reading the
    /// channel-blocked output gradient as it is, then each input pixel gathers the column entries
    /// of its taps. Images go in groups whose columns fit the workspace budget. `nil` when oneDNN
    /// refuses the 1x1 convolution.
    func dnnlStemBackward(_ gradOutput: DeviceArray, weight: DeviceArray, plan: ConvPlan, _ dnnl: OneDNN) throws -> DeviceArray? {
        let g = ConvGeometry(plan)
        let lanes = dnnl.blockSize
        let block = CPULayout.channelBlocked(lanes)
        let gy = try blocked(gradOutput, "conv2dBackwardInput", dnnl)
        let columnsWeight = try stemColumnWeights(weight, plan)
        let paddedColumns = (g.k + lanes - 1) / lanes * lanes, paddedOutputs = (g.cout + lanes - 1) / lanes * lanes
        let perImage = paddedColumns * g.oh * g.ow
        let group = max(1, min(g.n, workspaceBudget / 4 / max(perImage, 1)))
        let (out, pdx) = try allocate(plan.input)
        var first = 0
        while first < g.n {
            let count = min(group, g.n - first)
            let columnsPlan = try ConvPlan(input: Shape([count, g.cout, g.oh, g.ow]), weight: columnsWeight.shape, bias: nil, params: Conv2DParams())
            let key = OneDNN.ConvolutionKey(plan: columnsPlan, backward: false, hasBias: false, hasResidual: false, activation: nil,
                                            sourceLayout: block, destinationLayout: block, algorithm: .direct)
            guard let conv = dnnl.convolution(key) else { return nil }
            let weights = try dnnlWeights(columnsWeight, for: conv, key: key, dnnl)
            let columns = try allocateStorage(columnsPlan.output, layout: block)
            try dnnl.forward(conv, source: gy.pointer + first * paddedOutputs * g.oh * g.ow, weights: weights.pointer, bias: nil,
                             destination: columns.pointer)
            let (pc, dx) = (UncheckedSendable(columns.pointer), UncheckedSendable(pdx + first * g.cin * g.h * g.w))
            // Items: (image, channel, band of rows); each writes its own rows.
            let bands = max(1, min(g.h, 4 * cores / max(count * g.cin, 1)))
            parallelFor(count * g.cin * bands, costPerItem: g.h * g.w * g.kh * g.kw / bands) { items in
                for item in items {
                    let band = item % bands, plane = item / bands, image = plane / g.cin, c = plane % g.cin
                    let (y0, y1) = (g.h * band / bands, g.h * (band + 1) / bands)
                    xai_col2im_blocked_rows(pc.value + image * perImage, dx.value + plane * g.h * g.w, c * g.kh * g.kw, Int32(lanes),
                                            g.h, g.w, g.oh, g.ow, g.kh, g.kw, g.p.strideH, g.p.strideW, g.p.padTop, g.p.padLeft,
                                            g.p.dilationH, g.p.dilationW, y0, y1)
                }
            }
            first += count
        }
        return out
    }

    /// A stem's weights `[Cout, Cin, kh, kw]` as the 1x1 convolution `[Cin * kh * kw, Cout, 1, 1]`
    /// that computes its im2col columns' gradient, made once per weight array.
    func stemColumnWeights(_ weight: DeviceArray, _ plan: ConvPlan) throws -> DeviceArray {
        let s = try storage(weight, "conv2dBackwardInput")
        let pw = try ptr(weight, "conv2dBackwardInput")
        let (cout, k) = (plan.outputChannels, plan.inputChannelsPerGroup * plan.kernelHeight * plan.kernelWidth)
        let transposed = s.copy(.stemColumns) {
            let out = CPUStorage(count: cout * k, pool: self.pool)
            for o in 0..<cout {
                for q in 0..<k { out.pointer[q * cout + o] = pw[o * k + q] }
            }
            return out
        }
        return DeviceArray(shape: Shape([k, cout, 1, 1]), storage: transposed)
    }

    /// Weight formats kept per layer geometry and algorithm (a bound on the memory they take).
    static let weightFormatsPerGeometry = 4

    /// The weights in the layout `conv` reads, reordered once per weight array and format.
    func dnnlWeights(_ weight: DeviceArray, for conv: DNNLConvolution, key: OneDNN.ConvolutionKey, _ dnnl: OneDNN) throws -> CPUStorage {
        let s = try storage(weight, "conv2d")
        guard let size = try dnnl.weightsSizeIfReordered(conv, plan: key.plan) else { return s }
        let reorder = {
            let out = CPUStorage(count: size / 4, pool: self.pool)
            try dnnl.reorderWeights(s.pointer, into: out.pointer, for: conv, key: key)
            out.weightsDesc = conv.weightsDesc
            return out
        }
        // Kept with the weights per geometry and format: a new batch size reuses them when its
        // primitive chose the same format (checked). Winograd picks its weights' blocking per
        // minibatch, and a method alternates batch sizes (the batch-1 logits, full batches, the last
        // partial one): without a copy per format the weights were transformed again before every
        // Winograd convolution, 13-17 ms each on ResNet-50's 3x3 layers where the batch-1
        // convolution took 1-3 ms.
        let geometry = OneDNN.Geometry(key.plan, backward: key.backward)
        for variant in 0..<Self.weightFormatsPerGeometry {
            let cached = try s.copy(.weights(geometry, key.algorithm, variant: variant), make: reorder)
            if let desc = cached.weightsDesc, OneDNN.equal(desc, conv.weightsDesc) { return cached }
        }
        return try reorder()
    }
}
