import XCTest
@testable import XAICLI
@testable import XAIJobs

/// The command line's own helpers, tested in process.
final class CLIHelperTests: XCTestCase {
    /// The folders a driver names for a run split over workers: the file name without its
    /// extension, numbered from 2 for later files of the same name, as one `xai explain` does.
    func testOutputStemsNumberRepeatedNames() {
        XCTAssertEqual(outputStems(["a/x.png", "b/x.png", "c/y.jpeg", "x.npy", "d/x.PNG", "y"]), ["x", "x-2", "y", "x-3", "x-4", "y-2"])
        XCTAssertEqual(outputStems([]), [])
        // A name that looks numbered is kept and the next repeat skips it.
        XCTAssertEqual(outputStems(["x-2.png", "x.png", "x.jpg"]), ["x-2", "x", "x-3"])
    }

    /// `--precision` and `--fast`: fast alone is `--precision fast`, both together only if they
    /// agree, and the error names `--precision`.
    func testPrecisionFlags() throws {
        XCTAssertEqual(try resolvePrecision(nil, fast: false), .exact)
        XCTAssertEqual(try resolvePrecision(nil, fast: true), .fast)
        XCTAssertEqual(try resolvePrecision("3xtf32", fast: false), .tf32x3)
        XCTAssertEqual(try resolvePrecision("fast", fast: true), .fast)
        XCTAssertThrowsError(try resolvePrecision("tf32", fast: true)) { error in
            XCTAssertTrue(describe(error).contains("--precision"), describe(error))
        }
        XCTAssertThrowsError(try resolvePrecision("bf16", fast: false))
        let job = try Explain.parse(["m.onnx", "x.png", "--precision", "tf32"]).job()
        XCTAssertEqual(job.precision, .tf32)
    }

    /// The progress line's durations: minutes and seconds below an hour, hours from exactly one.
    func testDurationsRoundAndCarryIntoHours() {
        XCTAssertEqual(duration(0), "0:00")
        XCTAssertEqual(duration(59.4), "0:59")
        XCTAssertEqual(duration(59.6), "1:00")
        XCTAssertEqual(duration(3599.4), "59:59")
        XCTAssertEqual(duration(3600), "1:00:00")
        XCTAssertEqual(duration(3 * 3600 + 62), "3:01:02")
        XCTAssertEqual(duration(.infinity), "0:00")
        XCTAssertEqual(duration(.nan), "0:00")
    }

    /// This process's resident memory, read from /proc: a real, plausible number.
    func testResidentMemoryIsRead() {
        let kilobytes = residentKilobytes()
        XCTAssertGreaterThan(kilobytes, 1000, "a test process holds more than 1 MB")
        XCTAssertLessThan(kilobytes, 64 << 20)
    }
}
