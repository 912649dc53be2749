import ArgumentParser
import Foundation
import XAI

/// One line of `metrics.jsonl`: one image x method x metric.
struct MetricRecord: Codable {
    var image: String
    var stem: String
    var method: String
    var metric: String
    var score: Double
    var direction: String
    var target: Int
    var settings: [String: String]
    var seconds: Double
    /// The curve of deletion and insertion.
    var curve: [Double]?
}

/// Scores explanations: for each image and method, the map `xai explain` wrote in `out` (made and
/// written now where there is none), then each metric of the ``MetricRegistry``; one line per image
/// x method x metric in `out/metrics.jsonl`, and a table of means at the end.
struct EvaluateJob {
    var model: String
    var inputs: [String]
    var methods: String
    var metrics: String
    var masks: String?
    var device: Device = .cpu
    var precision = Precision.exact
    var target: Target = .predicted
    var out: String
    var preset: String?
    var resize: Int?
    var metricConfiguration = MetricConfiguration()
    var configuration = MethodConfiguration()
    var quiet = false

    struct Summary {
        /// Scores by method and metric, in the order met.
        var scores: [(method: String, metric: String, values: [Double])] = []
        var failures: [String] = []
        var report: String?
    }

    func run() throws -> Summary {
        let session = try Session(model, device: device, preset: preset, resize: resize, precision: precision)
        let names = try session.methods(methods)
        let chosen = try MetricRegistry.expand(metrics, masks: masks != nil)
        if let masks {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: masks, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw XAIError.file(path: masks, reason: "no such folder (--ground-truth takes a folder of <image stem>.png or .npy masks)")
            }
        }
        // Every knob is checked before the first image, so a bad flag fails fast.
        for name in names { _ = try session.method(name, configuration: configuration) }
        try MetricRegistry.validate(chosen, configuration: metricConfiguration, pixels: session.height * session.width)
        let files = try collectInputs(inputs, shard: nil)
        let log = try OutputFile(appendingTo: (out as NSString).appendingPathComponent("metrics.jsonl"))
        defer { log.close() }
        let encoder = jsonLinesEncoder()
        let progress = ProgressLine(quiet: quiet)
        var summary = Summary()
        func fail(_ what: String, _ error: Error) {
            progress.finish()
            printError("error: \(what)\(describe(error))")
            summary.failures.append("\(what)\(describe(error))")
        }
        for (index, file) in files.enumerated() {
            let images: [PreparedImage]
            do { images = try session.prepare(file) } catch { fail("", error); continue }
            for image in images {
                var mask: Tensor?
                if let masks {
                    do {
                        mask = try Self.loadMask(folder: masks, stem: image.stem, height: session.height, width: session.width)
                            .reshaped([1, session.height, session.width])
                    } catch { fail("\(image.source): ", error); continue }
                }
                let folder = (out as NSString).appendingPathComponent(image.stem)
                for name in names {
                    progress.begin("[\(index + 1)/\(files.count)] \(image.stem) \(name) ")
                    do {
                        let (map, explainedTarget) = try self.map(image, method: name, folder: folder, session: session)
                        let input = MetricInput(session: session, images: image.tensor, maps: try map.reshaped([1, session.height, session.width]),
                                                targets: [explainedTarget], masks: mask, method: name, methodConfiguration: configuration)
                        let outcomes = try MetricRegistry.evaluate(chosen, input: input, configuration: metricConfiguration) { progress.update($0) }
                        for (metric, outcome) in outcomes {
                            let r = outcome.result
                            let line = MetricRecord(image: image.source, stem: image.stem, method: name, metric: metric, score: r.scores[0],
                                                    direction: r.direction.rawValue, target: explainedTarget, settings: r.settings,
                                                    seconds: outcome.seconds, curve: r.curves?.first)
                            try log.write(try encoder.encode(line) + Data("\n".utf8))
                            if let i = summary.scores.firstIndex(where: { $0.method == name && $0.metric == metric }) {
                                summary.scores[i].values.append(r.scores[0])
                            } else {
                                summary.scores.append((name, metric, [r.scores[0]]))
                            }
                        }
                    } catch { fail("\(image.source) \(name): ", error) }
                }
            }
        }
        progress.finish()
        // The report (index.html) shows the metrics beside the maps.
        summary.report = try writeReport(folder: out, resultsPath: (out as NSString).appendingPathComponent("results.jsonl"))
        return summary
    }

    /// The map `xai explain` wrote for this image and method, or a new one (written there, so
    /// the next run reuses it), with the class it explains.
    private func map(_ image: PreparedImage, method: String, folder: String, session: Session) throws -> (Tensor, Int) {
        let (height, width) = (session.height, session.width)
        let path = (folder as NSString).appendingPathComponent("\(method).npy")
        if FileManager.default.fileExists(atPath: path) {
            let map = try NPY.read(path)
            guard map.shape.dims == [height, width] else {
                throw XAIError.inFile(path: path, underlying: .shapeMismatch(op: "map", expected: "[\(height), \(width)] (the model's input)", got: [map.shape]))
            }
            let (_, targets) = try session.model.prepare(image.tensor, target: target)
            return (map, targets[0])
        }
        let configured = try session.method(method, configuration: configuration)
        let a = try configured.method.attribute(image.tensor, target: target, baseline: configured.baseline)
        let map = try a.map.reshaped([height, width])
        try FileSystem.createDirectory(folder)
        try NPY.write(map, to: path)
        return (map, a.targets[0])
    }

    /// `<stem>.npy` (`[H, W]`, non-zero inside) or `<stem>.png` (inside where any channel is above
    /// 127) at the model's input size.
    static func loadMask(folder: String, stem: String, height: Int, width: Int) throws -> Tensor {
        let npy = (folder as NSString).appendingPathComponent(stem + ".npy"), png = (folder as NSString).appendingPathComponent(stem + ".png")
        if FileManager.default.fileExists(atPath: npy) {
            let t = try NPY.read(npy)
            guard t.shape.count == height * width, t.shape.rank >= 2, Array(t.shape.dims.suffix(2)) == [height, width] else {
                throw XAIError.inFile(path: npy, underlying: .shapeMismatch(op: "mask", expected: "[\(height), \(width)] (the model's input)", got: [t.shape]))
            }
            return Tensor(unchecked: Shape([height, width]), t.scalars.map { $0 != 0 && !$0.isNaN ? 1 : 0 })
        }
        guard FileManager.default.fileExists(atPath: png) else {
            throw XAIError.file(path: (folder as NSString).appendingPathComponent(stem + ".{png,npy}"), reason: "no mask for this image")
        }
        let picture = try RGBImage.read(png)
        guard picture.width == width, picture.height == height else {
            throw XAIError.inFile(path: png, underlying: .shapeMismatch(op: "mask", expected: "\(width)x\(height) pixels (the model's input)",
                                                                          got: [Shape([picture.height, picture.width])]))
        }
        return Tensor(unchecked: Shape([height, width]), (0..<(height * width)).map { p in
            picture.pixels[3 * p] > 127 || picture.pixels[3 * p + 1] > 127 || picture.pixels[3 * p + 2] > 127 ? 1 : 0
        })
    }
}

/// Means and standard errors of every method x metric with the best method per column: the
/// table `xai evaluate` prints and the report shows.
struct MetricTable {
    /// Metrics in the registry's order, methods in the order met.
    let metrics: [String]
    let methods: [String]
    private let cells: [String: MetricResult]
    let best: [String: String]

    init(_ scores: [(method: String, metric: String, values: [Double])]) {
        metrics = MetricRegistry.names.filter { m in scores.contains { $0.metric == m } }
        methods = scores.reduce(into: [String]()) { if !$0.contains($1.method) { $0.append($1.method) } }
        var cells: [String: MetricResult] = [:]
        for s in scores {
            cells[s.method + "\u{0}" + s.metric] = MetricResult(metric: s.metric, direction: Self.direction(s.metric), scores: s.values, settings: [:])
        }
        self.cells = cells
        var best: [String: String] = [:]
        for metric in metrics {
            let ranked = methods.compactMap { m in cells[m + "\u{0}" + metric].flatMap { $0.mean.isFinite ? (m, $0.mean) : nil } }
            best[metric] = (Self.direction(metric) == .lowerIsBetter ? ranked.min { $0.1 < $1.1 } : ranked.max { $0.1 < $1.1 })?.0
        }
        self.best = best
    }

    static func direction(_ metric: String) -> MetricDirection { (try? MetricRegistry.spec(metric).direction) ?? .higherIsBetter }

    func cell(_ method: String, _ metric: String) -> MetricResult? { cells[method + "\u{0}" + metric] }

    static func header(_ metric: String) -> String { metric + (direction(metric) == .lowerIsBetter ? " (lower)" : " (higher)") }

    /// `mean +- standard error (n)`.
    static func text(_ s: MetricResult) -> String {
        (s.mean.isFinite ? String(format: "%.3f", s.mean) : "nan") + (s.standardError.isFinite ? String(format: " +- %.3f", s.standardError) : "") + " (\(s.count))"
    }
}

/// Prints the mean +- standard error of every method x metric, best per column marked.
func printMetricTable(_ summary: EvaluateJob.Summary) {
    let table = MetricTable(summary.scores)
    guard !table.metrics.isEmpty else { return }
    let width = max(10, (table.methods.map(\.count).max() ?? 0) + 2)
    let headers = table.metrics.map(MetricTable.header)
    let columns = headers.map { max(28, $0.count + 2) }
    print("\n" + "method".padding(toLength: width, withPad: " ", startingAt: 0)
          + zip(headers, columns).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined())
    for method in table.methods {
        var line = method.padding(toLength: width, withPad: " ", startingAt: 0)
        for (metric, column) in zip(table.metrics, columns) {
            guard let s = table.cell(method, metric) else { line += "-".padding(toLength: column, withPad: " ", startingAt: 0); continue }
            line += (MetricTable.text(s) + (table.best[metric] == method ? " *" : "")).padding(toLength: column, withPad: " ", startingAt: 0)
        }
        print(line)
    }
    print("* best per column; +- the standard error over images; (n) images with a defined score")
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score explanations: deletion and insertion, faithfulness correlation, infidelity, completeness, sensitivity, random logit, model randomisation (MPRT), sparseness, complexity, and against ground-truth masks the pointing game, relevance mass and relevance rank.",
        discussion: """
        For each image and method, evaluates the map `xai explain` wrote to OUT/<stem>/<method>.npy, or explains and writes \
        it first. Writes one line per image x method x metric to OUT/metrics.jsonl (score, direction, settings, seconds, \
        and the curve of deletion and insertion) and prints a table of means. Deletion and insertion follow the RISE \
        authors' protocol (softmax probability of the explained class, --step pixels per step, area by the trapezoid rule); \
        the sensitivity scores (Captum's sensitivity_max, its mean, the local Lipschitz ratio) re-explain \
        --sensitivity-samples noisy copies with the method's seed, so only the input noise varies; \
        faithfulness_correlation removes --faithfulness-runs random subsets of --faithfulness-subset pixels (Quantus's \
        definition); infidelity fits --infidelity-samples Gaussian perturbations (Captum's, normalize=True); \
        random_logit (SSIM) and random_logit_spearman compare the map with the method's map for a seeded random other class; \
        mprt re-explains after randomising the weighted layers cascading from the top, in --mprt-steps stages; \
        masks are <stem>.png or <stem>.npy at the model's input size in --ground-truth.
        """)

    @Argument(help: "An ONNX file or a zoo model name.") var model: String
    @Argument(help: "Images (PNG, JPEG), preprocessed tensors (.npy), folders (recursive) or .txt manifests.") var inputs: [String]
    @Option(name: .customLong("method"), help: "Comma-separated methods, or all.") var methods = "gradcam"
    @Option(help: "Comma-separated metrics (\(MetricRegistry.names.joined(separator: ", "))), or all.") var metrics = "deletion,insertion"
    @Option(help: "A folder of ground-truth masks (<stem>.png or <stem>.npy, non-zero inside the object) at the model's input size.") var groundTruth: String?
    @OptionGroup var metricKnobs: MetricOptions
    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Flag(help: ArgumentHelp(fastHelp)) var fast = false
    @Option(help: "top1 or a class index.") var target = "top1"
    @Option(help: "Output folder (maps from `xai explain` there are reused).") var out = "xai-out"
    @Option(help: "Normalisation: imagenet, none or r,g,b/r,g,b (default: the model's .json sidecar, else imagenet).") var preset: String?
    @Option(help: "Shorter side after resizing, before the centre crop.") var resize: Int?
    @Flag(help: "No progress line.") var quiet = false
    @OptionGroup var knobs: MethodOptions

    func run() throws {
        let summary = try reportingFlags { () -> EvaluateJob.Summary in
            var job = EvaluateJob(model: model, inputs: inputs, methods: methods, metrics: metrics, masks: groundTruth, out: out)
            job.device = try Device(parsing: device)
            job.precision = fast ? .fast : .exact
            job.target = try parseTarget(target)
            job.preset = preset
            job.resize = resize
            job.quiet = quiet
            job.configuration = try knobs.configuration()
            job.metricConfiguration = try metricKnobs.configuration(seed: knobs.seed)
            return try job.run()
        }
        printMetricTable(summary)
        print("metrics: \((out as NSString).appendingPathComponent("metrics.jsonl"))")
        if let report = summary.report { print("report: \(report)") }
        if !summary.failures.isEmpty {
            print("\(summary.failures.count) failed:")
            for f in summary.failures { print("  \(f)") }
            throw ExitCode(1)
        }
    }
}

/// The metrics' knobs as flags: one per ``MetricConfiguration`` knob, named like it (the seed is the
/// methods' `--seed`).
struct MetricOptions: ParsableArguments {
    private static let d = MetricConfiguration()
    private static func help(_ knob: String) -> ArgumentHelp { knobHelp(MetricConfiguration.self, knob) }
    @Option(help: help("step")) var step: Int?
    @Option(help: help("substrate")) var substrate = d.substrate
    @Option(help: help("tolerance")) var tolerance: Int?
    @Option(help: help("sensitivityRadius")) var sensitivityRadius = d.sensitivityRadius
    @Option(help: help("sensitivitySamples")) var sensitivitySamples = d.sensitivitySamples
    @Option(help: help("faithfulnessRuns")) var faithfulnessRuns = d.faithfulnessRuns
    @Option(help: help("faithfulnessSubset")) var faithfulnessSubset = d.faithfulnessSubset
    @Option(help: help("infidelitySigma")) var infidelitySigma = d.infidelitySigma
    @Option(help: help("infidelitySamples")) var infidelitySamples = d.infidelitySamples
    @Option(help: help("mprtSteps")) var mprtSteps = d.mprtSteps

    func configuration(seed: UInt64) throws -> MetricConfiguration {
        var c: MetricConfiguration = try knobConfiguration(from: self)
        c.seed = seed
        return c
    }
}
