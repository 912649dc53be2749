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

/// The metrics `xai evaluate` knows, in the order it runs them.
enum MetricName: String, CaseIterable {
    case deletion, insertion, completeness, sparseness, complexity
    case pointingGame = "pointing_game", relevanceMass = "relevance_mass", relevanceRank = "relevance_rank"
    case sensitivityMax = "sensitivity_max", sensitivityAvg = "sensitivity_avg", localLipschitz = "local_lipschitz"
    case faithfulnessCorrelation = "faithfulness_correlation", infidelity
    case randomLogit = "random_logit", randomLogitSpearman = "random_logit_spearman", mprt

    var needsMasks: Bool { [.pointingGame, .relevanceMass, .relevanceRank].contains(self) }
    /// Computed together, from the same noisy re-explanations.
    var isSensitivity: Bool { [.sensitivityMax, .sensitivityAvg, .localLipschitz].contains(self) }
    /// Computed together, from the same map for another class.
    var isRandomLogit: Bool { [.randomLogit, .randomLogitSpearman].contains(self) }
    /// Whether a larger score is worse.
    var lowerIsBetter: Bool {
        [.deletion, .complexity, .completeness, .sensitivityMax, .sensitivityAvg, .localLipschitz, .infidelity,
         .randomLogit, .randomLogitSpearman, .mprt].contains(self)
    }

    /// A comma-separated list, or `all` (every metric, the mask metrics when masks are given).
    static func parse(_ list: String, masks: Bool) throws -> [MetricName] {
        var result: [MetricName] = []
        for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            if item == "all" {
                result += allCases.filter { masks || !$0.needsMasks }
            } else if let m = MetricName(rawValue: item) {
                result.append(m)
            } else {
                throw XAIError.invalidArgument(parameter: "metrics", value: item, reason: "none of \(allCases.map(\.rawValue).joined(separator: ", ")) or all")
            }
        }
        guard !result.isEmpty else { throw XAIError.invalidArgument(parameter: "metrics", value: list, reason: "name at least one metric") }
        if !masks, let m = result.first(where: \.needsMasks) {
            throw XAIError.invalidArgument(parameter: "groundTruth", value: "", reason: "\(m.rawValue) needs ground-truth masks (a folder)")
        }
        var seen = Set<MetricName>()
        return result.filter { seen.insert($0).inserted }
    }
}

/// Scores explanations: for each image and method, the map `xai explain` wrote in `out` (made and
/// written now where there is none), then each metric; one line per image x method x metric in
/// `out/metrics.jsonl`, and a table of means at the end.
struct EvaluateJob {
    var model: String
    var inputs: [String]
    var methods: String
    var metrics: String
    var masks: String?
    var device: Device = .cpu
    var target: Target = .predicted
    var out: String
    var preset: String?
    var resize: Int?
    var step: Int?
    var substrate = PixelCurve.Substrate.zero
    var tolerance: Int?
    var sensitivity = Sensitivity()
    var faithfulness = FaithfulnessCorrelation()
    var infidelity = Infidelity()
    var mprtSteps = 5
    var configuration = MethodConfiguration()
    var quiet = false

    struct Summary {
        /// Scores by method and metric, in the order met.
        var scores: [(method: String, metric: MetricName, values: [Double])] = []
        var failures: [String] = []
        var report: String?
    }

    func run() throws -> Summary {
        let graph = try Models.load(model)
        let explained = try ExplainedModel(graph: graph, backend: try Backends.make(device))
        let preprocessing = try Preprocessing.resolve(preset: preset, resize: resize, sidecar: try ModelSidecar.load(forModel: model))
        guard let input = graph.imageInput, let shape = try? input.shape(batch: 1), shape.rank == 4, shape[1] == 3 else {
            throw XAIError.unsupported(op: model, reason: "needs one image input [N, 3, H, W]")
        }
        let (height, width) = (shape[2], shape[3])
        let names = try MethodRegistry.expand(methods, model: explained)
        let chosen = try MetricName.parse(metrics, masks: masks != nil)
        if let masks {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: masks, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw XAIError.file(path: masks, reason: "no such folder (--ground-truth takes a folder of <image stem>.png or .npy masks)")
            }
        }
        for name in names { _ = try MethodRegistry.make(name, model: explained, configuration: configuration, context: MethodContext(preprocessing: preprocessing)) }
        do { try sensitivity.validate() } catch XAIError.invalidArgument(let parameter, let value, let reason) {
            // The command line's flags for the metric's knobs (its `samples` is not the methods').
            throw XAIError.invalidArgument(parameter: parameter == "radius" ? "sensitivityRadius" : "sensitivitySamples", value: value, reason: reason)
        }
        do {
            try faithfulness.validate(pixels: height * width)
            try infidelity.validate()
            try ModelRandomisation(steps: mprtSteps).validate()
        } catch XAIError.invalidArgument(let parameter, let value, let reason) {
            let flags = ["runs": "faithfulnessRuns", "subsetSize": "faithfulnessSubset", "sigma": "infidelitySigma", "samples": "infidelitySamples",
                         "steps": "mprtSteps"]
            throw XAIError.invalidArgument(parameter: flags[parameter] ?? parameter, value: value, reason: reason)
        }
        let curveMetric = { (mode: PixelCurve.Mode) in PixelCurve(mode: mode, step: step, substrate: substrate) }
        if chosen.contains(.deletion) || chosen.contains(.insertion) { _ = try curveMetric(.deletion).resolvedStep(pixels: height * width) }
        let files = try collectInputs(inputs, shard: nil)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let path = (out as NSString).appendingPathComponent("metrics.jsonl")
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let log = FileHandle(forWritingAtPath: path) else { throw XAIError.file(path: path, reason: "cannot be written") }
        log.seekToEndOfFile()
        defer { try? log.close() }
        let encoder = jsonLinesEncoder()
        let progress = ProgressLine(quiet: quiet)
        var summary = Summary()
        func record(_ method: String, _ metric: MetricName, _ value: Double) {
            if let i = summary.scores.firstIndex(where: { $0.method == method && $0.metric == metric }) {
                summary.scores[i].values.append(value)
            } else {
                summary.scores.append((method, metric, [value]))
            }
        }
        for (index, file) in files.enumerated() {
            let images: [PreparedImage]
            do { images = try preprocessing.prepare(file, height: height, width: width) } catch {
                progress.finish()
                printError("error: \(describe(error))")
                summary.failures.append("\(file): \(describe(error))")
                continue
            }
            for image in images {
                var mask: Tensor?
                if let masks {
                    do { mask = try Self.loadMask(folder: masks, stem: image.stem, height: height, width: width) } catch {
                        progress.finish()
                        printError("error: \(describe(error))")
                        summary.failures.append("\(image.source): \(describe(error))")
                        continue
                    }
                }
                let folder = (out as NSString).appendingPathComponent(image.stem)
                for name in names {
                    var sensitivitySeconds = 0.0
                    progress.begin("[\(index + 1)/\(files.count)] \(image.stem) \(name) ")
                    do {
                        let (map, explainedTarget) = try self.map(image, method: name, folder: folder, model: explained, preprocessing: preprocessing)
                        let batchMap = try map.reshaped([1, height, width])
                        // The sensitivity scores share their re-explanations: the method re-run with its
                        // knobs and seed, for the class it explained, on noisy copies.
                        var sensitivityResult: Sensitivity.Result?
                        var randomLogitResult: (ssim: MetricResult, spearman: MetricResult)?
                        var randomLogitSeconds = 0.0
                        let reexplain = { (model: ExplainedModel, batch: Tensor, target: Int) throws -> Tensor in
                            let configured = try MethodRegistry.make(name, model: model, configuration: configuration,
                                                                     context: MethodContext(preprocessing: preprocessing))
                            return try configured.method.attribute(batch, target: .index(target), baseline: configured.baseline).map
                        }
                        if chosen.contains(where: \.isRandomLogit) {
                            progress.update("random_logit")
                            let t0 = Date()
                            randomLogitResult = try RandomLogit(seed: configuration.seed).evaluate(
                                model: explained, images: image.tensor, maps: batchMap, target: .index(explainedTarget)) { try reexplain(explained, $0, $1) }
                            randomLogitSeconds = Date().timeIntervalSince(t0)
                        }
                        if chosen.contains(where: \.isSensitivity) {
                            progress.update("sensitivity")
                            let configured = try MethodRegistry.make(name, model: explained, configuration: configuration,
                                                                     context: MethodContext(preprocessing: preprocessing))
                            let t0 = Date()
                            sensitivityResult = try sensitivity.evaluate(images: image.tensor) { batch in
                                try configured.method.attribute(batch, target: .index(explainedTarget), baseline: configured.baseline).map
                            }
                            sensitivitySeconds = Date().timeIntervalSince(t0)
                        }
                        for metric in chosen {
                            progress.update(metric.rawValue)
                            let t0 = Date()
                            let result: MetricResult
                            switch metric {
                            case .deletion, .insertion:
                                result = try curveMetric(metric == .deletion ? .deletion : .insertion)
                                    .evaluate(model: explained, images: image.tensor, maps: batchMap, target: .index(explainedTarget))
                            case .completeness:
                                let configured = try MethodRegistry.make(name, model: explained, configuration: configuration,
                                                                         context: MethodContext(preprocessing: preprocessing))
                                result = try Completeness(baseline: configured.baseline)
                                    .evaluate(model: explained, images: image.tensor, maps: batchMap, target: .index(explainedTarget))
                            case .sparseness: result = try Sparseness().evaluate(images: image.tensor, maps: batchMap)
                            case .complexity: result = try Complexity().evaluate(images: image.tensor, maps: batchMap)
                            case .sensitivityMax, .sensitivityAvg, .localLipschitz:
                                guard let r = sensitivityResult else { continue }
                                result = metric == .sensitivityMax ? r.max : metric == .sensitivityAvg ? r.average : r.lipschitz
                            case .faithfulnessCorrelation:
                                result = try faithfulness.evaluate(model: explained, images: image.tensor, maps: batchMap, target: .index(explainedTarget))
                            case .infidelity:
                                result = try infidelity.evaluate(model: explained, images: image.tensor, maps: batchMap, target: .index(explainedTarget))
                            case .randomLogit, .randomLogitSpearman:
                                guard let r = randomLogitResult else { continue }
                                result = metric == .randomLogit ? r.ssim : r.spearman
                            case .mprt:
                                result = try ModelRandomisation(steps: mprtSteps, seed: configuration.seed)
                                    .evaluate(model: explained, images: image.tensor, maps: batchMap, target: .index(explainedTarget), explain: reexplain)
                            case .pointingGame, .relevanceMass, .relevanceRank:
                                guard let mask else { continue }
                                let m = try mask.reshaped([1, height, width])
                                result = metric == .pointingGame ? try Localisation.pointingGame(images: image.tensor, maps: batchMap, masks: m, tolerance: tolerance)
                                    : metric == .relevanceMass ? try Localisation.relevanceMass(images: image.tensor, maps: batchMap, masks: m)
                                    : try Localisation.relevanceRank(images: image.tensor, maps: batchMap, masks: m)
                            }
                            let line = MetricRecord(image: image.source, stem: image.stem, method: name, metric: metric.rawValue, score: result.scores[0],
                                                    direction: result.direction.rawValue, target: explainedTarget, settings: result.settings,
                                                    seconds: metric.isSensitivity ? sensitivitySeconds : metric.isRandomLogit ? randomLogitSeconds : Date().timeIntervalSince(t0),
                                                    curve: result.curves?.first)
                            log.write(try encoder.encode(line) + Data("\n".utf8))
                            record(name, metric, result.scores[0])
                        }
                    } catch {
                        progress.finish()
                        printError("error: \(image.source) \(name): \(describe(error))")
                        summary.failures.append("\(image.source) \(name): \(describe(error))")
                    }
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
    private func map(_ image: PreparedImage, method: String, folder: String, model: ExplainedModel,
                     preprocessing: Preprocessing) throws -> (Tensor, Int) {
        let (height, width) = (image.tensor.shape[2], image.tensor.shape[3])
        let path = (folder as NSString).appendingPathComponent("\(method).npy")
        if FileManager.default.fileExists(atPath: path) {
            let map = try NPY.read(path)
            guard map.shape.dims == [height, width] else {
                throw XAIError.inFile(path: path, underlying: .shapeMismatch(op: "map", expected: "[\(height), \(width)] (the model's input)", got: [map.shape]))
            }
            let (_, targets) = try model.prepare(image.tensor, target: target)
            return (map, targets[0])
        }
        let configured = try MethodRegistry.make(method, model: model, configuration: configuration, context: MethodContext(preprocessing: preprocessing))
        let a = try configured.method.attribute(image.tensor, target: target, baseline: configured.baseline)
        let map = try a.map.reshaped([height, width])
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
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
    /// Metrics in ``MetricName`` order, methods in the order met.
    let metrics: [MetricName]
    let methods: [String]
    private let cells: [String: MetricResult]
    let best: [MetricName: String]

    init(_ scores: [(method: String, metric: MetricName, values: [Double])]) {
        metrics = MetricName.allCases.filter { m in scores.contains { $0.metric == m } }
        methods = scores.reduce(into: [String]()) { if !$0.contains($1.method) { $0.append($1.method) } }
        var cells: [String: MetricResult] = [:]
        for s in scores {
            cells[s.method + "\u{0}" + s.metric.rawValue] = MetricResult(metric: s.metric.rawValue, direction: s.metric.lowerIsBetter ? .lowerIsBetter : .higherIsBetter,
                                                                          scores: s.values, settings: [:])
        }
        self.cells = cells
        var best: [MetricName: String] = [:]
        for metric in metrics {
            let ranked = methods.compactMap { m in cells[m + "\u{0}" + metric.rawValue].flatMap { $0.mean.isFinite ? (m, $0.mean) : nil } }
            best[metric] = (metric.lowerIsBetter ? ranked.min { $0.1 < $1.1 } : ranked.max { $0.1 < $1.1 })?.0
        }
        self.best = best
    }

    func cell(_ method: String, _ metric: MetricName) -> MetricResult? { cells[method + "\u{0}" + metric.rawValue] }

    static func header(_ metric: MetricName) -> String { metric.rawValue + (metric.lowerIsBetter ? " (lower)" : " (higher)") }

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
    @Option(help: "Comma-separated metrics (\(MetricName.allCases.map(\.rawValue).joined(separator: ", "))), or all.") var metrics = "deletion,insertion"
    @Option(help: "A folder of ground-truth masks (<stem>.png or <stem>.npy, non-zero inside the object) at the model's input size.") var groundTruth: String?
    @Option(help: "Deletion/insertion: pixels changed per step (default: H*W/224 rounded up, 225 evaluations).") var step: Int?
    @Option(help: "Deletion: what removed pixels become: zero, mean (per channel) or blur.") var substrate = "zero"
    @Option(help: "Pointing game: hit tolerance in pixels (default: 15 at 224, scaled).") var tolerance: Int?
    @Option(help: "Sensitivity: radius of the uniform noise added to every input value (Captum's 0.02; Quantus uses 0.2).") var sensitivityRadius: Float = 0.02
    @Option(help: "Sensitivity: noisy copies, each re-explained with the method's knobs and seed.") var sensitivitySamples = 10
    @Option(help: "Faithfulness correlation: random pixel subsets set to the baseline.") var faithfulnessRuns = 100
    @Option(help: "Faithfulness correlation: pixels per subset.") var faithfulnessSubset = 224
    @Option(help: "Infidelity: standard deviation of the Gaussian perturbations (per pixel, all channels).") var infidelitySigma: Float = 0.1
    @Option(help: "Infidelity: perturbations per image.") var infidelitySamples = 10
    @Option(help: "MPRT: randomisation stages from the top layer to all layers, each one re-explanation.") var mprtSteps = 5
    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
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
            job.target = try parseTarget(target)
            guard let s = PixelCurve.Substrate(rawValue: substrate) else {
                throw XAIError.invalidArgument(parameter: "substrate", value: substrate, reason: "none of zero, mean, blur")
            }
            job.substrate = s
            job.step = step
            job.tolerance = tolerance
            job.sensitivity = Sensitivity(radius: sensitivityRadius, samples: sensitivitySamples, seed: knobs.seed)
            job.faithfulness = FaithfulnessCorrelation(runs: faithfulnessRuns, subsetSize: faithfulnessSubset, seed: knobs.seed)
            job.infidelity = Infidelity(sigma: infidelitySigma, samples: infidelitySamples, seed: knobs.seed)
            job.mprtSteps = mprtSteps
            job.preset = preset
            job.resize = resize
            job.quiet = quiet
            job.configuration = knobs.configuration
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
