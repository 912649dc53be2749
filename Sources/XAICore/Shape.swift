/// The dimensions of a dense, row-major (C order) tensor; image tensors are NCHW.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// Extent of each axis, outermost first.
    public var dims: [Int]

    /// Creates a shape from extents the caller knows to be valid (zero or more each, with a product
    /// that fits an `Int`). Extents from outside the program (files, flags, C callers) go through
    /// ``init(validating:what:maxBytes:)`` instead.
    public init(_ dims: [Int]) {
        precondition(dims.allSatisfy { $0 >= 0 }, "negative extent in shape \(dims)")
        self.dims = dims
    }

    /// Creates a shape from untrusted extents.
    /// - Parameters:
    ///   - dims: the extents, outermost first.
    ///   - what: what the shape describes, for the error (`"tensor 'w' of model.onnx"`).
    ///   - maxBytes: the largest float32 tensor of this shape that may be allocated (default ``Limits/tensorBytes``).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for a negative extent,
    ///   ``XAIError/tooLarge(what:bytes:limit:)`` when the elements would not fit in `maxBytes`.
    public init(validating dims: [Int], what: String = "shape", maxBytes: Int = Limits.tensorBytes) throws {
        guard dims.allSatisfy({ $0 >= 0 }) else {
            throw XAIError.invalidArgument(parameter: what, value: Shape.text(dims), reason: "extents must not be negative")
        }
        var count = 1
        var overflow = false
        for d in dims {
            (count, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { break }
        }
        let (bytes, tooMany) = count.multipliedReportingOverflow(by: 4)
        guard !overflow, !tooMany, bytes <= maxBytes else {
            throw XAIError.tooLarge(what: "\(what) \(Shape.text(dims))", bytes: overflow || tooMany ? Int.max : bytes, limit: maxBytes)
        }
        self.dims = dims
    }

    static func text(_ dims: [Int]) -> String { "[" + dims.map(String.init).joined(separator: "x") + "]" }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    /// Number of axes.
    public var rank: Int { dims.count }
    /// Number of elements.
    public var count: Int { dims.reduce(1, *) }
    /// Element strides of a contiguous row-major layout.
    public var strides: [Int] {
        var s = [Int](repeating: 1, count: dims.count)
        var acc = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= dims[i]
        }
        return s
    }

    public subscript(axis: Int) -> Int { dims[axis] }

    public var description: String { Shape.text(dims) }

    /// Normalises a possibly negative axis (`-1` is the last one); `nil` when out of range.
    public func normalizedAxis(_ axis: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return (0..<rank).contains(a) ? a : nil
    }

    /// The numpy broadcast of two shapes, or `nil` if they do not broadcast.
    public static func broadcast(_ a: Shape, _ b: Shape) -> Shape? {
        let rank = max(a.rank, b.rank)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.rank ? 1 : a.dims[i - (rank - a.rank)]
            let db = i < rank - b.rank ? 1 : b.dims[i - (rank - b.rank)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return Shape(out)
    }

    /// Strides that read this shape as if broadcast to `target` (0 along broadcast axes).
    public func broadcastStrides(to target: Shape) -> [Int] {
        let own = strides
        let offset = target.rank - rank
        return (0..<target.rank).map { i in
            i < offset ? 0 : (dims[i - offset] == 1 ? 0 : own[i - offset])
        }
    }
}
