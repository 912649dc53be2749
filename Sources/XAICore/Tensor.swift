/// A dense float32 tensor in host memory: contiguous, row-major, images as NCHW.
///
/// `Tensor` is a value; device-resident data lives in ``DeviceArray`` and moves with
/// ``Backend/upload(_:)`` and ``Backend/download(_:)``.
public struct Tensor: Sendable, Hashable {
    /// The tensor's dimensions.
    public private(set) var shape: Shape
    /// The elements in row-major order; `scalars.count == shape.count` always.
    public private(set) var scalars: [Float]

    /// Creates a tensor, checking that the element count matches the shape.
    public init(shape: Shape, scalars: [Float]) throws {
        guard scalars.count == shape.count else {
            throw XAIError.shapeMismatch(op: "Tensor", expected: "\(shape.count) values for \(shape)", got: [Shape([scalars.count])])
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor filled with one value.
    public init(shape: Shape, repeating value: Float = 0) {
        self.shape = shape
        self.scalars = [Float](repeating: value, count: shape.count)
    }

    /// Uniform random values in `range`, reproducible from `seed`.
    public static func uniform(_ shape: Shape, in range: ClosedRange<Float> = -1...1, seed: UInt64) -> Tensor {
        let width = range.upperBound - range.lowerBound
        return Tensor(unchecked: shape, seededValues(shape.count, seed: seed, callsPerValue: 1) { rng in
            range.lowerBound + width * rng.nextUnitFloat()
        })
    }

    /// Normal random values with the given mean and standard deviation, reproducible from `seed`.
    public static func gaussian(_ shape: Shape, mean: Float = 0, std: Float = 1, seed: UInt64) -> Tensor {
        Tensor(unchecked: shape, seededValues(shape.count, seed: seed, callsPerValue: 2) { rng in mean + std * rng.nextGaussian() })
    }

    /// `count` values of one seeded stream, each `draw` taking `callsPerValue` of the generator's
    /// outputs. Large draws (a ResNet-50's weights re-drawn by MPRT: 25 million) run in pieces on
    /// every core, each piece's generator skipped to its place, so the values are those one
    /// generator drawing in order makes.
    static func seededValues(_ count: Int, seed: UInt64, callsPerValue: Int, _ draw: (inout SeededGenerator) -> Float) -> [Float] {
        let piece = 1 << 16
        guard count > piece else {
            var rng = SeededGenerator(seed: seed)
            return (0..<count).map { _ in draw(&rng) }
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBufferPointer { out in
            let base = UncheckedSendable(out)
            concurrentForEach((count + piece - 1) / piece) { p in
                var rng = SeededGenerator(seed: seed, skipping: p * piece * callsPerValue)
                for i in (p * piece)..<min(count, (p + 1) * piece) { base.value[i] = draw(&rng) }
            }
        }
        return values
    }

    /// The number of NaN and infinite elements.
    public var nonFiniteCount: Int {
        scalars.withUnsafeBufferPointer { p -> Int in
            // x * 0 is zero for a finite x and NaN for NaN or an infinity, so a sum of them is zero
            // exactly when every value is finite: one vectorised pass decides, counting only when not.
            var lanes = SIMD16<Float>(repeating: 0)
            var i = 0
            if let base = p.baseAddress {
                let raw = UnsafeRawPointer(base)
                while i + 16 <= p.count {
                    lanes += raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Float>.stride, as: SIMD16<Float>.self) * 0
                    i += 16
                }
            }
            var tail: Float = 0
            while i < p.count {
                tail += p[i] * 0
                i += 1
            }
            if lanes.sum() + tail == 0 { return 0 }
            return p.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
        }
    }

    /// Throws ``XAIError/nonFinite(what:count:)`` naming `what` when an element is NaN or infinite.
    public func requireFinite(_ what: String) throws {
        let bad = nonFiniteCount
        if bad > 0 { throw XAIError.nonFinite(what: what, count: bad) }
    }

    /// Integer view of a shape-arithmetic tensor (stored as float32; exact below 2^24). Values
    /// beyond the range of `Int` (exporters write INT64_MAX for "to the end") are clamped to it.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming `what` for a NaN or an infinity.
    public func integers(_ what: String) throws -> [Int] {
        try scalars.map { v in
            guard v.isFinite else { throw XAIError.invalidArgument(parameter: what, value: "\(v)", reason: "not an integer") }
            // 2^63 is the first float past Int.max.
            if v >= 9.223372e18 { return Int.max }
            if v <= -9.223372e18 { return Int.min }
            return Int(v.rounded())
        }
    }

    /// A tensor from values already known to fill `shape` (no check).
    public init(unchecked shape: Shape, _ scalars: [Float]) {
        self.shape = shape
        self.scalars = scalars
    }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: Shape) throws -> Tensor {
        guard newShape.count == shape.count else {
            throw XAIError.shapeMismatch(op: "reshape", expected: "\(shape.count) elements", got: [shape, newShape])
        }
        return Tensor(unchecked: newShape, scalars)
    }

    /// The element at a multi-index.
    public subscript(index: Int...) -> Float {
        get { scalars[offset(of: index)] }
        set { scalars[offset(of: index)] = newValue }
    }

    private func offset(of index: [Int]) -> Int {
        precondition(index.count == shape.rank, "index rank \(index.count) for shape \(shape)")
        var off = 0
        for (i, s) in zip(index, shape.strides) { off += i * s }
        return off
    }

    /// Applies `body` to the elements in place.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }

    /// A copy with H and W swapped (NCHW -> NCWH), for tests that must detect transposed layouts.
    public func transposedHW() -> Tensor {
        precondition(shape.rank == 4)
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        var out = [Float](repeating: 0, count: shape.count)
        for p in 0..<(n * c) {
            for y in 0..<h {
                for x in 0..<w { out[p * h * w + x * h + y] = scalars[p * h * w + y * w + x] }
            }
        }
        return Tensor(unchecked: Shape([n, c, w, h]), out)
    }
}
