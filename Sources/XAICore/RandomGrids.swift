/// RISE's random grids as a description a device expands: mask `m`'s cells and shift are a pure
/// function of `(seed, m)` under Philox4x32-10 (``CounterRandom/philox(_:key:)``), so a device
/// draws them where the masks are built (`rise_grids` in `Kernels/random.cl`) and nothing but this
/// description crosses to it, while the host draws the same bits for backends without the kernel
/// (``expanded``) and for references (``grid(_:)``).
///
/// Mask `m` takes words `0 ..< gridH * gridW + 2` of the counter `(i / 4, 0x52495345 ("RISE"),
/// m low, m high)` under the key `(seed low, seed high)`, lane `i % 4`:
/// - cell `i` keeps the image (1) when the word's top 24 bits are below ``keepThreshold``, else 0;
/// - the shift is `(hi32(w_c * cellH), hi32(w_{c+1} * cellW))` with `c = gridH * gridW`: uniform
///   offsets within one cell (multiply-high, not modulo, so every offset is equally likely to
///   within 2^-32).
public struct RandomGrids: Sendable, Equatable {
    public var seed: UInt64
    /// The index of the first mask described, and how many follow it.
    public var first: Int
    public var count: Int
    public var gridH: Int
    public var gridW: Int
    /// A cell keeps the image when its 24-bit draw is below this: `round(p 2^24)` for keep probability `p`.
    public var keepThreshold: UInt32
    /// Shifts are drawn in `0 ..< cellH` and `0 ..< cellW`.
    public var cellH: Int
    public var cellW: Int
    public var upsampledH: Int
    public var upsampledW: Int

    /// The word of the counter's second lane that keeps these draws apart from noise streams.
    static let domain: UInt32 = 0x5249_5345

    public init(seed: UInt64, first: Int, count: Int, gridH: Int, gridW: Int, keepProbability: Double, cellH: Int, cellW: Int,
                upsampledH: Int, upsampledW: Int) {
        self.seed = seed
        self.first = first
        self.count = count
        self.gridH = gridH
        self.gridW = gridW
        keepThreshold = UInt32(min(max((keepProbability * 16_777_216).rounded(), 0), 16_777_216))
        self.cellH = cellH
        self.cellW = cellW
        self.upsampledH = upsampledH
        self.upsampledW = upsampledW
    }

    /// The same draws for masks `range` (relative to ``first``).
    public func slice(_ range: Range<Int>) -> RandomGrids {
        var s = self
        s.first = first + range.lowerBound
        s.count = range.count
        return s
    }

    /// Cells (`gridH x gridW`, row-major, 0 or 1) and shift of mask `first + k`.
    public func grid(_ k: Int) -> (cells: [Float], shift: (Int, Int)) {
        let m = UInt64(first + k), cells = gridH * gridW
        let key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        var words: [UInt32] = []
        words.reserveCapacity(cells + 5)
        for block in 0..<((cells + 2 + 3) / 4) {
            let w = CounterRandom.philox((UInt32(block), Self.domain, UInt32(truncatingIfNeeded: m), UInt32(truncatingIfNeeded: m >> 32)), key: key)
            words += [w.0, w.1, w.2, w.3]
        }
        let grid = words[0..<cells].map { ($0 >> 8) < keepThreshold ? Float(1) : 0 }
        func below(_ w: UInt32, _ n: Int) -> Int { Int((UInt64(w) &* UInt64(n)) >> 32) }
        return (grid, (below(words[cells], cellH), below(words[cells + 1], cellW)))
    }

    /// The explicit grids: what a backend without the kernel builds its masks from.
    public var expanded: MaskSpec {
        var cells: [Float] = []
        var shifts: [(Int, Int)] = []
        cells.reserveCapacity(count * gridH * gridW)
        shifts.reserveCapacity(count)
        for k in 0..<count {
            let g = grid(k)
            cells += g.cells
            shifts.append(g.shift)
        }
        return .grids(cells: cells, gridH: gridH, gridW: gridW, upsampledH: upsampledH, upsampledW: upsampledW, shifts: shifts)
    }
}

extension MaskSpec {
    /// The description with random grids expanded on the host: what backends without a kernel
    /// for them read.
    public var expandedOnHost: MaskSpec {
        if case .randomGrids(let r) = self { return r.expanded }
        return self
    }
}
