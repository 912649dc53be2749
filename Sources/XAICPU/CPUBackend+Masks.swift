import XAICore

extension CPUBackend {
    // MARK: Perturbation

    /// Writes mask `n` (`height * width` values) into `dst`; segment labels are validated by the plan.
    private func fillMask(_ spec: MaskSpec, _ n: Int, _ labels: UnsafeMutablePointer<Float>?, _ height: Int, _ width: Int,
                          _ dst: UnsafeMutablePointer<Float>) {
        switch spec {
        case .segments(_, let keep, let words):
            guard let labels else { return }
            keep.withUnsafeBufferPointer { bits in
                guard let base = bits.baseAddress else { return }
                let row = base + n * words
                for i in 0..<(height * width) {
                    let s = Int(labels[i])
                    dst[i] = (row[s >> 5] >> UInt32(s & 31)) & 1 == 1 ? 1 : 0
                }
            }
        case .rectangles(let rects):
            let r = rects[n]
            for y in 0..<height {
                let inside = y >= r.top && y - r.top < r.height
                for x in 0..<width { dst[y * width + x] = inside && x >= r.left && x - r.left < r.width ? 0 : 1 }
            }
        case .grids(let cells, let gh, let gw, let uh, let uw, let shifts):
            let (dy, dx) = shifts[n]
            let base = n * gh * gw
            for y in 0..<height {
                let sy = bilinearSource(y + dy, inSize: gh, outSize: uh, alignCorners: false)
                for x in 0..<width {
                    let sx = bilinearSource(x + dx, inSize: gw, outSize: uw, alignCorners: false)
                    func c(_ i: Int, _ j: Int) -> Double { Double(cells[base + i * gw + j]) }
                    let top = (1 - sx.t) * c(sy.i0, sx.i0) + sx.t * c(sy.i0, sx.i1)
                    let bottom = (1 - sx.t) * c(sy.i1, sx.i0) + sx.t * c(sy.i1, sx.i1)
                    dst[y * width + x] = Float((1 - sy.t) * top + sy.t * bottom)
                }
            }
        case .randomGrids(let r):
            // The callers expand these on the host first (``MaskSpec/expandedOnHost``); one mask here.
            fillMask(r.slice(n..<(n + 1)).expanded, 0, labels, height, width, dst)
        case .ranks(_, let counts, let firstKept):
            guard let labels else { return }
            let count = Float(counts[n])
            let (first, rest): (Float, Float) = firstKept ? (1, 0) : (0, 1)
            for i in 0..<(height * width) { dst[i] = labels[i] < count ? first : rest }
        }
    }

    private func labelPointer(_ spec: MaskSpec) throws -> UnsafeMutablePointer<Float>? {
        switch spec {
        case .segments(let labels, _, _): return try ptr(labels, "mask(segments)")
        case .ranks(let ranks, _, _): return try ptr(ranks, "mask(ranks)")
        default: return nil
        }
    }

    public func masks(plan: MaskPlan) throws -> DeviceArray {
        let labels = try labelPointer(plan.spec)
        let (count, height, width) = (plan.sampleCount, plan.height, plan.width)
        let (out, po) = try allocate(plan.outputShape)
        let spec = plan.spec.expandedOnHost
        parallelFor(count, costPerItem: height * width) { r in
            for n in r { fillMask(spec, n, labels, height, width, po + n * height * width) }
        }
        return out
    }

    public func composite(image: DeviceArray, baseline: DeviceArray, plan: CompositePlan) throws -> DeviceArray {
        let (c, h, w, count) = (plan.channels, plan.masks.height, plan.masks.width, plan.masks.sampleCount)
        let labels = try labelPointer(plan.masks.spec)
        let px = try ptr(image, "composite"), pb = try ptr(baseline, "composite")
        let (out, po) = try allocate(plan.outputShape)
        let spec = plan.masks.spec.expandedOnHost
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
