import Foundation
import XCTest
@testable import XAIOpenCL
import XAI
import XAITestSupport

/// The OpenCL GEMM engines and tile shapes the tuner chooses between, and the tuner itself: every
/// configuration it may pick computes the op table's convolutions and products (forward, fused
/// epilogue, backward to the input) as the float64 reference does; the search caches a correct
/// winner under a key of device, driver and kernel source; backends read that cache.
final class GEMMTuningTests: XCTestCase {
    let reference = ReferenceBackend()

    /// Configurations that exercise every code path of the kernels: CLBlast with the separate
    /// epilogue, vector loads of 2 and 4, double buffering, tiles smaller and larger than the
    /// operands, a K slice longer than some K.
    static let variants: [GEMMConfig] = [
        .clblast, .rows,
        GEMMConfig(tile: 64, workPerThread: 4, kSlice: 16, vectorWidth: 4, doubleBuffer: true),
        GEMMConfig(tile: 32, workPerThread: 2, kSlice: 8, vectorWidth: 2, doubleBuffer: false),
        GEMMConfig(tile: 16, workPerThread: 2, kSlice: 32, vectorWidth: 4, doubleBuffer: true),
        GEMMConfig(tile: 128, workPerThread: 8, kSlice: 8, vectorWidth: 1, doubleBuffer: true),
        // Sub-blocks: issue 32's 128 x 128 x 8 core with 8 x 8 per work-item in 4 x 4 sub-blocks,
        // and a 4 x 4 block (one sub-block) on a tile smaller than some operands.
        GEMMConfig(tile: 128, workPerThread: 8, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4),
        GEMMConfig(tile: 32, workPerThread: 4, kSlice: 16, vectorWidth: 2, doubleBuffer: false, subBlock: 4),
        // Register prefetch, double-buffered and not.
        GEMMConfig(tile: 128, workPerThread: 8, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4, prefetch: true),
        // (Eight runs of each operand per work-item and slice: the registers' every row.)
        GEMMConfig(tile: 32, workPerThread: 4, kSlice: 16, vectorWidth: 1, doubleBuffer: false, prefetch: true),
    ]

    /// Register prefetch changes when a slice is read, not what reaches the local tiles: gemm_tiled
    /// and both tiled convolutions give the same bits with and without it (several K slices, edges,
    /// both transposes, strided and grouped layers; double-buffered and not).
    func testPrefetchKeepsTheBits() throws {
        _ = try TestBackends.requireOpenCL()
        let cases = opCases.filter { $0.name.hasPrefix("conv2d") || $0.name.hasPrefix("gemm") || $0.name.hasPrefix("fullyConnected") }
        for plain in [GEMMConfig(tile: 32, workPerThread: 4, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4),
                      // Eight runs per operand and work-item: every row of the prefetch registers.
                      GEMMConfig(tile: 32, workPerThread: 4, kSlice: 16, vectorWidth: 1, doubleBuffer: false)] {
            var prefetching = plain
            prefetching.prefetch = true
            let a = try OpenCLBackend(index: 0, gemm: plain, convolution: .implicit)
            let b = try OpenCLBackend(index: 0, gemm: prefetching, convolution: .implicit)
            for c in cases {
                func run(_ backend: OpenCLBackend) throws -> [[UInt32]] {
                    let inputs = try c.inputs.map(backend.upload)
                    let y = try backend.download(try c.forward(backend, inputs))
                    var out = [y.scalars.map(\.bitPattern)]
                    if let backward = c.backward {
                        let seed = try backend.upload(Tensor.uniform(y.shape, in: -1...1, seed: 78))
                        out += try backward(backend, inputs, seed).map { try backend.download($0).scalars.map(\.bitPattern) }
                    }
                    return out
                }
                XCTAssertEqual(try run(a), try run(b), "\(c.name): \(plain) with and without /pf")
            }
        }
    }

    func testEveryEngineAndTileShapeMatchesTheReference() throws {
        _ = try TestBackends.requireOpenCL()
        let cases = opCases.filter { $0.name.hasPrefix("conv2d") || $0.name.hasPrefix("gemm") || $0.name.hasPrefix("fullyConnected") }
        XCTAssertGreaterThan(cases.count, 25)
        for config in Self.variants {
            let backend = try OpenCLBackend(index: 0, gemm: config)
            XCTAssertEqual(backend.gemmConfig, config)
            XCTAssertEqual(backend.gemmSource, "requested")
            for c in cases {
                let refInputs = try c.inputs.map(reference.upload)
                let expected = try reference.download(try c.forward(reference, refInputs))
                let inputs = try c.inputs.map(backend.upload)
                let got = try backend.download(try c.forward(backend, inputs))
                if let m = mismatch(doubles(got), doubles(expected)) { XCTFail("\(c.name) on \(config): \(m)") }
                guard let backward = c.backward else { continue }
                let seed = Tensor.uniform(expected.shape, in: -1...1, seed: 77)
                let want = try backward(reference, refInputs, try reference.upload(seed)).map(reference.download)
                let have = try backward(backend, inputs, try backend.upload(seed)).map(backend.download)
                for (h, w) in zip(have, want) {
                    if let m = mismatch(doubles(h), doubles(w)) { XCTFail("\(c.name) backward on \(config): \(m)") }
                }
            }
        }
    }

    /// The tuner's own check must catch a wrong product: a K slice the kernel skips half of is
    /// reported, not cached.
    func testTunerChecksAndCachesOnlyCorrectWinners() throws {
        _ = try TestBackends.requireOpenCL()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xai-tune-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("gemm-tuning.json")
        let small = [GEMMTuner.Problem(label: "small", m: 24, n: 70, k: 33, batch: 2, transposeA: false),
                     GEMMTuner.Problem(label: "small backward", m: 33, n: 70, k: 24, batch: 1, transposeA: true)]
        let candidates: [GEMMConfig] = [.baseline, .rows, GEMMConfig(tile: 32, workPerThread: 2, kSlice: 8, vectorWidth: 4, doubleBuffer: true)]
        var seen: [String] = []
        let result = try GEMMTuner.tune(index: 0, budgetSeconds: 600, workload: small, repeats: 1, candidates: candidates,
                                        cache: cache) { seen.append($0.config.description) }
        XCTAssertEqual(seen, candidates.map(\.description))
        XCTAssertEqual(result.trials.count, 3)
        XCTAssertFalse(result.truncated)
        for t in result.trials {
            XCTAssertNil(t.failure, "\(t.config)")
            XCTAssertLessThan(try XCTUnwrap(t.checkError), 1e-5, "\(t.config)")
            XCTAssertGreaterThan(try XCTUnwrap(t.gflops), 0)
        }
        let fastest = result.trials.min { $0.seconds! < $1.seconds! }!.config
        XCTAssertEqual(result.winner, fastest)
        let stored = GEMMTuningCache.entries(in: cache)
        XCTAssertEqual(stored.count, 1)
        XCTAssertEqual(stored.first?.config, fastest)
        let info = try OpenCLBackend(index: 0).info
        XCTAssertEqual(stored.first?.key, GEMMTuningCache.key(for: info))

        // A backend opened with that cache takes the winner; the environment overrides it, and
        // XAI_GEMM_TUNING=off ignores it.
        let env = ["XAI_CACHE_DIR": dir.path]
        let (chosen, source) = try GEMMTuningCache.choose(for: info, requested: nil, environment: env)
        XCTAssertEqual(chosen, fastest)
        XCTAssertTrue(source.hasPrefix("tuned"), source)
        var forced = env
        forced["XAI_GEMM_KERNEL"] = "tiled/ts32/wpt4/tk8/vw2/db"
        XCTAssertEqual(try GEMMTuningCache.choose(for: info, requested: nil, environment: forced).0,
                       GEMMConfig(tile: 32, workPerThread: 4, kSlice: 8, vectorWidth: 2, doubleBuffer: true))
        var off = env
        off["XAI_GEMM_TUNING"] = "off"
        XCTAssertEqual(try GEMMTuningCache.choose(for: info, requested: nil, environment: off).0,
                       GEMMDeviceTable.config(vendor: info.vendor, device: info.name, isGPU: info.isGPU).config)
        forced["XAI_GEMM_KERNEL"] = "tiled/ts48x"
        XCTAssertThrowsError(try GEMMTuningCache.choose(for: info, requested: nil, environment: forced))

        // A cached winner for another driver or kernel source (another key) is not applied.
        var foreign = stored[0]
        foreign.key = "elsewhere"
        foreign.config = .clblast
        try GEMMTuningCache.store(foreign, in: cache)
        XCTAssertEqual(GEMMTuningCache.entries(in: cache).count, 2)
        XCTAssertEqual(try GEMMTuningCache.choose(for: info, requested: nil, environment: env).0, fastest)

        // This device's own entry naming a configuration it cannot run (written before a driver
        // lowered the work-group limit, or edited by hand) is not applied: the table decides.
        let unfit = GEMMConfig(tile: 256, workPerThread: 1, kSlice: 64, vectorWidth: 4, doubleBuffer: true)
        XCTAssertNotNil(unfit.problem(maxWorkGroupSize: info.maxWorkGroupSize, localMemoryBytes: info.localMemoryBytes))
        var stale = stored[0]
        stale.config = unfit
        try GEMMTuningCache.store(stale, in: cache)
        XCTAssertEqual(GEMMTuningCache.entries(in: cache).last?.config, unfit)
        XCTAssertEqual(try GEMMTuningCache.choose(for: info, requested: nil, environment: env).0,
                       GEMMDeviceTable.config(vendor: info.vendor, device: info.name, isGPU: info.isGPU).config)

        // A corrupt cache file reads as empty: the table decides, nothing crashes.
        try Data("{not json".utf8).write(to: cache)
        XCTAssertEqual(try GEMMTuningCache.choose(for: info, requested: nil, environment: env).0,
                       GEMMDeviceTable.config(vendor: info.vendor, device: info.name, isGPU: info.isGPU).config)
    }

    /// Runs `body` with the GEMM kernel source edited (`original` replaced by `edited`): a copy of
    /// the kernels in a temporary folder named by XAI_KERNEL_DIR, which a backend reads when it
    /// first builds its GEMM program, so the variable is set around `body` alone (XCTest runs one
    /// test at a time).
    func withGEMMSource(replacing original: String, with edited: String, _ body: () throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xai-kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let kernels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels")
        for family in ["common", "gemm"] {
            var text = try String(contentsOf: kernels.appendingPathComponent("\(family).cl"), encoding: .utf8)
            if family == "gemm" {
                XCTAssertTrue(text.contains(original), original)
                text = text.replacingOccurrences(of: original, with: edited)
            }
            try text.write(to: dir.appendingPathComponent("\(family).cl"), atomically: true, encoding: .utf8)
        }
        setenv("XAI_KERNEL_DIR", dir.path, 1)
        defer { unsetenv("XAI_KERNEL_DIR") }
        try body()
    }

    /// The tuner's trial of the baseline configuration on a small problem.
    func baselineTrial() -> GEMMTuner.Trial {
        GEMMTuner.run(.baseline, index: 0, workload: [GEMMTuner.Problem(label: "x", m: 8, n: 8, k: 8, batch: 1, transposeA: false)], repeats: 1)
    }

    /// The check is what keeps a broken configuration out of the cache: it must see a wrong result.
    func testTunerCheckDetectsAWrongProduct() throws {
        _ = try TestBackends.requireOpenCL()
        let backend = try OpenCLBackend(index: 0, gemm: .rows)
        XCTAssertLessThan(try GEMMTuner.check(backend), 1e-5)
        // The same check on a kernel source whose tiled product skips the last step of each K slice fails.
        try withGEMMSource(replacing: "for (int kk = 0; kk < TK; kk++) {", with: "for (int kk = 0; kk < TK - 1; kk++) {") {
            XCTAssertGreaterThan(try GEMMTuner.check(try OpenCLBackend(index: 0, gemm: .baseline)), 1e-3)
            let trial = baselineTrial()
            XCTAssertNil(trial.seconds)
            XCTAssertTrue(trial.failure?.contains("wrong result") == true, "\(trial)")
        }
    }

    /// A candidate that writes NaN is the worst possible, never the most accurate (Swift's
    /// `max(error, .nan)` is `error`: a running maximum used to skip exactly those values).
    func testTunerCheckRefusesAKernelThatWritesNaN() throws {
        XCTAssertEqual(GEMMTuner.relativeError([1, .nan, 3], [1, 2, 3]), .infinity)
        XCTAssertEqual(GEMMTuner.relativeError([.nan, 2, 3], [1, 2, 3]), .infinity, "NaN first")
        XCTAssertEqual(GEMMTuner.relativeError([1, .infinity], [1, 2]), .infinity)
        XCTAssertEqual(GEMMTuner.relativeError([1, 2.5], [1, 2]), 0.25)
        XCTAssertEqual(GEMMTuner.relativeError([1], [1, 2]), .infinity, "a short result")
        _ = try TestBackends.requireOpenCL()
        // One output element of each work-item becomes NaN.
        let step = "acc[i][j] = fma(av[i], bv[j], acc[i][j]);"
        try withGEMMSource(replacing: step, with: "acc[i][j] = (i == 0 && j == 0) ? NAN : fma(av[i], bv[j], acc[i][j]);") {
            XCTAssertEqual(try GEMMTuner.check(try OpenCLBackend(index: 0, gemm: .baseline)), .infinity)
            let trial = baselineTrial()
            XCTAssertNil(trial.seconds, "a NaN-writing kernel is never timed, so never cached")
            XCTAssertTrue(trial.failure?.contains("wrong result") == true, "\(trial)")
        }
    }

    func testConfigurationsParseAndAreValidatedAgainstTheDevice() throws {
        for c in GEMMTuningTests.variants + [.baseline] {
            XCTAssertEqual(try GEMMConfig(parsing: c.description), c)
        }
        XCTAssertEqual(try GEMMConfig(parsing: "tiled"), .baseline)
        XCTAssertThrowsError(try GEMMConfig(parsing: "cublas"))
        XCTAssertThrowsError(try GEMMConfig(parsing: "rows/ts64"))
        XCTAssertThrowsError(try GEMMConfig(parsing: "tiled/ts64/bogus"))
        // Shape rules and device limits.
        XCTAssertNil(GEMMConfig.baseline.problem(maxWorkGroupSize: 256, localMemoryBytes: 32 << 10))
        XCTAssertNotNil(GEMMConfig(tile: 128, workPerThread: 2).problem(maxWorkGroupSize: 1024, localMemoryBytes: 1 << 20), "4096 work-items")
        XCTAssertNotNil(GEMMConfig(tile: 128, workPerThread: 8, kSlice: 32, doubleBuffer: true).problem(maxWorkGroupSize: 1024, localMemoryBytes: 48 << 10))
        XCTAssertNotNil(GEMMConfig(tile: 64, workPerThread: 4, kSlice: 16, vectorWidth: 3).problem(maxWorkGroupSize: 1024, localMemoryBytes: 1 << 20))
        XCTAssertNotNil(GEMMConfig(tile: 60, workPerThread: 4, kSlice: 16, vectorWidth: 8).problem(maxWorkGroupSize: 1024, localMemoryBytes: 1 << 20))
        XCTAssertNotNil(GEMMConfig(tile: 64, workPerThread: 0).problem(maxWorkGroupSize: 1024, localMemoryBytes: 1 << 20))
        XCTAssertNotNil(GEMMConfig(tile: 64, workPerThread: 2, subBlock: 4).problem(maxWorkGroupSize: 1024, localMemoryBytes: 1 << 20), "4 x 4 sub-blocks in a 2 x 2 block")
        XCTAssertNotNil(GEMMConfig(tile: 64, workPerThread: 4, subBlock: 2).problem(maxWorkGroupSize: 1024, localMemoryBytes: 1 << 20))
        XCTAssertEqual(try GEMMConfig(parsing: "tiled/ts128/wpt8/tk8/vw4/db/sb4"), GEMMConfig(tile: 128, workPerThread: 8, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4))
        XCTAssertEqual(try GEMMConfig(parsing: "tiled/ts128/wpt8/tk8/vw4/db/sb4/pf"),
                       GEMMConfig(tile: 128, workPerThread: 8, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4, prefetch: true))
        // Entries cached before sub-blocks existed read as sub-block 1.
        let old = #"{"engine":"tiled","tile":128,"workPerThread":8,"kSlice":8,"vectorWidth":4,"doubleBuffer":true}"#
        XCTAssertEqual(try JSONDecoder().decode(GEMMConfig.self, from: Data(old.utf8)).subBlock, 1)
        // The search space on an H100-like device: every entry valid, the baseline first, no duplicates.
        let space = GEMMConfig.tiledSearchSpace(maxWorkGroupSize: 1024, localMemoryBytes: 48 << 10)
        XCTAssertEqual(space.first, .baseline)
        XCTAssertEqual(Set(space).count, space.count)
        XCTAssertGreaterThan(space.count, 60)
        XCTAssertTrue(space.allSatisfy { $0.problem(maxWorkGroupSize: 1024, localMemoryBytes: 48 << 10) == nil })
        // Every register block the tuner knows (8, 4, 2 outputs per work-item, and the baseline's) is tried.
        XCTAssertEqual(Set(space.dropFirst().map(\.workPerThread)), [8, 4, 2])
        XCTAssertEqual(Set(space.dropFirst().map(\.tile)), [128, 64, 32])
        XCTAssertTrue(space.contains(GEMMConfig(tile: 128, workPerThread: 8, kSlice: 8, vectorWidth: 4, doubleBuffer: true, subBlock: 4)))
        XCTAssertEqual(Set(space.map(\.subBlock)), [1, 4])
        XCTAssertEqual(Set(space.map(\.prefetch)), [false, true])
        // /pf reaches the kernels (its results are the same bits, so only the build option tells).
        let prefetching = GEMMConfig(tile: 64, workPerThread: 4, prefetch: true)
        XCTAssertTrue(KernelTunables(isGPU: true, gemm: prefetching).buildOptions.contains("-DPF=1"))
        XCTAssertTrue(KernelTunables(isGPU: true, gemm: .baseline).buildOptions.contains("-DPF=0"))
        // A device that cannot run a requested configuration refuses it by name.
        _ = try TestBackends.requireOpenCL()
        XCTAssertThrowsError(try OpenCLBackend(index: 0, gemm: GEMMConfig(tile: 64, workPerThread: 4, vectorWidth: 3))) { error in
            XCTAssertTrue("\(error)".contains("gemm"), "\(error)")
        }
        // The device table: PoCL gets the CPU-device kernel, an NVIDIA GPU the tiled one.
        XCTAssertEqual(GEMMDeviceTable.config(vendor: "AuthenticAMD", device: "pthread-skylake-avx512-AMD EPYC", isGPU: false).config, .rows)
        XCTAssertEqual(GEMMDeviceTable.config(vendor: "NVIDIA Corporation", device: "NVIDIA H100 80GB HBM3", isGPU: true).config.engine, .tiled)
        XCTAssertEqual(GEMMDeviceTable.config(vendor: "Some Vendor", device: "Some GPU", isGPU: true).config, .baseline)
    }

    /// The tuner's workload is ResNet-50's convolutions as its labels say: "KxK A->B @S" is B
    /// output channels (m) by S*S positions (n) over A*K*K inputs (k); "backward KxK A @S" and
    /// "backward 1x1 A->B @S" read the weights transposed (m = A*K*K, k = B or A).
    func testTheWorkloadIsTheShapesItsLabelsName() throws {
        let problems = GEMMTuner.workload(images: 3, square: 512)
        XCTAssertEqual(problems.count, 8)
        for p in problems {
            let numbers = p.label.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if p.label.hasPrefix("square") {
                XCTAssertEqual([p.m, p.n, p.k, p.batch], [512, 512, 512, 1], p.label)
            } else if p.label.hasPrefix("backward") {
                // backward KxK A @S (k = A) or backward 1x1 A->B @S (k = B).
                let (kernel, a, s) = (numbers[0], numbers[2], numbers.last!)
                let b = numbers.count == 5 ? numbers[3] : a
                XCTAssertEqual([p.m, p.n, p.k, p.batch], [a * kernel * kernel, s * s, b, 3], p.label)
                XCTAssertTrue(p.transposeA, p.label)
            } else {
                let (kernel, a, b, s) = (numbers[0], numbers[2], numbers[3], numbers[4])
                XCTAssertEqual([p.m, p.n, p.k, p.batch], [b, s * s, a * kernel * kernel, 3], p.label)
                XCTAssertFalse(p.transposeA, p.label)
            }
        }
    }
}
