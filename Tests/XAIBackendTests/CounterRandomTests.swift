import Foundation
import XCTest
import XAI
import XAITestSupport

/// The device noise (``CounterRandom``) and running sums: the generator against the published
/// Philox answers and the normal distribution, its functions against float64, and every backend
/// (CPU, OpenCL, the float64 reference, the host fallback) giving the same bits for any batching.
final class CounterRandomTests: XCTestCase {
    /// Random123's known-answer vectors for Philox4x32-10 (its `kat_vectors`).
    func testPhiloxKnownAnswers() {
        let cases: [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), [UInt32])] = [
            ((0, 0, 0, 0), (0, 0), [0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8]),
            ((0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF), (0xFFFF_FFFF, 0xFFFF_FFFF), [0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD]),
            ((0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344), (0xA409_3822, 0x299F_31D0), [0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1]),
        ]
        for (counter, key, expected) in cases {
            let w = CounterRandom.philox(counter, key: key)
            XCTAssertEqual([w.0, w.1, w.2, w.3], expected)
        }
    }

    /// RISE's random grids (``RandomGrids``): cells kept with the keep probability, shifts uniform
    /// over their ranges, the same draws for a mask whichever slice describes it, and each mask's
    /// draws its own (mask index and seed both change them). The device's kernel is checked against
    /// these bits in the mask op cases.
    func testRandomGridsAreTheCounterStreams() {
        let grids = RandomGrids(seed: 0xDEAD_BEEF_0000_0001, first: 3, count: 2000, gridH: 7, gridW: 7, keepProbability: 0.3,
                                cellH: 5, cellW: 3, upsampledH: 40, upsampledW: 24)
        var kept = 0, shiftsY = [Int](repeating: 0, count: 5), shiftsX = [Int](repeating: 0, count: 3)
        var distinct = Set<[Float]>()
        for k in 0..<grids.count {
            let g = grids.grid(k)
            XCTAssertEqual(g.cells.count, 49)
            kept += g.cells.filter { $0 == 1 }.count
            XCTAssertTrue(g.cells.allSatisfy { $0 == 0 || $0 == 1 })
            shiftsY[g.shift.0] += 1
            shiftsX[g.shift.1] += 1
            distinct.insert(g.cells)
        }
        // 98,000 cells at p = 0.3: the standard deviation of the fraction is 0.0015.
        XCTAssertEqual(Double(kept) / 98_000, 0.3, accuracy: 0.006)
        for count in shiftsY { XCTAssertEqual(Double(count) / 2000, 0.2, accuracy: 0.04, "\(shiftsY)") }
        for count in shiftsX { XCTAssertEqual(Double(count) / 2000, 1.0 / 3, accuracy: 0.045, "\(shiftsX)") }
        XCTAssertEqual(distinct.count, 2000, "every mask draws its own grid")
        let part = grids.slice(500..<510)
        XCTAssertEqual(part.first, 503)
        for k in 0..<10 {
            XCTAssertEqual(part.grid(k).cells, grids.grid(500 + k).cells)
            XCTAssertTrue(part.grid(k).shift == grids.grid(500 + k).shift)
        }
        var reseeded = grids
        reseeded.seed += 1
        XCTAssertNotEqual((0..<20).map { reseeded.grid($0).cells }, (0..<20).map { grids.grid($0).cells })
        // The endpoints: every cell kept at p = 1, none below one in 2^24.
        let all = RandomGrids(seed: 1, first: 0, count: 50, gridH: 7, gridW: 7, keepProbability: 1, cellH: 5, cellW: 3, upsampledH: 40, upsampledW: 24)
        let none = RandomGrids(seed: 1, first: 0, count: 50, gridH: 7, gridW: 7, keepProbability: 1e-9, cellH: 5, cellW: 3, upsampledH: 40, upsampledW: 24)
        XCTAssertTrue((0..<50).allSatisfy { all.grid($0).cells.allSatisfy { $0 == 1 } })
        XCTAssertTrue((0..<50).allSatisfy { none.grid($0).cells.allSatisfy { $0 == 0 } })
        // The expanded description is the grids mask by mask.
        guard case .grids(let cells, 7, 7, 40, 24, let shifts) = part.expanded else { return XCTFail("\(part.expanded)") }
        XCTAssertEqual(cells, (0..<10).flatMap { part.grid($0).cells })
        XCTAssertTrue(zip(shifts, (0..<10).map { part.grid($0).shift }).allSatisfy { $0 == $1 })
    }

    /// Box-Muller's pieces against float64: the radius and angle of every tested pair of words
    /// within about 3 float32 roundings (4e-7 of the radius) of `sqrt(-2 ln u)` and `2 pi k / 2^24`.
    func testBoxMullerAgainstFloat64() {
        var rng = SeededGenerator(seed: 41)
        var worst = 0.0
        // Every quadrant and both halves of each, the ends of u, and random words.
        var words: [(UInt32, UInt32)] = [(0, 0), (0xFFFF_FFFF, 0xFFFF_FFFF), (0xFF, 0x3FFF_FF00), (0x8000_0000, 0x4000_0000),
                                         (0x1234_5678, 0x8000_0000), (0x7FFF_FF00, 0xC000_0000), (0x0000_0100, 0x2000_0000)]
        for _ in 0..<200_000 { words.append((UInt32(truncatingIfNeeded: rng.next()), UInt32(truncatingIfNeeded: rng.next()))) }
        for (a, b) in words {
            let (n0, n1) = CounterRandom.boxMuller(a, b)
            let u = Double((a >> 8) + 1) / 16_777_216, angle = 2 * Double.pi * Double(b >> 8) / 16_777_216
            let r = (-2 * Foundation.log(u)).squareRoot()
            let e0 = Swift.abs(Double(n0) - r * Foundation.cos(angle)), e1 = Swift.abs(Double(n1) - r * Foundation.sin(angle))
            // Relative to the radius (the components may cancel to 0); u = 1 has radius 0.
            worst = max(worst, max(e0, e1) / max(r, 1e-3))
        }
        XCTAssertLessThan(worst, 4e-7, "largest error relative to the radius (2.0e-7 over 2 million random pairs)")
    }

    /// A million values of one stream are standard normal: mean, variance, tails and the
    /// Kolmogorov-Smirnov distance to the normal CDF (seeded, so the test is deterministic; the
    /// bounds are 4-5 standard errors).
    func testNormalsAreStandardNormal() throws {
        let n = 1 << 20
        let item = Tensor(shape: [1, n], repeating: 0)
        let cpu = CPUBackend()
        let z = try cpu.download(try cpu.noisyCopies(of: try cpu.upload(item), copies: 1, sigma: 1, seed: 12345, firstStream: 7)).scalars
        let values = z.map(Double.init)
        let mean = values.reduce(0, +) / Double(n)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        XCTAssertLessThan(Swift.abs(mean), 5 / Double(n).squareRoot())
        XCTAssertLessThan(Swift.abs(variance - 1), 5 * (2 / Double(n)).squareRoot())
        let tails = Double(values.filter { Swift.abs($0) > 3 }.count) / Double(n)
        XCTAssertEqual(tails, 0.0026998, accuracy: 5 * (0.0027 / Double(n)).squareRoot())
        let sorted = values.sorted()
        var ks = 0.0
        for (i, v) in sorted.enumerated() {
            let cdf = 0.5 * erfc(-v / 2.0.squareRoot())
            ks = max(ks, Swift.abs(cdf - Double(i) / Double(n)), Swift.abs(cdf - Double(i + 1) / Double(n)))
        }
        XCTAssertLessThan(ks, 1.63 / Double(n).squareRoot(), "Kolmogorov-Smirnov distance")
        // Neighbouring values and neighbouring streams are uncorrelated.
        let lag = (0..<(n - 1)).reduce(0.0) { $0 + values[$1] * values[$1 + 1] } / Double(n - 1)
        XCTAssertLessThan(Swift.abs(lag), 5 / Double(n).squareRoot())
        let other = try cpu.download(try cpu.noisyCopies(of: try cpu.upload(item), copies: 1, sigma: 1, seed: 12345, firstStream: 8)).scalars
        let cross = (0..<n).reduce(0.0) { $0 + values[$1] * Double(other[$1]) } / Double(n)
        XCTAssertLessThan(Swift.abs(cross), 5 / Double(n).squareRoot())
    }

    /// Every backend, and the host fallback, gives the item plus sigma times the definition's
    /// values, bit for bit: an item whose size is not a multiple of 4, a stream whose low word
    /// carries into the high word across the copies, and a 64-bit seed.
    func testEveryBackendDrawsTheSameBits() throws {
        let item = Tensor.uniform([1, 3, 7, 5], seed: 3)
        let (seed, first): (UInt64, UInt64) = (0xDEAD_BEEF_0123_4567, 0xFFFF_FFFE)
        let sigma: Float = 0.37
        let per = item.shape.count
        var expected: [UInt32] = []
        for k in 0..<4 {
            for i in 0..<per {
                expected.append((item.scalars[i] + sigma * CounterRandom.normal(seed: seed, stream: first &+ UInt64(k), index: i)).bitPattern)
            }
        }
        let host = HostOnlyBackend()
        for (name, backend) in TestBackends.all() + [("reference", ReferenceBackend()), ("host fallback", host)] {
            let x = try backend.upload(item)
            let all = try backend.download(try backend.noisyCopies(of: x, copies: 4, sigma: sigma, seed: seed, firstStream: first))
            XCTAssertEqual(all.shape, [4, 3, 7, 5], name)
            XCTAssertEqual(all.scalars.map { $0.bitPattern }, expected, "\(name): all four copies at once")
            // The same copies drawn as 1 + 3.
            let head = try backend.download(try backend.noisyCopies(of: x, copies: 1, sigma: sigma, seed: seed, firstStream: first))
            let tail = try backend.download(try backend.noisyCopies(of: x, copies: 3, sigma: sigma, seed: seed, firstStream: first + 1))
            XCTAssertEqual((head.scalars + tail.scalars).map { $0.bitPattern }, expected, "\(name): drawn as 1 + 3 copies")
        }
        XCTAssertGreaterThan(host.fallbacks, 0)
        // Another seed or stream gives other values.
        let cpu = CPUBackend(), x = try cpu.upload(item)
        let a = try cpu.download(try cpu.noisyCopies(of: x, copies: 1, sigma: 1, seed: seed + 1, firstStream: first)).scalars
        let b = try cpu.download(try cpu.noisyCopies(of: x, copies: 1, sigma: 1, seed: seed, firstStream: first + 7)).scalars
        XCTAssertNotEqual(a.map { $0.bitPattern }, Array(expected[0..<per]))
        XCTAssertNotEqual(b.map { $0.bitPattern }, Array(expected[0..<per]))
    }

    /// A large item spreads over the CPU's work units (4096 values each) and the OpenCL grid:
    /// the same bits as the definition at the units' edges.
    func testLargeItemMatchesTheDefinition() throws {
        let item = Tensor.uniform([1, 3, 61, 67], seed: 5)
        let per = item.shape.count
        for (name, backend) in TestBackends.all() {
            let z = try backend.download(try backend.noisyCopies(of: try backend.upload(item), copies: 2, sigma: 2, seed: 9, firstStream: 100)).scalars
            for i in [0, 1, 4095, 4096, 4097, 8191, 8192, per - 1, per, per + 4096, 2 * per - 1] {
                let (k, j) = i.quotientAndRemainder(dividingBy: per)
                let want = item.scalars[j] + 2 * CounterRandom.normal(seed: 9, stream: 100 + UInt64(k), index: j)
                XCTAssertEqual(z[i].bitPattern, want.bitPattern, "\(name) value \(i)")
            }
        }
    }

    /// Running sums: the same bits on every backend and for every split of the rows, within a few
    /// float32 roundings of the float64 sums (the compensation at work on values that cancel), and
    /// the means read from the state.
    func testRunningSumsAgreeAndAreCompensated() throws {
        let rows = 37, item = 29
        var rng = SeededGenerator(seed: 77)
        // Large values that cancel, plus small ones: a plain float32 sum loses the small ones.
        let values: [Float] = (0..<(rows * item)).map { i in
            let k = i / item
            return (k % 2 == 0 ? 1e4 : -1e4) * (1 + Float(i % item)) + (rng.nextUnitFloat() - 0.5)
        }
        let input = try Tensor(shape: [rows, 1, item], scalars: values)
        var reference: (sum: [Double], squares: [Double], absolute: [Double]) = ([Double](repeating: 0, count: item), [Double](repeating: 0, count: item), [Double](repeating: 0, count: item))
        for k in 0..<rows {
            for i in 0..<item {
                let v = Double(values[k * item + i])
                reference.sum[i] += v; reference.squares[i] += v * v; reference.absolute[i] += Swift.abs(v)
            }
        }
        var first: [UInt32]?
        let host = HostOnlyBackend()
        for (name, backend) in TestBackends.all() + [("reference", ReferenceBackend()), ("host fallback", host)] {
            for absolute in [false, true] {
                let whole = try backend.runningSum(try backend.upload(input), state: nil, absolute: absolute)
                var state: DeviceArray?
                for (start, count) in [(0, 5), (5, 1), (6, 31)] {
                    let part = try Tensor(shape: [count, 1, item], scalars: Array(values[(start * item)..<((start + count) * item)]))
                    state = try backend.runningSum(try backend.upload(part), state: state, absolute: absolute)
                }
                let a = try backend.download(whole), b = try backend.download(try XCTUnwrap(state))
                XCTAssertEqual(a.shape, [4, item])
                XCTAssertEqual(a.scalars.map { $0.bitPattern }, b.scalars.map { $0.bitPattern }, "\(name): 37 rows at once and as 5 + 1 + 31")
                if !absolute {
                    if let first { XCTAssertEqual(a.scalars.map { $0.bitPattern }, first, "\(name) against the first backend") } else { first = a.scalars.map { $0.bitPattern } }
                }
                let mean = try backend.download(try backend.runningMean(whole, count: rows, squares: false)).scalars
                let meanSquare = try backend.download(try backend.runningMean(whole, count: rows, squares: true)).scalars
                for i in 0..<item {
                    let s = absolute ? reference.absolute[i] : reference.sum[i]
                    XCTAssertEqual(Double(mean[i]), s / Double(rows), accuracy: 1e-6 * max(1, Swift.abs(s / Double(rows))) + 1e-7 * reference.absolute[i] / Double(rows),
                                   "\(name) mean \(i) absolute=\(absolute)")
                    XCTAssertEqual(Double(meanSquare[i]), reference.squares[i] / Double(rows), accuracy: 1e-6 * reference.squares[i] / Double(rows),
                                   "\(name) mean square \(i)")
                }
            }
        }
        XCTAssertGreaterThan(host.fallbacks, 0)
    }

    /// Bad arguments are errors naming the parameter.
    func testBadArgumentsNameTheParameter() throws {
        let cpu = CPUBackend()
        let x = try cpu.upload(Tensor.uniform([1, 2, 3, 3], seed: 1))
        let cases: [(String, () throws -> DeviceArray)] = [
            ("sigma", { try cpu.noisyCopies(of: x, copies: 2, sigma: -1, seed: 0, firstStream: 0) }),
            ("sigma", { try cpu.noisyCopies(of: x, copies: 2, sigma: .nan, seed: 0, firstStream: 0) }),
            ("sigma", { try cpu.noisyCopies(of: x, copies: 2, sigma: .infinity, seed: 0, firstStream: 0) }),
            ("copies", { try cpu.noisyCopies(of: x, copies: 0, sigma: 1, seed: 0, firstStream: 0) }),
            ("copies", { try cpu.noisyCopies(of: x, copies: Int.max, sigma: 1, seed: 0, firstStream: 0) }),
        ]
        for (parameter, call) in cases {
            XCTAssertThrowsError(try call()) { error in
                guard case XAIError.invalidArgument(let p, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(p, parameter)
            }
        }
        let batch = try cpu.upload(Tensor.uniform([2, 2, 3, 3], seed: 1))
        XCTAssertThrowsError(try cpu.noisyCopies(of: batch, copies: 1, sigma: 1, seed: 0, firstStream: 0))
        XCTAssertThrowsError(try cpu.runningSum(x, state: try cpu.filled([4, 5], value: 0), absolute: false))
        XCTAssertThrowsError(try cpu.runningMean(x, count: 1, squares: false))
    }
}
