import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Monotonicity correlation (Nguyen & Martínez 2020, "On quantitative aspects of model
/// interpretability"), as Quantus 0.6's `MonotonicityCorrelation`: the pixels are ordered by
/// |map|, lowest first (ties by index), and cut into consecutive groups of `step`; each group alone
/// is filled, every channel, with a value drawn uniformly from [0, 1) (Quantus's "uniform"
/// baseline, one value per copy), `samples` times, and the group's effect is the mean squared
/// change of the target's softmax probability over those copies. The score is the Spearman
/// correlation of the groups' |map| sums with their effects: a map whose larger values mark the
/// pixels that move the prediction more scores near 1. Higher is better.
///
/// Quantus draws a value per group and copy; xai draws one per copy `s` (the SplitMix64 stream
/// seeded `seed &+ 1_000_003 * image &+ s`) and fills every group of that copy with it: common
/// random numbers, so the groups' effects differ by the pixels removed, not by the draws. Quantus
/// scales the effects by 1 / y(x)^2, which leaves the rank correlation unchanged. Quantus's
/// groups are of input elements (a channel of a pixel), one by default (H*W*C groups of 100
/// evaluations each); xai's are whole pixels, deletion's step by default (about 224 groups), and
/// a step that does not divide the image leaves the last group short. Three groups at least.
public struct MonotonicityCorrelation: Sendable {
    /// The copies per group it takes.
    public static let sampleRange = 1...10_000
    public var step: Int?
    public var samples: Int
    public var seed: UInt64
    public var perturbationsPerEval: Int?

    public init(step: Int? = nil, samples: Int = 10, seed: UInt64 = 0, perturbationsPerEval: Int? = nil) {
        self.step = step
        self.samples = samples
        self.seed = seed
        self.perturbationsPerEval = perturbationsPerEval
    }

    /// The group size for `pixels` pixels (deletion's step); a correlation needs three groups.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`step`, `samples`).
    public func resolvedStep(pixels: Int) throws -> Int {
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "monotonicity correlation needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) copies per group")
        }
        return try PixelCurve.step(step, pixels: pixels, atLeast: 3, "monotonicity_correlation correlates three or more groups")
    }

    /// The value every removed pixel of copy `sample` of image `image` takes.
    public func fill(image: Int, sample: Int) -> Float {
        Tensor.uniform([1], in: 0...1, seed: copySeed(seed, image: image, copy: sample)).scalars[0]
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "monotonicity_correlation")
        let pixels = h * w
        let step = try resolvedStep(pixels: pixels)
        let groups = (pixels + step - 1) / step
        let (_, targets) = try model.prepare(images, target: target)
        let engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: .probability, progress: progress)
        let be = model.backend
        var scores: [Double] = [], curves: [[Double]] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let (group, sums) = PixelCurve.groups(mapValues(maps, b, pixels: pixels).map { abs(Double($0)) }, step: step, descending: false)
            let labels = try be.upload(Tensor(unchecked: Shape([h, w]), group.map(Float.init)))
            let x = try be.upload(image)
            let removeOne: (Range<Int>) -> MaskSpec = { range in
                .segments(labels: labels, rows: range.map { copy in (0..<groups).map { $0 != copy } }[...], segmentCount: groups)
            }
            let clean = try engine.evaluate(image: x, baseline: x, target: targets[b], count: 1) { range in
                .segments(labels: labels, rows: range.map { _ in [Bool](repeating: true, count: groups) }[...], segmentCount: groups)
            }[0]
            // Copy s fills each group in turn with its value: one batch of `groups` copies per draw.
            var effects = [Double](repeating: 0, count: groups)
            for s in 0..<samples {
                let value = fill(image: b, sample: s)
                let substrate = try be.upload(Tensor(unchecked: image.shape, [Float](repeating: value, count: image.shape.count)))
                let y = try engine.evaluate(image: x, baseline: substrate, target: targets[b], count: groups, describe: removeOne)
                for g in 0..<groups { effects[g] += (y[g] - clean) * (y[g] - clean) / Double(samples) }
            }
            scores.append(Similarity.spearman(sums, effects))
            curves.append(effects)
        }
        return MetricResult(metric: "monotonicity_correlation", direction: .higherIsBetter, scores: scores,
                            settings: ["step": "\(step)", "groups": "\(groups)", "samples": "\(samples)", "seed": "\(seed)",
                                       "order": "ascending |map|, ties by pixel index", "fill": "uniform in [0, 1), one value per copy, every channel",
                                       "score": "softmax probability of the target",
                                       "definition": "Spearman(|map| sum over each group, mean squared probability change when that group alone is filled)"],
                            curves: curves)
    }
}
