import ArgumentParser
import Foundation
import XAI

/// `xai-bench metrics`: the explanation metrics' time per image beside their floor, and beside
/// Quantus and Captum when given their results (Benchmarks/metrics_vs_peers.py, same machine).
struct MetricsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Per-image time of the explanation metrics (deletion, insertion, region perturbation, selectivity, faithfulness correlation and estimate, monotonicity correlation, infidelity, ROAD, sensitivity of IG and LIME, relative stability, efficient and smooth MPRT and continuity of saliency) beside their floor and the peers.",
        discussion: """
        Floor = forward-equivalents x FLOPs per forward / the ceiling measured in the same run. Deletion and insertion \
        score one Grad-CAM map (225 evaluations each at 224x224); faithfulness correlation 100 subsets of 224 pixels; \
        infidelity 10 Gaussian perturbations; sensitivity_max re-explains 10 noisy copies (IG with --ig-steps, LIME with \
        --lime-samples); relative_input_stability_saliency re-explains --stability-samples copies by saliency and scores \
        RIS, ROS and RRS from them (the settings count the copies left out for changing the class); efficient_mprt_saliency \
        explains by saliency on the fully randomised model, smooth_mprt_saliency averages --mprt-samples maps per model \
        over the original and 5 bottom-up stages, continuity_saliency re-explains 28 translations by saliency. The peers' script, Benchmarks/metrics_vs_peers.py, times Quantus 0.6 and Captum 0.9 on the same \
        settings; give its JSON with --compare.
        """)

    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "A zoo model or an ONNX file.") var model = "resnet50"
    @Option(help: "Comma-separated rows (\(Self.allRows.joined(separator: ", ")), any metric of the registry (\(MetricRegistry.names.joined(separator: ", "))), or METRIC_METHOD for a metric that re-explains) or all.")
    var rows = "all"
    @Option(help: "Integrated Gradients' steps in sensitivity_max_ig.") var igSteps = 50
    @Option(help: "LIME's samples in sensitivity_max_lime (the method's default is 1000: 11 explanations of it take minutes).") var limeSamples = 100
    @Option(help: "Noisy copies re-explained by sensitivity_max.") var sensitivitySamples = 10
    @Option(help: "Noisy copies re-explained by the relative stability rows (Quantus's default is 200).") var stabilitySamples = 50
    @Option(help: "Maps averaged per model by smooth_mprt_saliency (Quantus's default is 50); its stages are MPRT's 5, bottom-up.") var mprtSamples = 10
    @Option(name: .customLong("repeat"), help: "Timed runs per row (after a warm-up; rows over 300 forward-equivalents run once).") var repeats = 3
    @Option(help: "Peer results from Benchmarks/metrics_vs_peers.py (JSON).") var compare: String?
    @Option(help: "Write the header and every row as JSON to this file.") var json: String?

    static let allRows = ["deletion", "insertion", "region_perturbation", "selectivity", "faithfulness_correlation", "faithfulness_estimate", "monotonicity_correlation", "infidelity", "road",
                          "sensitivity_max_ig", "sensitivity_max_lime", "relative_input_stability_saliency", "efficient_mprt_saliency", "smooth_mprt_saliency", "continuity_saliency"]
    /// Peer result keys of each row (`key` in the peers' JSON).
    static let peerKeys: [String: [String]] = [
        "deletion": ["quantus_pixel_flipping"], "faithfulness_correlation": ["quantus_faithfulness_correlation"], "road": ["gradcam_road"],
        "region_perturbation": ["quantus_region_perturbation"], "selectivity": ["quantus_selectivity"], "faithfulness_estimate": ["quantus_faithfulness_estimate"],
        "monotonicity_correlation": ["quantus_monotonicity_correlation"],
        "infidelity": ["captum_infidelity", "quantus_infidelity"], "sensitivity_max_ig": ["captum_sensitivity_max_ig", "quantus_max_sensitivity_ig"],
        "sensitivity_max_lime": ["captum_sensitivity_max_lime", "quantus_max_sensitivity_lime"],
        // xai's row computes RIS, ROS and RRS from one set of copies; Quantus runs each alone.
        "relative_input_stability_saliency": ["quantus_relative_input_stability_saliency", "quantus_relative_output_stability_saliency"],
        "efficient_mprt_saliency": ["quantus_efficient_mprt_saliency"], "smooth_mprt_saliency": ["quantus_smooth_mprt_saliency"],
        "continuity_saliency": ["quantus_continuity_saliency"],
    ]

    struct Row: Codable {
        let model: String
        let metric: String
        let settings: String
        let timing: Timing
        let modelEvaluations: Double
        let forwardEquivalents: Double
        let timesFloor: Double
        var peers: [MethodsBenchmark.PeerRow] = []
    }

    struct Report: Codable {
        let header: MethodsBenchmark.Header
        let rows: [Row]
    }

    /// A row's metric and, for the metrics that re-explain, the method they run (`sensitivity_max_ig`).
    static func parse(_ row: String) throws -> (metric: MetricSpec, method: String?) {
        if let metric = try? MetricRegistry.spec(row) { return (metric, metric.reexplains ? "gradcam" : nil) }
        for metric in MetricRegistry.metrics where row.hasPrefix(metric.name + "_") {
            let method = String(row.dropFirst(metric.name.count + 1))
            guard MethodRegistry.names.contains(method) else { break }
            return (metric, method)
        }
        throw ValidationError("--rows: unknown row '\(row)' (a metric, METRIC_METHOD, or one of \(Self.allRows.joined(separator: ", ")))")
    }

    func run() throws {
        let chosen = try (rows == "all" ? Self.allRows : rows.split(separator: ",").map(String.init)).map { ($0, try Self.parse($0)) }
        guard igSteps >= 1, limeSamples >= 2, sensitivitySamples >= 1, stabilitySamples >= 1, mprtSamples >= 1, repeats >= 1 else {
            throw ValidationError("--ig-steps, --sensitivity-samples, --stability-samples, --mprt-samples and --repeat must be at least 1, --lime-samples at least 2")
        }
        let backend = try Backends.make(try Device(parsing: device))
        let host = HostInfo.current()
        let (ceiling, ceilingName) = try measureCeiling(backend, size: 4096, repeats: 3)
        let header = MethodsBenchmark.Header(machine: host.cpuModel, cores: host.logicalCores, memoryGiB: Double(host.memoryBytes) / Double(1 << 30),
                                             blas: host.blasConfig, device: backend.name, deviceDetails: describe(backend), build: "release",
                                             ceilingName: ceilingName, ceilingGFLOPs: ceiling, copyGBPerSecond: nil, date: ISO8601DateFormatter().string(from: Date()))
        print("machine: \(host.cpuModel), \(host.logicalCores) logical cores; \(host.blasConfig)")
        print("device:  \(describe(backend))")
        print("ceiling: \(ceilingName) " + String(format: "%.1f GFLOP/s", ceiling))
        let graph = try Models.load(model)
        let flops = try graph.summary().flopsPerImage
        let session = try Session(source: model, model: try ExplainedModel(graph: graph, backend: backend))
        let image = Tensor.uniform([1, 3, session.height, session.width], in: -2...2, seed: 3)
        let pixels = session.height * session.width
        // Every row scores one Grad-CAM map; the re-explaining rows run their method with the bench's knobs.
        let cam = try session.method("gradcam")
        let a = try cam.method.attribute(image, target: .predicted, baseline: cam.baseline)
        var methodKnobs = MethodConfiguration()
        methodKnobs.steps = igSteps
        var metricKnobs = MetricConfiguration()
        metricKnobs.sensitivitySamples = sensitivitySamples
        metricKnobs.stabilitySamples = stabilitySamples
        metricKnobs.mprtSamples = mprtSamples
        metricKnobs.mprtOrder = RandomisationOrder.bottomUp.rawValue
        let peers = try loadPeers()
        var results: [Row] = []
        for (row, (metric, method)) in chosen {
            var knobs = methodKnobs
            if method == "lime" { knobs.samples = limeSamples }
            let methodCost = try method.map { try MethodRegistry.spec($0).cost(for: session.model, configuration: knobs) }
            let cost = try metric.cost(pixels: pixels, configuration: metricKnobs, method: methodCost)
            let input = MetricInput(session: session, images: image, maps: a.map, targets: a.targets, method: method, methodConfiguration: knobs)
            var settings: [String: String] = [:]
            let body = {
                let outcome = try MetricRegistry.evaluate([metric.name], input: input, configuration: metricKnobs)
                settings = outcome.first?.outcome.result.settings ?? [:]
            }
            let slow = cost.forwardEquivalents > 300
            let t = try Timing.measure(warmup: slow ? 0 : 1, repeats: slow ? 1 : repeats, body)
            let floor = cost.forwardEquivalents * flops / (ceiling * 1e9)
            let described = "one Grad-CAM map" + (method.map { ", re-explained by \($0)" } ?? "") + "; "
                + settings.filter { $0.value.count < 60 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            results.append(Row(model: model, metric: row, settings: described, timing: t, modelEvaluations: cost.evaluations,
                               forwardEquivalents: cost.forwardEquivalents, timesFloor: t.median / floor, peers: peerRows(peers, row, t.median)))
            print("  \(model) \(row): " + formatSeconds(t.median) + String(format: " (%.2fx floor)", t.median / floor))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(Report(header: header, rows: results)).write(to: URL(fileURLWithPath: json))
        }
        print("")
        printTable(["model", "metric", "settings", "s/image min / median / max", "runs", "evals", "fwd-eq", "x floor", "peers (median): speedup"], results.map { r in
            [r.model, r.metric, r.settings, [r.timing.min, r.timing.median, r.timing.max].map(formatSeconds).joined(separator: " / "), "\(r.timing.runs)",
             String(format: "%.0f", r.modelEvaluations), String(format: "%.0f", r.forwardEquivalents), String(format: "%.2f", r.timesFloor),
             r.peers.map { "\($0.key) " + formatSeconds($0.medianSeconds) + String(format: ": %.2fx", $0.speedup) }.joined(separator: "; ")]
        })
    }

    func loadPeers() throws -> [[String: Any]] {
        guard let compare else { return [] }
        guard let data = FileManager.default.contents(atPath: compare),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let results = object["results"] as? [[String: Any]] else {
            throw XAIError.file(path: compare, reason: "not a peer results file (needs 'results')")
        }
        return results
    }

    func peerRows(_ peers: [[String: Any]], _ row: String, _ seconds: Double) -> [MethodsBenchmark.PeerRow] {
        let keys = Self.peerKeys[row] ?? []
        return peers.compactMap { r in
            guard let key = r["key"] as? String, keys.contains(key), let median = r["median_s"] as? Double else { return nil }
            return MethodsBenchmark.PeerRow(library: r["library"] as? String ?? "", key: key, settings: r["settings"] as? String ?? "",
                                            medianSeconds: median, speedup: median / seconds)
        }
    }
}
