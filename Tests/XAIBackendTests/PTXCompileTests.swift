import Foundation
import XCTest
import XAI
import XAIKernels
import XAITestSupport
@testable import XAIOpenCL

/// The GPU kernels compiled for an NVIDIA GPU (sm_80) by LLVM's NVPTX back end, through the clang
/// that PoCL itself depends on: a stand-in for NVIDIA's OpenCL compiler (also LLVM-based) that
/// checks, where no GPU is lent, what PoCL cannot see:
/// - the tensor-core kernels' inline PTX compiles, every `mma.sync` in place (tiles x tiles x
///   slice / 8 x terms in each kernel);
/// - their accumulators, fragments and prefetch registers stay in registers: no local memory
///   (`.local`) at all. One loop with a run-time index, or one helper left out of line, puts a
///   whole array there, loaded and stored around every `mma.sync` (gemm_mma's zeroing and store
///   loops did that until they were unrolled);
/// - gemm.cl's tiled kernels, under the baseline and the 128 x 128 x 8 layout, keep
///   local memory out of the blocks that multiply.
/// clang's OpenCL mode spells inline assembly `__asm__` (NVIDIA's spells it `asm`, as CUDA does),
/// hence `-Dasm=__asm__`. PTX is not assembled here: there is no `ptxas` without NVIDIA's tools.
final class PTXCompileTests: XCTestCase {
    /// A clang with the NVPTX back end: `XAI_CLANG`, else the first of `clang-15`... `clang` on PATH.
    func clang() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        var candidates = environment["XAI_CLANG"].map { [$0] } ?? []
        let path = (environment["PATH"] ?? "/usr/bin").split(separator: ":").map(String.init)
        for name in ["clang-15", "clang-16", "clang-17", "clang-18", "clang-19", "clang"] {
            candidates += path.map { "\($0)/\(name)" }
        }
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        if environment["CI"] == "true" { XCTFail("CI=true but no clang found (Debian's clang-15 comes with PoCL; make deps installs it)") }
        throw XCTSkip("no clang")
    }

    /// The PTX of one kernel family (`common.cl` in front, as the backend builds it) under `options`.
    func ptx(_ family: String, options: String) throws -> String {
        let compiler = try clang()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xai-ptx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = folder.appendingPathComponent("\(family).cl"), output = folder.appendingPathComponent("\(family).ptx")
        try XCTUnwrap(KernelLibrary.source(family)).text.write(to: source, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler)
        process.arguments = ["-x", "cl", "-target", "nvptx64-nvidia-nvcl", "-Xclang", "-finclude-default-header",
                             "-Xclang", "-target-cpu", "-Xclang", "sm_80", "-O3", "-Dasm=__asm__", "-S", "-o", output.path]
            + options.split(separator: " ").map(String.init) + [source.path]
        let log = Pipe()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        let text = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            XCTFail("\(family) (\(options)) did not compile for sm_80:\n\(text.prefix(2000))")
            return ""
        }
        return try String(contentsOf: output, encoding: .utf8)
    }

    /// Each kernel's body by name.
    func entries(_ ptx: String) -> [String: String] {
        var bodies: [String: String] = [:]
        let parts = ptx.components(separatedBy: ".entry ").dropFirst()
        for part in parts {
            guard let open = part.firstIndex(of: "(") else { continue }
            bodies[String(part[..<open])] = String(part)
        }
        return bodies
    }

    func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    func testTensorCoreKernelsCompileWithEveryMMAAndNothingInLocalMemory() throws {
        let kernels = ["gemm_mma", "conv_mma_forward", "conv_mma_backward"]
        // Every tiling under tf32, the largest also under 3xtf32.
        for (arithmetic, tiling) in MMATiling.ladder.map({ (GEMMArithmetic.tf32, $0) }) + [(.tf32x3, MMATiling.ladder[0])] {
            let what = "\(arithmetic.rawValue) \(tiling)"
            let cores = TensorCores(arithmetic: arithmetic, path: .ptx)
            let options = KernelTunables(isGPU: true, gemm: .baseline).buildOptions + cores.buildOptions(tiling)
            let text = try ptx("mma", options: options), bodies = entries(text)
            let perKernel = tiling.tilesM * tiling.tilesN * (MMATiling.kSlice / 8) * arithmetic.terms
            for name in kernels {
                let body = try XCTUnwrap(bodies[name], "\(what): no \(name) in the PTX")
                XCTAssertEqual(count("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", in: body), perKernel, "\(what) \(name)")
                XCTAssertGreaterThan(count("cvt.rna.tf32.f32", in: body), 0, "\(what) \(name)")
                XCTAssertEqual(count(".local", in: body), 0, "\(what) \(name): arrays left in local memory")
            }
            // Every helper inlined: the only functions left are OpenCL's built-ins.
            for line in text.split(separator: "\n") where line.hasPrefix(".func") {
                XCTAssertTrue(line.contains("_Z"), "\(what): a helper was not inlined: \(line)")
            }
        }
    }

    /// The tiled GEMM and convolutions keep their register blocks in registers: the blocks that
    /// multiply load and store no local memory, for the baseline (which uses none at all), the
    /// 128 x 128 x 8 layout with sub-blocks, double buffering and prefetch, and others; every
    /// multiply is unrolled (WPT^2 fmas per k of a slice, at least). Without libclc, clang leaves
    /// OpenCL's built-ins as calls, so `fma` is spelled `a * b + c` under contraction here, and a
    /// run of VW floats stored through `vstore` stays in local memory in this check where NVIDIA's
    /// compiler, which has the built-ins' bodies, keeps it in registers: only the multiplying
    /// blocks are checked under prefetch.
    func testTiledKernelsMultiplyInRegisters() throws {
        // The layout's smaller tiles (GEMMConfig.shrinking) too: 64/4 with one sub-block, 16/1.
        for gemm in [GEMMConfig.baseline, try GEMMConfig(parsing: "tiled/ts128/wpt8/tk8/vw4/db/sb4/pf"),
                     try GEMMConfig(parsing: "tiled/ts64/wpt8/tk16/vw4/db/sb4/pf"), try GEMMConfig(parsing: "tiled/ts128/wpt8/tk16/vw4"),
                     try GEMMConfig(parsing: "tiled/ts32/wpt2/tk32/vw2/pf"), try GEMMConfig(parsing: "tiled/ts64/wpt4/tk8/vw4/db/sb4/pf"),
                     try GEMMConfig(parsing: "tiled/ts16/wpt1/tk8/vw4/db/pf")] {
            let options = KernelTunables(isGPU: true, gemm: gemm).buildOptions + " -Dfma(a,b,c)=((a)*(b)+(c)) -ffp-contract=fast"
            let bodies = entries(try ptx("gemm", options: options))
            for name in ["gemm_tiled", "conv_tiled_forward", "conv_tiled_backward"] {
                let body = try XCTUnwrap(bodies[name], "\(gemm): no \(name) in the PTX")
                // Forward: WPT^2 fmas per k, the slice's k unrolled or not; backward at least once.
                XCTAssertGreaterThanOrEqual(count("fma.rn.f32", in: body), gemm.workPerThread * gemm.workPerThread, "\(gemm) \(name): the register block's multiply is not unrolled")
                if gemm == .baseline { XCTAssertEqual(count(".local", in: body), 0, "\(gemm) \(name): arrays left in local memory") }
                // The convolutions' gathers decode their columns' pixels once and a slice's first
                // (channel, tap) per slice (CONV_FIXED_COLUMNS), not every element's: integer
                // divisions in the whole kernel stay within the store's one per element (WPT^2),
                // the per-tap masks (backward) and a few more. Decoding every run's k and pixel
                // (as before) took 146 and 210 in ts64/wpt8/tk16/vw4/db/sb4/pf (74 and 114 now).
                // Rolled loops (no prefetch) hide the count: their divisions run per iteration.
                if name != "gemm_tiled" {
                    let divisions = ["div.s32", "rem.s32", "div.u32", "rem.u32"].map { count($0, in: body) }.reduce(0, +)
                    let wpt = gemm.workPerThread
                    let bound = wpt * wpt + (name == "conv_tiled_forward" ? 2 * wpt : 8 * wpt) + 16
                    XCTAssertLessThanOrEqual(divisions, bound, "\(gemm) \(name): the gather divides per element")
                }
                // Basic blocks start at labels; a block that multiplies must not touch local memory.
                for block in body.components(separatedBy: "\n$L__") where block.contains("fma.rn.f32") {
                    XCTAssertFalse(block.contains("ld.local") || block.contains("st.local"),
                                   "\(gemm) \(name): a block that multiplies uses local memory:\n\(block.prefix(400))")
                }
            }
        }
    }
}
