import CBLAS
import Dispatch
import Foundation
import XAICore

extension CPUBackend {
    /// Convolution geometry resolved once per call.
    struct ConvGeometry {
        let n, cin, h, w, cout, kh, kw, oh, ow, cinG, coutG: Int
        let p: Conv2DParams
        var k: Int { cinG * kh * kw }
        let isPointwise: Bool
        var isDepthwise: Bool { cinG == 1 && coutG == 1 }

        init(input: Shape, weight: Shape, output: Shape, params: Conv2DParams) {
            (n, cin, h, w) = (input[0], input[1], input[2], input[3])
            (cout, kh, kw) = (weight[0], weight[2], weight[3])
            (oh, ow) = (output[2], output[3])
            isPointwise = params.isPointwise(weight: weight)
            cinG = cin / params.groups
            coutG = cout / params.groups
            p = params
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

    public func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, params: Conv2DParams,
                       activation: UnaryOp) throws -> DeviceArray {
        let os = try params.outputShape(input: x.shape, weight: weight.shape)
        if let bias, bias.shape.count != os[1] { throw XAIError.shapeMismatch(op: "conv2d", message: "bias \(bias.shape) for \(os[1]) channels") }
        let px = try ptr(x, "conv2d"), pw = try ptr(weight, "conv2d"), pb = try bias.map { try ptr($0, "conv2d") }
        let g = ConvGeometry(input: x.shape, weight: weight.shape, output: os, params: params)
        let (out, py) = allocate(os)
        let plane = g.oh * g.ow

        if g.isDepthwise {
            depthwise(g, px, pw, pb, py, activation)
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
            let yg = py + (b * g.cout + grp * g.coutG) * plane + oy0 * g.ow
            let wg = pw + grp * g.coutG * g.k
            if g.isPointwise {
                sgemm(false, false, g.coutG, cols, g.k, 1, wg, g.k, xg + oy0 * g.ow, plane, 0, yg, plane, parallel: parallel)
            } else {
                im2col(g, xg, col!, oy0, oy1, parallel: parallel)
                sgemm(false, false, g.coutG, cols, g.k, 1, wg, g.k, col!, cols, 0, yg, plane, parallel: parallel)
            }
            parallelFor(g.coutG, costPerItem: parallel ? cols : 0) { rows in
                for co in rows { epilogue(yg + co * plane, cols, bias: pb?[grp * g.coutG + co], activation) }
            }
        }
        return out
    }

    /// `activation(v + bias)` over one output row segment.
    @inline(__always)
    func epilogue(_ p: UnsafeMutablePointer<Float>, _ count: Int, bias: Float?, _ activation: UnaryOp) {
        let b = bias ?? 0
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
                           _ pb: UnsafeMutablePointer<Float>?, _ py: UnsafeMutablePointer<Float>, _ activation: UnaryOp) {
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
                        dst[oy * g.ow + ox] = activation.apply(acc)
                    }
                }
            }
        }
    }

    public func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, params: Conv2DParams,
                                    inputShape: Shape) throws -> DeviceArray {
        let os = try params.outputShape(input: inputShape, weight: weight.shape)
        guard gradOutput.shape == os else { throw XAIError.shapeMismatch(op: "conv2dBackwardInput", message: "gradient \(gradOutput.shape), expected \(os)") }
        let pg = try ptr(gradOutput, "conv2dBackwardInput"), pw = try ptr(weight, "conv2dBackwardInput")
        let g = ConvGeometry(input: inputShape, weight: weight.shape, output: os, params: params)
        let (out, pdx) = allocate(inputShape)
        pdx.update(repeating: 0, count: inputShape.count)
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

    // MARK: Pooling

    public func pool2d(_ x: DeviceArray, params p: Pool2DParams) throws -> DeviceArray {
        let os = try p.outputShape(input: x.shape)
        let px = try ptr(x, "pool2d")
        let (out, po) = allocate(os)
        let (h, w, oh, ow) = (x.shape[2], x.shape[3], os[2], os[3])
        parallelFor(x.shape[0] * x.shape[1], costPerItem: oh * ow * p.kernelH * p.kernelW) { planes in
            for pl in planes {
                let src = px + pl * h * w, dst = po + pl * oh * ow
                for oy in 0..<oh {
                    let wy = poolWindow(oy, size: h, kernel: p.kernelH, stride: p.strideH, padBefore: p.padTop, padAfter: p.padBottom)
                    for ox in 0..<ow {
                        let wx = poolWindow(ox, size: w, kernel: p.kernelW, stride: p.strideW, padBefore: p.padLeft, padAfter: p.padRight)
                        if p.kind == .max {
                            var m = -Float.infinity
                            for iy in wy.start..<wy.end { for ix in wx.start..<wx.end { m = max(m, src[iy * w + ix]) } }
                            dst[oy * ow + ox] = m
                        } else {
                            var s: Float = 0
                            for iy in wy.start..<wy.end { for ix in wx.start..<wx.end { s += src[iy * w + ix] } }
                            let div = p.countIncludePad ? wy.paddedExtent * wx.paddedExtent : (wy.end - wy.start) * (wx.end - wx.start)
                            dst[oy * ow + ox] = s / Float(div)
                        }
                    }
                }
            }
        }
        return out
    }

    public func pool2dBackward(_ gradOutput: DeviceArray, input x: DeviceArray, params p: Pool2DParams) throws -> DeviceArray {
        let os = try p.outputShape(input: x.shape)
        guard gradOutput.shape == os else {
            throw XAIError.shapeMismatch(op: "pool2dBackward", message: "gradient \(gradOutput.shape) for input \(x.shape), \(p)")
        }
        let px = try ptr(x, "pool2dBackward"), pg = try ptr(gradOutput, "pool2dBackward")
        let (out, pdx) = allocate(x.shape)
        pdx.update(repeating: 0, count: x.shape.count)
        let (h, w, oh, ow) = (x.shape[2], x.shape[3], os[2], os[3])
        parallelFor(x.shape[0] * x.shape[1], costPerItem: oh * ow * p.kernelH * p.kernelW) { planes in
            for pl in planes {
                let src = px + pl * h * w, gy = pg + pl * oh * ow, dst = pdx + pl * h * w
                for oy in 0..<oh {
                    let wy = poolWindow(oy, size: h, kernel: p.kernelH, stride: p.strideH, padBefore: p.padTop, padAfter: p.padBottom)
                    for ox in 0..<ow {
                        let wx = poolWindow(ox, size: w, kernel: p.kernelW, stride: p.strideW, padBefore: p.padLeft, padAfter: p.padRight)
                        let gv = gy[oy * ow + ox]
                        if p.kind == .max {
                            var best = wy.start * w + wx.start
                            for iy in wy.start..<wy.end {
                                for ix in wx.start..<wx.end where src[iy * w + ix] > src[best] { best = iy * w + ix }
                            }
                            dst[best] += gv
                        } else {
                            let div = p.countIncludePad ? wy.paddedExtent * wx.paddedExtent : (wy.end - wy.start) * (wx.end - wx.start)
                            let share = gv / Float(div)
                            for iy in wy.start..<wy.end { for ix in wx.start..<wx.end { dst[iy * w + ix] += share } }
                        }
                    }
                }
            }
        }
        return out
    }

    // MARK: Resampling

    public func resizeBilinear(_ x: DeviceArray, height: Int, width: Int, alignCorners: Bool) throws -> DeviceArray {
        try Check.resize(x.shape, height: height, width: width)
        let px = try ptr(x, "resizeBilinear")
        let (h, w) = (x.shape[2], x.shape[3])
        let (out, po) = allocate([x.shape[0], x.shape[1], height, width])
        let ys = (0..<height).map { bilinearSource($0, inSize: h, outSize: height, alignCorners: alignCorners) }
        let xs = (0..<width).map { bilinearSource($0, inSize: w, outSize: width, alignCorners: alignCorners) }
        parallelFor(x.shape[0] * x.shape[1], costPerItem: height * width * 8) { planes in
            for pl in planes {
                let src = px + pl * h * w, dst = po + pl * height * width
                for oy in 0..<height {
                    let sy = ys[oy], ty = Float(sy.t)
                    let r0 = src + sy.i0 * w, r1 = src + sy.i1 * w
                    for ox in 0..<width {
                        let sx = xs[ox], tx = Float(sx.t)
                        let top = (1 - tx) * r0[sx.i0] + tx * r0[sx.i1]
                        let bottom = (1 - tx) * r1[sx.i0] + tx * r1[sx.i1]
                        dst[oy * width + ox] = (1 - ty) * top + ty * bottom
                    }
                }
            }
        }
        return out
    }

    public func resizeBilinearBackward(_ gradOutput: DeviceArray, inputShape: Shape, alignCorners: Bool) throws -> DeviceArray {
        try Check.resizeBackward(gradOutput.shape, input: inputShape)
        let pg = try ptr(gradOutput, "resizeBilinearBackward")
        let (h, w, oh, ow) = (inputShape[2], inputShape[3], gradOutput.shape[2], gradOutput.shape[3])
        let (out, pdx) = allocate(inputShape)
        pdx.update(repeating: 0, count: inputShape.count)
        let ys = (0..<oh).map { bilinearSource($0, inSize: h, outSize: oh, alignCorners: alignCorners) }
        let xs = (0..<ow).map { bilinearSource($0, inSize: w, outSize: ow, alignCorners: alignCorners) }
        parallelFor(inputShape[0] * inputShape[1], costPerItem: oh * ow * 8) { planes in
            for pl in planes {
                let gy = pg + pl * oh * ow, dst = pdx + pl * h * w
                for oy in 0..<oh {
                    let sy = ys[oy], ty = Float(sy.t)
                    for ox in 0..<ow {
                        let sx = xs[ox], tx = Float(sx.t), g = gy[oy * ow + ox]
                        dst[sy.i0 * w + sx.i0] += g * (1 - ty) * (1 - tx)
                        dst[sy.i0 * w + sx.i1] += g * (1 - ty) * tx
                        dst[sy.i1 * w + sx.i0] += g * ty * (1 - tx)
                        dst[sy.i1 * w + sx.i1] += g * ty * tx
                    }
                }
            }
        }
        return out
    }

    // MARK: Perturbation

    /// Writes mask `n` (`height * width` values) into `dst`.
    private func fillMask(_ spec: MaskSpec, _ n: Int, _ labels: UnsafeMutablePointer<Float>?, _ height: Int, _ width: Int,
                          _ dst: UnsafeMutablePointer<Float>) {
        switch spec {
        case .segments(_, let keep, let words):
            keep.withUnsafeBufferPointer { bits in
                let row = bits.baseAddress! + n * words
                for i in 0..<(height * width) {
                    let s = Int(labels![i])
                    dst[i] = (row[s >> 5] >> UInt32(s & 31)) & 1 == 1 ? 1 : 0
                }
            }
        case .rectangles(let rects):
            let r = rects[n]
            for y in 0..<height {
                let inside = y >= r.top && y < r.top + r.height
                for x in 0..<width { dst[y * width + x] = inside && x >= r.left && x < r.left + r.width ? 0 : 1 }
            }
        case .grids:
            for y in 0..<height {
                for x in 0..<width { dst[y * width + x] = Float(spec.hostValue(sample: n, y: y, x: x, height: height, width: width)) }
            }
        }
    }

    private func labelPointer(_ spec: MaskSpec) throws -> UnsafeMutablePointer<Float>? {
        if case .segments(let labels, _, let words) = spec {
            let p = try ptr(labels, "mask(segments)")
            let maxLabel = words * 32
            for i in 0..<labels.shape.count where !(p[i] >= 0 && Int(p[i]) < maxLabel) {
                throw XAIError.invalidArgument(op: "mask(segments)", message: "label \(p[i]) at pixel \(i) is outside 0..<\(maxLabel)")
            }
            return p
        }
        return nil
    }

    public func masks(_ spec: MaskSpec, height: Int, width: Int) throws -> DeviceArray {
        try spec.validate(height: height, width: width)
        let labels = try labelPointer(spec)
        let count = spec.sampleCount
        let (out, po) = allocate([count, 1, height, width])
        parallelFor(count, costPerItem: height * width) { r in
            for n in r { fillMask(spec, n, labels, height, width, po + n * height * width) }
        }
        return out
    }

    public func composite(image: DeviceArray, baseline: DeviceArray, masks spec: MaskSpec) throws -> DeviceArray {
        try Check.composite(image: image.shape, baseline: baseline.shape)
        let (c, h, w) = (image.shape[1], image.shape[2], image.shape[3])
        try spec.validate(height: h, width: w)
        let labels = try labelPointer(spec)
        let px = try ptr(image, "composite"), pb = try ptr(baseline, "composite")
        let count = spec.sampleCount
        let (out, po) = allocate([count, c, h, w])
        parallelFor(count, costPerItem: c * h * w) { r in
            let m = UnsafeMutablePointer<Float>.allocate(capacity: h * w)
            defer { m.deallocate() }
            for n in r {
                fillMask(spec, n, labels, h, w, m)
                let dst = po + n * c * h * w
                for i in 0..<(c * h * w) {
                    let mv = m[i % (h * w)]
                    dst[i] = pb[i] + mv * (px[i] - pb[i])
                }
            }
        }
        return out
    }
}
