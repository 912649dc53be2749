import Foundation
import XAICore

// The ops that sit between convolutions (ReLU, residual adds, pooling, global average pooling and
// their gradients) on channel-blocked arrays, so that activations stay in oneDNN's layout from one
// convolution to the next instead of being reordered twice per op. Each mirrors the plain loop of
// the same op exactly (same window order, same float64 accumulation), so results do not depend on
// the layout. The zero-padded channel tail stays zero: only ops with f(0) = 0 run blocked.

extension CPUBackend {
    /// `a`'s storage when it is channel-blocked for exactly `a.shape`.
    func blockedStorage(_ a: DeviceArray) -> CPUStorage? {
        guard let s = a.storage as? CPUStorage, s.layout != .plain, s.blockedShape == a.shape else { return nil }
        return s
    }

    /// Pointwise ops that map 0 to 0 (the blocked tail stays zero).
    static func keepsZero(_ op: UnaryOp) -> Bool {
        switch op {
        case .identity, .relu, .leakyRelu, .tanh, .silu, .hardSwish, .gelu, .geluTanh, .erf, .sqrt: return true
        case .clip(let lo, let hi): return lo <= 0 && hi >= 0
        case .pow(let p): return p > 0
        case .sigmoid, .hardSigmoid, .exp: return false
        }
    }

    /// Whether `a` is held in oneDNN's channel-blocked layout (activations between convolutions).
    public func isChannelBlocked(_ a: DeviceArray) -> Bool { blockedStorage(a) != nil }

    /// Whether `plan` joins `inputs` (4-D) along the channels, as ``MovementPlan/concat(_:axis:)``
    /// lays it out.
    static func isChannelConcat(_ plan: MovementPlan, _ inputs: [DeviceArray]) -> Bool {
        // Plans normalise their copies (merged axes), so compare with the concat plan itself.
        guard inputs.allSatisfy({ $0.shape.rank == 4 }), let channels = try? MovementPlan.concat(inputs.map(\.shape), axis: 1) else { return false }
        return channels == plan
    }

    /// Concatenation along the channels of blocked arrays whose channel counts fill whole blocks
    /// (SqueezeNet's Fire modules, Inception branches): per image, each input's blocks are one
    /// contiguous run placed after the previous input's, so the result stays blocked and the next
    /// convolution reads it without a reorder.
    func blockedConcat(_ inputs: [DeviceArray], _ plan: MovementPlan) throws -> DeviceArray? {
        guard inputs.count >= 2, let first = inputs.first.flatMap(blockedStorage), let b = first.layout.blockSize,
              Self.isChannelConcat(plan, inputs) else { return nil }
        var sources: [UnsafeMutablePointer<Float>] = []
        for x in inputs {
            guard let s = blockedStorage(x), s.layout == first.layout, x.shape[1] % b == 0 else { return nil }
            sources.append(s.pointer)
        }
        let shape = plan.outputShape
        let plane = shape[2] * shape[3]
        let (out, os) = try allocateLike(first, shape)
        let po = os.pointer
        var offsets: [Int] = [], offset = 0
        for x in inputs { offsets.append(offset); offset += x.shape[1] * plane }
        let perImage = shape[1] * plane
        parallelFor(shape[0] * inputs.count, costPerItem: perImage / inputs.count) { items in
            for item in items {
                let (image, k) = (item / inputs.count, item % inputs.count)
                let count = inputs[k].shape[1] * plane
                (po + image * perImage + offsets[k]).update(from: sources[k] + image * count, count: count)
            }
        }
        return out
    }

    /// A new blocked array of the same shape and layout as `like`.
    func allocateLike(_ like: CPUStorage, _ shape: Shape) throws -> (DeviceArray, CPUStorage) {
        let s = try allocateStorage(shape, layout: like.layout)
        return (DeviceArray(shape: shape, storage: s), s)
    }

    func blockedUnary(_ x: DeviceArray, _ op: UnaryOp) throws -> DeviceArray? {
        guard Self.keepsZero(op), let xs = blockedStorage(x) else { return nil }
        let (out, os) = try allocateLike(xs, x.shape)
        let (px, po) = (xs.pointer, os.pointer)
        parallelFor(xs.count, costPerItem: 4) { r in
            if op == .relu {
                VectorLoops.relu(px, out: po, r)
            } else {
                for i in r { po[i] = op.apply(px[i]) }
            }
        }
        return out
    }

    func blockedUnaryBackward(_ gradOutput: DeviceArray, value: DeviceArray, _ plan: UnaryBackwardPlan) throws -> DeviceArray? {
        guard let vs = blockedStorage(value), let dnnl else { return nil }
        let gs = try blocked(gradOutput, "unaryBackward", dnnl)
        guard gs.layout == vs.layout else { return nil }
        let (out, os) = try allocateLike(vs, value.shape)
        let (pg, pv, po) = (gs.pointer, vs.pointer, os.pointer)
        let (op, fromOutput) = (plan.op, plan.valueIsOutput)
        parallelFor(vs.count, costPerItem: 4) { r in
            if VectorLoops.unaryBackward(op, grad: pg, value: pv, out: po, r) { return }
            for i in r {
                let d = fromOutput ? op.derivative(output: Double(pv[i])) : op.derivative(input: Double(pv[i]))
                po[i] = pg[i] * Float(d)
            }
        }
        return out
    }

    func blockedBinary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray, _ plan: BroadcastPlan) throws -> DeviceArray? {
        // Same shapes only (no broadcasting), and ops with 0 op 0 = 0.
        guard plan.sameShape, op != .div, let dnnl else { return nil }
        let blockedA = blockedStorage(a), blockedB = blockedStorage(b)
        guard blockedA != nil || blockedB != nil else { return nil }
        let sa = try blockedA ?? blocked(a, "binary", dnnl), sb = try blockedB ?? blocked(b, "binary", dnnl)
        guard sa.layout == sb.layout else { return nil }
        let (out, os) = try allocateLike(sa, a.shape)
        let (pa, pb, po) = (sa.pointer, sb.pointer, os.pointer)
        parallelFor(sa.count, costPerItem: 2) { r in VectorLoops.binary(op, pa, pb, out: po, r) }
        return out
    }

    /// Pooling over channel blocks: for each image, block and output pixel, the window of every
    /// lane, in the plain loop's order.
    func blockedPool(_ x: DeviceArray, _ plan: PoolPlan) throws -> DeviceArray? {
        guard let xs = blockedStorage(x), let b = xs.layout.blockSize else { return nil }
        let (p, os) = (plan.params, plan.output)
        let (h, w, oh, ow) = (x.shape[2], x.shape[3], os[2], os[3])
        let blocks = xs.count / (x.shape[0] * h * w * b)
        let (out, outStorage) = try allocateLike(xs, os)
        let (px, po) = (xs.pointer, outStorage.pointer)
        let windows = PoolWindows(h: h, w: w, oh: oh, ow: ow, params: p)
        parallelFor(x.shape[0] * blocks, costPerItem: oh * ow * p.kernelH * p.kernelW * b) { planes in
            for pl in planes { windows.pool(px + pl * h * w * b, po + pl * oh * ow * b, lanes: b) }
        }
        return out
    }

    func blockedPoolBackward(_ gradOutput: DeviceArray, input x: DeviceArray, _ plan: PoolPlan) throws -> DeviceArray? {
        guard let xs = blockedStorage(x), let b = xs.layout.blockSize, let dnnl else { return nil }
        let gs = try blocked(gradOutput, "pool2dBackward", dnnl)
        guard gs.layout == xs.layout else { return nil }
        let (p, os) = (plan.params, plan.output)
        let (h, w, oh, ow) = (x.shape[2], x.shape[3], os[2], os[3])
        let blocks = xs.count / (x.shape[0] * h * w * b)
        let (out, outStorage) = try allocateLike(xs, x.shape)
        let (px, pg, pdx) = (xs.pointer, gs.pointer, outStorage.pointer)
        pdx.update(repeating: 0, count: outStorage.count)
        let windows = PoolWindows(h: h, w: w, oh: oh, ow: ow, params: p)
        parallelFor(x.shape[0] * blocks, costPerItem: oh * ow * p.kernelH * p.kernelW * b) { planes in
            for pl in planes { windows.poolBackward(px + pl * h * w * b, pg + pl * oh * ow * b, pdx + pl * h * w * b, lanes: b) }
        }
        return out
    }

    /// Whether a reduction is over exactly the spatial axes of a 4-D array (global pooling).
    static func isSpatial(_ plan: ReducePlan) -> Bool {
        plan.inputShape.rank == 4 && plan.outputShape == Shape([plan.inputShape[0], plan.inputShape[1], 1, 1])
    }

    /// Sum or mean over H and W of a blocked array: a plain `[N, C, 1, 1]`, summed in float64 in the
    /// plain loop's order.
    func blockedSpatialReduce(_ op: ReduceOp, _ x: DeviceArray, _ plan: ReducePlan) throws -> DeviceArray? {
        guard op == .sum || op == .mean, Self.isSpatial(plan), let xs = blockedStorage(x), let b = xs.layout.blockSize else { return nil }
        let (n, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let blocks = (c + b - 1) / b
        let (out, po) = try allocate(plan.outputShape)
        let px = xs.pointer
        parallelFor(n * blocks, costPerItem: hw * b) { planes in
            var acc = [Double](repeating: 0, count: b)
            for pl in planes {
                let (image, block) = (pl / blocks, pl % blocks)
                let src = px + pl * hw * b
                for l in 0..<b { acc[l] = 0 }
                for p in 0..<hw { for l in 0..<b { acc[l] += Double(src[p * b + l]) } }
                for l in 0..<b where block * b + l < c {
                    po[image * c + block * b + l] = Float(op == .mean ? acc[l] / Double(hw) : acc[l])
                }
            }
        }
        return out
    }

    /// The gradient of a spatial sum or mean of a blocked array, blocked like it.
    func blockedSpatialReduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input x: DeviceArray, _ plan: ReducePlan) throws -> DeviceArray? {
        guard op == .sum || op == .mean, Self.isSpatial(plan), let xs = blockedStorage(x), let b = xs.layout.blockSize else { return nil }
        let pg = try ptr(gradOutput, "reduceBackward")
        let (n, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let blocks = (c + b - 1) / b
        let (out, os) = try allocateLike(xs, x.shape)
        let po = os.pointer
        parallelFor(n * blocks, costPerItem: hw * b) { planes in
            var g = [Float](repeating: 0, count: b)
            for pl in planes {
                let (image, block) = (pl / blocks, pl % blocks)
                for l in 0..<b {
                    let ch = block * b + l
                    g[l] = ch < c ? (op == .mean ? pg[image * c + ch] / Float(hw) : pg[image * c + ch]) : 0
                }
                let dst = po + pl * hw * b
                for p in 0..<hw { for l in 0..<b { dst[p * b + l] = g[l] } }
            }
        }
        return out
    }
}

