import XAICore

extension CPUBackend {
    // MARK: Pooling

    public func pool2d(_ x: DeviceArray, plan: PoolPlan) throws -> DeviceArray {
        if let y = try blockedPool(x, plan) { return y }
        let (os, p) = (plan.output, plan.params)
        let px = try ptr(x, "pool2d")
        let (out, po) = try allocate(os)
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

    public func pool2dBackward(_ gradOutput: DeviceArray, input x: DeviceArray, plan: PoolPlan) throws -> DeviceArray {
        if let y = try blockedPoolBackward(gradOutput, input: x, plan) { return y }
        let (os, p) = (plan.output, plan.params)
        let px = try ptr(x, "pool2dBackward"), pg = try ptr(gradOutput, "pool2dBackward")
        let (out, pdx) = try allocate(x.shape)
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
}
