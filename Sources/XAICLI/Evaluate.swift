import ArgumentParser
import Foundation
import XAI
import XAIJobs

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
        abstract: "Score explanations: deletion and insertion, region perturbation, selectivity, IROF, faithfulness estimate, monotonicity and its correlation, ROAD, Average Drop and Increase in Confidence, coherency, ADCC, ARCC, faithfulness correlation, infidelity, completeness, sensitivity, relative stability, random logit, model randomisation (MPRT, smooth and efficient MPRT), input invariance, sparseness, complexity, and against ground-truth masks the pointing game, relevance mass and rank, ROC AUC and top-k intersection.",
        discussion: """
        For each image and method, evaluates the map `xai explain` wrote to OUT/<stem>/<method>.npy, or explains and writes \
        it first. Writes one line per image x method x metric to OUT/metrics.jsonl (score, direction, settings, seconds, \
        and the curve of deletion and insertion) and prints a table of means. Deletion and insertion follow the RISE \
        authors' protocol (softmax probability of the explained class, --step pixels per step, area by the trapezoid rule); \
        road_morf and road_lerf remove the most or least relevant pixels at each of --road-percentiles and fill them from \
        their neighbours (the ROAD authors' noisy linear imputation, as pytorch-grad-cam), and road is (road_lerf - road_morf) / 2; \
        the sensitivity scores (Captum's sensitivity_max, its mean, the local Lipschitz ratio) re-explain \
        --sensitivity-samples noisy copies with the method's seed, so only the input noise varies; \
        relative_input_stability, relative_output_stability and relative_representation_stability (Quantus's RIS, ROS, \
        RRS) re-explain --stability-samples copies with noise in [--stability-noise-low, --stability-noise-high], leaving \
        out the copies whose predicted class changes; region_perturbation and selectivity remove --patch-size patches, \
        irof the method's superpixels, faithfulness_estimate, monotonicity and monotonicity_correlation (--monotonicity-samples \
        random fills per group) --step pixels at a time (Quantus's \
        definitions, docs/metrics.md); \
        faithfulness_correlation removes --faithfulness-runs random subsets of --faithfulness-subset pixels (Quantus's \
        definition); infidelity fits --infidelity-samples Gaussian perturbations (Captum's, normalize=True); \
        random_logit (SSIM) and random_logit_spearman compare the map with the method's map for a seeded random other class; \
        mprt re-explains after randomising the weighted layers cascading from the top (or the bottom, --mprt-order), in \
        --mprt-steps stages; smooth_mprt does so with maps averaged over --mprt-samples noisy copies (--mprt-noise), the \
        original model's too (Quantus's SmoothMPRT); efficient_mprt scores the rise of the map's histogram entropy \
        (--mprt-bins) once every layer is randomised (Quantus's EfficientMPRT); input_invariance re-explains the input \
        shifted by --invariance-shift on a model whose first convolution undoes the shift (Quantus's InputInvariance); \
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
    @Option(help: ArgumentHelp(precisionHelp)) var precision: String?
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
            job.precision = try resolvePrecision(precision, fast: fast)
            job.target = try parseTarget(target)
            job.preset = preset
            job.resize = resize
            job.quiet = quiet
            job.configuration = try knobs.configuration()
            job.metricConfiguration = try metricKnobs.configuration(seed: knobs.seed)
            job.describeError = describe
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
    @Option(help: help("topK")) var topK: Int?
    @Option(help: help("complexityEpsilon")) var complexityEpsilon = d.complexityEpsilon
    @Option(help: help("continuitySteps")) var continuitySteps = d.continuitySteps
    @Option(help: help("nonSensitivityPatch")) var nonSensitivityPatch = d.nonSensitivityPatch
    @Option(help: help("nonSensitivityEpsilon")) var nonSensitivityEpsilon = d.nonSensitivityEpsilon
    @Option(help: help("sensitivityRadius")) var sensitivityRadius = d.sensitivityRadius
    @Option(help: help("sensitivitySamples")) var sensitivitySamples = d.sensitivitySamples
    @Option(help: help("monotonicitySamples")) var monotonicitySamples = d.monotonicitySamples
    @Option(help: help("stabilitySamples")) var stabilitySamples = d.stabilitySamples
    @Option(help: help("stabilityNoiseLow")) var stabilityNoiseLow = d.stabilityNoiseLow
    @Option(help: help("stabilityNoiseHigh")) var stabilityNoiseHigh = d.stabilityNoiseHigh
    @Option(help: help("stabilityLayer")) var stabilityLayer: String?
    @Option(help: help("faithfulnessRuns")) var faithfulnessRuns = d.faithfulnessRuns
    @Option(help: help("faithfulnessSubset")) var faithfulnessSubset = d.faithfulnessSubset
    @Option(help: help("infidelitySigma")) var infidelitySigma = d.infidelitySigma
    @Option(help: help("infidelitySamples")) var infidelitySamples = d.infidelitySamples
    @Option(help: help("mprtSteps")) var mprtSteps = d.mprtSteps
    @Option(help: help("mprtOrder")) var mprtOrder = d.mprtOrder
    @Option(help: help("mprtSamples")) var mprtSamples = d.mprtSamples
    @Option(help: help("mprtNoise")) var mprtNoise = d.mprtNoise
    @Option(help: help("mprtBins")) var mprtBins = d.mprtBins
    @Option(help: help("invarianceShift")) var invarianceShift = d.invarianceShift
    @Option(help: help("invarianceTolerance")) var invarianceTolerance = d.invarianceTolerance
    @Option(help: help("patchSize")) var patchSize = d.patchSize
    @Option(help: help("regions")) var regions = d.regions
    @Option(help: help("roadPercentiles")) var roadPercentiles = d.roadPercentiles
    @Option(help: help("roadNoise")) var roadNoise = d.roadNoise
    @Option(help: help("roadScore")) var roadScore = d.roadScore
    @Option(help: help("roadTies")) var roadTies = d.roadTies

    func configuration(seed: UInt64) throws -> MetricConfiguration {
        var c: MetricConfiguration = try knobConfiguration(from: self)
        c.seed = seed
        return c
    }
}
