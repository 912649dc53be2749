import Foundation
import XCTest

/// `xai devices` end to end: the binary built next to the tests, with and without an OpenCL platform.
final class DevicesCommandTests: XCTestCase {
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        let productsDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var binary = productsDir.appendingPathComponent("xai")
        if !FileManager.default.fileExists(atPath: binary.path) {
            binary = productsDir.deletingLastPathComponent().appendingPathComponent("xai")  // inside an .xctest bundle
        }
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("xai binary not found next to the tests (\(productsDir.path))")
            return (-1, "")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
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
