import Foundation
import XCTest
import XAI
import XAIKernels
import XAITestSupport

/// The embedded kernel sources (every file of Kernels/), the XAI_KERNEL_DIR override, and build
/// failures reported with the full log.
final class KernelLibraryTests: XCTestCase {
    /// Every `.cl` file in Kernels/ is embedded and listed (Package.swift embeds the folder; the
    /// library's list must name each file).
    func testEveryFamilyIsEmbeddedWithTheCommonPrelude() throws {
        let common = try XCTUnwrap(KernelLibrary.source("elementwise")).text
        XCTAssertTrue(common.contains("inline float unary_apply"))
        let kernels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels")
        let files = try FileManager.default.contentsOfDirectory(atPath: kernels.path).filter { $0.hasSuffix(".cl") }.map { String($0.dropLast(3)) }
        XCTAssertEqual(Set(KernelLibrary.families + ["common"]), Set(files))
        for family in KernelLibrary.families {
            let source = try XCTUnwrap(KernelLibrary.source(family), family)
            XCTAssertTrue(source.text.hasPrefix("// Shared by every kernel family"), family)
            XCTAssertTrue(source.text.contains("__kernel"), family)
        }
        XCTAssertNil(KernelLibrary.source("nonexistent"))
    }

    /// A kernel folder given by XAI_KERNEL_DIR replaces the embedded sources; a build failure names
    /// the file and carries the compiler's log. Runs in a child process so the environment stays clean.
    func testKernelDirectoryOverrideAndBuildFailure() throws {
        _ = try TestBackends.requireOpenCL()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xai-kernels-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let kernels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels")
        for f in try FileManager.default.contentsOfDirectory(atPath: kernels.path) where f.hasSuffix(".cl") {
            try FileManager.default.copyItem(at: kernels.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        try "__kernel void fill(__global float* out) { out[0] = undefined_symbol_xyz; }\n"
            .write(to: dir.appendingPathComponent("elementwise.cl"), atomically: true, encoding: .utf8)
        setenv("XAI_KERNEL_DIR", dir.path, 1)
        defer { unsetenv("XAI_KERNEL_DIR") }
        let backend = try OpenCLBackend(index: 0)
        XCTAssertThrowsError(try backend.filled([4], value: 1)) { error in
            guard case XAIError.kernelBuild(let file, _, _, let log) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(file.hasSuffix("elementwise.cl"), file)
            XCTAssertTrue(log.contains("undefined_symbol_xyz"), log)
        }
        // Families read from the folder still build and run.
        let x = try backend.upload(Tensor.uniform([2, 3, 4, 5], seed: 1))
        XCTAssertEqual(try backend.download(try backend.pool2d(x, params: Pool2DParams(.max, kernel: (2, 2)))).shape, [2, 3, 2, 2])
    }
}
