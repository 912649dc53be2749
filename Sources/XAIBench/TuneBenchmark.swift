import ArgumentParser
import Foundation
import XAI

/// `xai-bench tune`: the GEMM search for one OpenCL device, its winner cached for every later
/// backend on that device, driver and kernel source.
struct TuneBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Time GEMM configurations (our tiled kernel's tile shapes, the CPU-device kernel, CLBlast) on an OpenCL device, check each against float64, and cache the fastest for that device; with --device cpu, time direct against Winograd for the forward-only convolutions of --models and cache the faster per layer for --fast.",
        discussion: """
        The workload is ResNet-50's convolution GEMMs (forward and backward to the input) at --images \
        images per launch plus one square GEMM. Candidates run in order (the device table's and the \
        baseline first) until --seconds have passed. The winner goes to the cache file (see \
        XAI_CACHE_DIR) unless --no-store; every OpenCL backend opened later on the same device, \
        driver and gemm.cl uses it. XAI_GEMM_KERNEL still overrides; XAI_GEMM_TUNING=off ignores the cache.
        """)

    @Option(help: "gpu or gpu:N (an OpenCL device), or cpu (oneDNN's convolutions, for --fast).") var device = "gpu"
    @Option(help: "With --device cpu: the models whose forward-only convolutions are timed (zoo names or ONNX files).") var models = "resnet50,vgg16"
    @Option(help: "With --device cpu: images per forward-only batch (the perturbation methods' batch on the CPU is \(PerturbationEngine.defaultBatchLimit) at most).")
    var batches = "\(PerturbationEngine.defaultBatchLimit)"
    @Option(help: "Time budget in seconds (the trial under way finishes; at least two candidates run).") var seconds: Double = 60
    @Option(help: "Images per convolution GEMM launch in the workload.") var images: Int?
    @Option(help: "Size of the square GEMM in the workload (default 2048 on GPUs, 512 on CPU devices).") var square: Int?
    @Option(name: .customLong("repeat"), help: "Timed runs per problem (the fastest counts).") var repeats = 3
    @Option(help: "Comma-separated configurations to try instead of the search space, e.g. rows,clblast,tiled/ts128/wpt8/tk16/vw4/db.") var candidates: String?
    @Flag(help: "Do not write the winner to the cache.") var noStore = false
    @Flag(help: "OpenCL: skip the GEMM search and time only the convolution lowerings, with the GEMM configuration in force.") var loweringOnly = false
    @Option(help: "OpenCL: the tensor-core arithmetics (tf32, 3xtf32, comma-separated, or none) whose convolution lowerings are timed too, where the device has tensor cores (XAI_MMA=emulate emulates them: slow).")
    var tensorCores = "tf32,3xtf32"
    @Option(help: "Write the GEMM trials and the convolution lowerings' measurements as JSON to this file ({gemm, lowerings, loweringsSkipped}).") var json: String?

    func run() throws {
        guard case .gpu(let index) = try Device(parsing: device) else { return try tuneCPU() }
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be positive") }
        guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
        // Parsed before the GEMM search, so a typo does not wait for it.
        let arithmetics = try tensorCoreArithmetics()
        let info = try OpenCLBackend(index: index).info
        let imagesPerLaunch = images ?? (info.isGPU ? 8 : 1)
        let squareSize = square ?? (info.isGPU ? 2048 : 512)
        guard imagesPerLaunch >= 1, squareSize >= 1 else { throw ValidationError("--images and --square must be positive") }
        let list: [GEMMConfig]? = try candidates.map { text in
            try text.split(separator: ",").map { try GEMMConfig(parsing: String($0)) }
        }
        let workload = GEMMTuner.workload(images: imagesPerLaunch, square: squareSize)
        let cache = GEMMTuningCache.file()
        let host = HostInfo.current()
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores")
        print("device: gpu:\(index) \(info.name) (\(info.vendor), driver \(info.driverVersion))\(info.isGPU ? "" : " -- not a GPU")")
        print("workload: \(workload.count) GEMMs (\(imagesPerLaunch) image\(imagesPerLaunch == 1 ? "" : "s") per convolution launch, square \(squareSize)); budget \(Int(seconds)) s")
        if loweringOnly {
            try writeJSON(gemm: nil, lowering: try tuneLowering(index: index, images: imagesPerLaunch, arithmetics: arithmetics))
            return
        }
        let result = try GEMMTuner.tune(index: index, budgetSeconds: seconds, workload: workload, repeats: repeats,
                                        candidates: list, store: !noStore, cache: cache) { trial in
            // Progress goes to stderr, unbuffered, so a long search shows each trial as it ends.
            let line = trial.gflops.map { String(format: "  %@: %.1f GFLOP/s (check error %.1e)\n", trial.config.description, $0, trial.checkError ?? 0) }
                ?? "  \(trial.config.description): failed: \(trial.failure ?? "?")\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
        // Written now and again after the lowerings, so a run stopped during them keeps the search.
        try writeJSON(gemm: result, lowering: nil)
        let ranked = result.trials.filter { $0.gflops != nil }.sorted { $0.gflops! > $1.gflops! }
        let baseline = result.trials.first { $0.config == .baseline }?.gflops
        print("")
        printTable(["configuration", "GFLOP/s", "x baseline"], ranked.prefix(10).map { t in
            [t.config.description, String(format: "%.1f", t.gflops!), baseline.map { String(format: "%.2f", t.gflops! / $0) } ?? "-"]
        })
        print("tried \(result.trials.count) of \(result.candidates) candidates\(result.truncated ? " (time budget reached)" : "")")
        if let winner = result.winner {
            print("winner: \(winner)" + (noStore ? " (not stored)" : ", cached in \(cache.path)"))
        } else {
            print("no candidate passed: nothing cached")
        }
        print("")
        try writeJSON(gemm: result, lowering: try tuneLowering(index: index, images: imagesPerLaunch, arithmetics: arithmetics))
    }

    /// `--json`: the GEMM search's trials and the convolution lowerings' measurements.
    func writeJSON(gemm: GEMMTuner.Result?, lowering: ConvolutionLoweringTuner.Result?) throws {
        struct Report: Encodable {
            let gemm: GEMMTuner.Result?
            let lowerings: [ConvolutionLoweringTuner.Measurement]
            let loweringsSkipped: [String]
        }
        guard let json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.write(try encoder.encode(Report(gemm: gemm, lowerings: lowering?.measurements ?? [], loweringsSkipped: lowering?.skipped ?? [])),
                             to: json)
    }

    /// The second stage on OpenCL (``ConvolutionLoweringTuner``): every distinct ResNet-50
    /// convolution that is neither pointwise nor depthwise, forward and backward to its input, at
    /// `images` images, under both lowerings with the GEMM configuration now in force (the search's
    /// winner once cached), with Winograd forward where the layer takes it; then the same under
    /// each of `--tensor-cores` where the device has them. The faster per layer, direction and
    /// arithmetic is cached for that device and configuration; both lowerings give the same bits,
    /// Winograd is for `--fast` only.
    func tuneLowering(index: Int, images: Int, arithmetics: [GEMMArithmetic]) throws -> ConvolutionLoweringTuner.Result {
        let layers = try resnet50Convolutions().compactMap { layer -> ConvolutionLoweringTuner.Layer? in
            let plan = try ConvPlan(input: [images, layer.inChannels, layer.inputSize, layer.inputSize],
                                    weight: [layer.outChannels, layer.inChannels, layer.kernel, layer.kernel], bias: nil, params: layer.params)
            return plan.isPointwise || plan.isDepthwise ? nil : .init(name: layer.name, plan: plan, count: layer.count)
        }
        print("convolution lowerings, \(images) image\(images == 1 ? "" : "s") per launch: fp32\(arithmetics.map { ", " + $0.rawValue }.joined())")
        let result = try ConvolutionLoweringTuner.tune(index: index, layers: layers, repeats: repeats, tensorCores: arithmetics,
                                                       store: !noStore) { m in
            let (f, b) = (m.forward.map(formatSeconds), m.backward.map(formatSeconds))
            FileHandle.standardError.write(Data("  \(m.arithmetic) \(m.name): forward im2col \(f[0]), implicit \(f[1]); backward im2col \(b[0]), implicit \(b[1])\n".utf8))
        }
        let plans = Dictionary(layers.map { ($0.plan.layer, $0.plan) }) { a, _ in a }
        // fp32, then each tensor-core arithmetic as it was filed (`tf32`, or `tf32 emulated` under XAI_MMA=emulate).
        var labels: [String] = []
        for m in result.measurements where !labels.contains(m.arithmetic) { labels.append(m.arithmetic) }
        for label in labels {
            let rows = result.measurements.filter { $0.arithmetic == label }
            let fp32 = label == GEMMArithmetic.fp32.rawValue
            // Seconds over the network (each layer times its count): im2col, implicit, the faster per layer, the default per layer.
            var totals = [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
            var fastTotal = 0.0   // forward-only passes under --fast: the faster of the exact choice and Winograd's tiles
            var lines: [[String]] = []
            for m in rows {
                guard let plan = plans[m.layer] else { continue }
                let n = Double(m.count)
                var defaults: [ConvolutionLowering] = []
                for (d, times) in [m.forward, m.backward].enumerated() {
                    let byDefault = fp32 ? ConvolutionLowering.defaultChoice(for: plan, backward: d == 1)
                                         : ConvolutionLowering.tensorCoreDefault(for: plan, backward: d == 1)
                    defaults.append(byDefault)
                    totals[d][0] += n * times[0]
                    totals[d][1] += n * times[1]
                    totals[d][2] += n * times.min()!
                    totals[d][3] += n * times[ConvolutionLowering.allCases.firstIndex(of: byDefault)!]
                }
                let fastest = zip(WinogradTile.allCases, m.winograd).compactMap { tile, t in t.map { (tile, $0) } }.min { $0.1 < $1.1 }
                fastTotal += n * min(m.forward.min()!, fastest?.1 ?? .infinity)
                var line = [m.name, "\(m.count)", formatSeconds(m.forward[0]), formatSeconds(m.forward[1]), m.faster(backward: false).rawValue]
                if fp32 {
                    line += m.winograd.map { $0.map(formatSeconds) ?? "-" }
                    line.append(fastest.map { $0.1 < m.forward.min()! ? "F\($0.0.rawValue)" : "exact" } ?? "-")
                }
                line += [formatSeconds(m.backward[0]), formatSeconds(m.backward[1]), m.faster(backward: true).rawValue,
                         defaults.map(\.rawValue).joined(separator: "/")]
                lines.append(line)
            }
            print("\n\(fp32 ? "fp32 kernels, GEMM \(result.gemm)" : "tensor cores, \(label)"):")
            printTable(["ResNet-50 conv", "x", "fwd im2col", "fwd implicit", "faster"] + (fp32 ? ["F(2x2,3x3)", "F(4x4,3x3)", "--fast"] : [])
                       + ["bwd im2col", "bwd implicit", "faster", "default fwd/bwd"], lines)
            for (d, name) in ["forward", "backward"].enumerated() {
                print("network \(name) (each layer times its count): im2col \(formatSeconds(totals[d][0])), implicit \(formatSeconds(totals[d][1])), "
                      + "per layer \(formatSeconds(totals[d][2])), by default \(formatSeconds(totals[d][3]))")
            }
            if fp32 { print("forward-only passes under --fast (the fastest of the exact choice and Winograd's tiles per layer): \(formatSeconds(fastTotal))") }
        }
        for line in result.skipped { print("tensor cores not timed: \(line)") }
        if noStore {
            print("not stored")
        } else {
            print("cached in \(ConvolutionLoweringTable.file().path); later backends on this device and GEMM configuration read it")
        }
        return result
    }

    /// `--tensor-cores`: the arithmetics whose lowerings are timed on tensor cores too.
    func tensorCoreArithmetics() throws -> [GEMMArithmetic] {
        guard tensorCores != "none" else { return [] }
        return try tensorCores.split(separator: ",").map { text in
            guard let a = GEMMArithmetic(rawValue: String(text)), a != .fp32 else {
                throw ValidationError("--tensor-cores: '\(text)' is not tf32, 3xtf32 or none")
            }
            return a
        }
    }

    /// `--device cpu`: direct against Winograd for every forward-only convolution of `--models` at
    /// each of `--batches`, the faster per layer cached for `--fast` (exact runs never read it).
    func tuneCPU() throws {
        guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
        let sizes = try batches.split(separator: ",").map { s -> Int in
            guard let b = Int(s), b >= 1 else { throw ValidationError("--batches: '\(s)' is not a positive integer") }
            return b
        }
        let host = HostInfo.current()
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores; \(host.oneDNN ?? "no oneDNN")")
        let (table, seconds) = try ConvolutionTuner.tune(repeats: repeats) { recorder in
            for name in models.split(separator: ",").map(String.init) {
                let model = try ExplainedModel(graph: try Models.load(name), backend: recorder)
                let shape = try model.graph.imageInput.map { try $0.shape(batch: 1) } ?? Shape([1, 3, 224, 224])
                for b in sizes {
                    _ = try model.logits(try recorder.upload(Tensor.uniform(Shape([b] + shape.dims.dropFirst()), in: -1...1, seed: 5)))
                }
            }
        }
        printTable(["layer (input, weight, stride, pads, dilation, groups)", "direct", "winograd", "faster"], table.choices.keys.sorted().map { g in
            let t = seconds[g] ?? [:]
            return [g, formatSeconds(t["direct"] ?? .nan), formatSeconds(t["winograd"] ?? .nan), table.choices[g]?.rawValue ?? "-"]
        })
        let faster = table.choices.values.filter { $0 == .winograd }.count
        print("\(faster) of \(table.choices.count) layers faster on Winograd; key: \(table.key)")
        if noStore {
            print("not stored")
        } else {
            try table.store()
            print("cached in \(ConvolutionTuningTable.file()); `--fast` runs on this machine read it")
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileSystem.write(try encoder.encode(table), to: json)
        }
    }
}
