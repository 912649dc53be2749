// Data movement (permute, slice, pad, concat) as one primitive: a new array, optionally filled
// with a constant, into which boxes of the inputs are copied with arbitrary strides. Each
// backend implements the one strided copy natively (row copies on the CPU, one kernel on
// OpenCL); the host version here is the reference semantics.

/// One box copied from an input into the output: `dims` extents, element offsets and strides on
/// both sides. Neighbouring axes that are contiguous on both sides are merged, so most copies have
/// one to three axes.
public struct StridedCopy: Sendable, Hashable {
    /// Which of the movement's inputs is read.
    public let source: Int
    public let dims: [Int]
    public let sourceOffset: Int, sourceStrides: [Int]
    public let destinationOffset: Int, destinationStrides: [Int]

    public init(source: Int, dims: [Int], sourceOffset: Int, sourceStrides: [Int], destinationOffset: Int, destinationStrides: [Int]) {
        // Drop extent-1 axes, then merge axes contiguous on both sides.
        var d: [Int] = [], s: [Int] = [], t: [Int] = []
        for i in dims.indices where dims[i] != 1 {
            if let ls = s.last, let lt = t.last, ls == dims[i] * sourceStrides[i], lt == dims[i] * destinationStrides[i] {
                d[d.count - 1] *= dims[i]
                s[s.count - 1] = sourceStrides[i]
                t[t.count - 1] = destinationStrides[i]
            } else {
                d.append(dims[i]); s.append(sourceStrides[i]); t.append(destinationStrides[i])
            }
        }
        self.source = source
        self.dims = d
        self.sourceOffset = sourceOffset
        self.sourceStrides = s
        self.destinationOffset = destinationOffset
        self.destinationStrides = t
    }

    /// Elements copied.
    public var count: Int { dims.reduce(1, *) }

    /// Calls `body(sourceIndex, destinationIndex)` for every element, innermost axis fastest.
    @inline(__always)
    public func forEach(_ body: (Int, Int) -> Void) {
        let n = count
        guard n > 0 else { return }
        var idx = [Int](repeating: 0, count: dims.count)
        var src = sourceOffset, dst = destinationOffset
        for _ in 0..<n {
            body(src, dst)
            var d = dims.count - 1
            while d >= 0 {
                idx[d] += 1
                src += sourceStrides[d]
                dst += destinationStrides[d]
                if idx[d] < dims[d] { break }
                src -= sourceStrides[d] * dims[d]
                dst -= destinationStrides[d] * dims[d]
                idx[d] = 0
                d -= 1
            }
        }
    }
}

/// A validated data movement: the output's shape, the value of elements no copy writes (`fill`,
/// `nil` when the copies cover the whole output) and the copies.
public struct MovementPlan: Sendable, Hashable {
    public let outputShape: Shape
    public let fill: Float?
    public let copies: [StridedCopy]
    /// Shapes of the inputs the plan was made for.
    public let inputShapes: [Shape]
    /// For a permute, output axis `i` is input axis `permutation[i]`: a backend that keeps arrays
    /// in another layout (oneDNN's channel blocks) can then reorder straight into the output.
    public var permutation: [Int]? = nil

    /// Output axis `i` is input axis `perm[i]`.
    public static func permute(_ shape: Shape, _ perm: [Int]) throws -> MovementPlan {
        guard perm.count == shape.rank, Set(perm) == Set(0..<shape.rank) else {
            throw XAIError.invalidArgument(parameter: "perm", value: "\(perm)", reason: "permute: not a permutation of the axes of \(shape)")
        }
        let out = Shape(perm.map { shape[$0] })
        let inStrides = shape.strides
        let copy = StridedCopy(source: 0, dims: out.dims, sourceOffset: 0, sourceStrides: perm.map { inStrides[$0] },
                               destinationOffset: 0, destinationStrides: out.strides)
        return MovementPlan(outputShape: out, fill: nil, copies: [copy], inputShapes: [shape], permutation: perm)
    }

    /// The box `starts[i] ..< starts[i] + sizes[i]` on every axis.
    public static func slice(_ shape: Shape, starts: [Int], sizes: [Int]) throws -> MovementPlan {
        guard starts.count == shape.rank, sizes.count == shape.rank,
              (0..<shape.rank).allSatisfy({ starts[$0] >= 0 && sizes[$0] >= 0 && starts[$0] <= shape[$0] - sizes[$0] }) else {
            throw XAIError.invalidArgument(parameter: "box", value: "starts \(starts) sizes \(sizes)", reason: "slice: outside \(shape)")
        }
        let out = Shape(sizes)
        let inStrides = shape.strides
        let offset = zip(starts, inStrides).reduce(0) { $0 + $1.0 * $1.1 }
        let copy = StridedCopy(source: 0, dims: sizes, sourceOffset: offset, sourceStrides: inStrides,
                               destinationOffset: 0, destinationStrides: out.strides)
        return MovementPlan(outputShape: out, fill: nil, copies: [copy], inputShapes: [shape])
    }

    /// `counts[i]` elements every `steps[i]` from `starts[i]` on every axis (positive steps; Swin's
    /// patch merging takes `x[:, 0::2, 1::2]`). With `scatter`, the transpose: an array of the
    /// picked shape placed back at those positions into zeros of `shape` (the slice's gradient).
    public static func steppedSlice(_ shape: Shape, starts: [Int], counts: [Int], steps: [Int], scatter: Bool = false) throws -> MovementPlan {
        guard starts.count == shape.rank, counts.count == shape.rank, steps.count == shape.rank,
              (0..<shape.rank).allSatisfy({ starts[$0] >= 0 && counts[$0] >= 0 && steps[$0] >= 1 && steps[$0] <= 1 << 40 && counts[$0] <= shape[$0]
                  && (counts[$0] == 0 || starts[$0] + (counts[$0] - 1) * steps[$0] < shape[$0]) }) else {
            throw XAIError.invalidArgument(parameter: "box", value: "starts \(starts) counts \(counts) steps \(steps)", reason: "slice: outside \(shape)")
        }
        let picked = Shape(counts)
        let strides = shape.strides
        let offset = zip(starts, strides).reduce(0) { $0 + $1.0 * $1.1 }
        let spread = zip(strides, steps).map { $0 * $1 }
        if scatter {
            let copy = StridedCopy(source: 0, dims: counts, sourceOffset: 0, sourceStrides: picked.strides, destinationOffset: offset, destinationStrides: spread)
            return MovementPlan(outputShape: shape, fill: picked.count == shape.count ? nil : 0, copies: [copy], inputShapes: [picked])
        }
        let copy = StridedCopy(source: 0, dims: counts, sourceOffset: offset, sourceStrides: spread, destinationOffset: 0, destinationStrides: picked.strides)
        return MovementPlan(outputShape: picked, fill: nil, copies: [copy], inputShapes: [shape])
    }

    /// `out[i] = x[(i - shift) mod n]` along `axis` (`torch.roll`): two copies, the tail moved
    /// to the front.
    public static func roll(_ shape: Shape, axis: Int, shift: Int) throws -> MovementPlan {
        guard let a = shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "roll: out of range for \(shape)")
        }
        let n = shape[a]
        let s = n == 0 ? 0 : ((shift % n) + n) % n
        let strides = shape.strides
        var copies: [StridedCopy] = []
        // Input [0, n - s) lands at [s, n); input [n - s, n) at [0, s).
        for (from, to, extent) in [(0, s, n - s), (n - s, 0, s)] where extent > 0 {
            var dims = shape.dims
            dims[a] = extent
            copies.append(StridedCopy(source: 0, dims: dims, sourceOffset: from * strides[a], sourceStrides: strides,
                                      destinationOffset: to * strides[a], destinationStrides: strides))
        }
        return MovementPlan(outputShape: shape, fill: copies.isEmpty ? 0 : nil, copies: copies, inputShapes: [shape])
    }

    /// Constant padding: `before[i]` and `after[i]` elements of `value` around axis `i`.
    public static func pad(_ shape: Shape, before: [Int], after: [Int], value: Float) throws -> MovementPlan {
        guard before.count == shape.rank, after.count == shape.rank, (before + after).allSatisfy({ $0 >= 0 && $0 <= 1 << 40 }) else {
            throw XAIError.invalidArgument(parameter: "pads", value: "\(before) / \(after)", reason: "pad: one non-negative pad per side of each axis of \(shape)")
        }
        let out = try Shape(validating: (0..<shape.rank).map { shape[$0] + before[$0] + after[$0] }, what: "padded tensor")
        let outStrides = out.strides
        let offset = zip(before, outStrides).reduce(0) { $0 + $1.0 * $1.1 }
        let copy = StridedCopy(source: 0, dims: shape.dims, sourceOffset: 0, sourceStrides: shape.strides,
                               destinationOffset: offset, destinationStrides: outStrides)
        return MovementPlan(outputShape: out, fill: value, copies: [copy], inputShapes: [shape])
    }

    /// Joins arrays along `axis`; all other extents must match.
    public static func concat(_ shapes: [Shape], axis: Int) throws -> MovementPlan {
        guard let first = shapes.first, let a = first.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "concat: no inputs, or the axis is out of range")
        }
        for s in shapes where s.rank != first.rank || (0..<first.rank).contains(where: { $0 != a && s[$0] != first[$0] }) {
            throw XAIError.shapeMismatch(op: "concat", expected: "equal extents except on axis \(axis)", got: shapes)
        }
        var dims = first.dims
        dims[a] = shapes.reduce(0) { $0 + $1[a] }
        let out = Shape(dims)
        let outStrides = out.strides
        var offset = 0
        var copies: [StridedCopy] = []
        for (i, s) in shapes.enumerated() {
            copies.append(StridedCopy(source: i, dims: s.dims, sourceOffset: 0, sourceStrides: s.strides,
                                      destinationOffset: offset * outStrides[a], destinationStrides: outStrides))
            offset += s[a]
        }
        return MovementPlan(outputShape: out, fill: nil, copies: copies, inputShapes: shapes)
    }

    /// Whether the output is its one input's elements in their order (a slice of everything, a pad
    /// of nothing, a concat of one piece): a view, no copy needed.
    public var isIdentity: Bool {
        guard inputShapes.count == 1, inputShapes[0].count == outputShape.count, copies.count == 1 else { return false }
        let c = copies[0]
        guard c.count == outputShape.count, c.sourceOffset == 0, c.destinationOffset == 0 else { return false }
        return c.dims.count == 0 || (c.dims.count == 1 && c.sourceStrides == [1] && c.destinationStrides == [1])
    }

    /// Runs the plan on flat row-major arrays (any element type: float32 tensors, the float64 reference).
    public func apply<T>(_ sources: [[T]], fill: T) -> [T] {
        var out = [T](repeating: fill, count: outputShape.count)
        for c in copies {
            let src = sources[c.source]
            c.forEach { s, d in out[d] = src[s] }
        }
        return out
    }
}

extension Tensor {
    /// Output axis `i` is input axis `perm[i]`.
    public func permuted(_ perm: [Int]) throws -> Tensor {
        try moved(.permute(shape, perm))
    }

    /// The box `starts[i] ..< starts[i] + sizes[i]`.
    public func sliced(starts: [Int], sizes: [Int]) throws -> Tensor {
        try moved(.slice(shape, starts: starts, sizes: sizes))
    }

    /// Constant padding around every axis.
    public func padded(before: [Int], after: [Int], value: Float) throws -> Tensor {
        try moved(.pad(shape, before: before, after: after, value: value))
    }

    /// Joins tensors along `axis`.
    public static func concatenated(_ parts: [Tensor], axis: Int) throws -> Tensor {
        let plan = try MovementPlan.concat(parts.map(\.shape), axis: axis)
        return Tensor(unchecked: plan.outputShape, plan.apply(parts.map(\.scalars), fill: 0))
    }

    private func moved(_ plan: MovementPlan) -> Tensor {
        Tensor(unchecked: plan.outputShape, plan.apply([scalars], fill: plan.fill ?? 0))
    }
}

/// One rectangle per copy of a batch, all of one size: copy `n` covers rows `tops[n] ..< tops[n] +
/// height` and columns `lefts[n] ..< lefts[n] + width` of a feature map. Incremental inference
/// (occlusion) keeps, for each copy, only the window where its activation differs from the clean
/// image's; a shared size lets the windows of a batch run as one device batch.
public struct WindowSet: Sendable, Hashable {
    public var tops: [Int], lefts: [Int]
    public var height: Int, width: Int

    public init(tops: [Int], lefts: [Int], height: Int, width: Int) {
        self.tops = tops
        self.lefts = lefts
        self.height = height
        self.width = width
    }

    /// Copies in the batch.
    public var count: Int { tops.count }
}

extension MovementPlan {
    /// Tiles `[N, C, tiles.height, tiles.width]`: tile `n` shows the clean map (`clean`, `[1, C, H,
    /// W]`, input 0) from `(tiles.tops[n], tiles.lefts[n])` on, with copy `n`'s patch (`patches`,
    /// `[N, C, h, w]`, input 1, placed at `windows`) laid over it; what falls outside the map is
    /// `fill` (a convolution's zero padding, max pooling's minus infinity; zero when `nil`).
    ///
    /// The clean box and the patch overlap: the patch is copied second and wins. Every backend runs
    /// a plan's copies in order (the CPU one after another, OpenCL on an in-order queue, the host
    /// version in ``apply(_:fill:)``).
    public static func splice(clean: Shape, patches: Shape, windows: WindowSet, tiles: WindowSet, fill: Float?) throws -> MovementPlan {
        let n = windows.count
        guard clean.rank == 4, clean[0] == 1, patches.rank == 4, patches[0] == n, patches[1] == clean[1],
              patches[2] == windows.height, patches[3] == windows.width, tiles.count == n,
              windows.lefts.count == n, tiles.lefts.count == n, tiles.height >= 1, tiles.width >= 1 else {
            throw XAIError.shapeMismatch(op: "splice", expected: "a clean map [1, C, H, W] and \(n) patches [\(n), C, \(windows.height), \(windows.width)]",
                                         got: [clean, patches])
        }
        let (c, h, w) = (clean[1], clean[2], clean[3])
        let out = try Shape(validating: [n, c, tiles.height, tiles.width], what: "spliced tiles")
        let os = out.strides
        var copies: [StridedCopy] = []
        copies.reserveCapacity(2 * n)
        // The part of box (top, left, height, width) inside the rectangle `rows x cols`.
        func clip(_ start: Int, _ extent: Int, _ lo: Int, _ hi: Int) -> (Int, Int)? {
            let a = max(start, lo), b = min(start + extent, hi)
            return a < b ? (a, b - a) : nil
        }
        for i in 0..<n {
            let (ty, tx) = (tiles.tops[i], tiles.lefts[i])
            if let (y, rows) = clip(ty, tiles.height, 0, h), let (x, cols) = clip(tx, tiles.width, 0, w) {
                copies.append(StridedCopy(source: 0, dims: [c, rows, cols], sourceOffset: y * w + x, sourceStrides: [h * w, w, 1],
                                          destinationOffset: i * os[0] + (y - ty) * os[2] + (x - tx), destinationStrides: [os[1], os[2], 1]))
            }
            let (py, px) = (windows.tops[i], windows.lefts[i])
            // The patch's part inside both the map and the tile.
            if let (y, rows) = clip(max(py, ty), min(py + windows.height, ty + tiles.height) - max(py, ty), 0, h),
               let (x, cols) = clip(max(px, tx), min(px + windows.width, tx + tiles.width) - max(px, tx), 0, w) {
                let ps = patches.strides
                copies.append(StridedCopy(source: 1, dims: [c, rows, cols], sourceOffset: i * ps[0] + (y - py) * ps[2] + (x - px),
                                          sourceStrides: [ps[1], ps[2], 1],
                                          destinationOffset: i * os[0] + (y - ty) * os[2] + (x - tx), destinationStrides: [os[1], os[2], 1]))
            }
        }
        // Tiles inside the map are covered by their clean box; no fill needed.
        let inside = (0..<n).allSatisfy { tiles.tops[$0] >= 0 && tiles.lefts[$0] >= 0 && tiles.tops[$0] + tiles.height <= h && tiles.lefts[$0] + tiles.width <= w }
        return MovementPlan(outputShape: out, fill: inside ? nil : (fill ?? 0), copies: copies, inputShapes: [clean, patches])
    }

    /// Copy `n`'s window of image `n` of `batch` (`[N, C, H, W]`): `[N, C, windows.height, windows.width]`.
    public static func cut(_ batch: Shape, windows: WindowSet) throws -> MovementPlan {
        let n = windows.count
        guard batch.rank == 4, batch[0] == n, windows.lefts.count == n,
              windows.tops.allSatisfy({ $0 >= 0 && $0 + windows.height <= batch[2] }),
              windows.lefts.allSatisfy({ $0 >= 0 && $0 + windows.width <= batch[3] }) else {
            throw XAIError.shapeMismatch(op: "cut", expected: "\(n) windows of \(windows.height)x\(windows.width) inside a batch of \(n)", got: [batch])
        }
        let out = try Shape(validating: [n, batch[1], windows.height, windows.width], what: "cut windows")
        let (bs, os) = (batch.strides, out.strides)
        let copies = (0..<n).map { i in
            StridedCopy(source: 0, dims: [batch[1], windows.height, windows.width],
                        sourceOffset: i * bs[0] + windows.tops[i] * bs[2] + windows.lefts[i], sourceStrides: [bs[1], bs[2], 1],
                        destinationOffset: i * os[0], destinationStrides: [os[1], os[2], 1])
        }
        return MovementPlan(outputShape: out, fill: nil, copies: copies, inputShapes: [batch])
    }
}
