import Foundation
import XCTest
import XAI

/// Every backend under test: the CPU backend (oneDNN), the CPU backend's im2col path with a tiny
/// workspace (so every convolution goes through the chunked path), and each OpenCL device. On CI (`CI=true`) a missing
/// OpenCL device is a failure, not a skip.
public enum TestBackends {
    nonisolated(unsafe) static var cached: [(String, any Backend)]?
    static let lock = NSLock()

    public static func all(file: StaticString = #filePath, line: UInt = #line) -> [(String, any Backend)] {
        lock.lock(); defer { lock.unlock() }
        if let cached { return cached }
        // The CPU backend on oneDNN, and on its im2col fallback with a tiny workspace (so every
        // convolution there goes through the chunked path).
        var list: [(String, any Backend)] = [("cpu", CPUBackend()), ("cpu-im2col", CPUBackend(workspaceBudget: 0, convolutions: .im2col))]
        do {
            let cl = try OpenCLBackend(index: 0)
            list.append(("opencl", cl))
            // The GEMM kernel the device does not pick by default is tested too: on PoCL that is the
            // GPU kernel (gemm_tiled), on a GPU the CPU-device kernels.
            let other: GEMMConfig = cl.gemmConfig.engine == .tiled ? .rows : .baseline
            list.append(("opencl-\(other.engine.rawValue)", try OpenCLBackend(index: 0, gemm: other)))
        } catch {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("CI=true but no OpenCL device could be opened: \(error)", file: file, line: line)
            } else {
                print("note: OpenCL backend not tested: \(error)")
            }
        }
        cached = list
        return list
    }

    public static func openCL() -> (any Backend)? { all().first { $0.0 == "opencl" }?.1 }

    /// The OpenCL backend; without one the test is skipped, and under `CI=true` (where CI installs
    /// PoCL) it fails instead, so a test never passes by dropping its backend.
    public static func requireOpenCL(file: StaticString = #filePath, line: UInt = #line) throws -> any Backend {
        if let cl = openCL() { return cl }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("CI=true but no OpenCL device could be opened", file: file, line: line)
        }
        throw XCTSkip("no OpenCL device")
    }
}

/// `|a - b| <= atol + rtol * |b|` elementwise, where `atol` is scaled by the reference's largest magnitude
/// so that large outputs get a normalised bound. Returns a description of the worst element on failure.
public func mismatch(_ a: [Double], _ b: [Double], rtol: Double = 1e-4, atol: Double = 1e-5) -> String? {
    guard a.count == b.count else { return "element counts differ: \(a.count) vs \(b.count)" }
    let scale = max(1, b.map(abs).max() ?? 0)
    var worst = 0.0, at = -1
    for i in 0..<a.count {
        let excess = abs(a[i] - b[i]) - (atol * scale + rtol * abs(b[i]))
        if !(excess <= 0) && (at < 0 || excess > worst || excess.isNaN) { worst = excess; at = i }
    }
    return at < 0 ? nil : "element \(at): got \(a[at]), expected \(b[at]) (scale \(scale))"
}

public func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

/// Relative L2 error `|a - b| / |b|`.
public func relativeL2(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "\(a.count) vs \(b.count) elements")
    var num = 0.0, den = 0.0
    for i in 0..<a.count { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i] }
    return (num / max(den, 1e-300)).squareRoot()
}

/// The folder of committed fixtures.
public let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// Runs the `xai` binary built next to the tests; returns its exit status, standard output and
/// standard error.
public func runXAI(_ arguments: [String], environment: [String: String] = [:], directory: String? = nil,
                   file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, output: String, error: String) {
    let productsDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var binary = productsDir.appendingPathComponent("xai")
    if !FileManager.default.fileExists(atPath: binary.path) {
        binary = productsDir.deletingLastPathComponent().appendingPathComponent("xai")  // inside an .xctest bundle
    }
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        XCTFail("xai binary not found next to the tests (\(productsDir.path))", file: file, line: line)
        return (-1, "", "")
    }
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    // Standard error goes to a file, so a full pipe can never stall the process.
    let errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("xai-stderr-\(UUID().uuidString)").path
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errorPath) }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle(forWritingAtPath: errorPath)
    try process.run()
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let error = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    return (process.terminationStatus, output, error)
}

/// A test case with a scratch folder of its own (`tmp`), made before each test and removed after.
open class ScratchFolderTestCase: XCTestCase {
    public private(set) var tmp = FileManager.default.temporaryDirectory

    override open func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("xai-\(type(of: self))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override open func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }
}

extension XCTestCase {
    /// A new empty folder, removed when the test ends.
    public func temporaryFolder(_ prefix: String = "xai-test") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}

/// A backend that implements only memory: every primitive it does not list in `supported` goes to
/// the float64 host fallback of the checked entry points. It runs the whole op table and must
/// match the reference, which is how a new backend can come up one primitive at a time. With a
/// `limit`, no array may hold more elements: a larger one is an out-of-memory, as a device reports.
public final class HostOnlyBackend: Backend, @unchecked Sendable {
    final class Storage: DeviceStorage, @unchecked Sendable {
        let tensor: Tensor
        init(_ t: Tensor) { tensor = t }
    }
    public let device = Device.cpu
    public let name = "host-only test backend"
    public let memoryBudget = 1 << 28
    public var supported: Set<Primitive> = []
    public let limit: Int
    /// Primitives sent to the fallback, the largest array made, and the arrays refused.
    nonisolated(unsafe) public var fallbacks = 0, largest = 0, refusals = 0

    public init(limit: Int = .max) { self.limit = limit }

    public let details = BackendDetails(facts: [("arithmetic", "memory only: every primitive on the host")])
    public func supports(_ primitive: Primitive) -> Bool {
        if !supported.contains(primitive) { fallbacks += 1 }
        return supported.contains(primitive)
    }
    public func upload(_ tensor: Tensor) throws -> DeviceArray {
        guard tensor.shape.count <= limit else {
            refusals += 1
            throw XAIError.outOfMemory(op: "upload", bytes: tensor.shape.count * 4, device: name)
        }
        largest = max(largest, tensor.shape.count)
        return DeviceArray(shape: tensor.shape, storage: Storage(tensor))
    }
    public func download(_ array: DeviceArray) throws -> Tensor {
        guard let s = array.storage as? Storage else { throw XAIError.wrongDevice(op: "download", expected: name, got: "\(type(of: array.storage))") }
        return try s.tensor.reshaped(array.shape)
    }
    public func filled(_ shape: Shape, value: Float) throws -> DeviceArray { try upload(Tensor(shape: shape, repeating: value)) }
}
