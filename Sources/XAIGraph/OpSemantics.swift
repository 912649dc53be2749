import XAICore

// ONNX semantics of the ops' attributes and constant inputs (auto_pad, Reshape targets, Slice
// boxes, Squeeze/Unsqueeze axes, batch-norm folding), shared by the executor and the rewrites.

/// Convolution pads for `auto_pad` modes, from the actual input size.
func resolved(_ p: Conv2DParams, _ autoPad: AutoPad, _ input: Shape, _ weight: Shape) -> Conv2DParams {
    guard input.rank == 4, weight.rank == 4,
          let (t, b) = autoPad.pads(input: input[2], kernel: weight[2], stride: p.strideH, dilation: p.dilationH),
          let (l, r) = autoPad.pads(input: input[3], kernel: weight[3], stride: p.strideW, dilation: p.dilationW) else { return p }
    var q = p
    (q.padTop, q.padLeft, q.padBottom, q.padRight) = (t, l, b, r)
    return q
}

/// Pooling pads for `auto_pad` modes.
func resolved(_ p: Pool2DParams, _ autoPad: AutoPad, _ input: Shape) -> Pool2DParams {
    guard input.rank == 4,
          let (t, b) = autoPad.pads(input: input[2], kernel: p.kernelH, stride: p.strideH, dilation: 1),
          let (l, r) = autoPad.pads(input: input[3], kernel: p.kernelW, stride: p.strideW, dilation: 1) else { return p }
    var q = p
    (q.padTop, q.padLeft, q.padBottom, q.padRight) = (t, l, b, r)
    return q
}

/// Per-channel `a = scale / sqrt(var + eps)`, `c = bias - mean * a`, so that BN(x) = a x + c.
func batchNormAffine(_ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor, _ eps: Float) throws -> (Tensor, Tensor) {
    let n = scale.shape.count
    guard bias.shape.count == n, mean.shape.count == n, variance.shape.count == n else {
        throw XAIError.shapeMismatch(op: "BatchNormalization", expected: "scale, bias, mean and variance of one value per channel",
                                     got: [scale.shape, bias.shape, mean.shape, variance.shape])
    }
    var a = [Float](repeating: 0, count: n), c = [Float](repeating: 0, count: n)
    for i in 0..<n {
        let ai = Double(scale.scalars[i]) / (Double(variance.scalars[i]) + Double(eps)).squareRoot()
        a[i] = Float(ai)
        c[i] = Float(Double(bias.scalars[i]) - Double(mean.scalars[i]) * ai)
    }
    return (Tensor(unchecked: [n], a), Tensor(unchecked: [n], c))
}

/// ONNX Reshape semantics: 0 copies the input extent (unless `allowZero`), one -1 is inferred.
func reshapeTarget(_ input: Shape, _ target: [Int], allowZero: Bool) throws -> Shape {
    func fail() -> XAIError { .invalidArgument(parameter: "shape", value: "\(target)", reason: "Reshape: cannot reshape \(input) to it") }
    var dims = target.enumerated().map { i, d in (d == 0 && !allowZero && i < input.rank) ? input[i] : d }
    guard dims.allSatisfy({ $0 >= -1 }), dims.filter({ $0 == -1 }).count <= 1 else { throw fail() }
    let known = try Shape(validating: dims.filter { $0 != -1 }, what: "Reshape target").count
    if let i = dims.firstIndex(of: -1) {
        guard known > 0, input.count % known == 0 else { throw fail() }
        dims[i] = input.count / known
    }
    let shape = try Shape(validating: dims, what: "Reshape target")
    guard shape.count == input.count else { throw fail() }
    return shape
}

/// ONNX Slice with any steps (negative ones reverse), for constants on the host.
func stridedSlice(_ t: Tensor, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> Tensor {
    let axes = axes ?? Array(0..<starts.count)
    let steps = steps ?? [Int](repeating: 1, count: starts.count)
    guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count, !steps.contains(0) else {
        throw XAIError.invalidArgument(parameter: "starts/ends/axes/steps", value: "\(starts) \(ends) \(axes) \(steps)",
                                       reason: "Slice: one start, end, axis and non-zero step per sliced axis")
    }
    // Per axis: the list of source indices.
    var picks = t.shape.dims.map { Array(0..<$0) }
    for (i, a0) in axes.enumerated() {
        guard let a = t.shape.normalizedAxis(a0) else {
            throw XAIError.invalidArgument(parameter: "axes", value: "\(a0)", reason: "Slice: out of range for \(t.shape)")
        }
        let n = t.shape[a]
        // A step beyond the extent picks one element; clamping it keeps the index arithmetic in range.
        let step = max(min(steps[i], n + 1), -(n + 1))
        var s = starts[i] < 0 ? starts[i] + n : starts[i]
        var e = ends[i] < 0 ? ends[i] + n : ends[i]
        if step > 0 {
            s = min(max(s, 0), n); e = min(max(e, 0), n)
        } else {
            s = min(max(s, -1), n - 1); e = min(max(e, -1), n - 1)
        }
        picks[a] = Array(stride(from: s, to: e, by: step))
    }
    let outShape = Shape(picks.map(\.count))
    let strides = t.shape.strides
    var out: [Float] = []
    out.reserveCapacity(outShape.count)
    var idx = [Int](repeating: 0, count: outShape.rank)
    for _ in 0..<outShape.count {
        var off = 0
        for d in 0..<idx.count { off += picks[d][idx[d]] * strides[d] }
        out.append(t.scalars[off])
        var d = idx.count - 1
        while d >= 0 { idx[d] += 1; if idx[d] < outShape[d] { break }; idx[d] = 0; d -= 1 }
    }
    return Tensor(unchecked: outShape, out)
}

/// ONNX Slice with positive steps: per axis the first index, the number of elements taken and the
/// step (starts and ends clamped as ONNX says).
func sliceRanges(_ shape: Shape, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> (starts: [Int], counts: [Int], steps: [Int]) {
    let axes = axes ?? Array(0..<starts.count)
    guard starts.count == ends.count, axes.count == starts.count, steps.map({ $0.count == starts.count }) ?? true else {
        throw XAIError.invalidArgument(parameter: "starts/ends/axes", value: "\(starts) \(ends) \(axes)", reason: "Slice: one start, end and axis per sliced axis")
    }
    if let steps, steps.contains(where: { $0 < 1 }) {
        throw XAIError.unsupported(op: "Slice", reason: "steps \(steps) on activations (only positive steps; a negative step reverses)")
    }
    var lo = [Int](repeating: 0, count: shape.rank), counts = shape.dims, stepOf = [Int](repeating: 1, count: shape.rank)
    for (i, a0) in axes.enumerated() {
        guard let a = shape.normalizedAxis(a0) else {
            throw XAIError.invalidArgument(parameter: "axes", value: "\(a0)", reason: "Slice: out of range for \(shape)")
        }
        let n = shape[a]
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, 0), n) }
        let s = clamp(starts[i]), e = clamp(ends[i]), step = min(steps?[i] ?? 1, max(n, 1))
        lo[a] = s
        counts[a] = e > s ? (e - s + step - 1) / step : 0
        stepOf[a] = step
    }
    return (lo, counts, stepOf)
}

/// The shape without the given extent-1 axes.
func squeezed(_ shape: Shape, _ axes: [Int]) throws -> Shape {
    var set = Set<Int>()
    for a in axes {
        guard let n = shape.normalizedAxis(a), shape[n] == 1 else {
            throw XAIError.invalidArgument(parameter: "axes", value: "\(axes)", reason: "Squeeze: axis \(a) is not an extent-1 axis of \(shape)")
        }
        set.insert(n)
    }
    return Shape(shape.dims.enumerated().filter { !set.contains($0.offset) }.map(\.element))
}

/// The shape with extent-1 axes inserted at `axes` (of the result).
func unsqueezed(_ shape: Shape, _ axes: [Int]) throws -> Shape {
    let rank = shape.rank + axes.count
    let set = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
    guard set.count == axes.count, set.allSatisfy({ (0..<rank).contains($0) }) else {
        throw XAIError.invalidArgument(parameter: "axes", value: "\(axes)", reason: "Unsqueeze: out of range or repeated for \(shape)")
    }
    var dims: [Int] = []
    var next = 0
    for i in 0..<rank {
        if set.contains(i) { dims.append(1) } else { dims.append(shape[next]); next += 1 }
    }
    return Shape(dims)
}

/// ONNX Gather of constant data along `axis`.
func gather(_ data: Tensor, _ indices: Tensor, axis: Int) throws -> Tensor {
    guard let a = data.shape.normalizedAxis(axis) else {
        throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "Gather: out of range for \(data.shape)")
    }
    let outer = data.shape.dims[..<a].reduce(1, *), inner = data.shape.dims[(a + 1)...].reduce(1, *), n = data.shape[a]
    let picks = try indices.integers("indices").map { raw -> Int in
        let i = raw < 0 ? raw + n : raw
        guard (0..<n).contains(i) else { throw XAIError.invalidArgument(parameter: "indices", value: "\(raw)", reason: "Gather: out of range \(n)") }
        return i
    }
    let shape = try Shape(validating: Array(data.shape.dims[..<a]) + indices.shape.dims + Array(data.shape.dims[(a + 1)...]), what: "Gather output")
    var out: [Float] = []
    out.reserveCapacity(shape.count)
    for o in 0..<outer {
        for i in picks { out.append(contentsOf: data.scalars[((o * n + i) * inner)..<((o * n + i + 1) * inner)]) }
    }
    return Tensor(unchecked: shape, out)
}

/// ONNX Shape: the extents `start..<end` of a shape (negative bounds count from the end, clamped).
func shapeSlice(_ shape: Shape, start: Int, end: Int?) -> Tensor {
    let dims = shape.dims
    let s = max(0, start < 0 ? start + dims.count : start)
    let e = min(dims.count, end.map { $0 < 0 ? $0 + dims.count : $0 } ?? dims.count)
    let part = s < e ? Array(dims[s..<e]) : []
    return Tensor(unchecked: [part.count], part.map(Float.init))
}
