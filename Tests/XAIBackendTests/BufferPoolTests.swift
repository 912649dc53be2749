import XCTest
@testable import XAICPU

/// The CPU backend's buffer pool: reuse by exact size, and room made for new sizes by releasing
/// the buffers returned longest ago.
final class BufferPoolTests: XCTestCase {
    func testNewSizesEvictTheOldestBuffers() {
        let pool = BufferPool(capacityBytes: 1000)
        let a = pool.take(100), b = pool.take(100), c = pool.take(150)
        pool.give(a, 100)
        pool.give(b, 100)
        XCTAssertEqual(pool.cachedByteCount, 800)
        // 600 more bytes do not fit beside 800: the oldest (a) goes, b stays.
        pool.give(c, 150)
        XCTAssertEqual(pool.cachedByteCount, 1000)
        XCTAssertEqual(pool.take(150), c, "the new size was not kept")
        XCTAssertEqual(pool.take(100), b, "the newer buffer of the old size was evicted instead of the older one")
        XCTAssertEqual(pool.cachedByteCount, 0)
        // A buffer larger than the whole pool is never held.
        let big = pool.take(300)
        pool.give(big, 300)
        XCTAssertEqual(pool.cachedByteCount, 0)
    }
}
