import Foundation

/// The knobs of every method, under the names the registry, the C ABI and Python use (the command
/// line spells them as flags: `gradcamppScore` is `--gradcampp-score`). Each method reads the knobs
/// it lists in ``MethodSpec/knobs``; the rest are ignored. Decodable from JSON, where a missing key
/// keeps its default and an unknown key is an error.
public struct MethodConfiguration: Codable, Sendable, Equatable {
    /// Integrated Gradients path steps.
    public var steps = 50
    /// Integrated Gradients rule: gausslegendre, trapezoid, left, right or middle.
    public var rule = "gausslegendre"
    /// Samples: SmoothGrad (default 50), LIME and KernelSHAP (default 1000).
    public var samples: Int?
    /// LIME and KernelSHAP: stop sampling once the split-half rank correlation of the attribution
    /// reaches this (off by default, so results stay comparable across runs and libraries).
    public var untilStable: Double?
    /// KernelSHAP: how coalitions of the sizes not enumerated are drawn, kernel (shap's) or leverage.
    public var coalitionSampling = "kernel"
    /// KernelSHAP: fit a surrogate game with known Shapley values first and estimate only the rest.
    public var controlVariate = true
    /// SmoothGrad noise as a fraction of the image's value range.
    public var noise: Float = 0.15
    /// Baseline: zero, black (0 before normalisation), mean (per channel), blur (sigma 10), noise
    /// (uniform in [-1, 1]), or a `.npy` tensor `[3, H, W]`.
    public var baseline = "zero"
    /// Superpixels for LIME and KernelSHAP: slic, quickshift, felzenszwalb or grid.
    public var segmentation = "slic"
    /// SLIC segment count (scikit-image's n_segments); for grid, cells per side.
    public var segments = 50
    /// A label map used as superpixels instead: `.npy` `[H, W]` of integer ids, or a PNG whose colours are the segments.
    public var featureMask: String?
    /// Occlusion window side in pixels.
    public var window = 16
    /// Occlusion stride in pixels.
    public var stride = 8
    /// Occlusion: recompute, layer by layer, only what each window changes (exact); `false` runs
    /// every occluded copy through the whole network.
    public var incremental = true
    /// RISE mask count.
    public var masks = 4000
    /// Meaningful Perturbation optimisation steps.
    public var iterations = 300
    /// Layer for the CAM methods (default: the last 4-D activation before global pooling).
    public var layer: String?
    /// Score Grad-CAM++ differentiates: exponential or probability.
    public var gradcamppScore = "exponential"
    /// Whether the gradient CAM methods clip their map at zero (pytorch-grad-cam always does; Captum's
    /// LayerGradCam only with `relu_attributions=True`).
    public var relu = true
    /// Perturbed copies or path points per device batch (default: from the memory budget).
    public var batch: Int?
    /// Seed of every stochastic method.
    public var seed: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, rule, samples, untilStable, coalitionSampling, controlVariate, noise, baseline, segmentation, segments, featureMask, window, stride, incremental, masks, iterations
        case layer, gradcamppScore, relu, batch, seed
    }

    /// Every knob's name.
    public static var knobNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// Every knob with its type, default, valid range and meaning: what `xai methods`, the command
    /// line's help, the C ABI's method list and Python show. The defaults are the property
    /// initialisers above (read back through ``defaults``), so they are written once.
    public static let knobs: [Knob] = [
        Knob("steps", .integer, "Integrated Gradients path steps.", minimum: 1, maximum: 100_000),
        Knob("rule", .string, "Integrated Gradients rule.", choices: IntegrationRule.allCases.map(\.rawValue)),
        Knob("samples", .integer, "Samples: SmoothGrad (default 50), LIME and KernelSHAP (default 1000).", minimum: 1, maximum: 10_000_000),
        Knob("untilStable", .number, "LIME and KernelSHAP: sample in rounds and stop once two halves of the samples rank the segments alike (split-half Spearman correlation) at least this well, or the samples run out (off by default).",
             minimum: 0, maximum: 1),
        Knob("coalitionSampling", .string, "KernelSHAP: how the coalitions of the sizes not enumerated are drawn: kernel (in proportion to the Shapley kernel, as shap) or leverage (every size alike, weighted by kernel over chance: Musco & Witter's leverage scores, a lower error for the same budget).",
             choices: KernelSHAP.Sampling.allCases.map(\.rawValue)),
        Knob("controlVariate", .boolean, "KernelSHAP: first fit a surrogate game whose Shapley values are known exactly (the score as a function of how many segments are shown, plus each segment's effect varying with that) and estimate only what it misses: a steadier map for the same budget. false gives shap's plain fit."),
        Knob("noise", .number, "SmoothGrad noise as a fraction of the image's value range.", minimum: 0),
        Knob("baseline", .string, "Baseline: zero, black (0 before normalisation), mean (per channel), blur (sigma 10), noise (uniform in [-1, 1]), or a .npy tensor [3,H,W]."),
        Knob("segmentation", .string, "Superpixels for LIME and KernelSHAP.", choices: ["slic", "quickshift", "felzenszwalb", "grid"]),
        Knob("segments", .integer, "SLIC segment count (scikit-image's n_segments); for grid, cells per side.", minimum: 1, maximum: 16_777_216),
        Knob("featureMask", .string, "A label map at the model's input size to use as superpixels instead: .npy [H,W] of integer ids, or a PNG whose colours are the segments."),
        Knob("window", .integer, "Occlusion window side in pixels.", minimum: 1),
        Knob("stride", .integer, "Occlusion stride in pixels.", minimum: 1),
        Knob("incremental", .boolean, "Occlusion: recompute, layer by layer, only the part of each activation an occluded window changes (exact; about half the convolution work on ResNet-50); false runs every occluded copy through the whole network."),
        Knob("masks", .integer, "RISE mask count.", minimum: 2, maximum: 10_000_000),
        Knob("iterations", .integer, "Meaningful Perturbation optimisation steps.", minimum: 1, maximum: 1_000_000),
        Knob("layer", .string, "Layer for the CAM methods (default: the last 4-D activation before global pooling)."),
        Knob("gradcamppScore", .string, "Score Grad-CAM++ differentiates: exponential (exp(logit), pytorch-grad-cam's closed form) or probability (the softmax, exact higher derivatives; global-average-pooling + linear heads).",
             choices: ["exponential", "probability"]),
        Knob("relu", .boolean, "Whether the gradient CAM methods keep only positive evidence (clip the map at zero), as pytorch-grad-cam always does; false gives Captum's LayerGradCam default."),
        Knob("batch", .integer, "Perturbed copies or path points per device batch (default: from the memory budget).", minimum: 1),
        Knob("seed", .integer, "Seed of every stochastic method.", minimum: 0),
    ]

    /// The knob called `name`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming an unknown knob.
    public static func knob(_ name: String) throws -> Knob {
        guard let k = knobs.first(where: { $0.name == name }) else {
            throw XAIError.invalidArgument(parameter: name, value: "", reason: "not a knob (knobs: \(knobNames.joined(separator: ", ")))")
        }
        return k
    }

    /// The knobs' values as JSON values by name (absent where a knob is unset, like `layer`).
    public var values: [String: Any] {
        let encoder = JSONEncoder()
        guard let data = try? encoder.encode(self), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    /// The default of every knob that has one, as JSON values.
    public static var defaults: [String: Any] { MethodConfiguration().values }

    /// Checks the knobs `names` against their ranges and choices.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the first knob out of range.
    public func validate(_ names: [String]) throws {
        let values = self.values
        for name in names {
            guard let value = values[name] else { continue }
            try Self.knob(name).check(value)
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = MethodConfiguration()
        d.steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        d.rule = try c.decodeIfPresent(String.self, forKey: .rule) ?? d.rule
        d.samples = try c.decodeIfPresent(Int.self, forKey: .samples)
        d.untilStable = try c.decodeIfPresent(Double.self, forKey: .untilStable)
        d.coalitionSampling = try c.decodeIfPresent(String.self, forKey: .coalitionSampling) ?? d.coalitionSampling
        d.controlVariate = try c.decodeIfPresent(Bool.self, forKey: .controlVariate) ?? d.controlVariate
        d.noise = try c.decodeIfPresent(Float.self, forKey: .noise) ?? d.noise
        d.baseline = try c.decodeIfPresent(String.self, forKey: .baseline) ?? d.baseline
        d.segmentation = try c.decodeIfPresent(String.self, forKey: .segmentation) ?? d.segmentation
        d.segments = try c.decodeIfPresent(Int.self, forKey: .segments) ?? d.segments
        d.featureMask = try c.decodeIfPresent(String.self, forKey: .featureMask)
        d.window = try c.decodeIfPresent(Int.self, forKey: .window) ?? d.window
        d.stride = try c.decodeIfPresent(Int.self, forKey: .stride) ?? d.stride
        d.incremental = try c.decodeIfPresent(Bool.self, forKey: .incremental) ?? d.incremental
        d.masks = try c.decodeIfPresent(Int.self, forKey: .masks) ?? d.masks
        d.iterations = try c.decodeIfPresent(Int.self, forKey: .iterations) ?? d.iterations
        d.layer = try c.decodeIfPresent(String.self, forKey: .layer)
        d.gradcamppScore = try c.decodeIfPresent(String.self, forKey: .gradcamppScore) ?? d.gradcamppScore
        d.relu = try c.decodeIfPresent(Bool.self, forKey: .relu) ?? d.relu
        d.batch = try c.decodeIfPresent(Int.self, forKey: .batch)
        d.seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        self = d
    }

    /// Parses a JSON object of knobs (`{"steps": 32, "rule": "middle"}`).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming the unknown or
    ///   mistyped knob, or the malformed text.
    public static func parse(json: Data) throws -> MethodConfiguration {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed])
        } catch {
            throw XAIError.invalidArgument(parameter: "configuration", value: String(decoding: json.prefix(80), as: UTF8.self),
                                           reason: "not JSON: \(error.localizedDescription)")
        }
        guard let dictionary = object as? [String: Any] else {
            throw XAIError.invalidArgument(parameter: "configuration", value: String(decoding: json.prefix(80), as: UTF8.self), reason: "not a JSON object of knobs")
        }
        let known = Set(knobNames)
        if let unknown = dictionary.keys.sorted().first(where: { !known.contains($0) }) {
            throw XAIError.invalidArgument(parameter: unknown, value: "", reason: "not a knob (knobs: \(knobNames.joined(separator: ", ")))")
        }
        do {
            return try JSONDecoder().decode(MethodConfiguration.self, from: json)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context), let DecodingError.dataCorrupted(context) {
            let key = context.codingPath.last?.stringValue ?? "configuration"
            throw XAIError.invalidArgument(parameter: key, value: "", reason: "wrong type or value: \(context.debugDescription)")
        } catch {
            throw XAIError.invalidArgument(parameter: "configuration", value: "", reason: "\(error)")
        }
    }
}

/// One knob of ``MethodConfiguration``: its name (the registry's, the C ABI's and Python's; the
/// command line spells it as a flag), type, range and meaning.
public struct Knob: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case integer, number, string, boolean
    }

    public let name: String
    public let kind: Kind
    public let summary: String
    public let minimum: Double?
    public let maximum: Double?
    /// The values a string knob takes, where it is one of a few.
    public let choices: [String]?

    init(_ name: String, _ kind: Kind, _ summary: String, minimum: Double? = nil, maximum: Double? = nil, choices: [String]? = nil) {
        self.name = name
        self.kind = kind
        self.summary = summary
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
    }

    /// The knob as JSON, with `defaultValue` where it has one.
    public func json(defaultValue: Any?) -> [String: Any] {
        var o: [String: Any] = ["name": name, "type": kind.rawValue, "summary": summary]
        if let defaultValue { o["default"] = defaultValue }
        if let minimum { o["minimum"] = minimum }
        if let maximum { o["maximum"] = maximum }
        if let choices { o["choices"] = choices }
        return o
    }

    /// Checks a JSON value against the range and choices.
    func check(_ value: Any) throws {
        if let number = value as? NSNumber, kind == .integer || kind == .number {
            let v = number.doubleValue
            let range = [minimum.map { ">= \(Self.text($0))" }, maximum.map { "<= \(Self.text($0))" }].compactMap { $0 }.joined(separator: " and ")
            guard v.isFinite, minimum.map({ v >= $0 }) ?? true, maximum.map({ v <= $0 }) ?? true else {
                throw XAIError.invalidArgument(parameter: name, value: "\(number)", reason: "must be \(range.isEmpty ? "finite" : range)")
            }
        } else if let text = value as? String, let choices {
            guard choices.contains(text) else {
                throw XAIError.invalidArgument(parameter: name, value: text, reason: "none of \(choices.joined(separator: ", "))")
            }
        }
    }

    private static func text(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? "\(Int(v))" : "\(v)" }
}
