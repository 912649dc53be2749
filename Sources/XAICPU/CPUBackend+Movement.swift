import CLoops
import XAICore

extension CPUBackend {
    /// Permute, slice, pad and concat: permutes as oneDNN reorders (or transposes in tiles without
    /// oneDNN); every other strided copy as contiguous row copies where its innermost axis is
    /// contiguous on both sides (slices, pads, concats), element by element otherwise; spread over cores.
    public func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray {
        if let joined = try blockedConcat(inputs, plan) { return joined }
        if let permuted = try reorderedPermute(inputs, plan) { return permuted }
        let sources = try inputs.map { try ptr($0, "move") }
        let (out, po) = try allocate(plan.outputShape)
        if let fill = plan.fill { po.update(repeating: fill, count: plan.outputShape.count) }
        for copy in plan.copies {
            let src = sources[copy.source]
            let rank = copy.dims.count
            guard rank > 0 else {
                if copy.count == 1 { po[copy.destinationOffset] = src[copy.sourceOffset] }
                continue
            }
            if transposeInTiles(copy, src, po) { continue }
            // Rows: the innermost axis; the outer axes are enumerated.
            let inner = copy.dims[rank - 1]
            let rows = copy.count / max(inner, 1)
            let (ss, ds) = (copy.sourceStrides[rank - 1], copy.destinationStrides[rank - 1])
            let outer = Array(copy.dims.dropLast())
            parallelFor(rows, costPerItem: inner) { range in
                for row in range {
                    var rem = row, s = copy.sourceOffset, d = copy.destinationOffset
                    var axis = outer.count - 1
                    while axis >= 0 {
                        let i = rem % outer[axis]
                        rem /= outer[axis]
                        s += i * copy.sourceStrides[axis]
                        d += i * copy.destinationStrides[axis]
                        axis -= 1
                    }
                    if ss == 1 && ds == 1 {
                        (po + d).update(from: src + s, count: inner)
                    } else {
                        for j in 0..<inner { po[d + j * ds] = src[s + j * ss] }
                    }
                }
            }
        }
        return out
    }

    /// A permute as one oneDNN reorder (JIT-vectorised, in cache-sized blocks): about twice the
    /// speed of the tiled loop below on ConvNeXt's NCHW <-> NHWC. A channel-blocked source (a
    /// convolution's output) is read in its blocks, without a reorder to plain NCHW first. `nil`
    /// without oneDNN, or for a blocked array viewed with another shape.
    private func reorderedPermute(_ inputs: [DeviceArray], _ plan: MovementPlan) throws -> DeviceArray? {
        guard let perm = plan.permutation, inputs.count == 1, let dnnl, (1...6).contains(perm.count) else { return nil }
        let s = try storage(inputs[0], "permute")
        let shape = inputs[0].shape
        guard s.layout == .plain || s.blockedShape == shape else { return nil }
        let (out, po) = try allocate(plan.outputShape)
        let outStrides = plan.outputShape.strides
        var strides = [Int](repeating: 0, count: shape.rank)
        for (i, axis) in perm.enumerated() { strides[axis] = outStrides[i] }
        try dnnl.reorder(shape, from: s.layout, s.pointer, toStrides: strides, po)
        return out
    }

    /// A copy that is a batch of matrix transposes (the destination contiguous along its last axis,
    /// the source along another: NCHW <-> NHWC, attention's head split) in square tiles, spread
    /// over cores by outer index and band of rows. `false` for other copies.
    private func transposeInTiles(_ copy: StridedCopy, _ src: UnsafeMutablePointer<Float>, _ po: UnsafeMutablePointer<Float>) -> Bool {
        let rank = copy.dims.count
        guard rank >= 2, copy.destinationStrides[rank - 1] == 1, copy.sourceStrides[rank - 1] != 1,
              let k = copy.sourceStrides.dropLast().lastIndex(of: 1) else { return false }
        let cols = copy.dims[rank - 1], rows = copy.dims[k]
        let outerAxes = (0..<(rank - 1)).filter { $0 != k }
        let outerCount = outerAxes.reduce(1) { $0 * copy.dims[$1] }
        let band = 16
        let bands = (rows + band - 1) / band
        parallelFor(outerCount * bands, costPerItem: band * cols) { range in
            for item in range {
                var rem = item / bands, s = copy.sourceOffset, d = copy.destinationOffset
                for axis in outerAxes.reversed() {
                    let i = rem % copy.dims[axis]
                    rem /= copy.dims[axis]
                    s += i * copy.sourceStrides[axis]
                    d += i * copy.destinationStrides[axis]
                }
                let i0 = (item % bands) * band, n = min(band, rows - i0)
                xai_transpose_tiles(src + s + i0, po + d + i0 * copy.destinationStrides[k], n, cols, copy.sourceStrides[rank - 1], copy.destinationStrides[k])
            }
        }
        return true
    }
}
