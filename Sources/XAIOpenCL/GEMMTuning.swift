import COpenCL
import Foundation
import XAICore
import XAIKernels

/// The GEMM configurations `xai-bench tune` measured fastest, one per device, driver and GEMM
/// kernel source, in a JSON file under the user's cache folder: `$XAI_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/xai`, else `~/.cache/xai`. A changed driver or kernel source has another key,
/// so a stale winner is never applied to code it was not measured on.
public enum GEMMTuningCache {
    public struct Entry: Codable, Equatable, Sendable {
        public var key: String
        public var config: GEMMConfig
        /// Over the tuner's shapes, for the winner and for the baseline kernel.
        public var gflops: Double
        public var baselineGFLOPs: Double?
        public var measured: String
    }

    /// The cache file (it may not exist).
    public static func file(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        folder(environment: environment).appendingPathComponent("gemm-tuning.json")
    }

    /// The folder of every tuning cache: `$XAI_CACHE_DIR`, else `$XDG_CACHE_HOME/xai`, else `~/.cache/xai`.
    public static func folder(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let dir = environment["XAI_CACHE_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        } else if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("xai")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/xai")
    }

    /// The key of a device: vendor, name, driver version and a hash of the GEMM kernel's source
    /// (FNV-1a over its bytes: stable across processes, unlike Swift's `hashValue`).
    public static func key(for info: OpenCLDeviceInfo) -> String {
        "\(info.vendor) | \(info.name) | driver \(info.driverVersion) | gemm.cl \(sourceHash("gemm"))"
    }

    /// FNV-1a of a kernel file's text, in hex.
    static func sourceHash(_ file: String) -> String {
        ProgramBinaryCache.fnv1a(KernelLibrary.source(file)?.text ?? "")
    }

    /// Every entry of the cache file; an unreadable or malformed file reads as empty (the tuner
    /// rewrites it).
    public static func entries(in url: URL = file()) -> [Entry] {
        guard let data = try? Data(contentsOf: url) else { return [] }
        return (try? JSONDecoder().decode([Entry].self, from: data)) ?? []
    }

    /// Stores `entry`, replacing the one with the same key.
    public static func store(_ entry: Entry, in url: URL = file()) throws {
        var all = entries(in: url).filter { $0.key != entry.key }
        all.append(entry)
        try write(all, to: url, what: "GEMM tuning cache")
    }

    /// Writes a tuning cache file as sorted, indented JSON (atomically, its folder made as needed).
    static func write<T: Encodable>(_ value: T, to url: URL, what: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try encoder.encode(value).write(to: url, options: .atomic)
        } catch {
            throw XAIError.file(path: url.path, reason: "could not write the \(what): \(error.localizedDescription)")
        }
    }

    /// The configuration a backend opens `info` with, and where it came from: `requested`, else
    /// `XAI_GEMM_KERNEL` (a ``GEMMConfig/description``; `tiled` alone is the table's tile shape), else the cache's
    /// entry for this device (unless `XAI_GEMM_TUNING=off`) when the device can run it, else
    /// ``GEMMDeviceTable``.
    public static func choose(for info: OpenCLDeviceInfo, requested: GEMMConfig?,
                       environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (GEMMConfig, String) {
        if let requested { return (requested, "requested") }
        let table = GEMMDeviceTable.config(vendor: info.vendor, device: info.name, isGPU: info.isGPU)
        if let text = environment["XAI_GEMM_KERNEL"], !text.isEmpty {
            var config: GEMMConfig
            do {
                config = try GEMMConfig(parsing: text)
            } catch {
                throw XAIError.invalidArgument(parameter: "XAI_GEMM_KERNEL", value: text,
                                               reason: "must be rows, clblast, tiled or a tiled shape such as tiled/ts64/wpt4/tk16/vw4/db")
            }
            // `tiled` alone means the table's tile shape for this device.
            if text.lowercased() == "tiled", table.config.engine == .tiled { config = table.config }
            return (config, "XAI_GEMM_KERNEL=\(text)")
        }
        if environment["XAI_GEMM_TUNING"] != "off" {
            let key = key(for: info), url = file(environment: environment)
            if let hit = entries(in: url).last(where: { $0.key == key }),
               hit.config.problem(maxWorkGroupSize: info.maxWorkGroupSize, localMemoryBytes: info.localMemoryBytes) == nil {
                return (hit.config, "tuned \(hit.measured) (\(url.path))")
            }
        }
        return (table.config, table.source)
    }
}

/// `xai-bench tune`: times GEMM configurations on one OpenCL device over GEMMs shaped like
/// ResNet-50's convolutions (forward and the transposed backward), checks each against a float64
/// product, and keeps the fastest correct one in ``GEMMTuningCache``.
public enum GEMMTuner {
    /// One GEMM of the workload: C[b] (m x n) = op(A) (m x k) * B[b] (k x n), A shared over the
    /// batch as a convolution's weights are.
    public struct Problem: Codable, Sendable {
        public var label: String
        public var m, n, k, batch: Int
        /// A stored k x m (the weights' transpose, as the backward to the input reads them).
        public var transposeA: Bool
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(batch) }
    }

    /// The workload: ResNet-50's convolution GEMMs at `images` images per launch, two backward
    /// ones, and a square GEMM (the ceiling other BLAS libraries report).
    public static func workload(images: Int, square: Int) -> [Problem] {
        [Problem(label: "3x3 64->64 @56", m: 64, n: 3136, k: 576, batch: images, transposeA: false),
         Problem(label: "1x1 64->256 @56", m: 256, n: 3136, k: 64, batch: images, transposeA: false),
         Problem(label: "3x3 128->128 @28", m: 128, n: 784, k: 1152, batch: images, transposeA: false),
         Problem(label: "3x3 256->256 @14", m: 256, n: 196, k: 2304, batch: images, transposeA: false),
         Problem(label: "1x1 512->2048 @7", m: 2048, n: 49, k: 512, batch: images, transposeA: false),
         Problem(label: "backward 3x3 64 @56", m: 576, n: 3136, k: 64, batch: images, transposeA: true),
         Problem(label: "backward 1x1 256->64 @56", m: 256, n: 3136, k: 64, batch: images, transposeA: true),
         Problem(label: "square \(square)", m: square, n: square, k: square, batch: 1, transposeA: false)]
    }

    public struct Trial: Codable, Sendable {
        public var config: GEMMConfig
        /// Sum over the workload of each problem's fastest run; `nil` when the trial failed.
        public var seconds: Double?
        public var gflops: Double?
        /// Each problem's fastest run in seconds, in the workload's order.
        public var perProblem: [Double]?
        /// Largest |error| / largest |value| on the check problems.
        public var checkError: Double?
        public var failure: String?
    }

    public struct Result: Codable, Sendable {
        public var device: String
        public var key: String
        public var workload: [Problem]
        public var trials: [Trial]
        public var winner: GEMMConfig?
        /// Whether the search stopped at its time budget before trying every candidate.
        public var truncated: Bool
        public var candidates: Int
    }

    /// The configurations tried on a device, in order: the device table's and the baseline, the
    /// other engines (rows; CLBlast), then the tiled search space (GPUs) or a few tiled shapes
    /// (CPU devices, where local memory is slow and the search would only waste time).
    public static func candidates(for info: OpenCLDeviceInfo) -> [GEMMConfig] {
        let table = GEMMDeviceTable.config(vendor: info.vendor, device: info.name, isGPU: info.isGPU).config
        var list = [table, .baseline, .rows, .clblast]
        let space = GEMMConfig.tiledSearchSpace(maxWorkGroupSize: info.maxWorkGroupSize, localMemoryBytes: info.localMemoryBytes)
        list += info.isGPU ? space : Array(space.prefix(3))
        var seen = Set<GEMMConfig>()
        return list.filter { seen.insert($0).inserted }
    }

    /// Tunes device `index` within about `budgetSeconds` (the trial under way when the budget runs
    /// out finishes; the first two candidates are always tried). `store` writes the winner to the
    /// cache file `cache`. `progress` sees each trial as it ends.
    public static func tune(index: Int, budgetSeconds: Double, workload: [Problem], repeats: Int = 3,
                            candidates requested: [GEMMConfig]? = nil, store: Bool = true,
                            cache: URL = GEMMTuningCache.file(),
                            progress: (Trial) -> Void = { _ in }) throws -> Result {
        guard budgetSeconds > 0, budgetSeconds.isFinite else {
            throw XAIError.invalidArgument(parameter: "seconds", value: "\(budgetSeconds)", reason: "must be a positive number of seconds")
        }
        guard repeats >= 1 else { throw XAIError.invalidArgument(parameter: "repeat", value: "\(repeats)", reason: "must be at least 1") }
        guard !workload.isEmpty, workload.allSatisfy({ $0.m > 0 && $0.n > 0 && $0.k > 0 && $0.batch > 0 }) else {
            throw XAIError.invalidArgument(parameter: "workload", value: "\(workload.count) problems", reason: "needs problems with positive sizes")
        }
        let probe = try OpenCLBackend(index: index, gemm: .rows)
        let info = probe.info
        let key = GEMMTuningCache.key(for: info)
        let list = requested ?? candidates(for: info)
        let start = Date()
        var trials: [Trial] = []
        var truncated = false
        for (i, config) in list.enumerated() {
            if i >= 2 && Date().timeIntervalSince(start) > budgetSeconds { truncated = true; break }
            let trial = run(config, index: index, workload: workload, repeats: repeats)
            trials.append(trial)
            progress(trial)
        }
        let passing = trials.filter { $0.seconds != nil }
        let winner = passing.min { $0.seconds! < $1.seconds! }
        if store, let winner, let gflops = winner.gflops {
            let baseline = trials.first { $0.config == .baseline }?.gflops
            let stamp = ISO8601DateFormatter().string(from: Date())
            try GEMMTuningCache.store(.init(key: key, config: winner.config, gflops: gflops, baselineGFLOPs: baseline, measured: stamp),
                                      in: cache)
        }
        return Result(device: "gpu:\(index) (\(info.name), \(info.platformName))", key: key, workload: workload,
                      trials: trials, winner: winner?.config, truncated: truncated, candidates: list.count)
    }

    /// Checks and times one configuration; a build failure, a refused launch or a wrong result
    /// make a failed trial, never an error (the next candidate may work).
    static func run(_ config: GEMMConfig, index: Int, workload: [Problem], repeats: Int) -> Trial {
        var trial = Trial(config: config)
        do {
            let backend = try OpenCLBackend(index: index, gemm: config)
            let error = try check(backend)
            trial.checkError = error
            guard error <= 1e-4 else {
                trial.failure = "wrong result: max error \(error) of the largest value"
                return trial
            }
            var total = 0.0, flops = 0.0
            var times: [Double] = []
            for problem in workload {
                times.append(try time(problem, on: backend, repeats: repeats))
                total += times.last!
                flops += problem.flops
            }
            trial.perProblem = times
            trial.seconds = total
            trial.gflops = flops / max(total, 1e-12) / 1e9
        } catch {
            trial.failure = "\(error)"
        }
        return trial
    }

    /// The worst error, relative to the largest value, over small odd-sized batched products in all
    /// four transpose combinations, against a float64 product on the host.
    static func check(_ backend: OpenCLBackend) throws -> Double {
        var rng = SeededGenerator(seed: 7)
        let (m, n, k, batch) = (37, 45, 29, 2)
        var worst = 0.0
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(batch * k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
            let da = try backend.upload(Tensor(shape: [m * k], scalars: a))
            let db = try backend.upload(Tensor(shape: [batch * k * n], scalars: b))
            let dc = try backend.allocate([batch * m * n])
            try backend.gemmLaunch(m: m, n: n, k: k, batch: batch,
                                   a: try backend.mem(da, "tune"), aRow: ta ? 1 : k, aCol: ta ? m : 1,
                                   b: try backend.mem(db, "tune"), bRow: tb ? 1 : n, bCol: tb ? k : 1, bBatch: k * n,
                                   c: try backend.mem(dc, "tune"), ldc: n, cBatch: m * n)
            let c = try backend.download(dc).scalars
            var expected = [Double](repeating: 0, count: batch * m * n)
            for p in 0..<batch {
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0
                        for l in 0..<k {
                            let av = Double(a[ta ? l * m + i : i * k + l])
                            let bv = Double(b[p * k * n + (tb ? j * k + l : l * n + j)])
                            s += av * bv
                        }
                        expected[p * m * n + i * n + j] = s
                    }
                }
            }
            let error = relativeError(c, expected)
            worst = error > worst ? error : worst
        }
        return worst
    }

    /// The largest `|got - expected|` relative to the largest `|expected|`, or infinity where `got`
    /// holds NaN or an infinity: a kernel that writes them must never pass as accurate. (Swift's
    /// `max(x, .nan)` is `x`, so a running `max` would skip exactly the values that matter.)
    static func relativeError(_ got: [Float], _ expected: [Double]) -> Double {
        guard got.count == expected.count else { return .infinity }
        var scale = 0.0, error = 0.0
        for (g, e) in zip(got, expected) {
            guard g.isFinite else { return .infinity }
            scale = Swift.max(scale, abs(e))
            error = Swift.max(error, abs(e - Double(g)))
        }
        return error / Swift.max(scale, 1e-30)
    }

    /// The fastest of `repeats` runs of one problem after a warm-up (which also builds kernels).
    static func time(_ p: Problem, on backend: OpenCLBackend, repeats: Int) throws -> Double {
        var rng = SeededGenerator(seed: 11)
        func random(_ count: Int) throws -> DeviceArray {
            try backend.upload(Tensor(shape: [count], scalars: (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }))
        }
        let a = try random(p.m * p.k), b = try random(p.batch * p.k * p.n)
        let c = try backend.allocate([p.batch * p.m * p.n])
        let (ma, mb, mc) = (try backend.mem(a, "tune"), try backend.mem(b, "tune"), try backend.mem(c, "tune"))
        func once() throws {
            try backend.gemmLaunch(m: p.m, n: p.n, k: p.k, batch: p.batch,
                                   a: ma, aRow: p.transposeA ? 1 : p.k, aCol: p.transposeA ? p.m : 1,
                                   b: mb, bRow: p.n, bCol: 1, bBatch: p.k * p.n,
                                   c: mc, ldc: p.n, cBatch: p.m * p.n)
            try backend.synchronize()
        }
        try once()
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try once()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return best
    }
}
