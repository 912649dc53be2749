import XCTest
import XAICore

/// The seeded normal streams SmoothGrad draws its noise from: standard normal moments and tails,
/// independent halves of each Box-Muller pair, reproducible and distinct streams.
final class RandomTests: XCTestCase {
    func testGaussianStreamsAreStandardNormalAndReproducible() {
        let n = 200_001
        let z = SeededGenerator.gaussians(count: n, seed: 5, stream: 3).map(Double.init)
        XCTAssertEqual(z.count, n)
        let mean = z.reduce(0, +) / Double(n)
        let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        XCTAssertLessThan(abs(mean), 0.01)
        XCTAssertLessThan(abs(variance - 1), 0.015)
        let tail = Double(z.filter { abs($0) > 1.959964 }.count) / Double(n)
        XCTAssertLessThan(abs(tail - 0.05), 0.004)
        // The two outputs of each transform (even, odd positions) are uncorrelated.
        var cross = 0.0
        for i in stride(from: 0, to: n - 1, by: 2) { cross += (z[i] - mean) * (z[i + 1] - mean) }
        XCTAssertLessThan(abs(cross / Double(n / 2) / variance), 0.01)
        XCTAssertEqual(SeededGenerator.gaussians(count: 11, seed: 5, stream: 3), Array(z.prefix(11).map(Float.init)))
        XCTAssertNotEqual(SeededGenerator.gaussians(count: 11, seed: 5, stream: 4), SeededGenerator.gaussians(count: 11, seed: 5, stream: 3))
        XCTAssertNotEqual(SeededGenerator.gaussians(count: 11, seed: 6, stream: 3), SeededGenerator.gaussians(count: 11, seed: 5, stream: 3))
        XCTAssertEqual(SeededGenerator.gaussians(count: 0, seed: 1, stream: 0), [])
    }

    func testConcurrentForEachRunsEveryIterationOnce() {
        var hits = [Int](repeating: 0, count: 1000)
        hits.withUnsafeMutableBufferPointer { h in
            let p = h.baseAddress!
            concurrentForEach(1000) { p[$0] += 1 }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: 1000))
    }
}
