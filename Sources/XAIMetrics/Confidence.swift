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
