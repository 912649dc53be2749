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
