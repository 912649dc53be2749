// Host implementations of the data-movement ops: the reference semantics, and the default that
// backends without a native kernel fall back to.

extension Tensor {
    /// Output axis `i` is input axis `perm[i]`.
    public func permuted(_ perm: [Int]) throws -> Tensor {
        guard perm.count == shape.rank, Set(perm) == Set(0..<shape.rank) else {
            throw XAIError.invalidArgument(op: "permute", message: "\(perm) is not a permutation of the axes of \(shape)")
        }
        let outShape = Shape(perm.map { shape[$0] })
        let inStrides = shape.strides
        let strides = perm.map { inStrides[$0] }
        var out = [Float](repeating: 0, count: shape.count)
        forEachIndex(outShape) { o, idx in
            var off = 0
            for d in 0..<idx.count { off += idx[d] * strides[d] }
            out[o] = scalars[off]
        }
        return Tensor(unchecked: outShape, out)
    }

    /// The box `starts[i] ..< starts[i] + sizes[i]`.
    public func sliced(starts: [Int], sizes: [Int]) throws -> Tensor {
        guard starts.count == shape.rank, sizes.count == shape.rank,
              (0..<shape.rank).allSatisfy({ starts[$0] >= 0 && sizes[$0] >= 0 && starts[$0] + sizes[$0] <= shape[$0] }) else {
            throw XAIError.invalidArgument(op: "slice", message: "box starts \(starts) sizes \(sizes) outside \(shape)")
        }
        let outShape = Shape(sizes)
        let inStrides = shape.strides
        var out = [Float](repeating: 0, count: outShape.count)
        forEachIndex(outShape) { o, idx in
            var off = 0
            for d in 0..<idx.count { off += (idx[d] + starts[d]) * inStrides[d] }
            out[o] = scalars[off]
        }
        return Tensor(unchecked: outShape, out)
    }

    /// Constant padding around every axis.
    public func padded(before: [Int], after: [Int], value: Float) throws -> Tensor {
        guard before.count == shape.rank, after.count == shape.rank, (before + after).allSatisfy({ $0 >= 0 }) else {
            throw XAIError.invalidArgument(op: "pad", message: "pads \(before) / \(after) for \(shape)")
        }
        let outShape = Shape((0..<shape.rank).map { shape[$0] + before[$0] + after[$0] })
        var out = [Float](repeating: value, count: outShape.count)
        let outStrides = outShape.strides
        forEachIndex(shape) { i, idx in
            var off = 0
            for d in 0..<idx.count { off += (idx[d] + before[d]) * outStrides[d] }
            out[off] = scalars[i]
        }
        return Tensor(unchecked: outShape, out)
    }

    /// Joins tensors along `axis`.
    public static func concatenated(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first, let a = first.shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(op: "concat", message: "no inputs or axis \(axis) out of range")
        }
        for p in parts where p.shape.rank != first.shape.rank
            || (0..<first.shape.rank).contains(where: { $0 != a && p.shape[$0] != first.shape[$0] }) {
            throw XAIError.shapeMismatch(op: "concat", message: "\(parts.map(\.shape)) along axis \(axis)")
        }
        var dims = first.shape.dims
        dims[a] = parts.reduce(0) { $0 + $1.shape[a] }
        let outer = dims[..<a].reduce(1, *)
        var out: [Float] = []
        out.reserveCapacity(dims.reduce(1, *))
        for o in 0..<outer {
            for p in parts {
                let block = p.shape.dims[a...].reduce(1, *)
                out.append(contentsOf: p.scalars[(o * block)..<((o + 1) * block)])
            }
        }
        return Tensor(unchecked: Shape(dims), out)
    }
}

/// Calls `body(linearIndex, multiIndex)` for every element of `shape` in row-major order.
func forEachIndex(_ shape: Shape, _ body: (Int, [Int]) -> Void) {
    let n = shape.count
    guard n > 0 else { return }
    var idx = [Int](repeating: 0, count: shape.rank)
    for i in 0..<n {
        body(i, idx)
        var d = shape.rank - 1
        while d >= 0 {
            idx[d] += 1
            if idx[d] < shape[d] { break }
            idx[d] = 0
            d -= 1
        }
    }
}

extension Backend {
    public func permute(_ x: DeviceArray, _ perm: [Int]) throws -> DeviceArray {
        try upload(try download(x).permuted(perm))
    }

    public func slice(_ x: DeviceArray, starts: [Int], sizes: [Int]) throws -> DeviceArray {
        try upload(try download(x).sliced(starts: starts, sizes: sizes))
    }

    public func pad(_ x: DeviceArray, before: [Int], after: [Int], value: Float) throws -> DeviceArray {
        try upload(try download(x).padded(before: before, after: after, value: value))
    }

    public func concat(_ xs: [DeviceArray], axis: Int) throws -> DeviceArray {
        try upload(try Tensor.concatenated(try xs.map(download), axis: axis))
    }
}
