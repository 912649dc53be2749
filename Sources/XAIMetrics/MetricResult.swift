import Foundation
import XAICore

/// Whether a metric's larger values mean a better explanation.
public enum MetricDirection: String, Codable, Sendable {
    case higherIsBetter = "higher"
    case lowerIsBetter = "lower"
}

/// One metric over a batch: a score per image, their mean and standard error over the images
/// whose score is defined (NaN marks the others, e.g. an empty ground-truth mask), the direction,
/// and the exact settings used. Curve metrics (deletion, insertion) also return each image's curve.
public struct MetricResult: Codable, Sendable {
    public let metric: String
    public let direction: MetricDirection
    public let scores: [Double]
    public let mean: Double
    public let standardError: Double
    /// Images whose score is defined.
    public let count: Int
    public let settings: [String: String]
    /// Per image, the score after each step (deletion and insertion).
    public let curves: [[Double]]?

    public init(metric: String, direction: MetricDirection, scores: [Double], settings: [String: String], curves: [[Double]]? = nil) {
        self.metric = metric
        self.direction = direction
        self.scores = scores
        self.settings = settings
        self.curves = curves
        let defined = scores.filter(\.isFinite)
        count = defined.count
        mean = defined.isEmpty ? .nan : defined.reduce(0, +) / Double(defined.count)
        if defined.count > 1 {
            let m = mean
            let variance = defined.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(defined.count - 1)
            standardError = (variance / Double(defined.count)).squareRoot()
        } else {
            standardError = .nan
        }
    }
}

/// Checks that `maps` is `[N, H, W]` for `images` `[N, C, H, W]` and finite.
func checkMaps(_ maps: Tensor, for images: Tensor, metric: String) throws -> (n: Int, height: Int, width: Int) {
    guard images.shape.rank == 4, images.shape[0] >= 1 else {
        throw XAIError.shapeMismatch(op: metric, expected: "images [N, C, H, W]", got: [images.shape])
    }
    let (n, h, w) = (images.shape[0], images.shape[2], images.shape[3])
    guard maps.shape.dims == [n, h, w] || maps.shape.dims == [n, 1, h, w] else {
        throw XAIError.shapeMismatch(op: metric, expected: "maps [\(n), \(h), \(w)] (one per image, at the input's size)", got: [maps.shape])
    }
    try maps.requireFinite("\(metric): map")
    return (n, h, w)
}

/// The seed of copy `copy` (a noisy copy, a run, a draw) of image `image`, so each image has its own
/// stream of copies and a copy's draw does not depend on how many images come with it. The Python
/// fixtures re-make the streams from this formula.
func copySeed(_ seed: UInt64, image: Int, copy: Int) -> UInt64 {
    seed &+ 1_000_003 &* UInt64(image) &+ UInt64(copy)
}

/// Image `b`'s map values.
func mapValues(_ maps: Tensor, _ b: Int, pixels: Int) -> ArraySlice<Float> {
    maps.scalars[(b * pixels)..<((b + 1) * pixels)]
}
