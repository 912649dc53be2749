import Foundation

/// The knobs of every metric, named as the command line's flags (`sensitivityRadius` is
/// `--sensitivity-radius`), the C interface's JSON and Python (`sensitivity_radius`). Each is
/// declared once, in ``fields``.
public struct MetricConfiguration: KnobConfiguration, Equatable {
    public var step: Int?
    public var substrate = PixelCurve.Substrate.zero.rawValue
    public var tolerance: Int?
    public var sensitivityRadius: Float = 0.02
    public var sensitivitySamples = 10
    public var monotonicitySamples = 10
    public var stabilitySamples = 200
    public var stabilityNoiseLow: Float = 0.02
    public var stabilityNoiseHigh: Float = 0.2
    public var stabilityLayer: String?
    public var faithfulnessRuns = 100
    public var faithfulnessSubset = 224
    public var infidelitySigma: Float = 0.1
    public var infidelitySamples = 10
    public var mprtSteps = 5
    public var mprtOrder = RandomisationOrder.topDown.rawValue
    public var mprtSamples = 50
    public var mprtNoise: Float = 0.1
    public var mprtBins = 100
    public var invarianceShift: Float = -1
    public var invarianceTolerance: Float = 1e-4
    public var patchSize = 8
    public var topK: Int?
    public var complexityEpsilon: Float = 1e-5
    public var continuitySteps = 28
    public var nonSensitivityPatch = 8
    public var nonSensitivityEpsilon = NonSensitivity.defaultEpsilon
    public var regions = 100
    public var roadPercentiles = ROAD.defaultPercentiles.map(String.init).joined(separator: ",")
    public var roadNoise: Float = 0.01
    public var roadScore = ROAD.Score.probability.rawValue
    public var roadTies = ROAD.Ties.index.rawValue
    public var seed: UInt64 = 0

    public init() {}

    private static func range(_ r: ClosedRange<Int>) -> (Double, Double) { (Double(r.lowerBound), Double(r.upperBound)) }

    public static let fields: [KnobField<MetricConfiguration>] = [
        .integer(\.step, Knob("step", .integer, "Deletion, insertion, monotonicity, faithfulness estimate, monotonicity correlation: pixels changed per step (default: H*W/224 rounded up, 225 evaluations).", minimum: 1)),
        .string(\.substrate, Knob("substrate", .string, "Deletion, region perturbation, selectivity, IROF, faithfulness estimate, monotonicity: what removed pixels become (zero: the dataset's mean colour after normalisation; mean: each channel's mean over the image; blur: RISE's 11x11 blur; black: the image's smallest value, Quantus's default).",
                                   choices: PixelCurve.Substrate.allCases.map(\.rawValue))),
        .integer(\.topK, Knob("topK", .integer, "Top-K intersection: the pixels of highest attribution looked at (default: Quantus's 1000 at 224x224, scaled to the image).", minimum: 1)),
        .number(\.complexityEpsilon, Knob("complexityEpsilon", .number, "Effective complexity: a pixel counts where |map| / the image's largest |map| exceeds this (Quantus's 1e-5).", minimum: 0)),
        .integer(\.continuitySteps, Knob("continuitySteps", .integer, "Continuity: sideways translations of the image, each re-explained (Quantus's 28; at most 2 x the width + 1).",
                                         minimum: range(Continuity.stepRange).0, maximum: range(Continuity.stepRange).1)),
        .integer(\.nonSensitivityPatch, Knob("nonSensitivityPatch", .integer, "Non-sensitivity: side of the square patches removed one at a time, one forward each (Quantus's features are single pixels: 1).", minimum: 1)),
        .number(\.nonSensitivityEpsilon, Knob("nonSensitivityEpsilon", .number, "Non-sensitivity: below it an attribution (|map| / max |map|) counts as none and a probability change as no change (Quantus's 1e-5).", minimum: 0)),
        .integer(\.tolerance, Knob("tolerance", .integer, "Pointing game: hit tolerance in pixels (default: 15 at 224, scaled).", minimum: 0)),
        .number(\.sensitivityRadius, Knob("sensitivityRadius", .number, "Sensitivity: radius of the uniform noise added to every input value (Captum's 0.02; Quantus uses 0.2).",
                                          minimum: 0)),
        .integer(\.sensitivitySamples, Knob("sensitivitySamples", .integer, "Sensitivity: noisy copies, each re-explained with the method's knobs and seed.",
                                            minimum: range(Sensitivity.sampleRange).0, maximum: range(Sensitivity.sampleRange).1)),
        .integer(\.monotonicitySamples, Knob("monotonicitySamples", .integer, "Monotonicity correlation: copies per group, each filling the group with one uniform value in [0, 1) (Quantus uses 100).",
                                             minimum: range(MonotonicityCorrelation.sampleRange).0, maximum: range(MonotonicityCorrelation.sampleRange).1)),
        .integer(\.stabilitySamples, Knob("stabilitySamples", .integer, "Relative stability: noisy copies, each re-explained with the method's knobs and seed (Quantus's 200).",
                                          minimum: range(RelativeStability.sampleRange).0, maximum: range(RelativeStability.sampleRange).1)),
        .number(\.stabilityNoiseLow, Knob("stabilityNoiseLow", .number, "Relative stability: lower bound of the uniform noise added to every input value (Quantus's 0.02; a negative one on the command line as --stability-noise-low=-0.01).")),
        .number(\.stabilityNoiseHigh, Knob("stabilityNoiseHigh", .number, "Relative stability: upper bound of that noise (Quantus's 0.2).")),
        .string(\.stabilityLayer, Knob("stabilityLayer", .string, "Relative representation stability: the activation compared (default: the CAM methods' default layer; `xai inspect` lists them).")),
        .integer(\.faithfulnessRuns, Knob("faithfulnessRuns", .integer, "Faithfulness correlation: random pixel subsets set to the baseline.",
                                          minimum: range(FaithfulnessCorrelation.runRange).0, maximum: range(FaithfulnessCorrelation.runRange).1)),
        .integer(\.faithfulnessSubset, Knob("faithfulnessSubset", .integer, "Faithfulness correlation: pixels per subset (fewer than the image's).", minimum: 1)),
        .number(\.infidelitySigma, Knob("infidelitySigma", .number, "Infidelity: standard deviation of the Gaussian perturbations (per pixel, all channels).")),
        .integer(\.infidelitySamples, Knob("infidelitySamples", .integer, "Infidelity: perturbations per image.",
                                           minimum: range(Infidelity.sampleRange).0, maximum: range(Infidelity.sampleRange).1)),
        .integer(\.mprtSteps, Knob("mprtSteps", .integer, "MPRT: randomisation stages from the top layer to all layers, each one re-explanation.",
                                   minimum: range(ModelRandomisation.stepRange).0, maximum: range(ModelRandomisation.stepRange).1)),
        .string(\.mprtOrder, Knob("mprtOrder", .string, "MPRT, smooth MPRT: the end the cascade randomises first (top-down: the output layer, Adebayo et al.'s; bottom-up: the input layer, as Hedström et al. recommend and Quantus's SmoothMPRT does).",
                                   choices: RandomisationOrder.allCases.map(\.rawValue))),
        .integer(\.mprtSamples, Knob("mprtSamples", .integer, "Smooth MPRT: maps averaged per model, one of them of the image itself, the rest of noisy copies (Quantus's 50).",
                                     minimum: range(ModelRandomisation.Smoothing.sampleRange).0, maximum: range(ModelRandomisation.Smoothing.sampleRange).1)),
        .number(\.mprtNoise, Knob("mprtNoise", .number, "Smooth MPRT: standard deviation of the Gaussian noise, as a share of the image's range (Quantus's 0.1).", minimum: 0)),
        .integer(\.mprtBins, Knob("mprtBins", .integer, "Efficient MPRT: histogram bins of the map's entropy (Quantus's 100).",
                                  minimum: range(EfficientModelRandomisation.binRange).0, maximum: range(EfficientModelRandomisation.binRange).1)),
        .number(\.invarianceShift, Knob("invarianceShift", .number, "Input invariance: the shift added to every input value, undone in the first convolution's bias (Quantus's -1; a negative one on the command line as --invariance-shift=-0.5).")),
        .number(\.invarianceTolerance, Knob("invarianceTolerance", .number, "Input invariance: the absolute difference allowed between the two maps, plus 1e-5 relative (Quantus's atol 1e-4).", minimum: 0)),
        .integer(\.patchSize, Knob("patchSize", .integer, "Region perturbation, selectivity: side of the square patches removed (Quantus's grid).", minimum: 1)),
        .integer(\.regions, Knob("regions", .integer, "Region perturbation: patches removed, one more per evaluation (Quantus's regions_evaluation).",
                                 minimum: range(RegionPerturbation.regionRange).0, maximum: range(RegionPerturbation.regionRange).1)),
        .string(\.roadPercentiles, Knob("roadPercentiles", .string, "ROAD: the percentiles averaged, comma-separated (at p, MoRF keeps the pixels below the map's p-th percentile, LeRF those above its (100-p)-th).")),
        .number(\.roadNoise, Knob("roadNoise", .number, "ROAD: standard deviation of the noise added to the imputed pixels, in input units (pytorch-grad-cam's 0.01).", minimum: 0)),
        .string(\.roadScore, Knob("roadScore", .string, "ROAD: the target's score compared before and after imputation.", choices: ROAD.Score.allCases.map(\.rawValue))),
        .string(\.roadTies, Knob("roadTies", .string, "ROAD: pixels tied at a percentile: index (keep exactly as many as a map without ties keeps, ties by pixel index) or threshold (pytorch-grad-cam's: every tied pixel removed; NaN where that removes them all).",
                                 choices: ROAD.Ties.allCases.map(\.rawValue))),
        .seed(\.seed, Knob("seed", .integer, "Seed of the metrics' random subsets, noise and classes (the command line uses the methods' --seed).", minimum: 0)),
    ]

    var pixelCurveSubstrate: PixelCurve.Substrate { PixelCurve.Substrate(rawValue: substrate) ?? .zero }
    var sensitivity: Sensitivity { Sensitivity(radius: sensitivityRadius, samples: sensitivitySamples, seed: seed) }
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`stabilityNoiseHigh`) for
    ///   bounds that are not a range.
    func relativeStability() throws -> RelativeStability {
        guard stabilityNoiseLow.isFinite, stabilityNoiseHigh.isFinite, stabilityNoiseLow <= stabilityNoiseHigh else {
            throw XAIError.invalidArgument(parameter: "stabilityNoiseHigh", value: "\(stabilityNoiseHigh)",
                                           reason: "must be a finite number no lower than stabilityNoiseLow (\(stabilityNoiseLow))")
        }
        return RelativeStability(samples: stabilitySamples, noise: stabilityNoiseLow...stabilityNoiseHigh, layer: stabilityLayer, seed: seed)
    }
    var faithfulness: FaithfulnessCorrelation { FaithfulnessCorrelation(runs: faithfulnessRuns, subsetSize: faithfulnessSubset, seed: seed) }
    var infidelity: Infidelity { Infidelity(sigma: infidelitySigma, samples: infidelitySamples, seed: seed) }
    func regionPerturbation(_ order: RegionPerturbation.Order) -> RegionPerturbation {
        RegionPerturbation(patchSize: patchSize, regions: regions, order: order, substrate: pixelCurveSubstrate)
    }
    var selectivity: Selectivity { Selectivity(patchSize: patchSize, substrate: pixelCurveSubstrate) }
    var faithfulnessEstimate: FaithfulnessEstimate { FaithfulnessEstimate(step: step, substrate: pixelCurveSubstrate) }
    var monotonicity: Monotonicity { Monotonicity(step: step, substrate: pixelCurveSubstrate) }
    var monotonicityCorrelation: MonotonicityCorrelation { MonotonicityCorrelation(step: step, samples: monotonicitySamples, seed: seed) }
    var randomisationOrder: RandomisationOrder { RandomisationOrder(rawValue: mprtOrder) ?? .topDown }
    var randomisation: ModelRandomisation { ModelRandomisation(steps: mprtSteps, seed: seed, order: randomisationOrder) }
    var smoothRandomisation: ModelRandomisation {
        ModelRandomisation(steps: mprtSteps, seed: seed, order: randomisationOrder, smoothing: .init(samples: mprtSamples, noise: mprtNoise))
    }
    var efficientRandomisation: EfficientModelRandomisation { EfficientModelRandomisation(bins: mprtBins, seed: seed) }
    var continuity: Continuity { Continuity(steps: continuitySteps) }
    var nonSensitivity: NonSensitivity { NonSensitivity(patchSize: nonSensitivityPatch, epsilon: nonSensitivityEpsilon, substrate: pixelCurveSubstrate) }
    var inputInvariance: InputInvariance { InputInvariance(shift: invarianceShift, tolerance: invarianceTolerance) }
    func road() throws -> ROAD {
        ROAD(percentiles: try ROAD.percentiles(parsing: roadPercentiles), noise: roadNoise, score: ROAD.Score(rawValue: roadScore) ?? .probability, seed: seed,
             ties: ROAD.Ties(rawValue: roadTies) ?? .index)
    }
}

/// What a metric judges: maps of a batch of images for their classes, with the method that made
/// them (re-run by the metrics that re-explain) and, for the localisation metrics, ground-truth masks.
public struct MetricInput {
    public let session: Session
    /// `[N, 3, H, W]` at the model's input size.
    public let images: Tensor
    /// `[N, H, W]`.
    public let maps: Tensor
    /// The class each map explains.
    public let targets: [Int]
    /// `[N, H, W]`, non-zero inside the object.
    public let masks: Tensor?
    /// The method that made the maps, and its knobs: the re-explaining metrics run it again.
    public let method: String?
    public let methodConfiguration: MethodConfiguration
    /// The baseline and superpixels the method was given as tensors, where it was.
    public let baseline: Baseline?
    public let segmentation: Segmentation?

    public init(session: Session, images: Tensor, maps: Tensor, targets: [Int], masks: Tensor? = nil, method: String? = nil,
                methodConfiguration: MethodConfiguration = MethodConfiguration(), baseline: Baseline? = nil, segmentation: Segmentation? = nil) {
        self.baseline = baseline
        self.segmentation = segmentation
        self.session = session
        self.images = images
        self.maps = maps
        self.targets = targets
        self.masks = masks
        self.method = method
        self.methodConfiguration = methodConfiguration
    }

    var model: ExplainedModel { session.model }
    var target: Target { .perImage(targets) }

    /// The method's map of one image `[1, 3, H, W]` for `target` on `model` (the session's, or a
    /// randomised copy), with the method's knobs and seed.
    func explain(_ model: ExplainedModel, _ image: Tensor, _ target: Int, metric: String) throws -> Tensor {
        let configured = try configuredMethod(metric: metric, model: model)
        return try configured.method.attribute(image, target: .index(target), baseline: configured.baseline).map
    }

    func configuredMethod(metric: String, model: ExplainedModel? = nil) throws -> ConfiguredMethod {
        guard let method else {
            throw XAIError.invalidArgument(parameter: "method", value: "", reason: "\(metric) re-explains the images: name the method that made the maps")
        }
        return try session.method(method, configuration: methodConfiguration, baseline: baseline, segmentation: segmentation, on: model)
    }
}

/// One metric's scores on a batch and the seconds they took (the metrics computed together share
/// their time).
public struct MetricOutcome {
    public let result: MetricResult
    public let seconds: Double
}

/// One entry of the registry: a metric's name, what it measures, its direction, what it needs,
/// the knobs it reads, what it costs and how to compute it.
public struct MetricSpec: Sendable {
    public let name: String
    public let summary: String
    public let direction: MetricDirection
    /// Whether it needs ground-truth masks.
    public let needsMasks: Bool
    /// Whether it re-runs the method that made the maps (and so needs to know it).
    public let reexplains: Bool
    /// The ``MetricConfiguration`` knobs it reads.
    public let knobs: [String]
    /// Metrics computed together from the same work (the sensitivity scores share their noisy
    /// re-explanations) share a group; the group's computation returns each of them.
    let group: String
    /// The metric's own parameter names where they differ from the knobs' (``Sensitivity``'s
    /// `radius` is the `sensitivityRadius` knob), so errors name the knob.
    let parameterNames: [String: String]
    /// Forward-equivalents per image, given what the method costs per image.
    let costOf: @Sendable (_ pixels: Int, MetricConfiguration, MethodCost?) throws -> MethodCost
    /// Checks the knobs for images of `pixels` pixels before any work.
    let check: @Sendable (_ pixels: Int, MetricConfiguration) throws -> Void
    let compute: @Sendable (MetricInput, MetricConfiguration) throws -> [String: MetricResult]

    /// Model evaluations and forward-equivalents per image for images of `pixels` pixels, the
    /// re-explanations counted at `method`'s cost.
    public func cost(pixels: Int, configuration: MetricConfiguration = MetricConfiguration(), method: MethodCost? = nil) throws -> MethodCost {
        try costOf(pixels, configuration, method)
    }

    /// The entry as JSON: name, summary, direction, needs, and each knob with its default and range.
    public var json: [String: Any] {
        ["name": name, "summary": summary, "direction": direction.rawValue, "needsMasks": needsMasks, "reexplains": reexplains,
         "knobs": knobs.compactMap { k in (try? MetricConfiguration.knob(k))?.json(defaultValue: MetricConfiguration.defaults[k]) }]
    }

    /// An error of the metric's own code, its parameter named as the knob.
    func renamed(_ error: Error) -> Error {
        guard case XAIError.invalidArgument(let parameter, let value, let reason) = error, let knob = parameterNames[parameter] else { return error }
        return XAIError.invalidArgument(parameter: knob, value: value, reason: reason)
    }
}

/// Every metric, once: the command line, the benchmark, the C interface and Python all read this
/// list. Adding a metric is its file in `XAIMetrics` plus one entry here.
public enum MetricRegistry {
    private static let none: @Sendable (Int, MetricConfiguration) throws -> Void = { _, _ in }

    private static func forwards(_ n: Double) -> MethodCost { MethodCost(evaluations: n, forwardEquivalents: n) }

    /// The metrics in the order `all` runs them.
    public static let metrics: [MetricSpec] = [
        pixelCurve(.deletion, "area under the probability as the most relevant pixels are removed (RISE's protocol)", .lowerIsBetter),
        pixelCurve(.insertion, "area under the probability as the most relevant pixels are put back into a blurred image", .higherIsBetter),
        regionPerturbation(.morf, "AOPC: mean drop of the probability as the most relevant patches are removed (Samek et al.; Quantus's RegionPerturbation)"),
        regionPerturbation(.lerf, "AOPC as the least relevant patches are removed first (Samek et al.)"),
        MetricSpec(name: "selectivity", summary: "area under the probability as every patch is removed, most relevant first (Montavon et al.; Quantus)",
                   direction: .lowerIsBetter, needsMasks: false, reexplains: false, knobs: ["patchSize", "substrate"], group: "selectivity",
                   parameterNames: [:],
                   costOf: { pixels, c, _ in forwards(Double(patches(pixels, c.patchSize) + 1)) },
                   check: checkPatchSize,
                   compute: { input, c in
                       ["selectivity": try c.selectivity.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "irof", summary: "area over the relative probability as superpixels are removed, most relevant first (Rieger & Hansen; Quantus's IROF)",
                   direction: .higherIsBetter, needsMasks: false, reexplains: false, knobs: ["substrate"], group: "irof", parameterNames: [:],
                   // An estimate: the segments are known only once the image is segmented by the method's
                   // knobs (`segmentation`, `segments`, `featureMask`); SLIC's default asks for about 50,
                   // each one evaluation, and the clean image.
                   costOf: { _, _, _ in forwards(51) }, check: none,
                   compute: { input, c in
                       let segmentation = try MethodRegistry.segmentation(input.methodConfiguration, MethodContext(segmentation: input.segmentation))
                       return ["irof": try IROF(segmentation: segmentation, substrate: c.pixelCurveSubstrate)
                           .evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "faithfulness_estimate", summary: "Pearson correlation of the map's sum over groups of pixels with the logit drop when each is removed (Alvarez-Melis & Jaakkola; Quantus)",
                   direction: .higherIsBetter, needsMasks: false, reexplains: false, knobs: ["step", "substrate"], group: "faithfulness_estimate",
                   parameterNames: [:],
                   costOf: { pixels, c, _ in
                       let step = try c.faithfulnessEstimate.resolvedStep(pixels: pixels)
                       return forwards(Double((pixels + step - 1) / step + 1))
                   },
                   check: { pixels, c in _ = try c.faithfulnessEstimate.resolvedStep(pixels: pixels) },
                   compute: { input, c in
                       ["faithfulness_estimate": try c.faithfulnessEstimate.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "monotonicity", summary: "1 where the probability never falls as pixels are put back in order of increasing relevance (Arya et al.)",
                   direction: .higherIsBetter, needsMasks: false, reexplains: false, knobs: ["step", "substrate"], group: "monotonicity",
                   parameterNames: [:],
                   costOf: { pixels, c, _ in
                       let step = try c.monotonicity.resolvedStep(pixels: pixels)
                       return forwards(Double((pixels + step - 1) / step))
                   },
                   check: { pixels, c in _ = try c.monotonicity.resolvedStep(pixels: pixels) },
                   compute: { input, c in
                       ["monotonicity": try c.monotonicity.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "monotonicity_correlation", summary: "Spearman correlation of the map's |sum| over groups of pixels with the mean squared probability change when each is filled with random values (Nguyen & Martínez; Quantus)",
                   direction: .higherIsBetter, needsMasks: false, reexplains: false, knobs: ["step", "monotonicitySamples", "seed"], group: "monotonicity_correlation",
                   parameterNames: ["samples": "monotonicitySamples"],
                   costOf: { pixels, c, _ in
                       let step = try c.monotonicityCorrelation.resolvedStep(pixels: pixels)
                       return forwards(Double((pixels + step - 1) / step * c.monotonicitySamples + 1))
                   },
                   check: { pixels, c in _ = try c.monotonicityCorrelation.resolvedStep(pixels: pixels) },
                   compute: { input, c in
                       ["monotonicity_correlation": try c.monotonicityCorrelation.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "non_sensitivity", summary: "share of patches where a zero attribution and an unmoved probability disagree when the patch alone is removed (Nguyen & Martínez; Quantus's NonSensitivity)",
                   direction: .lowerIsBetter, needsMasks: false, reexplains: false, knobs: ["nonSensitivityPatch", "nonSensitivityEpsilon", "substrate"],
                   group: "non_sensitivity", parameterNames: ["patchSize": "nonSensitivityPatch", "epsilon": "nonSensitivityEpsilon"],
                   costOf: { pixels, c, _ in forwards(Double(patches(pixels, c.nonSensitivityPatch) + 1)) },
                   check: checkPatch(\.nonSensitivityPatch, "nonSensitivityPatch"),
                   compute: { input, c in
                       ["non_sensitivity": try c.nonSensitivity.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "completeness", summary: "|sum of the map - (logit of the image - logit of the baseline)|: IG's and KernelSHAP's axiom",
                   direction: .lowerIsBetter, needsMasks: false, reexplains: true, knobs: [], group: "completeness", parameterNames: [:],
                   costOf: { _, _, _ in forwards(2) }, check: none,
                   compute: { input, _ in
                       let configured = try input.configuredMethod(metric: "completeness")
                       return ["completeness": try Completeness(baseline: configured.baseline)
                           .evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "sparseness", summary: "Gini index of |map| (Chalasani et al.)", direction: .higherIsBetter, needsMasks: false, reexplains: false,
                   knobs: [], group: "sparseness", parameterNames: [:], costOf: { _, _, _ in forwards(0) }, check: none,
                   compute: { input, _ in ["sparseness": try Sparseness().evaluate(images: input.images, maps: input.maps)] }),
        MetricSpec(name: "effective_complexity", summary: "pixels whose |map| exceeds epsilon times the image's largest (Nguyen & Martínez; Quantus)",
                   direction: .lowerIsBetter, needsMasks: false, reexplains: false, knobs: ["complexityEpsilon"], group: "effective_complexity",
                   parameterNames: ["epsilon": "complexityEpsilon"], costOf: { _, _, _ in forwards(0) }, check: none,
                   compute: { input, c in
                       ["effective_complexity": try EffectiveComplexity(epsilon: Double(c.complexityEpsilon)).evaluate(images: input.images, maps: input.maps)]
                   }),
        MetricSpec(name: "complexity", summary: "entropy of the normalised |map| (Bhatt et al.)", direction: .lowerIsBetter, needsMasks: false, reexplains: false,
                   knobs: [], group: "complexity", parameterNames: [:], costOf: { _, _, _ in forwards(0) }, check: none,
                   compute: { input, _ in ["complexity": try Complexity().evaluate(images: input.images, maps: input.maps)] }),
        localisation("pointing_game", "whether the map's maximum lies in the mask (within the tolerance)", knobs: ["tolerance"]) { input, c, masks in
            try Localisation.pointingGame(images: input.images, maps: input.maps, masks: masks, tolerance: c.tolerance)
        },
        localisation("relevance_mass", "share of the positive map inside the mask (Arras et al.)", knobs: []) { input, _, masks in
            try Localisation.relevanceMass(images: input.images, maps: input.maps, masks: masks)
        },
        localisation("attribution_localisation", "share of the map's magnitude inside the mask (Kohlbrenner et al.; Quantus's AttributionLocalisation)", knobs: []) { input, _, masks in
            try Localisation.attributionLocalisation(images: input.images, maps: input.maps, masks: masks)
        },
        localisation("relevance_rank", "share of the mask's pixels among the map's top |mask| pixels (Arras et al.)", knobs: []) { input, _, masks in
            try Localisation.relevanceRank(images: input.images, maps: input.maps, masks: masks)
        },
        localisation("roc_auc", "area under the ROC curve of the map as a detector of the mask's pixels (Quantus's AUC)", knobs: []) { input, _, masks in
            try Localisation.rocAUC(images: input.images, maps: input.maps, masks: masks)
        },
        localisation("top_k_intersection", "share of the map's top k pixels inside the mask (Theiner et al.; Quantus)", knobs: ["topK"],
                     parameterNames: ["k": "topK"], check: { pixels, c in
                         if let k = c.topK, k > pixels {
                             throw XAIError.invalidArgument(parameter: "topK", value: "\(k)", reason: "more than the image's \(pixels) pixels")
                         }
                     }) { input, c, masks in
            try Localisation.topKIntersection(images: input.images, maps: input.maps, masks: masks, k: c.topK)
        },
        sensitivity("sensitivity_max", "largest relative change of the map over noisy copies (Captum's sensitivity_max)"),
        sensitivity("sensitivity_avg", "mean relative change of the map over the same noisy copies"),
        sensitivity("local_lipschitz", "largest change of the map over the size of the noise (Alvarez-Melis & Jaakkola)"),
        MetricSpec(name: "continuity", summary: "largest change of the normalised |map| over the change of the image as it slides sideways (Montavon et al.; Quantus's Continuity)",
                   direction: .lowerIsBetter, needsMasks: false, reexplains: true, knobs: ["continuitySteps"], group: "continuity",
                   parameterNames: ["steps": "continuitySteps"],
                   costOf: { pixels, c, method in
                       // The image's map and one per shift, the shift 0 skipped (the width taken
                       // as a square image's).
                       let maps = Double(c.continuity.shifts(width: Int(Double(pixels).squareRoot().rounded())).count + 1)
                       return MethodCost(evaluations: maps * (method?.evaluations ?? 1), forwardEquivalents: maps * (method?.forwardEquivalents ?? 1))
                   },
                   check: { _, c in try c.continuity.validate() },
                   compute: { input, c in
                       let configured = try input.configuredMethod(metric: "continuity")
                       return ["continuity": try c.continuity.evaluate(images: input.images) { image, b in
                           try configured.method.attribute(image, target: .index(input.targets[b]), baseline: configured.baseline).map
                       }]
                   }),
        relativeStability("relative_input_stability", "largest relative change of the map over the relative change of the input, over noisy copies that keep the class (Agarwal et al.; Quantus's RIS)"),
        relativeStability("relative_output_stability", "largest relative change of the map over the change of the logits, over the same copies (Quantus's ROS)"),
        relativeStability("relative_representation_stability", "largest relative change of the map over the relative change of a layer's activations, over the same copies (Quantus's RRS)"),
        MetricSpec(name: "faithfulness_correlation", summary: "Pearson correlation of the map's sum over random subsets with the score drop when they are removed (Quantus)",
                   direction: .higherIsBetter, needsMasks: false, reexplains: false, knobs: ["faithfulnessRuns", "faithfulnessSubset", "seed"],
                   group: "faithfulness_correlation", parameterNames: ["runs": "faithfulnessRuns", "subsetSize": "faithfulnessSubset"],
                   costOf: { _, c, _ in forwards(Double(c.faithfulnessRuns + 1)) },
                   check: { pixels, c in try c.faithfulness.validate(pixels: pixels) },
                   compute: { input, c in
                       ["faithfulness_correlation": try c.faithfulness.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        MetricSpec(name: "infidelity", summary: "mean squared error of the map's prediction of the score change under Gaussian perturbations (Captum's, normalised)",
                   direction: .lowerIsBetter, needsMasks: false, reexplains: false, knobs: ["infidelitySigma", "infidelitySamples", "seed"],
                   group: "infidelity", parameterNames: ["sigma": "infidelitySigma", "samples": "infidelitySamples"],
                   costOf: { _, c, _ in forwards(Double(c.infidelitySamples + 1)) },
                   check: { _, c in try c.infidelity.validate() },
                   compute: { input, c in
                       ["infidelity": try c.infidelity.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                   }),
        road("road", "(LeRF - MoRF) / 2 over the percentiles, removed pixels imputed from their neighbours (Rong et al.; pytorch-grad-cam's ROADCombined)", .higherIsBetter),
        road("road_morf", "mean score change as the most relevant pixels are removed and imputed (ROAD, most relevant first)", .lowerIsBetter),
        road("road_lerf", "mean score change as the least relevant pixels are removed and imputed (ROAD, least relevant first)", .higherIsBetter),
        confidence("average_drop", "relative drop of the target's probability when the image is multiplied by the map scaled to [0, 1] (Grad-CAM++'s Average Drop)", .lowerIsBetter),
        confidence("increase_in_confidence", "1 where the image multiplied by the map scaled to [0, 1] raises the target's probability (Grad-CAM++'s Increase in Confidence)", .higherIsBetter),
        coherency("coherency", "(Pearson(the method's map of the image times the map, the map) + 1) / 2 (Poppi et al.; pytorch-grad-cam's Coherency)"),
        coherency("adcc", "harmonic mean of coherency, 1 - complexity and 1 - average drop (Poppi et al.)"),
        MetricSpec(name: "arcc", summary: "harmonic mean of coherency, 1 - complexity and the ROAD score doubled and clipped to [0, 1] (pytorch-grad-cam's ARCC)",
                   direction: .higherIsBetter, needsMasks: false, reexplains: true, knobs: ["roadPercentiles", "roadNoise", "roadScore", "roadTies", "seed"], group: "arcc",
                   parameterNames: ["percentiles": "roadPercentiles", "noise": "roadNoise"],
                   costOf: { _, c, method in
                       let road = Double(2 * ((try? ROAD.percentiles(parsing: c.roadPercentiles).count) ?? 0) + 1)
                       return MethodCost(evaluations: 1 + road + (method?.evaluations ?? 1), forwardEquivalents: 1 + road + (method?.forwardEquivalents ?? 1))
                   },
                   check: { _, c in try c.road().validate() },
                   compute: { input, c in
                       let r = try coherencyScores(input, metric: "arcc")
                       let road = try c.road().evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target).combined
                       let arcc = zip(zip(r.coherency.scores, r.complexity), road.scores).map {
                           Coherency.harmonicMean($0.0, 1 - $0.1, min(max(2 * $1, 0), 1), epsilon: 1e-8)
                       }
                       var settings = road.settings
                       settings["definition"] = "3 / (1 / coherency + 1 / (1 - complexity) + 1 / clip(2 road, 0, 1)), each term + 1e-8 (pytorch-grad-cam's ARCC)"
                       return ["arcc": MetricResult(metric: "arcc", direction: .higherIsBetter, scores: arcc, settings: settings)]
                   }),
        randomLogit("random_logit", "SSIM of the map with the method's map for a random other class (Sixt et al.; Quantus)"),
        randomLogit("random_logit_spearman", "Spearman correlation of the map with the method's map for a random other class"),
        onOtherModels("mprt", "mean Spearman correlation of |map| with the maps after cascading weight randomisation (Adebayo et al.)", .lowerIsBetter,
                      knobs: ["mprtSteps", "mprtOrder", "seed"], parameterNames: ["steps": "mprtSteps"], maps: { c in Double(c.mprtSteps) },
                      check: { c in try c.randomisation.validate() }) { c, input, explain in
            try c.randomisation.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target, explain: explain)
        },
        // Every stage and the original model, each a smoothed map.
        onOtherModels("smooth_mprt", "MPRT on maps averaged over noisy copies of the image, the original model's too (Hedström et al.; Quantus's SmoothMPRT)",
                      .lowerIsBetter, knobs: ["mprtSteps", "mprtOrder", "mprtSamples", "mprtNoise", "seed"],
                      parameterNames: ["steps": "mprtSteps", "samples": "mprtSamples", "noise": "mprtNoise"],
                      maps: { c in Double((c.mprtSteps + 1) * c.mprtSamples) }, check: { c in try c.smoothRandomisation.validate() }) { c, input, explain in
            try c.smoothRandomisation.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target, explain: explain)
        },
        onOtherModels("efficient_mprt", "relative rise of the map's histogram entropy when every weighted layer is randomised (Hedström et al.; Quantus's EfficientMPRT)",
                      .higherIsBetter, knobs: ["mprtBins", "seed"], parameterNames: ["bins": "mprtBins"], maps: { _ in 1 },
                      check: { c in try c.efficientRandomisation.validate() }) { c, input, explain in
            try c.efficientRandomisation.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target, explain: explain)
        },
        // The map on the shifted model, and its forward to check the two models agree.
        onOtherModels("input_invariance", "1 where the map stays the same when the input is shifted and the first layer's bias undoes the shift (Kindermans et al.; Quantus's InputInvariance)",
                      .higherIsBetter, knobs: ["invarianceShift", "invarianceTolerance"], parameterNames: ["shift": "invarianceShift", "tolerance": "invarianceTolerance"],
                      maps: { _ in 1 }, forwards: 1, check: { c in try c.inputInvariance.validate() }) { c, input, explain in
            try c.inputInvariance.evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target, explain: explain)
        },
    ]

    /// A metric that re-explains the images on other models (randomised, shifted) with the method
    /// that made the maps: `maps` explanations per image at the method's cost, and `forwards`
    /// forwards of its own.
    private static func onOtherModels(_ name: String, _ summary: String, _ direction: MetricDirection, knobs: [String], parameterNames: [String: String],
                                      maps: @escaping @Sendable (MetricConfiguration) -> Double, forwards: Double = 0,
                                      check: @escaping @Sendable (MetricConfiguration) throws -> Void,
                                      _ evaluate: @escaping @Sendable (MetricConfiguration, MetricInput, (ExplainedModel, Tensor, Int) throws -> Tensor) throws -> MetricResult) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: direction, needsMasks: false, reexplains: true, knobs: knobs, group: name, parameterNames: parameterNames,
                   costOf: { _, c, method in
                       MethodCost(evaluations: maps(c) * (method?.evaluations ?? 1) + forwards, forwardEquivalents: maps(c) * (method?.forwardEquivalents ?? 1) + forwards)
                   },
                   check: { _, c in try check(c) },
                   compute: { input, c in
                       [name: try evaluate(c, input) { model, image, target in try input.explain(model, image, target, metric: name) }]
                   })
    }

    private static func pixelCurve(_ mode: PixelCurve.Mode, _ summary: String, _ direction: MetricDirection) -> MetricSpec {
        let knobs = mode == .deletion ? ["step", "substrate"] : ["step"]
        let curve: @Sendable (MetricConfiguration) -> PixelCurve = { c in PixelCurve(mode: mode, step: c.step, substrate: mode == .deletion ? c.pixelCurveSubstrate : .zero) }
        return MetricSpec(name: mode.rawValue, summary: summary, direction: direction, needsMasks: false, reexplains: false, knobs: knobs,
                          group: mode.rawValue, parameterNames: [:],
                          costOf: { pixels, c, _ in
                              let step = try curve(c).resolvedStep(pixels: pixels)
                              return forwards(Double((pixels + step - 1) / step + 1))
                          },
                          check: { pixels, c in _ = try curve(c).resolvedStep(pixels: pixels) },
                          compute: { input, c in
                              [mode.rawValue: try curve(c).evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                          })
    }

    /// How many patches of `size` cover a square image of `pixels` pixels (the grid pads each side
    /// up to a multiple of the size); the size is clamped first, so a huge one cannot overflow.
    private static func patches(_ pixels: Int, _ size: Int) -> Int {
        let side = Int(Double(pixels).squareRoot().rounded(.up))
        let perSide = (side + min(max(size, 1), side) - 1) / min(max(size, 1), side)
        return perSide * perSide
    }

    /// A patch size that cannot fit an image of `pixels` pixels, refused before any work (the
    /// exact bound, the shorter side, is checked where the grid is laid).
    private static let checkPatchSize = checkPatch(\.patchSize, "patchSize")

    /// A check that the patch size knob `name` fits an image of `pixels` pixels.
    private static func checkPatch(_ size: KeyPath<MetricConfiguration, Int> & Sendable, _ name: String) -> @Sendable (Int, MetricConfiguration) throws -> Void {
        { pixels, c in
            guard c[keyPath: size] <= Int(Double(pixels).squareRoot()) else {
                throw XAIError.invalidArgument(parameter: name, value: "\(c[keyPath: size])", reason: "larger than the image (\(pixels) pixels)")
            }
        }
    }

    private static func regionPerturbation(_ order: RegionPerturbation.Order, _ summary: String) -> MetricSpec {
        let name = RegionPerturbation(order: order).name
        return MetricSpec(name: name, summary: summary, direction: order == .morf ? .higherIsBetter : .lowerIsBetter, needsMasks: false, reexplains: false,
                          knobs: ["patchSize", "regions", "substrate"], group: name, parameterNames: [:],
                          costOf: { pixels, c, _ in forwards(Double(min(c.regions, patches(pixels, c.patchSize)) + 1)) },
                          check: checkPatchSize,
                          compute: { input, c in
                              [name: try c.regionPerturbation(order).evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)]
                          })
    }

    private static func localisation(_ name: String, _ summary: String, knobs: [String], parameterNames: [String: String] = [:],
                                     check: @escaping @Sendable (Int, MetricConfiguration) throws -> Void = { _, _ in },
                                     _ score: @escaping @Sendable (MetricInput, MetricConfiguration, Tensor) throws -> MetricResult) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: .higherIsBetter, needsMasks: true, reexplains: false, knobs: knobs, group: name,
                   parameterNames: parameterNames, costOf: { _, _, _ in forwards(0) }, check: check,
                   compute: { input, c in
                       guard let masks = input.masks else {
                           throw XAIError.invalidArgument(parameter: "masks", value: "", reason: "\(name) needs ground-truth masks")
                       }
                       return [name: try score(input, c, masks)]
                   })
    }

    private static func sensitivity(_ name: String, _ summary: String) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: .lowerIsBetter, needsMasks: false, reexplains: true,
                   knobs: ["sensitivityRadius", "sensitivitySamples", "seed"], group: "sensitivity",
                   parameterNames: ["radius": "sensitivityRadius", "samples": "sensitivitySamples"],
                   costOf: { _, c, method in
                       let copies = Double(c.sensitivitySamples + 1)
                       return MethodCost(evaluations: copies * (method?.evaluations ?? 1), forwardEquivalents: copies * (method?.forwardEquivalents ?? 1))
                   },
                   check: { _, c in try c.sensitivity.validate() },
                   compute: { input, c in
                       // One configured method for every copy: the method's seed fixed, only the input noise varies.
                       let configured = try input.configuredMethod(metric: name)
                       let r = try c.sensitivity.evaluate(images: input.images) { image, b in
                           try configured.method.attribute(image, target: .index(input.targets[b]), baseline: configured.baseline).map
                       }
                       return ["sensitivity_max": r.max, "sensitivity_avg": r.average, "local_lipschitz": r.lipschitz]
                   })
    }

    /// RIS, ROS and RRS, computed together from the same noisy copies and re-explanations.
    private static func relativeStability(_ name: String, _ summary: String) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: .lowerIsBetter, needsMasks: false, reexplains: true,
                   knobs: ["stabilitySamples", "stabilityNoiseLow", "stabilityNoiseHigh", "stabilityLayer", "seed"], group: "relative_stability",
                   parameterNames: ["samples": "stabilitySamples", "noise": "stabilityNoiseLow"],
                   costOf: { _, c, method in
                       // The image and each copy: one explanation and one forward each.
                       let copies = Double(c.stabilitySamples + 1)
                       return MethodCost(evaluations: copies * (1 + (method?.evaluations ?? 1)), forwardEquivalents: copies * (1 + (method?.forwardEquivalents ?? 1)))
                   },
                   check: { _, c in try c.relativeStability().validate() },
                   compute: { input, c in
                       // The layer checked here, so its error names the knob (a re-explaining CAM's own
                       // `layer` error keeps its name).
                       do {
                           _ = try input.model.camLayer(c.stabilityLayer)
                       } catch XAIError.invalidArgument(_, let value, let reason) {
                           throw XAIError.invalidArgument(parameter: "stabilityLayer", value: value, reason: reason)
                       }
                       let configured = try input.configuredMethod(metric: name)
                       let r = try c.relativeStability().evaluate(model: input.model, images: input.images) { image, b in
                           try configured.method.attribute(image, target: .index(input.targets[b]), baseline: configured.baseline).map
                       }
                       return ["relative_input_stability": r.input, "relative_output_stability": r.output, "relative_representation_stability": r.representation]
                   })
    }

    private static func road(_ name: String, _ summary: String, _ direction: MetricDirection) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: direction, needsMasks: false, reexplains: false,
                   knobs: ["roadPercentiles", "roadNoise", "roadScore", "roadTies", "seed"], group: "road",
                   parameterNames: ["percentiles": "roadPercentiles", "noise": "roadNoise"],
                   costOf: { _, c, _ in forwards(Double(2 * ((try? ROAD.percentiles(parsing: c.roadPercentiles).count) ?? 0) + 1)) },
                   check: { _, c in try c.road().validate() },
                   compute: { input, c in
                       let r = try c.road().evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)
                       return ["road": r.combined, "road_morf": r.morf, "road_lerf": r.lerf]
                   })
    }

    private static func confidence(_ name: String, _ summary: String, _ direction: MetricDirection) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: direction, needsMasks: false, reexplains: false, knobs: [], group: "confidence",
                   parameterNames: [:], costOf: { _, _, _ in forwards(2) }, check: none,
                   compute: { input, _ in
                       let r = try ConfidenceChange().evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target)
                       return ["average_drop": r.drop, "increase_in_confidence": r.increase]
                   })
    }

    /// Coherency and ADCC, computed together: ADCC reads coherency, the scaled map's complexity and
    /// the average drop (one more forward).
    private static func coherency(_ name: String, _ summary: String) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: .higherIsBetter, needsMasks: false, reexplains: true, knobs: [], group: "coherency",
                   parameterNames: [:],
                   costOf: { _, _, method in MethodCost(evaluations: 2 + (method?.evaluations ?? 1), forwardEquivalents: 2 + (method?.forwardEquivalents ?? 1)) },
                   check: none,
                   compute: { input, _ in
                       let r = try coherencyScores(input, metric: name)
                       let drop = try ConfidenceChange().evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target).drop
                       let adcc = zip(zip(r.coherency.scores, r.complexity), drop.scores).map { Coherency.harmonicMean($0.0, 1 - $0.1, 1 - $1) }
                       return ["coherency": r.coherency,
                               "adcc": MetricResult(metric: "adcc", direction: .higherIsBetter, scores: adcc,
                                                    settings: ["definition": "3 / (1 / coherency + 1 / (1 - complexity) + 1 / (1 - average drop)), complexity the mean of the map scaled to [0, 1]"])]
                   })
    }

    /// Coherency of the input's maps, the method re-explaining each image times its map.
    private static func coherencyScores(_ input: MetricInput, metric: String) throws -> (coherency: MetricResult, complexity: [Double]) {
        let configured = try input.configuredMethod(metric: metric)
        return try Coherency().evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target) { image, target in
            try configured.method.attribute(image, target: .index(target), baseline: configured.baseline).map
        }
    }

    private static func randomLogit(_ name: String, _ summary: String) -> MetricSpec {
        MetricSpec(name: name, summary: summary, direction: .lowerIsBetter, needsMasks: false, reexplains: true, knobs: ["seed"], group: "random_logit",
                   parameterNames: [:],
                   costOf: { _, _, method in MethodCost(evaluations: 1 + (method?.evaluations ?? 1), forwardEquivalents: 1 + (method?.forwardEquivalents ?? 1)) },
                   check: none,
                   compute: { input, c in
                       let r = try RandomLogit(seed: c.seed).evaluate(model: input.model, images: input.images, maps: input.maps, target: input.target) { image, target in
                           try input.explain(input.model, image, target, metric: name)
                       }
                       return ["random_logit": r.ssim, "random_logit_spearman": r.spearman]
                   })
    }

    /// Every metric's name, in the order `all` runs them.
    public static var names: [String] { metrics.map(\.name) }

    /// The entry called `name`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`metrics`) for an unknown name.
    public static func spec(_ name: String) throws -> MetricSpec {
        guard let s = metrics.first(where: { $0.name == name }) else {
            throw XAIError.invalidArgument(parameter: "metrics", value: name, reason: "none of \(names.joined(separator: ", ")) or all")
        }
        return s
    }

    /// The metrics of a comma-separated list; `all` is every metric, those that need masks only
    /// when there are masks. Duplicates are dropped, the order kept.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for an unknown name, an
    ///   empty list, or a mask metric without masks.
    public static func expand(_ list: String, masks: Bool) throws -> [String] {
        let result = try expandList(list, parameter: "metrics", noun: "metric", all: metrics.filter { masks || !$0.needsMasks }.map(\.name)) { try spec($0).name }
        if !masks, let m = try result.map(spec).first(where: \.needsMasks) {
            throw XAIError.invalidArgument(parameter: "groundTruth", value: "", reason: "\(m.name) needs ground-truth masks")
        }
        return result
    }

    /// Checks the knobs of `names` for images of `pixels` pixels, before any work.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the knob.
    public static func validate(_ names: [String], configuration c: MetricConfiguration, pixels: Int) throws {
        for name in names {
            let s = try spec(name)
            try c.validate(s.knobs)
            do { try s.check(pixels, c) } catch { throw s.renamed(error) }
        }
    }

    /// Scores `input` with each metric of `names`, in that order; the metrics computed together are
    /// computed once.
    /// - Parameter progress: called with each metric's name before it starts.
    /// - Throws: the first metric's error, parameters named as knobs.
    public static func evaluate(_ names: [String], input: MetricInput, configuration: MetricConfiguration,
                                progress: ((String) throws -> Void)? = nil) throws -> [(name: String, outcome: MetricOutcome)] {
        try validate(names, configuration: configuration, pixels: input.session.height * input.session.width)
        var done: [String: MetricOutcome] = [:]
        var outcomes: [(name: String, outcome: MetricOutcome)] = []
        for name in names {
            let s = try spec(name)
            if done[name] == nil {
                try progress?(s.group)
                let started = Date()
                let results: [String: MetricResult]
                do { results = try s.compute(input, configuration) } catch { throw s.renamed(error) }
                let seconds = Date().timeIntervalSince(started)
                for (n, r) in results { done[n] = MetricOutcome(result: r, seconds: seconds) }
            }
            guard let outcome = done[name] else { throw XAIError.unsupported(op: name, reason: "not computed by its group \(s.group) (a registry bug)") }
            outcomes.append((name, outcome))
        }
        return outcomes
    }

    /// Every metric with its knobs, defaults and ranges, as JSON (`xai evaluate --list`, the C
    /// interface, Python).
    public static func json() -> Data {
        let object: [String: Any] = ["metrics": metrics.map(\.json),
                                     "knobs": MetricConfiguration.knobs.map { $0.json(defaultValue: MetricConfiguration.defaults[$0.name]) }]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }
}
