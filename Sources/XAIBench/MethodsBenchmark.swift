import ArgumentParser
import Foundation
import XAI

/// `xai-bench [--device] [--model] [--methods] ...`: every method's time per image beside its
/// floor and the peers, with the peer table's settings by default.
struct MethodsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "methods",
        abstract: "Per-image time of each attribution method (224x224, batch 1 image, the peer table's settings) beside its floor and the peers.",
        discussion: """
        Floor = forward-equivalents x FLOPs per forward / the ceiling measured in the same run (a backward to the input \
        counts as one forward). Fast methods: one warm-up run (it also compiles OpenCL kernels), then --repeat timed runs. \
        Slow methods (over 300 forward-equivalents): a reduced warm-up with the same batch shapes, then timed runs until \
        --repeat or --slow-budget seconds, like the peers' script.
        """)

    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "exact (fp32), fast, tf32 or 3xtf32 (xai explain --help); the header says what ran.") var precision = "exact"
    @Option(name: [.customLong("model"), .customLong("models")], help: "Comma-separated zoo models (resnet18, resnet50, vgg16, mobilenet_v2, ...) or ONNX files.")
    var models = "resnet18,resnet50"
    @Option(help: "Comma-separated methods (\(allMethods.joined(separator: ", "))), all, gradients (the gradient and CAM methods but Score-CAM: seconds each) or perturbation (\(perturbationMethods.joined(separator: ", ")): minutes each on a CPU).")
    var methods = "gradients"
    @Option(help: "Different images explained back to back per timed run; the row reports images/second.") var images = 1
    @Option(help: "With --images: images per call for the methods that explain a batch in one pass (saliency, inputxgrad, the CAM family), as `xai explain --image-batch` does.") var imageBatch = 1
    @Option(name: .customLong("repeat"), help: "Timed runs per row (after the warm-up).") var repeats = 3
    @Option(help: "Seconds of timed runs after which a slow method stops repeating.") var slowBudget = 60.0
    @Option(help: "Internal batch of IG and SmoothGrad (default: the library's, from the memory budget).") var batch: Int?
    @Option(help: "Peer results (Benchmarks/peers/results_<model>.json), comma-separated: adds the peer rows of each method and the speedup.")
    var compare: String?
    @Option(help: "Write the header and every row as JSON to this file.") var json: String?
    @Option(help: "Method knobs as JSON, set on every row after its own (e.g. '{\"composite\": \"epsilon-gamma-box\"}').") var knobs: String?

    static let gradientMethods = ["saliency", "inputxgrad", "ig", "smoothgrad", "gradcam", "xgradcam", "layercam", "gradcampp", "cam",
                                  "hirescam", "eigencam", "eigengradcam", "guidedbackprop", "deconvolution", "guidedgradcam", "gradientshap",
                                  "deeplift", "lrp", "ablationcam", "fullgrad"]
    static let perturbationMethods = ["slic", "quickshift", "occlusion", "occlusion-full", "lime", "kernelshap", "kernelshap-stable", "rise", "mp"]
    /// Every registry method (one added to the registry is benchmarked with its defaults), plus the
    /// segmenters.
    static var allMethods: [String] {
        let listed = gradientMethods + ["scorecam"] + perturbationMethods
        return listed + MethodRegistry.names.filter { !listed.contains($0) }
    }

    /// The split-half rank correlation `kernelshap-stable` samples until (issue 13's goal).
    static let stableTarget = 0.9

    /// Peer result keys of each method (`key` in the peers' JSON).
    static let peerKeys: [String: [String]] = [
        "saliency": ["captum_saliency"], "inputxgrad": ["captum_inputxgradient"], "ig": ["captum_integrated_gradients"],
        "smoothgrad": ["captum_smoothgrad"], "gradcam": ["gradcam_gradcam", "captum_layergradcam"], "gradcampp": ["gradcam_gradcampp"],
        "scorecam": ["gradcam_scorecam"], "occlusion": ["captum_occlusion"], "occlusion-full": ["captum_occlusion"], "slic": ["slic_segmentation"], "quickshift": ["lime_quickshift"],
        "lime": ["captum_lime", "lime_image"], "kernelshap": ["captum_kernelshap", "shap_partition"], "kernelshap-stable": ["captum_kernelshap"], "rise": ["torchray_rise"],
        "guidedbackprop": ["captum_guidedbackprop"], "deconvolution": ["captum_deconvolution"], "guidedgradcam": ["captum_guidedgradcam"],
        "gradientshap": ["captum_gradientshap"], "hirescam": ["gradcam_hirescam"], "eigencam": ["gradcam_eigencam"],
        "eigengradcam": ["gradcam_eigengradcam"], "deeplift": ["captum_deeplift"], "ablationcam": ["gradcam_ablationcam"], "fullgrad": ["gradcam_fullgrad"],
        "shapleycam": ["gradcam_shapleycam"],
    ]

    struct PeerRow: Codable {
        let library: String
        let key: String
        let settings: String
        let medianSeconds: Double
        let speedup: Double
    }

    struct Row: Codable {
        let model: String
        let method: String
        let settings: String
        let timing: Timing
        let imagesPerSecond: Double
        let modelEvaluations: Double
        let forwardEquivalents: Double
        let gflops: Double
        let timesFloor: Double
        var peers: [PeerRow] = []
        /// What crossed between host and device per image (OpenCL), averaged over every run.
        var transfers: Transfers?
    }

    /// ``TransferCounters`` per image, averaged over the runs of one row.
    struct Transfers: Codable {
        let bytesToDevice: Double
        let bytesFromDevice: Double
        let hostWaits: Double
        let kernelLaunches: Double

        init(_ d: TransferCounters, per images: Int) {
            let n = Double(max(images, 1))
            (bytesToDevice, bytesFromDevice) = (Double(d.bytesToDevice) / n, Double(d.bytesFromDevice) / n)
            (hostWaits, kernelLaunches) = (Double(d.hostWaits) / n, Double(d.kernelLaunches) / n)
        }

        var text: String {
            String(format: "in %.2f MB, out %.2f MB, %.0f waits, %.0f launches", bytesToDevice / 1e6, bytesFromDevice / 1e6, hostWaits, kernelLaunches)
        }
    }

    struct Header: Codable {
        let machine: String
        let cores: Int
        let memoryGiB: Double
        let blas: String
        let device: String
        let deviceDetails: String
        let build: String
        let ceilingName: String
        let ceilingGFLOPs: Double
        let copyGBPerSecond: Double?
        let date: String
    }

    struct Report: Codable {
        let header: Header
        let rows: [Row]
    }

    /// One benchmark case: the method, what it does, its model evaluations and forward-equivalents
    /// per image, and a reduced variant to warm up with (slow methods only).
    struct Case {
        let method: ConfiguredMethod
        let settings: String
        let evaluations: Double
        let forwardEquivalents: Double
        var warmup: ConfiguredMethod?
    }

    func run() throws {
        let backend = try Backends.make(try Device(parsing: device), precision: try Precision(parsing: precision))
        let host = HostInfo.current()
        let details = describe(backend)
        let copy = backend.device == .cpu ? nil : try measureCopyBandwidth(backend)
        let (ceiling, ceilingName) = try measureCeiling(backend, size: isOpenCLOnCPU(backend) ? 1024 : 4096, repeats: 3)
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        let header = Header(machine: host.cpuModel, cores: host.logicalCores, memoryGiB: Double(host.memoryBytes) / Double(1 << 30), blas: host.blasConfig,
                            device: backend.name, deviceDetails: details, build: build, ceilingName: ceilingName, ceilingGFLOPs: ceiling,
                            copyGBPerSecond: copy, date: ISO8601DateFormatter().string(from: Date()))
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores, \(gib(host.memoryBytes)) memory; \(host.blasConfig)")
        print("device:  \(details)")
        print("build:   \(build)")
        print("ceiling: \(ceilingName) " + String(format: "%.1f GFLOP/s", ceiling) + (copy.map { String(format: ", device copy %.1f GB/s", $0) } ?? ""))
        let chosen: [String]
        switch methods {
        case "all": chosen = Self.allMethods
        case "gradients": chosen = Self.gradientMethods
        case "perturbation": chosen = Self.perturbationMethods
        default: chosen = methods.split(separator: ",").map(String.init)
        }
        for m in chosen where !Self.allMethods.contains(m) {
            throw ValidationError("--methods: unknown method '\(m)' (\(Self.allMethods.joined(separator: ", ")))")
        }
        guard images >= 1 else { throw ValidationError("--images must be at least 1") }
        guard imageBatch >= 1 else { throw ValidationError("--image-batch must be at least 1") }
        let peers = try loadPeers()
        var rows: [Row] = []
        for name in models.split(separator: ",").map(String.init) {
            let graph = try Models.load(name)
            let flops = try graph.summary().flopsPerImage
            let session = try Session(source: name, model: try ExplainedModel(graph: graph, backend: backend))
            let shape = try graph.imageInput!.shape(batch: 1)
            let inputs = (0..<images).map { Tensor.uniform(shape, in: -2...2, seed: 3 + UInt64($0)) }
            // Segment methods get SLIC superpixels of a smooth image (blurred noise), about 50 of
            // them like the peers' 52 on their photograph; noise alone would give odd segments.
            let photo = try gaussianBlur(inputs[0], sigma: 6)
            let slic = SLIC(segments: 70)
            let segments = try slic.segment(photo)
            for m in chosen {
                if m == "slic" || m == "quickshift" {
                    let segmenter: Segmentation = m == "slic" ? .slic(slic) : .quickshift(Quickshift())
                    var count = 0
                    let t = try Timing.measure(repeats: Swift.max(repeats, 3)) { count = try segmenter.segment(photo, index: 0).count }
                    let what = m == "slic" ? "SLIC n_segments=70, compactness 10" : "quickshift kernel 4, max distance 200, ratio 0.2 (lime's)"
                    rows.append(Row(model: name, method: m, settings: "\(what) on \(shape[2])x\(shape[3]) -> \(count) segments", timing: t,
                                    imagesPerSecond: 1 / t.median, modelEvaluations: 0, forwardEquivalents: 0, gflops: 0, timesFloor: 0,
                                    peers: peerRows(peers, name, m, t.median)))
                    print("  \(name) \(m): " + formatSeconds(t.median))
                    continue
                }
                let c = try benchmarkCase(m, session: session, segments: segments)
                let slow = c.forwardEquivalents > 300
                let perCall = (try? MethodRegistry.spec(m))?.batchesImages == true ? imageBatch : 1
                let calls = try stride(from: 0, to: inputs.count, by: perCall).map { start in
                    try Tensor.concatenated(Array(inputs[start..<Swift.min(start + perCall, inputs.count)]), axis: 0)
                }
                var last: Attribution?
                let runAll = { for x in calls { last = try c.method.method.attribute(x, target: .predicted, baseline: c.method.baseline) } }
                let counted = backend as? CountsTransfers
                var before: TransferCounters?
                let t: Timing
                if slow {
                    let w = c.warmup ?? c.method
                    _ = try w.method.attribute(inputs[0], target: .predicted, baseline: w.baseline)
                    before = counted?.transfers
                    t = try Timing.measure(warmup: 0, repeats: repeats, budget: slowBudget, runAll)
                } else {
                    // Counted from the timed runs: the warm-up uploads the weights and builds kernels.
                    t = try Timing.measure(repeats: repeats, afterWarmup: { before = counted?.transfers }, runAll)
                }
                let perImage = Timing(runs: t.runs, min: t.min / Double(images), median: t.median / Double(images), max: t.max / Double(images))
                // The timed runs since `before`.
                let transfers = before.flatMap { b in counted.map { Transfers($0.transfers.since(b), per: t.runs * images) } }
                // Methods that sample until stable report what they used; the floor counts those.
                var (evaluations, forwardEquivalents) = (c.evaluations, c.forwardEquivalents)
                var settings = c.settings + (images > 1 ? ", \(images) images, \(perCall) per call" : "")
                if let d = last?.diagnostics, let used = d["samplesUsed"]?.last, let agreement = d["halfSplitRankCorrelation"]?.last {
                    if m.hasPrefix("kernelshap") {
                        // The registry's cost is for the whole budget; the samples not drawn come off it.
                        let unused = Double(MethodConfiguration().samples ?? MethodRegistry.coalitionSamples) - used
                        (evaluations, forwardEquivalents) = (c.evaluations - unused, c.forwardEquivalents - unused)
                    }
                    settings += String(format: "; last run: %.0f samples, split-half %.3f", used, agreement)
                }
                let floor = forwardEquivalents * flops / (ceiling * 1e9)
                rows.append(Row(model: name, method: m, settings: settings, timing: perImage, imagesPerSecond: 1 / perImage.median,
                                modelEvaluations: evaluations, forwardEquivalents: forwardEquivalents,
                                gflops: forwardEquivalents * flops / perImage.median / 1e9, timesFloor: perImage.median / floor,
                                peers: peerRows(peers, name, m, perImage.median), transfers: transfers))
                print("  \(name) \(m): " + formatSeconds(perImage.median) + (images > 1 ? String(format: " (%.2f images/s)", 1 / perImage.median) : "")
                      + (transfers.map { "; per image: \($0.text)" } ?? ""))
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(Report(header: header, rows: rows)).write(to: URL(fileURLWithPath: json))
        }
        print("")
        printTable(["model", "method", "settings", "s/image min / median / max", "runs", "images/s", "evals", "fwd-eq", gflopsColumn(backend), "x floor", "peers (median): speedup"], rows.map { r in
            [r.model, r.method, r.settings, [r.timing.min, r.timing.median, r.timing.max].map(formatSeconds).joined(separator: " / "), "\(r.timing.runs)",
             String(format: "%.3g", r.imagesPerSecond), String(format: "%.0f", r.modelEvaluations), String(format: "%.0f", r.forwardEquivalents),
             r.forwardEquivalents > 0 ? String(format: "%.1f", r.gflops) : "-", r.forwardEquivalents > 0 ? String(format: "%.2f", r.timesFloor) : "-",
             r.peers.map { "\($0.key) " + formatSeconds($0.medianSeconds) + String(format: ": %.2fx", $0.speedup) }.joined(separator: "; ")]
        })
        if rows.contains(where: { $0.transfers != nil }) {
            print("\nhost <-> device per image (the timed runs of each row averaged):")
            printTable(["model", "method", "to device MB", "from device MB", "host waits", "kernel launches"], rows.compactMap { r in
                r.transfers.map { [r.model, r.method, String(format: "%.3f", $0.bytesToDevice / 1e6), String(format: "%.3f", $0.bytesFromDevice / 1e6),
                                   String(format: "%.1f", $0.hostWaits), String(format: "%.0f", $0.kernelLaunches)] }
            })
        }
        printWinogradNote(backend)
    }

    /// Rows that are a registry method with other knobs (`occlusion-full` is `--no-incremental`,
    /// `kernelshap-stable` samples until split-half 0.9), as JSON knobs.
    static let variants: [String: (method: String, knobs: String)] = [
        "occlusion-full": ("occlusion", #"{"incremental": false}"#),
        "kernelshap-stable": ("kernelshap", #"{"untilStable": \#(stableTarget)}"#),
    ]
    /// What runs before a slow row's single timed run: the same batch shapes at a fraction of the
    /// work, so the timed run finds its primitives created (a method of its own where named).
    static let warmups: [String: (method: String?, knobs: String)] = [
        "scorecam": ("occlusion", #"{"window": 16, "stride": 100}"#),
        "occlusion": (nil, #"{"stride": 16}"#), "occlusion-full": (nil, #"{"stride": 16, "incremental": false}"#),
        "lime": (nil, #"{"samples": 64}"#), "kernelshap": (nil, #"{"samples": 64}"#), "kernelshap-stable": (nil, #"{"samples": 64}"#),
        "rise": (nil, #"{"masks": 64}"#), "mp": (nil, #"{"iterations": 2}"#),
    ]

    /// Row `m` built by the registry with its defaults (the peer table's settings), the variant's
    /// knobs and `--batch` for IG and SmoothGrad; superpixel methods get `segments`.
    func benchmarkCase(_ m: String, session: Session, segments: SegmentMap) throws -> Case {
        let variant = Self.variants[m]
        let name = variant?.method ?? m
        var knobs = try MethodConfiguration.parse(json: Data((variant?.knobs ?? "{}").utf8))
        if name == "ig" || name == "smoothgrad" { knobs.batch = batch }
        let given = try self.knobs.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] } ?? [:]
        for (key, value) in given { try knobs.set(key, value) }
        let superpixels = Segmentation.labels(segments.tensor)
        let configured = try session.method(name, configuration: knobs, segmentation: superpixels)
        let cost = try MethodRegistry.spec(name).cost(for: session.model, configuration: knobs)
        var warmup: ConfiguredMethod?
        if let w = Self.warmups[m] {
            // The row's knobs with the warm-up's over them, or the warm-up method's own.
            var warm = w.method == nil ? knobs : MethodConfiguration()
            let overrides = (try JSONSerialization.jsonObject(with: Data(w.knobs.utf8)) as? [String: Any]) ?? [:]
            for (key, value) in overrides { try warm.set(key, value) }
            warmup = try session.method(w.method ?? name, configuration: warm, segmentation: superpixels)
        }
        var settings = configured.parameters.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        if try MethodRegistry.spec(name).knobs.contains("segmentation") { settings += ", \(segments.count) SLIC segments" }
        return Case(method: configured, settings: settings.isEmpty ? "batch 1" : settings, evaluations: cost.evaluations,
                    forwardEquivalents: cost.forwardEquivalents, warmup: warmup)
    }

    /// Peer results by model name.
    func loadPeers() throws -> [String: [[String: Any]]] {
        guard let compare else { return [:] }
        var byModel: [String: [[String: Any]]] = [:]
        for path in compare.split(separator: ",").map(String.init) {
            guard let data = FileManager.default.contents(atPath: path),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let model = object["model"] as? String, let results = object["results"] as? [[String: Any]] else {
                throw XAIError.file(path: path, reason: "not a peer results file (needs 'model' and 'results')")
            }
            byModel[model, default: []] += results
        }
        return byModel
    }

    func peerRows(_ peers: [String: [[String: Any]]], _ model: String, _ method: String, _ seconds: Double) -> [PeerRow] {
        let keys = Self.peerKeys[method] ?? []
        return (peers[model] ?? []).compactMap { r in
            guard let key = r["key"] as? String, keys.contains(key), let per = r["per_image_s"] as? [String: Any],
                  let median = per["median"] as? Double else { return nil }
            return PeerRow(library: r["library"] as? String ?? "", key: key, settings: r["settings"] as? String ?? "", medianSeconds: median, speedup: median / seconds)
        }
    }
}

/// Device memory bandwidth: a large elementwise add reads two arrays and writes one.
func measureCopyBandwidth(_ backend: any Backend) throws -> Double {
    let n = 16 << 20
    let x = try backend.filled([n], value: 1), y = try backend.filled([n], value: 2)
    let t = try Timing.measure(repeats: 5) { _ = try backend.binary(.add, x, y); try backend.synchronize() }
    return 3 * 4 * Double(n) / t.median / 1e9
}
