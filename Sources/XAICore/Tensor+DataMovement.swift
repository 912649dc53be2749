// Host implementations of the data-movement ops: the reference semantics, and the default that
// backends without a native kernel fall back to.

/// Data movement on flat row-major arrays of any element type (float32 tensors and the float64 reference).
enum Movement {
    static func permute<T>(_ v: [T], _ shape: Shape, _ perm: [Int]) throws -> ([T], Shape) {
        guard perm.count == shape.rank, Set(perm) == Set(0..<shape.rank) else {
            throw XAIError.invalidArgument(op: "permute", message: "\(perm) is not a permutation of the axes of \(shape)")
        }
        let outShape = Shape(perm.map { shape[$0] })
        let inStrides = shape.strides
        let strides = perm.map { inStrides[$0] }
        var out: [T] = []
        out.reserveCapacity(v.count)
        forEachIndex(outShape) { _, idx in
            var off = 0
            for d in 0..<idx.count { off += idx[d] * strides[d] }
            out.append(v[off])
        }
        return (out, outShape)
    }

    static func slice<T>(_ v: [T], _ shape: Shape, starts: [Int], sizes: [Int]) throws -> ([T], Shape) {
        guard starts.count == shape.rank, sizes.count == shape.rank,
              (0..<shape.rank).allSatisfy({ starts[$0] >= 0 && sizes[$0] >= 0 && starts[$0] + sizes[$0] <= shape[$0] }) else {
            throw XAIError.invalidArgument(op: "slice", message: "box starts \(starts) sizes \(sizes) outside \(shape)")
        }
        let outShape = Shape(sizes)
        let inStrides = shape.strides
        var out: [T] = []
        out.reserveCapacity(outShape.count)
        forEachIndex(outShape) { _, idx in
            var off = 0
            for d in 0..<idx.count { off += (idx[d] + starts[d]) * inStrides[d] }
            out.append(v[off])
        }
        return (out, outShape)
    }

    static func pad<T>(_ v: [T], _ shape: Shape, before: [Int], after: [Int], value: T) throws -> ([T], Shape) {
        guard before.count == shape.rank, after.count == shape.rank, (before + after).allSatisfy({ $0 >= 0 }) else {
            throw XAIError.invalidArgument(op: "pad", message: "pads \(before) / \(after) for \(shape)")
        }
        let outShape = Shape((0..<shape.rank).map { shape[$0] + before[$0] + after[$0] })
        var out = [T](repeating: value, count: outShape.count)
        let outStrides = outShape.strides
        forEachIndex(shape) { i, idx in
            var off = 0
            for d in 0..<idx.count { off += (idx[d] + before[d]) * outStrides[d] }
            out[off] = v[i]
        }
        return (out, outShape)
    }

    static func concat<T>(_ parts: [([T], Shape)], axis: Int) throws -> ([T], Shape) {
        guard let first = parts.first?.1, let a = first.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(op: "concat", message: "no inputs or axis \(axis) out of range")
        }
        for (_, s) in parts where s.rank != first.rank || (0..<first.rank).contains(where: { $0 != a && s[$0] != first[$0] }) {
            throw XAIError.shapeMismatch(op: "concat", message: "\(parts.map(\.1)) along axis \(axis)")
        }
        var dims = first.dims
        dims[a] = parts.reduce(0) { $0 + $1.1[a] }
        let outer = dims[..<a].reduce(1, *)
        var out: [T] = []
        out.reserveCapacity(dims.reduce(1, *))
        for o in 0..<outer {
            for (v, s) in parts {
                let block = s.dims[a...].reduce(1, *)
                out.append(contentsOf: v[(o * block)..<((o + 1) * block)])
            }
        }
        return (out, Shape(dims))
    }
}

extension Tensor {
    /// Output axis `i` is input axis `perm[i]`.
    public func permuted(_ perm: [Int]) throws -> Tensor {
        let (v, s) = try Movement.permute(scalars, shape, perm)
        return Tensor(unchecked: s, v)
    }

    /// The box `starts[i] ..< starts[i] + sizes[i]`.
    public func sliced(starts: [Int], sizes: [Int]) throws -> Tensor {
        let (v, s) = try Movement.slice(scalars, shape, starts: starts, sizes: sizes)
        return Tensor(unchecked: s, v)
    }

    /// Constant padding around every axis.
    public func padded(before: [Int], after: [Int], value: Float) throws -> Tensor {
        let (v, s) = try Movement.pad(scalars, shape, before: before, after: after, value: value)
        return Tensor(unchecked: s, v)
    }

    /// Joins tensors along `axis`.
    public static func concatenated(_ parts: [Tensor], axis: Int) throws -> Tensor {
        let (v, s) = try Movement.concat(parts.map { ($0.scalars, $0.shape) }, axis: axis)
        return Tensor(unchecked: s, v)
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
