import Foundation
import XAICore
import XAIGraph

/// How LIME picks the segments its local linear model uses (lime's `feature_selection`).
public enum FeatureSelection: String, Sendable, CaseIterable {
    /// Forward selection when at most 6 features are wanted, highest weights otherwise.
    case auto
    /// Every segment.
    case none
    /// The largest |coefficients| of a ridge fit (alpha 0.01) on every segment.
    case highestWeights = "highest_weights"
    /// Greedily adds the segment that most raises the weighted R^2 of an unregularised fit.
    case forwardSelection = "forward_selection"
}

/// LIME (Ribeiro et al.) on superpixels, as lime's image explainer does it: random on/off
/// coalitions of segments (the first sample keeps every segment), weighted by an exponential kernel
/// on their cosine distance to the full image, explained by a weighted ridge regression. `raw`
/// holds the per-segment coefficients; diagnostics the intercept, the local fit's weighted R^2 and
/// how well two halves of the samples agree.
public struct LIME: ModelMethod {
    /// The sample counts LIME takes (a ridge fit needs a few).
    public static let sampleRange = 4...10_000_000

    public let name = "lime"
    public let model: ExplainedModel
    /// Perturbed samples, the unperturbed image included (default 1000).
    public var samples: Int
    /// Width of the exponential kernel on cosine distance (lime's default 0.25).
    public var kernelWidth: Double
    public var featureSelection: FeatureSelection
    /// Segments in the explanation (default: all).
    public var features: Int?
    /// Ridge penalty of the final fit (lime's default 1).
    public var ridgeAlpha: Double
    public var segmentation: Segmentation
    public var seed: UInt64
    /// Stop once the split-half rank correlation reaches this (off: every sample is used).
    public var untilStable: Double?
    public var engine: PerturbationEngine

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - samples: coalitions evaluated, the full image included (4 to 10,000,000).
    ///   - kernelWidth: width of lime's exponential kernel on cosine distance.
    ///   - featureSelection: how the segments of the final fit are chosen.
    ///   - features: segments in the explanation (default: all).
    ///   - ridgeAlpha: the final fit's ridge penalty.
    ///   - segmentation: how each image is split into superpixels.
    ///   - seed: the coalitions' seed.
    ///   - perturbationsPerEval: copies per forward batch (default: from the memory budget).
    ///   - untilStable: sample in rounds (``coalitionRound(samples:)``) and stop once the fits on the
    ///     two halves of the samples so far rank the segments alike (Spearman) at least this well;
    ///     the result is then exactly LIME with the samples used (the draws are one stream).
    ///   - output: the score read for each copy.
    ///   - progress: called after every batch.
    public init(model: ExplainedModel, samples: Int = 1000, kernelWidth: Double = 0.25, featureSelection: FeatureSelection = .auto,
                features: Int? = nil, ridgeAlpha: Double = 1, segmentation: Segmentation = .slic(SLIC()), seed: UInt64 = 0,
                perturbationsPerEval: Int? = nil, untilStable: Double? = nil, output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.samples = samples
        self.kernelWidth = kernelWidth
        self.featureSelection = featureSelection
        self.features = features
        self.ridgeAlpha = ridgeAlpha
        self.segmentation = segmentation
        self.seed = seed
        self.untilStable = untilStable
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "LIME needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) samples")
        }
        guard kernelWidth > 0, kernelWidth.isFinite else { throw XAIError.invalidArgument(parameter: "kernelWidth", value: "\(kernelWidth)", reason: "must be positive") }
        guard ridgeAlpha >= 0, ridgeAlpha.isFinite else { throw XAIError.invalidArgument(parameter: "ridgeAlpha", value: "\(ridgeAlpha)", reason: "must be a non-negative number") }
        try checkUntilStable(untilStable)
        return try explainSegments(model: model, engine: engine, segmentation: segmentation, input: input, target: target, baseline: baseline) { game in
            let m = game.players
            var rng = SeededGenerator(seed: seed)
            let rows: [[Bool]] = [[Bool](repeating: true, count: m)] + (1..<samples).map { _ in (0..<m).map { _ in rng.next() & 1 == 1 } }
            let weights = rows.map { Self.kernelWeight($0, width: kernelWidth) }
            // In rounds when asked to stop early; the first `used` samples are then LIME's with
            // `samples = used`, as the rows are one stream.
            var y: [Double] = [], used = 0, agreement = 0.0, chosen: [Int] = []
            repeat {
                let next = untilStable == nil ? samples : min(samples, used + coalitionRound(samples: samples))
                y += try game.values(Array(rows[used..<next]))
                used = next
                chosen = try select(Array(rows[..<used]), y, Array(weights[..<used]), players: m)
                // Settledness: the same fit on each half of the samples.
                let half = used / 2
                let a = weightedRidge(Array(rows[..<half]), Array(y[..<half]), Array(weights[..<half]), columns: chosen, alpha: ridgeAlpha)
                let b = weightedRidge(Array(rows[half..<used]), Array(y[half...]), Array(weights[half..<used]), columns: chosen, alpha: ridgeAlpha)
                agreement = try spearmanCorrelation(a.coefficients, b.coefficients)
            } while used < samples && agreement < (untilStable ?? -.infinity)
            let fit = weightedRidge(Array(rows[..<used]), y, Array(weights[..<used]), columns: chosen, alpha: ridgeAlpha)
            var coefficients = [Double](repeating: 0, count: m)
            for (k, j) in chosen.enumerated() { coefficients[j] = fit.coefficients[k] }
            return (coefficients, ["intercept": fit.intercept, "r2": fit.r2, "halfSplitRankCorrelation": agreement, "samplesUsed": Double(used)])
        }
    }

    /// lime's sample weight: an exponential kernel of width `width` on the cosine distance between
    /// the coalition (kept segments as ones) and the full image (all ones); a coalition keeping
    /// nothing is at distance 1, as scikit-learn's cosine distance puts a zero vector.
    public static func kernelWeight(_ row: [Bool], width: Double) -> Double {
        let kept = Double(row.lazy.filter { $0 }.count)
        let distance = kept == 0 ? 1 : 1 - kept / (kept * Double(row.count)).squareRoot()
        return exp(-distance * distance / (width * width)).squareRoot()
    }

    /// The segments the final fit uses.
    func select(_ rows: [[Bool]], _ y: [Double], _ w: [Double], players m: Int) throws -> [Int] {
        let k = features ?? m
        guard k >= 1 else { throw XAIError.invalidArgument(parameter: "features", value: "\(k)", reason: "LIME needs at least one feature") }
        if k >= m { return Array(0..<m) }
        switch featureSelection == .auto ? (k <= 6 ? .forwardSelection : .highestWeights) : featureSelection {
        case .none, .auto: return Array(0..<m)
        case .highestWeights:
            let c = weightedRidge(rows, y, w, columns: Array(0..<m), alpha: 0.01).coefficients
            return Array((0..<m).sorted { abs(c[$0]) > abs(c[$1]) || (abs(c[$0]) == abs(c[$1]) && $0 < $1) }.prefix(k)).sorted()
        case .forwardSelection:
            var chosen: [Int] = []
            for _ in 0..<k {
                var best = -Double.infinity, bestFeature = -1
                for j in 0..<m where !chosen.contains(j) {
                    let r2 = weightedRidge(rows, y, w, columns: chosen + [j], alpha: 0).r2
                    if r2 > best { best = r2; bestFeature = j }
                }
                chosen.append(bestFeature)
            }
            return chosen.sorted()
        }
    }
}

/// Samples per round for `--until-stable`: a sixteenth of the budget, at least 64 (a CPU batch), so
/// the settledness is checked often without shrinking the device batches.
public func coalitionRound(samples: Int) -> Int { max(64, samples / 16) }

/// Checks an `untilStable` target.
/// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` outside [0, 1].
func checkUntilStable(_ target: Double?) throws {
    guard let target else { return }
    guard target.isFinite, (0...1).contains(target) else {
        throw XAIError.invalidArgument(parameter: "untilStable", value: "\(target)", reason: "a rank correlation to reach, between 0 and 1")
    }
}
