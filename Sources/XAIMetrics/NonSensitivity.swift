import Foundation
import XAICore
import XAIMethods

/// Non-sensitivity (Nguyen & Martínez 2020, "On quantitative aspects of model interpretability"),
/// as Quantus 0.6.0's `NonSensitivity`: an explanation should give no attribution exactly to the
/// features whose removal leaves the prediction where it was. Each feature, a square patch of
/// `patchSize` pixels on every channel (the patches at the right and bottom edges cut short), is
/// replaced alone by the substrate, and is a violation where one of the two holds but not the
/// other: its largest `|map| / max |map|` is below `epsilon`, and the target's softmax probability
/// moves by less than `epsilon`. The score is the share of features in violation, Quantus's count
/// over the number of features (at `patchSize` 1 and `--substrate black` its features are xai's
/// pixels). Lower is better. One forward per feature, so a patch of 1 at 224x224 is 50,176
/// forwards per image; each runs incrementally, as occlusion's, recomputing only what its patch
/// reaches from the clean image's activations (the settings give the share of the full passes'
/// convolution work that ran, per image).
public struct NonSensitivity: Sendable {
    public var patchSize: Int
    public var epsilon: Float
    public var substrate: PixelCurve.Substrate
    public var perturbationsPerEval: Int?

    /// Quantus's `eps`. A stored default, not a literal in the initialiser's signature: a literal
    /// default is compiled into each caller, so a change to it would not reach them.
    public static let defaultEpsilon: Float = 1e-5

    public init(patchSize: Int = 8, epsilon: Float = defaultEpsilon, substrate: PixelCurve.Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.patchSize = patchSize
        self.epsilon = epsilon
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    /// Checks the patch size against an image of `height` x `width` pixels, and epsilon.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`patchSize`, `epsilon`).
    public func validate(height: Int, width: Int) throws {
        guard patchSize >= 1, patchSize <= min(height, width) else {
            throw XAIError.invalidArgument(parameter: "patchSize", value: "\(patchSize)", reason: "must be between 1 and the image's shorter side (\(min(height, width)))")
        }
        guard epsilon.isFinite, epsilon >= 0 else {
            throw XAIError.invalidArgument(parameter: "epsilon", value: "\(epsilon)", reason: "must be a non-negative number")
        }
    }

    /// The patches covering an image, row by row.
    public func patches(height: Int, width: Int) -> [MaskRect] {
        stride(from: 0, to: height, by: max(patchSize, 1)).flatMap { top in
            stride(from: 0, to: width, by: max(patchSize, 1)).map { left in
                MaskRect(top: top, left: left, height: min(patchSize, height - top), width: min(patchSize, width - left))
            }
        }
    }

    /// The features of one map `[H * W]`: whether each patch holds no attribution (every
    /// `|map| / max |map|` below epsilon; an all-zero map holds none anywhere).
    func unattributed(_ map: ArraySlice<Float>, width: Int, patches: [MaskRect]) -> [Bool] {
        let largest = map.reduce(Float(0)) { max($0, abs($1)) }
        let start = map.startIndex
        return patches.map { r in
            for y in r.top..<(r.top + r.height) {
                for x in r.left..<(r.left + r.width) {
                    let a = abs(map[start + y * width + x])
                    if (largest > 0 ? a / largest : 0) >= epsilon { return false }
                }
            }
            return true
        }
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "non_sensitivity")
        try validate(height: h, width: w)
        let patches = patches(height: h, width: w)
        let (_, targets) = try model.prepare(images, target: target)
        let engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: .probability, progress: progress)
        let be = model.backend
        // Copy 0 is the clean image (an empty rectangle); copy k + 1 removes patch k alone.
        let rects = [MaskRect(top: 0, left: 0, height: 0, width: 0)] + patches
        var scores: [Double] = [], work: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let zero = unattributed(mapValues(maps, b, pixels: h * w), width: w, patches: patches)
            // Incremental, as occlusion's: each copy reruns only what its patch reaches.
            let (p, fraction) = try engine.scoresWithRectanglesRemoved(image: try be.upload(image), baseline: try be.upload(try substrate.tensor(for: image, model: model)),
                                                                       rects: rects, target: targets[b])
            work.append(fraction)
            let violations = zip(zero, p.dropFirst()).filter { unattributed, moved in (abs(moved - p[0]) < Double(epsilon)) != unattributed }.count
            scores.append(Double(violations) / Double(patches.count))
        }
        return MetricResult(metric: "non_sensitivity", direction: .lowerIsBetter, scores: scores,
                            settings: ["patchSize": "\(patchSize)", "features": "\(patches.count)",
                                       "convolutionWork": work.map { String(format: "%.3f", $0) }.joined(separator: ","), "epsilon": "\(epsilon)", "substrate": substrate.rawValue,
                                       "score": "softmax probability of the target",
                                       "definition": "share of patches where (probability moves by < epsilon when it alone is removed) differs from (every |map| / max |map| in it < epsilon)"])
    }
}
