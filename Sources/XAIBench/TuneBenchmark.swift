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
    @Option(help: "Write the trials as JSON to this file.") var json: String?

    func run() throws {
        guard case .gpu(let index) = try Device(parsing: device) else { return try tuneCPU() }
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be positive") }
        guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
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
        if loweringOnly { return try tuneLowering(index: index, images: imagesPerLaunch) }
        let result = try GEMMTuner.tune(index: index, budgetSeconds: seconds, workload: workload, repeats: repeats,
                                        candidates: list, store: !noStore, cache: cache) { trial in
            // Progress goes to stderr, unbuffered, so a long search shows each trial as it ends.
            let line = trial.gflops.map { String(format: "  %@: %.1f GFLOP/s (check error %.1e)\n", trial.config.description, $0, trial.checkError ?? 0) }
                ?? "  \(trial.config.description): failed: \(trial.failure ?? "?")\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
        }
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
        try tuneLowering(index: index, images: imagesPerLaunch)
    }

    /// The second stage on OpenCL: every distinct ResNet-50 convolution that is neither pointwise
    /// nor depthwise, forward and backward to its input, at `images` images, under both lowerings
    /// with the GEMM configuration now in force (the search's winner once cached), and Winograd
    /// forward where the layer takes it. The faster per layer and direction is cached for that
    /// device and configuration; both lowerings give the same bits, Winograd is for `--fast` only.
    func tuneLowering(index: Int, images: Int) throws {
        let im2col = try OpenCLBackend(index: index, convolution: .im2col)
        let implicit = try OpenCLBackend(index: index, convolution: .implicit)
        // A fixed lowering and tile: Winograd wherever it applies, whatever an older table says.
        let winograd = try WinogradTile.allCases.map { try OpenCLBackend(index: index, convolution: .implicit, fastConvolutions: true, winogradTile: $0) }
        print("convolution lowerings with GEMM \(im2col.gemmConfig), \(images) image\(images == 1 ? "" : "s") per launch:")
        var choices: [String: ConvolutionLoweringTable.Choice] = [:]
        var rows: [[String]] = []
        var totals = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]   // im2col, implicit, chosen; forward then backward
        var fastTotal = 0.0   // forward-only passes under --fast: the faster of the exact choice and Winograd
        for layer in resnet50Convolutions() {
            let plan = try ConvPlan(input: [images, layer.inChannels, layer.inputSize, layer.inputSize],
                                    weight: [layer.outChannels, layer.inChannels, layer.kernel, layer.kernel], bias: nil, params: layer.params)
            guard !plan.isPointwise, !plan.isDepthwise else { continue }
            var seconds: [[Double]] = []   // [backend][forward, backward]
            for backend in [im2col, implicit] {
                let x = try backend.upload(Tensor.uniform(plan.input, seed: 3))
                let w = try backend.upload(Tensor.gaussian(plan.weight, std: 0.05, seed: 4))
                let gy = try backend.upload(Tensor.uniform(plan.output, seed: 5))
                let f = try Timing.measure(repeats: repeats) {
                    _ = try backend.conv2d(x, weight: w, bias: nil, params: layer.params, activation: .relu)
                    try backend.synchronize()
                }
                let b = try Timing.measure(repeats: repeats) {
                    _ = try backend.conv2dBackwardInput(gy, weight: w, params: layer.params, inputShape: plan.input)
                    try backend.synchronize()
                }
                seconds.append([f.median, b.median])
            }
            // Winograd's tiles (forward-only passes under --fast) where the layer takes them.
            var inexact = plan
            inexact.exact = false
            let tiles: [Double?] = try winograd.map { backend in
                guard backend.usesWinograd(inexact) else { return nil }
                let x = try backend.upload(Tensor.uniform(plan.input, seed: 3))
                let w = try backend.upload(Tensor.gaussian(plan.weight, std: 0.05, seed: 4))
                return try Timing.measure(repeats: repeats) {
                    _ = try backend.conv2d(x, weight: w, bias: nil, params: layer.params, activation: .relu, exact: false)
                    try backend.synchronize()
                }.median
            }
            let fastest = zip(WinogradTile.allCases, tiles).compactMap { tile, t in t.map { (tile, $0) } }.min { $0.1 < $1.1 }
            let fast = fastest?.1
            let exactForward = min(seconds[0][0], seconds[1][0])
            let choice = ConvolutionLoweringTable.Choice(forward: seconds[1][0] < seconds[0][0] ? .implicit : .im2col,
                                                         backward: seconds[1][1] < seconds[0][1] ? .implicit : .im2col,
                                                         winograd: fast.map { $0 < exactForward }, winogradTile: fastest?.0)
            choices[plan.layer] = choice
            let n = Double(layer.count)
            for d in 0..<2 {
                totals[3 * d] += n * seconds[0][d]
                totals[3 * d + 1] += n * seconds[1][d]
                totals[3 * d + 2] += n * min(seconds[0][d], seconds[1][d])
            }
            fastTotal += n * min(exactForward, fast ?? .infinity)
            rows.append([layer.name, "\(layer.count)", formatSeconds(seconds[0][0]), formatSeconds(seconds[1][0]), choice.forward.rawValue,
                         tiles[0].map(formatSeconds) ?? "-", tiles[1].map(formatSeconds) ?? "-",
                         choice.winograd.map { $0 ? fastest.map { "F\($0.0.rawValue)" } ?? "-" : "exact" } ?? "-",
                         formatSeconds(seconds[0][1]), formatSeconds(seconds[1][1]), choice.backward.rawValue])
        }
        printTable(["ResNet-50 conv", "x", "fwd im2col", "fwd implicit", "faster", "F(2x2,3x3)", "F(4x4,3x3)", "--fast", "bwd im2col", "bwd implicit", "faster"], rows)
        print(String(format: "network (each layer times its count): forward im2col %@, implicit %@, per layer %@; backward im2col %@, implicit %@, per layer %@",
                     formatSeconds(totals[0]), formatSeconds(totals[1]), formatSeconds(totals[2]),
                     formatSeconds(totals[3]), formatSeconds(totals[4]), formatSeconds(totals[5])))
        print("forward-only passes under --fast (the fastest of the exact choice and Winograd's tiles per layer): \(formatSeconds(fastTotal))")
        let table = ConvolutionLoweringTable(key: ConvolutionLoweringTable.key(for: im2col.info, gemm: im2col.gemmConfig),
                                             measured: ISO8601DateFormatter().string(from: Date()), choices: choices)
        if noStore {
            print("not stored")
        } else {
            try table.store()
            print("cached in \(ConvolutionLoweringTable.file().path); later backends on this device and GEMM configuration read it")
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
