import XAICore

extension CPUBackend {
    /// Permute, slice, pad and concat: each strided copy runs as contiguous row copies where its
    /// innermost axis is contiguous on both sides (slices, pads, concats), element by element
    /// otherwise (permutes), spread over cores.
    public func move(_ inputs: [DeviceArray], plan: MovementPlan) throws -> DeviceArray {
        if let joined = try blockedConcat(inputs, plan) { return joined }
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
}
