import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Sparseness (Chalasani et al. 2020): the Gini index of the map's absolute values, in [0, 1]
/// (1: all attribution on one pixel). As Quantus 0.6's `Sparseness` with `abs=True,
/// normalise=False`: values sorted ascending after adding 1e-7 to each,
/// `sum((2i - n - 1) a_i) / (n sum a_i)`. Higher is sparser.
public struct Sparseness: Sendable {
    public init() {}

    public func evaluate(images: Tensor, maps: Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "sparseness")
        let scores = (0..<n).map { b -> Double in
            let a = mapValues(maps, b, pixels: h * w).map { Double(abs($0)) + 1e-7 }.sorted()
            let count = Double(a.count)
            var weighted = 0.0
            for (i, v) in a.enumerated() { weighted += (2 * Double(i + 1) - count - 1) * v }
            return weighted / (count * a.reduce(0, +))
        }
        return MetricResult(metric: "sparseness", direction: .higherIsBetter, scores: scores,
                            settings: ["definition": "Gini index of |map| + 1e-7 (Quantus Sparseness, abs, not normalised)"])
    }
}

/// Complexity (Bhatt et al. 2020): the entropy (natural log) of the distribution `|a| / sum |a|`
/// over pixels, as Quantus 0.6's `Complexity` (`scipy.stats.entropy`). Lower is simpler. An
/// all-zero map has no distribution: NaN.
public struct Complexity: Sendable {
    public init() {}

    public func evaluate(images: Tensor, maps: Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "complexity")
        let scores = (0..<n).map { b -> Double in
            let a = mapValues(maps, b, pixels: h * w).map { Double(abs($0)) }
            let total = a.reduce(0, +)
            guard total > 0 else { return .nan }
            return -a.reduce(0.0) { s, v in v > 0 ? s + (v / total) * log(v / total) : s }
        }
        return MetricResult(metric: "complexity", direction: .lowerIsBetter, scores: scores,
                            settings: ["definition": "entropy of |map| / sum |map| (natural log)"])
    }
}

/// Effective complexity (Nguyen & Martínez 2020, "On quantitative aspects of model
/// interpretability", as Quantus 0.6's `EffectiveComplexity` with `abs=True`): the number of pixels
/// whose |map|, divided by the image's largest |map|, exceeds `epsilon` (Quantus's 1e-5; Quantus
/// divides by the largest over the whole batch passed, xai by the image's own, so a score does not
/// depend on the other images). An all-zero map counts 0. Lower is simpler.
public struct EffectiveComplexity: Sendable {
    public var epsilon: Double

    public init(epsilon: Double = 1e-5) {
        self.epsilon = epsilon
    }

    public func evaluate(images: Tensor, maps: Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "effective_complexity")
        guard epsilon.isFinite, epsilon >= 0 else {
            throw XAIError.invalidArgument(parameter: "epsilon", value: "\(epsilon)", reason: "must be a number, 0 or more")
        }
        let scores = (0..<n).map { b -> Double in
            let a = mapValues(maps, b, pixels: h * w).map { Double(abs($0)) }
            let top = a.max() ?? 0
            guard top > 0 else { return 0 }
            return Double(a.filter { $0 / top > epsilon }.count)
        }
        return MetricResult(metric: "effective_complexity", direction: .lowerIsBetter, scores: scores,
                            settings: ["epsilon": "\(epsilon)", "definition": "pixels with |map| / max |map| > epsilon"])
    }
}

/// Completeness: how far the map's sum is from the change of the target's logit between the
/// baseline and the image, `sum(map) - (f(x) - f(baseline))`, reported absolute (the score) and
/// relative to `|f(x) - f(baseline)|` (in the settings' per-image list). Meaningful for maps that
/// claim it: Integrated Gradients, KernelSHAP (exact by construction), Gradient x Input (exact
/// for a linear model with a zero baseline). The map must be the attribution summed over channels
/// (`Attribution.map` for those methods). Lower is better.
public struct Completeness: Sendable {
    public var baseline: Baseline

    public init(baseline: Baseline = .zero) {
        self.baseline = baseline
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "completeness")
        let (logits, targets) = try model.prepare(images, target: target)
        let classes = logits.shape.count / n
        var absolute: [Double] = [], relative: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let base = try model.logits(try model.backend.upload(try model.baselineTensor(baseline, for: image)))
            let difference = Double(logits.scalars[b * classes + targets[b]]) - Double(base.scalars[targets[b]])
            let sum = mapValues(maps, b, pixels: h * w).reduce(0.0) { $0 + Double($1) }
            absolute.append(abs(sum - difference))
            relative.append(abs(sum - difference) / max(abs(difference), 1e-12))
        }
        return MetricResult(metric: "completeness", direction: .lowerIsBetter, scores: absolute,
                            settings: ["definition": "|sum(map) - (f(x) - f(baseline))|, f the target's logit", "baseline": "\(baseline)",
                                       "relative": relative.map { String(format: "%.6g", $0) }.joined(separator: ",")])
    }
}
