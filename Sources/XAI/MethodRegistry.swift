import Foundation

/// What a method needs besides its knobs: the model's preprocessing (for the `black` baseline), a
/// progress callback for the long-running methods (the perturbation methods, Score-CAM and
/// Ablation-CAM: one call per batch), and tensors a program passes
/// directly where the knobs name files (the C interface's and Python's baseline and feature mask).
public struct MethodContext: Sendable {
    public var preprocessing: Preprocessing
    public var progress: PerturbationProgress?
    /// Replaces the `baseline` knob.
    public var baseline: Baseline?
    /// Replaces the `segmentation`, `segments` and `featureMask` knobs.
    public var segmentation: Segmentation?

    public init(preprocessing: Preprocessing = .imagenet, progress: PerturbationProgress? = nil, baseline: Baseline? = nil,
                segmentation: Segmentation? = nil) {
        self.preprocessing = preprocessing
        self.progress = progress
        self.baseline = baseline
        self.segmentation = segmentation
    }
}

/// A method ready to run, with the baseline its knobs asked for and the settings to record beside
/// its output.
public struct ConfiguredMethod {
    public let method: any AttributionMethod
    public let baseline: Baseline
    /// The knobs the method used, by name, as text (for `results.jsonl`).
    public let parameters: [String: String]
}

/// What a method costs on a model: model evaluations and forward-equivalents per image (a backward
/// pass to the input counts as one forward), for the benchmark's floor and for clients that budget.
public struct MethodCost: Sendable, Equatable, Codable {
    public let evaluations: Double
    public let forwardEquivalents: Double

    public init(evaluations: Double, forwardEquivalents: Double) {
        self.evaluations = evaluations
        self.forwardEquivalents = forwardEquivalents
    }
}

/// One entry of the registry: a method's name, what it does, the knobs it reads, how to build it
/// and what it costs.
public struct MethodSpec: Sendable {
    public let name: String
    public let summary: String
    /// The ``MethodConfiguration`` knobs the method reads.
    public let knobs: [String]
    /// Defaults that differ from the knob's own (``MethodConfiguration`` has one per knob): an
    /// `Int` or a `String`, as the knob's type.
    public let defaultOverrides: [String: any Sendable]
    /// Ranges narrower than the knob's own, where the method takes less (SmoothGrad's samples).
    public let ranges: [String: ClosedRange<Int>]
    /// How fine the method's map is (how overlays draw it by default).
    public let detail: MapDetail
    let build: @Sendable (ExplainedModel, MethodConfiguration, MethodContext) throws -> any AttributionMethod
    let costOf: @Sendable (ExplainedModel, MethodConfiguration) throws -> MethodCost
    /// Whether the method explains a batch of images in one pass (one forward, one backward), so
    /// a set of images runs faster several at a time: the gradient and CAM methods. The others
    /// already fill their batches with one image's steps, copies or perturbations.
    public let batchesImages: Bool
    /// Whether the method can explain a model (CAM needs a global-average-pooling + linear head;
    /// Grad-CAM++ a piecewise-linear path); `nil` for every model.
    let isApplicable: (@Sendable (ExplainedModel) -> Bool)?

    init(name: String, summary: String, knobs: [String], defaultOverrides: [String: any Sendable] = [:], ranges: [String: ClosedRange<Int>] = [:],
         detail: MapDetail = .region,
         batchesImages: Bool = false,
         cost: @escaping @Sendable (ExplainedModel, MethodConfiguration) throws -> MethodCost,
         build: @escaping @Sendable (ExplainedModel, MethodConfiguration, MethodContext) throws -> any AttributionMethod,
         isApplicable: (@Sendable (ExplainedModel) -> Bool)? = nil) {
        self.name = name
        self.summary = summary
        self.knobs = knobs
        self.defaultOverrides = defaultOverrides
        self.ranges = ranges
        self.detail = detail
        self.batchesImages = batchesImages
        self.costOf = cost
        self.build = build
        self.isApplicable = isApplicable
    }

    /// Whether the method can explain `model`.
    public func applies(to model: ExplainedModel) -> Bool { isApplicable?(model) ?? true }

    /// Model evaluations and forward-equivalents per image for `model` with `configuration`.
    public func cost(for model: ExplainedModel, configuration: MethodConfiguration = MethodConfiguration()) throws -> MethodCost {
        try costOf(model, configuration)
    }

    /// The default of `knob` for this method (`nil` where it has none, like `layer`).
    public func defaultValue(_ knob: String) -> Any? {
        defaultOverrides[knob] ?? MethodConfiguration.defaults[knob]
    }

    /// The entry as JSON: name, summary and each knob with its type, this method's default and range.
    public var json: [String: Any] {
        ["name": name, "summary": summary, "detail": detail.rawValue, "batchesImages": batchesImages,
         "knobs": knobs.compactMap { k in (try? MethodConfiguration.knob(k))?.limited(to: ranges[k]).json(defaultValue: defaultValue(k)) }]
    }
}

/// Every method, once: the command line, the benchmark, the C ABI and Python all read this list.
/// Adding a method is its file plus one entry here.
public enum MethodRegistry {
    /// SmoothGrad's default sample count; LIME's and KernelSHAP's.
    public static let smoothGradSamples = 50, coalitionSamples = 1000

    /// One forward and one backward per image.
    private static let oneGradient: @Sendable (ExplainedModel, MethodConfiguration) -> MethodCost = { _, _ in
        MethodCost(evaluations: 1, forwardEquivalents: 2)
    }
    /// One forward and a backward that stops at the layer (counted as one forward in all): the
    /// gradient CAMs (ShapleyCAM's product along the layers after its layer included).
    private static let oneForward: @Sendable (ExplainedModel, MethodConfiguration) -> MethodCost = { _, _ in
        MethodCost(evaluations: 1, forwardEquivalents: 1)
    }
    /// `n` perturbed forwards plus the clean one, plus `extra` (the baseline's, where scored).
    private static func forwards(_ n: Int, extra: Int = 0) -> MethodCost {
        MethodCost(evaluations: Double(n + 1 + extra), forwardEquivalents: Double(n + 1 + extra))
    }

    /// The methods in the order `all` runs them.
    public static let methods: [MethodSpec] = [
        MethodSpec(name: "saliency", summary: "vanilla gradient, max |grad| over channels", knobs: [], detail: .pixel, batchesImages: true, cost: oneGradient,
                   build: { m, _, _ in Saliency(model: m) }),
        MethodSpec(name: "inputxgrad", summary: "gradient x input, summed over channels", knobs: [], detail: .pixel, batchesImages: true, cost: oneGradient,
                   build: { m, _, _ in InputXGradient(model: m) }),
        MethodSpec(name: "smoothgrad", summary: "mean gradient over noisy copies", knobs: ["samples", "noise", "absolute", "batch", "seed"],
                   defaultOverrides: ["samples": smoothGradSamples], ranges: ["samples": SmoothGrad.sampleRange],
                   detail: .pixel, cost: { _, c in
                       // Each noisy copy is a forward and a backward; one clean forward picks the target.
                       let n = Double(c.samples ?? smoothGradSamples)
                       return MethodCost(evaluations: n + 1, forwardEquivalents: 2 * n + 2)
                   },
                   build: { m, c, _ in
                       SmoothGrad(base: Saliency(model: m), samples: c.samples ?? smoothGradSamples, noiseLevel: c.noise, internalBatchSize: c.batch,
                                  seed: c.seed, absolute: c.absolute)
                   }),
        MethodSpec(name: "ig", summary: "Integrated Gradients, completeness delta reported", knobs: ["steps", "rule", "baseline", "batch"],
                   detail: .pixel, cost: { _, c in
                       // A forward and backward per step, the clean forward, and the completeness
                       // check's forwards of the input and the baseline.
                       MethodCost(evaluations: Double(c.steps + 3), forwardEquivalents: Double(2 * c.steps + 3))
                   },
                   build: { m, c, _ in
                       guard let rule = IntegrationRule(rawValue: c.rule) else {
                           throw XAIError.invalidArgument(parameter: "rule", value: c.rule,
                                                          reason: "none of \(IntegrationRule.allCases.map(\.rawValue).joined(separator: ", "))")
                       }
                       return IntegratedGradients(model: m, steps: c.steps, rule: rule, internalBatchSize: c.batch)
                   }),
        MethodSpec(name: "cam", summary: "class activation map; needs a global-average-pooling + linear head", knobs: [], batchesImages: true, cost: oneForward,
                   build: { m, _, _ in CAM(model: m) }, isApplicable: { CAM(model: $0).applies }),
        cam(.gradCAM, "Grad-CAM at a layer (default: the last 4-D activation before pooling; a transformer's last block's first norm)"),
        cam(.gradCAMPlusPlus, "Grad-CAM++ (closed form, exact for piecewise-linear heads; refused with the node named otherwise)"),
        cam(.layerCAM, "LayerCAM at a layer"),
        cam(.xGradCAM, "XGrad-CAM at a layer"),
        cam(.hiResCAM, "HiResCAM at a layer: gradient x activation summed over channels (exact for heads linear after the layer)"),
        cam(.gradCAMElementWise, "Grad-CAM element-wise: gradient x activation clipped at zero per channel, then summed (pytorch-grad-cam's GradCAMElementWise)"),
        eigen(gradients: false, "EigenCAM: the layer's activations on their first principal direction (no gradient)"),
        eigen(gradients: true, "EigenGradCAM: activations x gradients on their first principal direction"),
        MethodSpec(name: "finercam", summary: "Finer-CAM: Grad-CAM of the target's logit against the three classes closest to it, softmax-weighted (pytorch-grad-cam's FinerCAM)",
                   knobs: ["layer", "finerAlpha", "relu"], batchesImages: true, cost: oneForward,
                   build: { m, c, _ in
                       let method = FinerCAM(model: m, layer: c.layer, alpha: Double(c.finerAlpha), relu: c.relu)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? $0.camLayer(nil)) != nil }),
        MethodSpec(name: "shapleycam", summary: "ShapleyCAM: Grad-CAM weighted by the gradient minus half the Hessian-vector product of the ReST score (pytorch-grad-cam's ShapleyCAM)",
                   knobs: ["layer", "shapleyScore", "relu"], batchesImages: true, cost: oneForward,
                   build: { m, c, _ in
                       guard let score = ShapleyCAM.Score(rawValue: c.shapleyScore) else {
                           throw XAIError.invalidArgument(parameter: "shapleyScore", value: c.shapleyScore,
                                                          reason: "none of \(ShapleyCAM.Score.allCases.map(\.rawValue).joined(separator: ", "))")
                       }
                       let method = ShapleyCAM(model: m, layer: c.layer, score: score, relu: c.relu)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? ShapleyCAM(model: $0).validate()) != nil }),
        MethodSpec(name: "fem", summary: "FEM: channels weighted by their share of positions above mean + k standard deviations, no gradient (pytorch-grad-cam's FEM)",
                   knobs: ["layer", "femSigmas", "relu"], batchesImages: true, cost: oneForward,
                   build: { m, c, _ in
                       _ = try m.camLayer(c.layer)
                       return FEM(model: m, layer: c.layer, sigmas: Double(c.femSigmas), relu: c.relu)
                   }, isApplicable: { (try? $0.camLayer(nil)) != nil }),
        MethodSpec(name: "kpcacam", summary: "KPCA-CAM: the layer's activations on their first kernel principal component, no gradient (pytorch-grad-cam's KPCA_CAM)",
                   knobs: ["layer", "kpcaKernel", "kpcaGamma", "relu"], batchesImages: true, cost: oneForward,
                   build: { m, c, _ in
                       _ = try m.camLayer(c.layer)
                       guard let kernel = KPCACAM.Kernel(rawValue: c.kpcaKernel) else {
                           throw XAIError.invalidArgument(parameter: "kpcaKernel", value: c.kpcaKernel,
                                                          reason: "none of \(KPCACAM.Kernel.allCases.map(\.rawValue).joined(separator: ", "))")
                       }
                       return KPCACAM(model: m, layer: c.layer, kernel: kernel, gamma: c.kpcaGamma, relu: c.relu)
                   }, isApplicable: { (try? $0.camLayer(nil)) != nil }),
        modifiedBackprop(.guided, "guided backpropagation: only positive signal back through active ReLUs"),
        modifiedBackprop(.deconvolution, "deconvolution (Zeiler & Fergus): only positive signal back through every ReLU"),
        MethodSpec(name: "guidedgradcam", summary: "guided backpropagation times the layer's Grad-CAM (nearest upsampling), one forward",
                   knobs: ["layer"], detail: .pixel, batchesImages: true, cost: oneGradient,
                   build: { m, c, _ in
                       let method = GuidedGradCAM(model: m, layer: c.layer)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? GuidedGradCAM(model: $0).validate()) != nil }),
        MethodSpec(name: "gradientshap", summary: "GradientSHAP / expected gradients: gradient x (input - baseline) at random points, baselines drawn from --baseline",
                   knobs: ["samples", "stdevs", "baseline", "batch", "seed"],
                   defaultOverrides: ["samples": smoothGradSamples], ranges: ["samples": GradientSHAP.sampleRange], detail: .pixel,
                   cost: { _, c in
                       // A forward and backward per point, and the clean forward that picks the target.
                       let n = Double(c.samples ?? smoothGradSamples)
                       return MethodCost(evaluations: n + 1, forwardEquivalents: 2 * n + 1)
                   },
                   build: { m, c, _ in
                       GradientSHAP(model: m, samples: c.samples ?? smoothGradSamples, stdev: c.stdevs, internalBatchSize: c.batch, seed: c.seed)
                   }),
        MethodSpec(name: "lrp", summary: "layer-wise relevance propagation with Zennit's composites (--composite); relevance of the target logit",
                   knobs: ["composite", "epsilon", "gamma"], detail: .pixel, batchesImages: true, cost: oneGradient,
                   build: { m, c, ctx in
                       guard let composite = LRPComposite(rawValue: c.composite) else {
                           throw XAIError.invalidArgument(parameter: "composite", value: c.composite,
                                                          reason: "none of \(LRPComposite.allCases.map(\.rawValue).joined(separator: ", "))")
                       }
                       // The z-box's bounds: the preprocessed values of pixels 0 and 1 per channel.
                       let p = ctx.preprocessing
                       let channels = m.graph.imageInput?.shape.dropFirst().first.flatMap { $0 } ?? 3
                       let low = (0..<channels).map { p.mean.count > $0 && p.std.count > $0 && p.std[$0] != 0 ? -p.mean[$0] / p.std[$0] : 0 }
                       let high = (0..<channels).map { p.mean.count > $0 && p.std.count > $0 && p.std[$0] != 0 ? (1 - p.mean[$0]) / p.std[$0] : 1 }
                       let method = LRP(model: m, composite: composite, epsilon: c.epsilon, gamma: c.gamma, low: low, high: high)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? LRP(model: $0, low: [0, 0, 0], high: [1, 1, 1]).validate()) != nil }),
        deepLIFT(overBaselines: false, "DeepLIFT (rescale rule) against --baseline: (x - x') times multipliers, sums to f(x) - f(x')"),
        deepLIFT(overBaselines: true, "DeepLiftShap: DeepLIFT averaged over the baselines of a [K,3,H,W] --baseline"),
        MethodSpec(name: "ablationcam", summary: "Ablation-CAM: each channel weighed by the score's fall when it is ablated (only the layers after it rerun)",
                   knobs: ["layer", "relu", "ablation", "batch"], batchesImages: false,
                   cost: { m, c in
                       // The clean forward, then one pass of the layers after the layer per channel.
                       let layer = try m.camLayer(c.layer)
                       let channels = Double(try m.camChannels(layer))
                       return MethodCost(evaluations: channels + 1, forwardEquivalents: 1 + channels * (try m.shareOfForwardAfter(layer)))
                   },
                   build: { m, c, ctx in
                       guard let ablation = AblationCAM.Ablation(rawValue: c.ablation) else {
                           throw XAIError.invalidArgument(parameter: "ablation", value: c.ablation, reason: "neither auto nor zero")
                       }
                       let method = AblationCAM(model: m, layer: c.layer, relu: c.relu, internalBatchSize: c.batch, ablation: ablation, progress: ctx.progress)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? AblationCAM(model: $0).validate()) != nil }),
        MethodSpec(name: "fullgrad", summary: "FullGrad: |x grad x| plus |bias x grad| of every biased layer, each map scaled and summed",
                   knobs: [], batchesImages: true, cost: oneGradient, build: { m, _, _ in FullGrad(model: m) }),
        MethodSpec(name: "scorecam", summary: "one masked forward per channel of the layer", knobs: ["layer", "batch"],
                   cost: { m, c in
                       return forwards(try m.camChannels(try m.camLayer(c.layer)))
                   },
                   build: { m, c, ctx in
                       _ = try m.camLayer(c.layer)
                       return ScoreCAM(model: m, layer: c.layer, internalBatchSize: c.batch, progress: ctx.progress)
                   }),
        MethodSpec(name: "rollout", summary: "attention rollout (Abnar & Zuidema): the class token's attention through every block; transformers",
                   knobs: [], batchesImages: true, cost: oneForward,
                   build: { m, _, _ in AttentionRollout(model: m, variant: .rollout) },
                   isApplicable: { (try? AttentionRollout(model: $0).validate()) != nil }),
        MethodSpec(name: "gradrollout", summary: "gradient-weighted attention rollout (Chefer et al., ICCV 2021); transformers",
                   knobs: [], batchesImages: true, cost: oneGradient,
                   build: { m, _, _ in AttentionRollout(model: m, variant: .gradientWeighted) },
                   isApplicable: { (try? AttentionRollout(model: $0).validate()) != nil }),
        MethodSpec(name: "transformer-attribution", summary: "Chefer et al. (CVPR 2021): rollout of gradient x LRP relevance of each block's attention; transformers",
                   knobs: [], batchesImages: true, cost: { _, _ in MethodCost(evaluations: 1, forwardEquivalents: 3) },
                   build: { m, _, _ in AttentionRollout(model: m, variant: .transformerAttribution) },
                   isApplicable: { (try? AttentionRollout(model: $0).validate()) != nil }),
        attnLRP(.attnLRP, "AttnLRP (Achtibat et al., ICML 2024): lxt's rules through norms, activations and attention; input x its backward"),
        attnLRP(.conservative, "CP-LRP (Ali et al., ICML 2022): AttnLRP with the attention's softmax held constant; transformers"),
        MethodSpec(name: "occlusion", summary: "score drop under a sliding window", knobs: ["window", "stride", "incremental", "score", "baseline", "batch"],
                   defaultOverrides: ["score": ScoreOutput.logit.rawValue],
                   cost: { m, c in
                       guard let shape = try m.summary().shapes[m.inputName], shape.rank == 4 else {
                           throw XAIError.unsupported(op: "occlusion", reason: "needs an image input [N, C, H, W]")
                       }
                       let windows = try Occlusion(model: m, window: (c.window, c.window), stride: (c.stride, c.stride)).windows(height: shape[2], width: shape[3])
                       return forwards(windows.count)
                   },
                   build: { m, c, ctx in
                       Occlusion(model: m, window: (c.window, c.window), stride: (c.stride, c.stride), incremental: c.incremental,
                                 perturbationsPerEval: c.batch, output: try score(c, default: .logit), progress: ctx.progress)
                   }),
        MethodSpec(name: "lime", summary: "weighted ridge fit on superpixel coalitions",
                   knobs: ["samples", "untilStable", "segmentation", "segments", "featureMask", "score", "baseline", "batch", "seed"],
                   defaultOverrides: ["samples": coalitionSamples, "score": ScoreOutput.logit.rawValue], ranges: ["samples": LIME.sampleRange],
                   cost: { _, c in forwards(c.samples ?? coalitionSamples) },
                   build: { m, c, ctx in
                       LIME(model: m, samples: c.samples ?? coalitionSamples, segmentation: try segmentation(c, ctx), seed: c.seed,
                            perturbationsPerEval: c.batch, untilStable: c.untilStable, output: try score(c, default: .logit), progress: ctx.progress)
                   }),
        MethodSpec(name: "kernelshap", summary: "Shapley-kernel fit on superpixel coalitions, efficiency exact",
                   knobs: ["samples", "untilStable", "coalitionSampling", "controlVariate", "segmentation", "segments", "featureMask", "score", "baseline", "batch",
                           "seed"],
                   defaultOverrides: ["samples": coalitionSamples, "score": ScoreOutput.logit.rawValue], ranges: ["samples": KernelSHAP.sampleRange],
                   // The empty and the full coalition are evaluated besides the samples (the most:
                   // --until-stable may stop sooner).
                   cost: { _, c in forwards(c.samples ?? coalitionSamples, extra: 2) },
                   build: { m, c, ctx in
                       KernelSHAP(model: m, samples: c.samples ?? coalitionSamples, segmentation: try segmentation(c, ctx), seed: c.seed,
                                  perturbationsPerEval: c.batch, untilStable: c.untilStable,
                                  sampling: KernelSHAP.Sampling(rawValue: c.coalitionSampling) ?? .kernel, controlVariate: c.controlVariate,
                                  output: try score(c, default: .logit), progress: ctx.progress)
                   }),
        MethodSpec(name: "rise", summary: "random 7x7 grids, probability-weighted", knobs: ["masks", "score", "seed", "batch"],
                   defaultOverrides: ["score": ScoreOutput.probability.rawValue],
                   cost: { _, c in forwards(c.masks) },
                   build: { m, c, ctx in
                       RISE(model: m, masks: c.masks, seed: c.seed, perturbationsPerEval: c.batch, output: try score(c, default: .probability), progress: ctx.progress)
                   }),
        MethodSpec(name: "mp", summary: "Meaningful Perturbation (deletion mask against a blur)", knobs: ["iterations", "score"],
                   defaultOverrides: ["score": ScoreOutput.probability.rawValue],
                   cost: { _, c in
                       // The clean forward that picks the target, a forward and backward per Adam step, and one more
                       // of each for the final mask's score.
                       MethodCost(evaluations: Double(c.iterations + 2), forwardEquivalents: Double(2 * c.iterations + 3))
                   },
                   build: { m, c, _ in MeaningfulPerturbation(model: m, iterations: c.iterations, output: try score(c, default: .probability)) }),
    ]

    private static func cam(_ variant: CAMVariant, _ summary: String) -> MethodSpec {
        let build: @Sendable (ExplainedModel, MethodConfiguration, MethodContext) throws -> any AttributionMethod = { m, c, _ in
            guard let score = GradientCAM.PlusPlusScore(rawValue: c.gradcamppScore) else {
                throw XAIError.invalidArgument(parameter: "gradcamppScore", value: c.gradcamppScore, reason: "neither exponential nor probability")
            }
            let method = GradientCAM(model: m, variant: variant, layer: c.layer, relu: c.relu, plusPlusScore: score)
            try method.validate()
            return method
        }
        let applicable: (@Sendable (ExplainedModel) -> Bool)?
        if variant == .gradCAMPlusPlus {
            applicable = { (try? GradientCAM(model: $0, variant: .gradCAMPlusPlus).validate()) != nil }
        } else {
            applicable = nil
        }
        return MethodSpec(name: variant.rawValue, summary: summary, knobs: variant == .gradCAMPlusPlus ? ["layer", "gradcamppScore", "relu"] : ["layer", "relu"],
                          batchesImages: true, cost: oneForward, build: build, isApplicable: applicable)
    }

    private static func modifiedBackprop(_ kind: ModifiedBackprop.Kind, _ summary: String) -> MethodSpec {
        MethodSpec(name: kind.rawValue, summary: summary, knobs: [], detail: .pixel, batchesImages: true, cost: oneGradient,
                   build: { m, _, _ in
                       let method = ModifiedBackprop(model: m, kind: kind)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? ModifiedBackprop(model: $0, kind: kind).validate()) != nil })
    }

    /// AttnLRP and CP-LRP: offered by default for the models they were made for (with attention,
    /// or layer normalisation as ConvNeXt's); any model whose ops all have a rule can ask for them.
    private static func attnLRP(_ variant: AttnLRP.Variant, _ summary: String) -> MethodSpec {
        MethodSpec(name: variant.rawValue, summary: summary, knobs: [], detail: .pixel, batchesImages: true, cost: oneGradient,
                   build: { m, _, _ in
                       let method = AttnLRP(model: m, variant: variant)
                       try method.validate()
                       return method
                   }, isApplicable: { m in
                       let transformer = !m.attentionSoftmaxes().isEmpty
                           || m.graph.nodes.contains { if case .layerNorm = $0.op { return true } else { return false } }
                       return transformer && (try? AttnLRP(model: m, variant: variant).validate()) != nil
                   })
    }

    private static func deepLIFT(overBaselines: Bool, _ summary: String) -> MethodSpec {
        MethodSpec(name: overBaselines ? "deepliftshap" : "deeplift", summary: summary, knobs: ["baseline"], detail: .pixel,
                   // The images' forward, the baselines' and one backward (per baseline for DeepLiftShap).
                   cost: { _, _ in MethodCost(evaluations: 2, forwardEquivalents: 3) },
                   build: { m, _, _ in
                       let method = DeepLIFT(model: m, overBaselines: overBaselines)
                       try method.validate()
                       return method
                   }, isApplicable: { (try? DeepLIFT(model: $0).validate()) != nil })
    }

    private static func eigen(gradients: Bool, _ summary: String) -> MethodSpec {
        MethodSpec(name: gradients ? "eigengradcam" : "eigencam", summary: summary, knobs: ["layer", "relu"], batchesImages: true,
                   cost: oneForward,
                   build: { m, c, _ in
                       _ = try m.camLayer(c.layer)
                       return EigenCAM(model: m, usesGradients: gradients, layer: c.layer, relu: c.relu)
                   }, isApplicable: { (try? $0.camLayer(nil)) != nil })
    }

    /// Every method with its knobs, defaults and ranges, as JSON (`xai methods --json`, the C ABI,
    /// Python).
    public static func json() -> Data {
        let object: [String: Any] = ["methods": methods.map(\.json), "knobs": MethodConfiguration.knobs.map { $0.json(defaultValue: MethodConfiguration.defaults[$0.name]) }]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    /// Every method's name, in the order `all` runs them.
    public static var names: [String] { methods.map(\.name) }

    /// The entry called `name`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`method`) for an unknown name.
    public static func spec(_ name: String) throws -> MethodSpec {
        guard let s = methods.first(where: { $0.name == name }) else {
            throw XAIError.invalidArgument(parameter: "method", value: name, reason: "unknown method (methods: \(names.joined(separator: ", ")))")
        }
        return s
    }

    /// The methods of a comma-separated list; `all` is every method that applies to `model`.
    /// Duplicates are dropped, the order kept.
    public static func expand(_ list: String, model: ExplainedModel) throws -> [String] {
        try expandList(list, parameter: "method", noun: "method", all: methods.filter { $0.applies(to: model) }.map(\.name)) { try spec($0).name }
    }

    /// Builds the method `name` for `model` from `configuration`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the knob at fault.
    public static func make(_ name: String, model: ExplainedModel, configuration c: MethodConfiguration,
                            context: MethodContext = MethodContext()) throws -> ConfiguredMethod {
        let spec = try spec(name)
        try c.validate(spec.knobs, ranges: spec.ranges)
        let built = try spec.build(model, c, context)
        let method: any AttributionMethod = model.fixedBatch == 1 ? ImageByImage(built) : built
        let baseline = spec.knobs.contains("baseline") ? try context.baseline ?? baselineValue(c, context.preprocessing) : .zero
        // Every knob the method read, as text, at the value it ran with: the method's own default
        // where the knob was unset, the CAM layer it resolved to. The batch is left out: results
        // do not depend on it.
        var parameters: [String: String] = [:]
        for knob in spec.knobs where knob != "batch" && !(knob == "segmentation" && c.featureMask != nil) {
            if knob == "layer" {
                parameters[knob] = try model.camLayer(c.layer)
            } else if let value = c.text(knob) ?? spec.defaultValue(knob).map({ "\($0)" }) {
                parameters[knob] = value
            }
        }
        if context.baseline != nil, spec.knobs.contains("baseline") { parameters["baseline"] = "tensor" }
        if context.segmentation != nil, spec.knobs.contains("segmentation") {
            parameters["segmentation"] = "labels"
            parameters["segments"] = nil
            parameters["featureMask"] = nil
        }
        return ConfiguredMethod(method: method, baseline: baseline, parameters: parameters)
    }

    /// The ``Baseline`` a `baseline` knob names.
    static func baselineValue(_ c: MethodConfiguration, _ preprocessing: Preprocessing) throws -> Baseline {
        switch c.baseline {
        case "zero": return .zero
        case "black":
            try preprocessing.validate()
            return .perChannel((0..<3).map { -preprocessing.mean[$0] / preprocessing.std[$0] })
        case "mean": return .channelMean
        case "blur": return .blurred(sigma: 10)
        case "noise": return .uniformNoise(low: -1, high: 1, seed: c.seed)
        case let path where path.lowercased().hasSuffix(".npy"):
            return .tensor(try NPY.read(path))
        default:
            throw XAIError.invalidArgument(parameter: "baseline", value: c.baseline, reason: "none of zero, black, mean, blur, noise or a .npy file")
        }
    }

    /// The score the `score` knob names, or the method's own default where it is unset.
    static func score(_ c: MethodConfiguration, default method: ScoreOutput) throws -> ScoreOutput {
        guard let name = c.score else { return method }
        guard let output = ScoreOutput(rawValue: name) else {
            throw XAIError.invalidArgument(parameter: "score", value: name, reason: "neither logit nor probability")
        }
        return output
    }

    /// The superpixels the `segmentation`, `segments` and `featureMask` knobs name.
    static func segmentation(_ c: MethodConfiguration, _ context: MethodContext) throws -> Segmentation {
        if let given = context.segmentation { return given }
        if let featureMask = c.featureMask {
            if featureMask.lowercased().hasSuffix(".npy") { return .labels(try NPY.read(featureMask)) }
            // A picture: each distinct colour is one segment.
            let picture = try RGBImage.read(featureMask)
            var ids = [Float](repeating: 0, count: picture.width * picture.height)
            for p in ids.indices {
                let (r, g, b) = (Int(picture.pixels[3 * p]), Int(picture.pixels[3 * p + 1]), Int(picture.pixels[3 * p + 2]))
                ids[p] = Float(r << 16 | g << 8 | b)
            }
            return .labels(Tensor(unchecked: [picture.height, picture.width], ids))
        }
        switch c.segmentation {
        case "slic": return .slic(SLIC(segments: c.segments))
        case "quickshift": return .quickshift(Quickshift())
        case "felzenszwalb": return .felzenszwalb(Felzenszwalb(scale: 100))
        case "grid": return .grid(rows: c.segments, columns: c.segments)
        default:
            throw XAIError.invalidArgument(parameter: "segmentation", value: c.segmentation, reason: "none of slic, quickshift, felzenszwalb, grid")
        }
    }
}

/// The names of a comma-separated list (`all` standing for `all`), each checked by `name`, with
/// duplicates dropped and the order kept: what the method and metric registries both parse.
/// - Throws: `name`'s error, or ``XAIError/invalidArgument(parameter:value:reason:)`` for an empty list.
func expandList(_ list: String, parameter: String, noun: String, all: [String], _ name: (String) throws -> String) throws -> [String] {
    var result: [String] = []
    for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
        result += item == "all" ? all : [try name(item)]
    }
    guard !result.isEmpty else { throw XAIError.invalidArgument(parameter: parameter, value: list, reason: "name at least one \(noun)") }
    var seen = Set<String>()
    return result.filter { seen.insert($0).inserted }
}
