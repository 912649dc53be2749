/// The dimensions of a dense, row-major (C order) tensor; image tensors are NCHW.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// Extent of each axis, outermost first.
    public var dims: [Int]

    /// Creates a shape from its extents; every extent must be zero or more.
    public init(_ dims: [Int]) {
        precondition(dims.allSatisfy { $0 >= 0 }, "negative extent in shape \(dims)")
        self.dims = dims
    }

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

    public var description: String { "[" + dims.map(String.init).joined(separator: "x") + "]" }

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
