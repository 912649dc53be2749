import XCTest
import XAICore

/// The host's seeded generator and parallel loops (the device noise has CounterRandomTests).
final class RandomTests: XCTestCase {
    /// `normals` is the device noise's stream on the host: reproducible, distinct per stream and
    /// seed, and the values the backends add.
    func testHostNormalsAreTheDeviceStream() {
        let z = CounterRandom.normals(count: 11, seed: 5, stream: 3)
        XCTAssertEqual(z, (0..<11).map { CounterRandom.normal(seed: 5, stream: 3, index: $0) })
        XCTAssertNotEqual(CounterRandom.normals(count: 11, seed: 5, stream: 4), z)
        XCTAssertNotEqual(CounterRandom.normals(count: 11, seed: 6, stream: 3), z)
        XCTAssertEqual(CounterRandom.normals(count: 0, seed: 1, stream: 0), [])
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
