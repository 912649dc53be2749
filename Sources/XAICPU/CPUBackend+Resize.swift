import XAICore

extension CPUBackend {
    // MARK: Resampling

    public func resizeBilinear(_ x: DeviceArray, plan: ResizePlan) throws -> DeviceArray {
        let (height, width, alignCorners) = (plan.output[2], plan.output[3], plan.alignCorners)
        let px = try ptr(x, "resizeBilinear")
        let (h, w) = (x.shape[2], x.shape[3])
        let (out, po) = try allocate(plan.output)
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

    public func resizeBilinearBackward(_ gradOutput: DeviceArray, plan: ResizePlan) throws -> DeviceArray {
        let (inputShape, alignCorners) = (plan.input, plan.alignCorners)
        let pg = try ptr(gradOutput, "resizeBilinearBackward")
        let (h, w, oh, ow) = (inputShape[2], inputShape[3], gradOutput.shape[2], gradOutput.shape[3])
        let (out, pdx) = try allocate(inputShape)
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
}
