import Foundation

/// The knobs of every method, under the names the registry, the C ABI and Python use (the command
/// line spells them as flags: `gradcamppScore` is `--gradcampp-score`). Each method reads the knobs
/// it lists in ``MethodSpec/knobs``; the rest are ignored. Each knob is declared once, in
/// ``fields``: its property below holds the default.
public struct MethodConfiguration: KnobConfiguration, Equatable {
    public var steps = 50
    public var rule = "gausslegendre"
    /// SmoothGrad's default is 50 samples, LIME's and KernelSHAP's 1000 (``MethodSpec/defaultOverrides``).
    public var samples: Int?
    public var untilStable: Double?
    public var coalitionSampling = "kernel"
    public var controlVariate = true
    public var noise: Float = 0.15
    public var absolute = false
    public var stdevs: Float = 0
    public var composite = LRPComposite.epsilonPlusFlat.rawValue
    public var epsilon: Float = 1e-6
    public var gamma: Float = 0.25
    public var baseline = "zero"
    public var segmentation = "slic"
    public var segments = 50
    public var featureMask: String?
    public var window = 16
    public var stride = 8
    public var incremental = true
    public var masks = 4000
    /// Each perturbation method's own default where unset (``MethodSpec/defaultOverrides``).
    public var score: String?
    public var iterations = 300
    public var layer: String?
    public var gradcamppScore = "exponential"
    public var relu = true
    public var ablation = "auto"
    public var femSigmas: Float = 2
    public var kpcaKernel = KPCACAM.Kernel.sigmoid.rawValue
    public var kpcaGamma: Double?
    public var finerAlpha: Float = 1
    public var shapleyScore = ShapleyCAM.Score.rest.rawValue
    public var batch: Int?
    public var seed: UInt64 = 0

    public init() {}

    /// Every knob with its type, range and meaning: what `xai methods`, the command line's flags
    /// and help, the C ABI's method list and Python show. A method that takes less of a knob than
    /// its range here narrows it in ``MethodSpec/ranges``.
    public static let fields: [KnobField<MethodConfiguration>] = [
        .integer(\.steps, Knob("steps", .integer, "Integrated Gradients path steps.", minimum: 1, maximum: Double(IntegrationRule.maximumSteps))),
        .string(\.rule, Knob("rule", .string, "Integrated Gradients rule.", choices: IntegrationRule.allCases.map(\.rawValue))),
        .integer(\.samples, Knob("samples", .integer, "Samples: SmoothGrad and GradientSHAP (default 50), LIME and KernelSHAP (default 1000).", minimum: 1, maximum: 10_000_000)),
        .number(\.untilStable, Knob("untilStable", .number, "LIME and KernelSHAP: sample in rounds and stop once two halves of the samples rank the segments alike (split-half Spearman correlation) at least this well, or the samples run out (off by default).",
                                     minimum: 0, maximum: 1)),
        .string(\.coalitionSampling, Knob("coalitionSampling", .string, "KernelSHAP: how the coalitions of the sizes not enumerated are drawn: kernel (in proportion to the Shapley kernel, as shap) or leverage (every size alike, weighted by kernel over chance: Musco & Witter's leverage scores, a lower error for the same budget).",
                                           choices: KernelSHAP.Sampling.allCases.map(\.rawValue))),
        .boolean(\.controlVariate, Knob("controlVariate", .boolean, "KernelSHAP: first fit a surrogate game whose Shapley values are known exactly (the score as a function of how many segments are shown, plus each segment's effect varying with that) and estimate only what it misses: a steadier map for the same budget. false gives shap's plain fit.")),
        .number(\.noise, Knob("noise", .number, "SmoothGrad noise as a fraction of the image's value range.", minimum: 0)),
        .boolean(\.absolute, Knob("absolute", .boolean, "SmoothGrad: average the gradients' magnitudes, mean |g| (Captum's NoiseTunnel over Saliency with abs=True), instead of the gradients, mean g.")),
        .number(\.stdevs, Knob("stdevs", .number, "GradientSHAP: standard deviation of the Gaussian noise added to the input at each sample, in input units (Captum's stdevs; 0: none).", minimum: 0)),
        .string(\.composite, Knob("composite", .string, "LRP: which rule each layer takes, as Zennit's composites: epsilon-plus-flat (first layer flat, convolutions z+, dense epsilon), epsilon-gamma-box (first convolution z-box within the preprocessed pixel range, convolutions gamma, dense epsilon), epsilon-alpha2-beta1 (convolutions alpha 2 beta 1, dense epsilon).",
                                    choices: LRPComposite.allCases.map(\.rawValue))),
        .number(\.epsilon, Knob("epsilon", .number, "LRP: the epsilon rule's stabiliser on dense layers (Zennit's default 1e-6).", minimum: 0)),
        .number(\.gamma, Knob("gamma", .number, "LRP: the gamma rule's boost of positive weights (epsilon-gamma-box; Zennit's default 0.25).", minimum: 0)),
        .string(\.baseline, Knob("baseline", .string, "Baseline: zero, black (0 before normalisation), mean (per channel), blur (sigma 10), noise (uniform in [-1, 1]), or a .npy tensor [3,H,W] (for GradientSHAP also [K,3,H,W]: K baselines drawn from).")),
        .string(\.segmentation, Knob("segmentation", .string, "Superpixels for LIME and KernelSHAP.", choices: ["slic", "quickshift", "felzenszwalb", "grid"])),
        .integer(\.segments, Knob("segments", .integer, "SLIC segment count (scikit-image's n_segments); for grid, cells per side.", minimum: 1, maximum: 16_777_216)),
        .string(\.featureMask, Knob("featureMask", .string, "A label map at the model's input size to use as superpixels instead: .npy [H,W] of integer ids, or a PNG whose colours are the segments.")),
        .integer(\.window, Knob("window", .integer, "Occlusion window side in pixels.", minimum: 1)),
        .integer(\.stride, Knob("stride", .integer, "Occlusion stride in pixels.", minimum: 1)),
        .boolean(\.incremental, Knob("incremental", .boolean, "Occlusion: recompute, layer by layer, only the part of each activation an occluded window changes (exact; about half the convolution work on ResNet-50); false runs every occluded copy through the whole network.")),
        .string(\.score, Knob("score", .string, "Perturbation methods: the number read off the model for each perturbed copy: logit (the target's logit; the default of occlusion, LIME and KernelSHAP, as Captum's) or probability (its softmax; the default of RISE and Meaningful Perturbation, as their papers'; a confident model's probability saturates near 1, where small changes barely move it).",
                                choices: ScoreOutput.allCases.map(\.rawValue))),
        .integer(\.masks, Knob("masks", .integer, "RISE mask count.", minimum: Double(RISE.maskRange.lowerBound), maximum: Double(RISE.maskRange.upperBound))),
        .integer(\.iterations, Knob("iterations", .integer, "Meaningful Perturbation optimisation steps.",
                                    minimum: Double(MeaningfulPerturbation.iterationRange.lowerBound), maximum: Double(MeaningfulPerturbation.iterationRange.upperBound))),
        .string(\.layer, Knob("layer", .string, "Layer for the CAM methods and guided Grad-CAM (default: the last 4-D activation before global pooling).")),
        .string(\.gradcamppScore, Knob("gradcamppScore", .string, "Score Grad-CAM++ differentiates: exponential (exp(logit), pytorch-grad-cam's closed form) or probability (the softmax, exact higher derivatives; global-average-pooling + linear heads).",
                                        choices: GradientCAM.PlusPlusScore.allCases.map(\.rawValue))),
        .boolean(\.relu, Knob("relu", .boolean, "Whether the CAM methods (gradient and eigen) keep only positive evidence (clip the map at zero), as pytorch-grad-cam always does; false gives Captum's LayerGradCam default.")),
        .string(\.ablation, Knob("ablation", .string, "Ablation-CAM: the value an ablated channel takes: auto (pytorch-grad-cam's at its batch_size 1: 0 where the layer's smallest value is 0, as after a ReLU, else that value minus 1e7; with more copies a batch pytorch-grad-cam takes later copies further down) or zero (the paper's; after a LayerNorm, a transformer's CAM layer, minus 1e7 swamps every value the next norm sees).",
                                   choices: AblationCAM.Ablation.allCases.map(\.rawValue))),
        .number(\.femSigmas, Knob("femSigmas", .number, "FEM: a channel weighs the share of its positions above its mean plus this many standard deviations (pytorch-grad-cam's k).")),
        .string(\.kpcaKernel, Knob("kpcaKernel", .string, "KPCA-CAM: the kernel of the kernel PCA (scikit-learn's, with its defaults; sigmoid is pytorch-grad-cam's).",
                                   choices: KPCACAM.Kernel.allCases.map(\.rawValue))),
        .number(\.kpcaGamma, Knob("kpcaGamma", .number, "KPCA-CAM: the kernel's gamma (default: 1 / the layer's channels, scikit-learn's).")),
        .number(\.finerAlpha, Knob("finerAlpha", .number, "Finer-CAM: how strongly the three classes closest to the target's logit are subtracted from it (0: Grad-CAM).")),
        .string(\.shapleyScore, Knob("shapleyScore", .string, "ShapleyCAM: the score whose gradient and Hessian weigh the channels: rest (the logit minus the cross-entropy, the paper's and pytorch-grad-cam's ClassifierOutputReST), probability (the softmax) or logit (pytorch-grad-cam's default target: no curvature along a piecewise-linear head, so Grad-CAM's map).",
                                        choices: ShapleyCAM.Score.allCases.map(\.rawValue))),
        .integer(\.batch, Knob("batch", .integer, "Perturbed copies or path points per device batch (default: from the memory budget).", minimum: 1)),
        .seed(\.seed, Knob("seed", .integer, "Seed of every stochastic method.", minimum: 0)),
    ]
}
