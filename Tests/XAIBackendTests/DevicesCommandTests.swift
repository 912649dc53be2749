import Foundation
import XCTest
import XAITestSupport

/// `xai devices` end to end: the binary built next to the tests, with and without an OpenCL platform.
final class DevicesCommandTests: XCTestCase {
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        let r = try runXAI(arguments, environment: environment)
        return (r.status, r.output + r.error)
    }

    func testListsTheCPUAndPoCL() throws {
        let (status, output) = try run(["devices"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.hasPrefix("cpu "), output)
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTAssertTrue(output.contains("gpu:0"), "CI installs PoCL, so an OpenCL device must be listed:\n\(output)")
        }
        if output.contains("gpu:0") {
            // Each device says what becomes of its compiled kernels (PoCL, not a GPU: compiled every run).
            if output.contains("not a GPU") {
                XCTAssertTrue(output.contains("kernel binaries: compiled every run (the driver may keep its own"), output)
            }
            let kept = try run(["devices"], environment: ["XAI_PROGRAM_CACHE": "on", "XAI_CACHE_DIR": "/tmp/xai-devices-test"]).1
            XCTAssertTrue(kept.contains("kernel binaries: kept between runs in /tmp/xai-devices-test/programs"), kept)
            let wrong = try run(["devices"], environment: ["XAI_PROGRAM_CACHE": "maybe"])
            XCTAssertEqual(wrong.0, 0, "a bad XAI_PROGRAM_CACHE is said, not fatal")
            XCTAssertTrue(wrong.1.contains("kernel binaries: ") && wrong.1.contains("'maybe'") && wrong.1.contains("must be on or off"), wrong.1)
            let log = try run(["devices"], environment: ["XAI_PROGRAM_CACHE": "on", "XAI_KERNEL_BUILD_LOG": "1"]).1
            XCTAssertTrue(log.contains("kernel binaries: compiled every run under XAI_KERNEL_BUILD_LOG=1"), log)
        }
    }

    func testNoOpenCLPlatformIsExplained() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("xai-no-icd-\(getpid())")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let (status, output) = try run(["devices"], environment: ["OCL_ICD_VENDORS": empty.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("no OpenCL platform found"), output)
    }
}
