import Foundation
import XCTest
import XAI
import XAITestSupport
import COpenCL
@testable import XAIOpenCL

/// Compiled OpenCL programs kept between processes (``ProgramBinaryCache``): a new backend (a new
/// context, as a new process has) loads what an earlier one compiled and computes the same bits; an
/// entry is handed to the driver only when its header names this device, driver, source and
/// options and its bytes are the ones written; anything else, and a binary the driver refuses, is
/// compiled again and rewritten. On the GPU check this runs on NVIDIA's driver and its binaries.
final class ProgramBinaryCacheTests: XCTestCase {
    /// A convolution forward and backward, a GEMM and an elementwise op: several kernel families.
    func work(_ b: OpenCLBackend) throws -> [UInt32] {
        let params = Conv2DParams(padding: 1)
        let x = Tensor.uniform([2, 8, 9, 9], seed: 21), w = Tensor.uniform([6, 8, 3, 3], seed: 22)
        let y = try b.conv2d(try b.upload(x), weight: try b.upload(w), bias: nil, params: params, activation: .relu)
        let gy = Tensor.uniform(y.shape, seed: 23)
        let dx = try b.conv2dBackwardInput(try b.upload(gy), weight: try b.upload(w), params: params, inputShape: x.shape)
        let a = Tensor.uniform([5, 7], seed: 24), m = Tensor.uniform([7, 3], seed: 25)
        let p = try b.gemm(try b.upload(a), try b.upload(m), plan: try GemmPlan(a: [5, 7], b: [7, 3], transposeA: false, transposeB: false, bias: nil),
                           alpha: 1, bias: nil, activation: .identity)
        return try [y, dx, p].flatMap { try b.download($0).scalars.map(\.bitPattern) }
    }

    func backend(_ cache: ProgramBinaryCache?, gemm: GEMMConfig? = nil) throws -> OpenCLBackend {
        let b = try OpenCLBackend(index: 0, gemm: gemm)
        b.programCache = cache
        return b
    }

    func entries(_ folder: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
    }

    func testCompiledProgramsAreKeptBetweenBackendsAndCheckedBeforeUse() throws {
        _ = try TestBackends.requireOpenCL()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xai-programs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = ProgramBinaryCache(folder: folder, capacity: 256 << 20)

        let first = try backend(cache)
        let want = try work(first)
        XCTAssertGreaterThanOrEqual(first.programsCompiled, 2, "several kernel families")
        XCTAssertEqual(first.programsFromCache, 0)
        let files = entries(folder)
        XCTAssertEqual(files.count, first.programsCompiled, "one entry per compiled program")
        XCTAssertEqual(try work(backend(nil)), want, "without a cache")

        // A new backend, with a context of its own, loads every program and computes the same bits.
        let second = try backend(cache)
        XCTAssertEqual(try work(second), want)
        XCTAssertEqual(second.programsCompiled, 0)
        XCTAssertEqual(second.programsFromCache, first.programsCompiled)
        XCTAssertTrue(second.details.facts.contains { $0.0 == "kernel binaries" && $0.1.contains(folder.path) }, "\(second.details.facts)")

        // Damaged entries never reach the driver: that program is compiled again and rewritten.
        let original = try Data(contentsOf: files[0])
        let text = String(decoding: original.prefix(4096), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(String(text[0]) + "\n", ProgramBinaryCache.magic)
        let identity = String(text[1])
        let family = String(files[0].deletingPathExtension().lastPathComponent.split(separator: "-")[0])
        XCTAssertEqual(cache.file(family: family, identity: identity), files[0], "the file is named by its identity's hash")
        var flipped = original
        flipped[flipped.count - 1] ^= 0x5a
        var otherIdentity = original   // the header's identity changed, the binary's bytes as they were
        otherIdentity.replaceSubrange(try XCTUnwrap(original.range(of: Data(identity.utf8))), with: Data((identity + " ").utf8))
        let damages: [(String, Data)] = [("truncated", original.prefix(original.count - 7)), ("a byte altered", flipped),
                                         ("another identity's header", otherIdentity), ("junk", Data("not a program".utf8)), ("empty", Data())]
        for (what, bytes) in damages {
            try bytes.write(to: files[0])
            XCTAssertNil(cache.load(family: family, identity: identity), what)
            let damaged = try backend(cache)
            XCTAssertEqual(try work(damaged), want, what)
            XCTAssertEqual(damaged.programsCompiled, 1, what)
            XCTAssertEqual(damaged.programsFromCache, first.programsCompiled - 1, what)
            XCTAssertNotNil(cache.load(family: family, identity: identity), "\(what): rewritten")
        }
        // A well-formed entry the driver refuses is compiled again and replaced.
        cache.store(Array("not a binary this driver made\0".utf8), family: family, identity: identity)
        XCTAssertNotNil(cache.load(family: family, identity: identity))
        let refused = try backend(cache)
        XCTAssertEqual(try work(refused), want)
        XCTAssertEqual(refused.programsCompiled, 1)
        let again = try backend(cache)
        XCTAssertEqual(try work(again), want)
        XCTAssertEqual(again.programsCompiled, 0, "the refused entry was replaced by the driver's own")
        XCTAssertEqual(again.programsRefused, 0)

        // A build from a binary that fails for want of resources says nothing of the binary: the
        // program is compiled, and its entry stays a binary.
        let starved = try backend(cache)
        starved.binaryBuildStatus = CL_OUT_OF_RESOURCES
        XCTAssertEqual(try work(starved), want)
        XCTAssertEqual(starved.programsCompiled, first.programsCompiled)
        XCTAssertEqual(starved.programsRefused, 0)
        guard case .binary? = cache.load(family: family, identity: identity) else { return XCTFail("the entry became a note") }

        // A driver that refuses the very binary it then makes again would do so every run: each
        // entry becomes a note saying so, and later backends compile those programs from source
        // without trying a binary or storing one.
        let refusing = try backend(cache)
        refusing.binaryBuildStatus = CL_INVALID_BINARY
        XCTAssertEqual(try work(refusing), want)
        XCTAssertEqual(refusing.programsCompiled, first.programsCompiled)
        XCTAssertEqual(refusing.programsRefused, first.programsCompiled, "the driver's binaries are the ones it refused")
        XCTAssertEqual(cache.load(family: family, identity: identity), .refused)
        let notes = try entries(folder).map { try Data(contentsOf: $0) }
        XCTAssertEqual(notes.count, files.count)
        for note in notes { XCTAssertTrue(note.range(of: Data(ProgramBinaryCache.refusedLine.utf8)) != nil) }
        let later = try backend(cache)
        XCTAssertEqual(try work(later), want)
        XCTAssertEqual(later.programsFromCache, 0, "no binary is tried")
        XCTAssertEqual(later.programsCompiled, first.programsCompiled)
        XCTAssertEqual(later.programsRefused, 0, "nothing is refused again")
        XCTAssertEqual(try entries(folder).map { try Data(contentsOf: $0) }, notes, "and nothing is stored")
        // Removing the notes (as a driver update does, with a new identity) fills the cache again.
        try entries(folder).forEach { try FileManager.default.removeItem(at: $0) }
        _ = try work(backend(cache))
        XCTAssertEqual(entries(folder).count, files.count, "filled again")

        // Other build options (another tile shape) are other entries.
        let other = try backend(cache, gemm: try GEMMConfig(parsing: "tiled/ts32/wpt2/tk8/vw2"))
        XCTAssertEqual(try work(other).count, want.count)
        XCTAssertGreaterThan(other.programsCompiled, 0, "another tile shape compiles its own programs")
        XCTAssertGreaterThan(entries(folder).count, files.count)
        // XAI_KERNEL_BUILD_LOG wants the compiler's report: it compiles from source, and stores
        // nothing (NVIDIA's report option makes entries no other run reads).
        let past = Date(timeIntervalSinceNow: -3600)
        for url in entries(folder) { try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: url.path) }
        let before = entries(folder)
        let reporting = try backend(cache)
        reporting.reportsBuilds = true
        XCTAssertTrue(reporting.details.facts.contains { $0.0 == "kernel binaries" && $0.1.contains("XAI_KERNEL_BUILD_LOG") }, "\(reporting.details.facts)")
        _ = try work(reporting)
        XCTAssertEqual(reporting.programsFromCache, 0)
        XCTAssertGreaterThan(reporting.programsCompiled, 0)
        XCTAssertEqual(entries(folder), before)
        for url in before {
            let date = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date)
            XCTAssertLessThan(abs(date.timeIntervalSince(past)), 1, "\(url.lastPathComponent) rewritten")
        }

        // The folder stays within its capacity, the oldest entries going first.
        let all = entries(folder)
        for (age, url) in all.enumerated() {
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: Double(age - all.count) * 60)], ofItemAtPath: url.path)
        }
        // Loading the oldest entry makes it the most recently used: it is the one kept.
        let used = try XCTUnwrap(all.first)
        let header = String(decoding: try Data(contentsOf: used).prefix(4096), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let usedFamily = String(used.deletingPathExtension().lastPathComponent.split(separator: "-")[0])
        XCTAssertNotNil(cache.load(family: usedFamily, identity: String(header[1])))
        let usedSize = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: used.path)[.size] as? Int)
        ProgramBinaryCache(folder: folder, capacity: usedSize).trim()
        XCTAssertEqual(entries(folder), [used])

        // XAI_PROGRAM_CACHE: on, off, else GPUs only; anything else names the variable.
        let env = ["XAI_CACHE_DIR": folder.path]
        let on = try ProgramBinaryCache.forDevice(first.info, environment: env.merging(["XAI_PROGRAM_CACHE": "on"]) { $1 })
        XCTAssertEqual(on?.folder, folder.appendingPathComponent("programs"))
        XCTAssertEqual(on?.capacity, 256 << 20, "256 MiB, as docs/opencl.md says")
        XCTAssertNil(try ProgramBinaryCache.forDevice(first.info, environment: env.merging(["XAI_PROGRAM_CACHE": "OFF"]) { $1 }))
        XCTAssertEqual(try ProgramBinaryCache.forDevice(first.info, environment: env) != nil, first.info.isGPU)
        XCTAssertThrowsError(try ProgramBinaryCache.forDevice(first.info, environment: ["XAI_PROGRAM_CACHE": "sometimes"])) {
            XCTAssertTrue("\($0)".contains("XAI_PROGRAM_CACHE"), "\($0)")
        }
        // What `xai devices` says: the folder, compiled every run, or the variable's error.
        let said = ProgramBinaryCache.summary(for: first.info, environment: env.merging(["XAI_PROGRAM_CACHE": "on"]) { $1 })
        XCTAssertTrue(said.contains(folder.appendingPathComponent("programs").path), said)
        XCTAssertTrue(ProgramBinaryCache.summary(for: first.info, environment: ["XAI_PROGRAM_CACHE": "off"]).hasPrefix("compiled every run"))
        let wrong = ProgramBinaryCache.summary(for: first.info, environment: ["XAI_PROGRAM_CACHE": "sometimes"])
        XCTAssertTrue(wrong.contains("XAI_PROGRAM_CACHE") && wrong.contains("sometimes"), wrong)
    }
}
