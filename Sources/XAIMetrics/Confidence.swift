import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// The confidence metrics of the CAM literature, as pytorch-grad-cam's `CamMultImageConfidenceChange`
/// family: the image multiplied by its map, scaled to [0, 1] as pytorch-grad-cam scales a CAM (minus
/// its minimum, over 1e-7 plus the new maximum), every channel alike, and the softmax probability
/// `O` of the target on it against `Y` on the image. Average Drop (Chattopadhyay et al. 2018, the
/// Grad-CAM++ paper) is `max(0, Y - O) / Y`, lower is better (pytorch-grad-cam's `DropInConfidence`
/// is its numerator); Increase in Confidence is 1 where `O > Y`, else 0, higher is better (its mean
/// over the images is the paper's rate). A map that keeps what the model looks at keeps its
/// confidence; one that dims it loses it.
public struct ConfidenceChange: Sendable {
    public init() {}

    /// `map` scaled to [0, 1]: `(m - min) / (1e-7 + max(m - min))`, pytorch-grad-cam's `scale_cam_image`.
    static func scaled(_ map: ArraySlice<Float>) -> [Float] {
        let low = map.min() ?? 0
        let shifted = map.map { $0 - low }
        let high = shifted.max() ?? 0
        return shifted.map { $0 / (1e-7 + high) }
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted) throws -> (drop: MetricResult, increase: MetricResult) {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "average_drop")
        let pixels = h * w, channels = images.shape[1]
        let (logits, targets) = try model.prepare(images, target: target)
        let classes = logits.shape.count / n
        let chunk = try PerturbationEngine(model: model).batchSize(for: Shape([1, channels, h, w]))
        var drops: [Double] = [], increases: [Double] = []
        var start = 0
        while start < n {
            let range = start..<min(start + chunk, n)
            var batch = [Float](repeating: 0, count: range.count * channels * pixels)
            for (k, b) in range.enumerated() {
                let m = Self.scaled(mapValues(maps, b, pixels: pixels))
                for c in 0..<channels {
                    let o = (k * channels + c) * pixels, i = (b * channels + c) * pixels
                    for p in 0..<pixels { batch[o + p] = images.scalars[i + p] * m[p] }
                }
            }
            let out = try model.logits(try model.backend.upload(Tensor(unchecked: Shape([range.count, channels, h, w]), batch)))
            for (k, b) in range.enumerated() {
                let before = ExplainedModel.probabilities(logits.scalars[(b * classes)..<((b + 1) * classes)])[targets[b]]
                let after = ExplainedModel.probabilities(out.scalars[(k * classes)..<((k + 1) * classes)])[targets[b]]
                drops.append(before > 0 ? max(0, before - after) / before : .nan)
                increases.append(after > before ? 1 : 0)
            }
            start = range.upperBound
        }
        let settings = ["score": "softmax probability of the target", "map": "scaled to [0, 1]: (m - min) / (1e-7 + max(m - min)), on every channel",
                        "perturbation": "the image times the map"]
        return (MetricResult(metric: "average_drop", direction: .lowerIsBetter, scores: drops,
                             settings: settings.merging(["definition": "max(0, Y - O) / Y, Y on the image, O on the image times the map"]) { $1 }),
                MetricResult(metric: "increase_in_confidence", direction: .higherIsBetter, scores: increases,
                             settings: settings.merging(["definition": "1 where O > Y, else 0"]) { $1 }))
    }
}

/// Coherency (Poppi, Cornia, Baraldi & Cucchiara, CVPR workshops 2021), as pytorch-grad-cam's
/// `metrics.arcc.Coherency`: the method re-explains the image multiplied by its map (scaled to
/// [0, 1] as ``ConfidenceChange`` scales it) for the same class, and the score is `(rho + 1) / 2`,
/// `rho` the Pearson correlation of the new map with the map (pytorch-grad-cam's, with 1e-8 added
/// to the product of the deviations: a constant map correlates 0). A map that keeps what made it is
/// found again: 1. Higher is better. The scaled map's mean is its L1 complexity (the same paper's
/// Complexity, lower is simpler), which the combined scores read:
/// - ADCC (Poppi et al.): the harmonic mean of coherency, `1 - complexity` and `1 - average drop`;
/// - ARCC (pytorch-grad-cam's `ARCC`): the harmonic mean of coherency, `1 - complexity` and the
///   ROAD score doubled and clipped to [0, 1], each term plus 1e-8.
public struct Coherency: Sendable {
    public init() {}

    /// Coherency and the scaled maps' L1 complexity, per image.
    /// - Parameter explain: the method's map (`[1, H, W]` or `[H, W]` values) of an image `[1, C, H, W]` for a class.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         explain: (Tensor, Int) throws -> Tensor) throws -> (coherency: MetricResult, complexity: [Double]) {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "coherency")
        let pixels = h * w, channels = images.shape[1]
        let (_, targets) = try model.prepare(images, target: target)
        var coherency: [Double] = [], complexity: [Double] = []
        for b in 0..<n {
            let m = ConfidenceChange.scaled(mapValues(maps, b, pixels: pixels))
            var mixed = try ExplainedModel.image(images, b)
            mixed.withUnsafeMutableBufferPointer { x in
                for c in 0..<channels { for p in 0..<pixels { x[c * pixels + p] *= m[p] } }
            }
            let again = try explain(mixed, targets[b])
            guard again.shape.count == pixels else {
                throw XAIError.shapeMismatch(op: "coherency", expected: "the method's map [\(h), \(w)]", got: [again.shape])
            }
            // Both scaled to [0, 1] as pytorch-grad-cam's base method returns its maps, so its 1e-8 weighs alike.
            let rho = Self.correlation(ConfidenceChange.scaled(again.scalars[...]).map(Double.init), m.map(Double.init))
            coherency.append((rho + 1) / 2)
            complexity.append(m.reduce(0.0) { $0 + Double($1) } / Double(pixels))
        }
        return (MetricResult(metric: "coherency", direction: .higherIsBetter, scores: coherency,
                             settings: ["definition": "(Pearson(map of the image times the map, map) + 1) / 2, the map scaled to [0, 1]",
                                        "re-explained": "the image times the map, same class, the method's knobs and seed"]),
                complexity)
    }

    /// pytorch-grad-cam's `batch_pearson_coherency`: `cov / (std_a std_b + 1e-8)` with sample
    /// statistics, so a constant map (a re-explanation clipped to nothing) correlates 0, not NaN:
    /// its coherency is 0.5 and the image stays in the mean.
    static func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        guard a.count == b.count, a.count > 1 else { return .nan }
        let (ma, mb) = (a.reduce(0, +) / n, b.reduce(0, +) / n)
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) {
            ab += (x - ma) * (y - mb)
            aa += (x - ma) * (x - ma)
            bb += (y - mb) * (y - mb)
        }
        return (ab / (n - 1)) / ((aa / (n - 1)).squareRoot() * (bb / (n - 1)).squareRoot() + 1e-8)
    }

    /// The harmonic mean of three scores in [0, 1], each plus `epsilon` (a zero gives about 0).
    public static func harmonicMean(_ a: Double, _ b: Double, _ c: Double, epsilon: Double = 0) -> Double {
        3 / (1 / (a + epsilon) + 1 / (b + epsilon) + 1 / (c + epsilon))
    }
}
