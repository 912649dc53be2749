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
    /// RISE mask count.
    public var masks = 4000
    /// Meaningful Perturbation optimisation steps.
    public var iterations = 300
    /// Layer for the CAM methods (default: the last 4-D activation before global pooling).
    public var layer: String?
    /// Score Grad-CAM++ differentiates: exponential or probability.
    public var gradcamppScore = "exponential"
    /// Perturbed copies or path points per device batch (default: from the memory budget).
    public var batch: Int?
    /// Seed of every stochastic method.
    public var seed: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, rule, samples, noise, baseline, segmentation, segments, featureMask, window, stride, masks, iterations
        case layer, gradcamppScore, batch, seed
    }

    /// Every knob's name.
    public static var knobNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = MethodConfiguration()
        d.steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        d.rule = try c.decodeIfPresent(String.self, forKey: .rule) ?? d.rule
        d.samples = try c.decodeIfPresent(Int.self, forKey: .samples)
        d.noise = try c.decodeIfPresent(Float.self, forKey: .noise) ?? d.noise
        d.baseline = try c.decodeIfPresent(String.self, forKey: .baseline) ?? d.baseline
        d.segmentation = try c.decodeIfPresent(String.self, forKey: .segmentation) ?? d.segmentation
        d.segments = try c.decodeIfPresent(Int.self, forKey: .segments) ?? d.segments
        d.featureMask = try c.decodeIfPresent(String.self, forKey: .featureMask)
        d.window = try c.decodeIfPresent(Int.self, forKey: .window) ?? d.window
        d.stride = try c.decodeIfPresent(Int.self, forKey: .stride) ?? d.stride
        d.masks = try c.decodeIfPresent(Int.self, forKey: .masks) ?? d.masks
        d.iterations = try c.decodeIfPresent(Int.self, forKey: .iterations) ?? d.iterations
        d.layer = try c.decodeIfPresent(String.self, forKey: .layer)
        d.gradcamppScore = try c.decodeIfPresent(String.self, forKey: .gradcamppScore) ?? d.gradcamppScore
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
