import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Deletion and insertion (Petsiuk et al. 2018, "RISE", Sec. 4.2): pixels are ranked by the map
/// (descending; ties by pixel index, so the order is stable) and changed `step` at a time, a pixel
/// with all its channels. Deletion starts from the image and replaces pixels by a substrate (zero
/// after normalisation by default, as the RISE authors' evaluation code; `mean` per channel, or
/// their blur); insertion starts from the blurred image and puts the original pixels back. The
/// score is the softmax probability of the target after each step, both ends included
/// (`ceil(H*W / step) + 1` evaluations), and the metric is the area under that curve by the
/// trapezoid rule over [0, 1] steps (the authors' `auc`). Lower is better for deletion, higher
/// for insertion. The blur is theirs: an 11x11 kernel, scipy's `gaussian_filter` of a unit impulse
/// with sigma 5 (reflected at the kernel's edges), applied per channel with zero padding.
///
/// The perturbed images are built on the device from the rank map and one count per step
/// (``MaskSpec/ranks(ranks:counts:firstKept:)``) and run as batches.
public struct PixelCurve: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case deletion, insertion
    }

    /// What deleted pixels become.
    public enum Substrate: String, Sendable, CaseIterable {
        case zero, mean, blur, black

        /// The image every removed pixel takes its value from: zeros (the dataset's mean colour
        /// after the usual normalisation), each channel's mean over `image`, the RISE blur, or
        /// the image's smallest value on every channel (Quantus's "black").
        public func tensor(for image: Tensor, model: ExplainedModel) throws -> Tensor {
            switch self {
            case .zero: return try model.baselineTensor(.zero, for: image)
            case .mean: return try model.baselineTensor(.channelMean, for: image)
            case .blur: return try PixelCurve.blur(image)
            case .black: return Tensor(unchecked: image.shape, [Float](repeating: image.scalars.min() ?? 0, count: image.shape.count))
            }
        }
    }

    public var mode: Mode
    /// Pixels changed per step; `nil`: `ceil(H*W / 224)` (224 at 224x224: 225 evaluations).
    public var step: Int?
    /// Deletion's substrate (insertion always starts from the blur).
    public var substrate: Substrate
    /// Perturbed copies per device batch (default: from the memory budget).
    public var perturbationsPerEval: Int?

    public init(mode: Mode, step: Int? = nil, substrate: Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.mode = mode
        self.step = step
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    public var name: String { mode.rawValue }

    /// The pixels of `image` at `places` (each pixel's place in the order, ``ranks(_:)``) with the
    /// first `counts[k]` of the order replaced by `start` in copy `k` (or, `firstKept`, the rest
    /// replaced): the target's score of each copy, composited on the device and run as batches.
    static func removalScores(model: ExplainedModel, image: Tensor, start: Tensor, places: [Float], counts: [Int], firstKept: Bool,
                              target: Int, output: ScoreOutput, perturbationsPerEval: Int? = nil,
                              progress: PerturbationProgress? = nil) throws -> [Double] {
        let be = model.backend
        let ranks = try be.upload(Tensor(unchecked: Shape([image.shape[2], image.shape[3]]), places))
        let engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
        return try engine.evaluate(image: try be.upload(image), baseline: try be.upload(start), target: target, count: counts.count) { range in
            .ranks(ranks: ranks, counts: Array(counts[range]), firstKept: firstKept)
        }
    }

    /// The step for `pixels` pixels.
    public func resolvedStep(pixels: Int) throws -> Int {
        let s = step ?? max(1, (pixels + 223) / 224)
        guard s >= 1, s <= pixels else {
            throw XAIError.invalidArgument(parameter: "step", value: "\(s)", reason: "must be between 1 and the image's \(pixels) pixels")
        }
        return s
    }

    /// `step` (deletion's default where nil) for metrics that need `count` steps or more over
    /// `pixels` pixels.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`step`), with `why`.
    static func step(_ step: Int?, pixels: Int, atLeast count: Int, _ why: String) throws -> Int {
        let s = try PixelCurve(mode: .deletion, step: step).resolvedStep(pixels: pixels)
        guard (pixels + s - 1) / s >= count else {
            throw XAIError.invalidArgument(parameter: "step", value: "\(s)", reason: "\(why): at most \((pixels - 1) / (count - 1)) of the image's \(pixels) pixels")
        }
        return s
    }

    /// Each pixel's place in the order: descending map value, ties by index.
    static func ranks(_ values: ArraySlice<Float>) -> [Float] {
        ranks(values.map(Double.init), descending: true)  // exact: every float is a double
    }

    /// The area under a curve of equally spaced scores, normalised to [0, 1] steps.
    public static func area(_ scores: [Double]) -> Double {
        guard scores.count > 1 else { return scores.first ?? .nan }
        return (scores.reduce(0, +) - scores[0] / 2 - scores[scores.count - 1] / 2) / Double(scores.count - 1)
    }

    /// The curves and areas of `maps` (`[N, H, W]`) for `images` (`[N, C, H, W]`) and `target`.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` for maps that do not match the images,
    ///   ``XAIError/nonFinite(what:count:)`` for maps with NaN or infinities,
    ///   ``XAIError/invalidArgument(parameter:value:reason:)`` (`step`, `target`).
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: name)
        let pixels = h * w
        let step = try resolvedStep(pixels: pixels)
        let steps = (pixels + step - 1) / step
        let counts = (0...steps).map { min($0 * step, pixels) }
        let (_, targets) = try model.prepare(images, target: target)
        var curves: [[Double]] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let start = try (mode == .insertion ? Substrate.blur : substrate).tensor(for: image, model: model)
            curves.append(try Self.removalScores(model: model, image: image, start: start, places: Self.ranks(mapValues(maps, b, pixels: pixels)),
                                                 counts: counts, firstKept: mode == .insertion, target: targets[b], output: .probability,
                                                 perturbationsPerEval: perturbationsPerEval, progress: progress))
        }
        var settings = ["step": "\(step)", "evaluations": "\(counts.count)", "score": "softmax probability of the target",
                        "order": "descending map value, ties by pixel index", "area": "trapezoid over [0, 1]"]
        settings["start"] = mode == .insertion ? "blur (11x11, sigma 5, zero padding)" : "the image"
        if mode == .deletion { settings["substrate"] = substrate == .blur ? "blur (11x11, sigma 5, zero padding)" : substrate.rawValue }
        return MetricResult(metric: name, direction: mode == .deletion ? .lowerIsBetter : .higherIsBetter,
                            scores: curves.map(Self.area), settings: settings, curves: curves)
    }

    /// Each pixel's place in the order of `values`: ascending with `descending` false; ties by index.
    static func ranks(_ values: [Double], descending: Bool) -> [Float] {
        let order = values.indices.sorted { a, b in values[a] != values[b] ? (values[a] > values[b]) == descending : a < b }
        var ranks = [Float](repeating: 0, count: values.count)
        for (place, index) in order.enumerated() { ranks[index] = Float(place) }
        return ranks
    }

    /// The pixels cut into consecutive groups of `step` in the order of `values` (ties by index),
    /// as faithfulness estimate and monotonicity correlation cut them: each pixel's group, and each
    /// group's sum of `values`.
    static func groups(_ values: [Double], step: Int, descending: Bool) -> (group: [Int], sums: [Double]) {
        let group = ranks(values, descending: descending).map { Int($0) / step }
        var sums = [Double](repeating: 0, count: (values.count + step - 1) / step)
        for (p, g) in group.enumerated() { sums[g] += values[p] }
        return (group, sums)
    }

    /// The RISE authors' 11x11 blur kernel along one axis: scipy's `gaussian_filter1d` (sigma 5,
    /// truncated at 4 sigma) of a unit impulse at the centre of 11 samples, reflected at the edges
    /// (scipy's `reflect`: d c b a | a b c d | d c b a). The 2-D kernel is its outer product.
    static let blurKernel: [Double] = {
        let (size, sigma) = (11, 5.0)
        let radius = Int(4 * sigma + 0.5)
        var weights = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
        let total = weights.reduce(0, +)
        weights = weights.map { $0 / total }
        func reflect(_ i: Int) -> Int {
            var i = i
            while i < 0 || i >= size { i = i < 0 ? -i - 1 : 2 * size - i - 1 }
            return i
        }
        let centre = size / 2
        return (0..<size).map { i in (-radius...radius).reduce(0.0) { $0 + (reflect(i + $1) == centre ? weights[$1 + radius] : 0) } }
    }()

    /// The insertion start: each channel convolved with the 11x11 kernel, zero padding.
    public static func blur(_ image: Tensor) throws -> Tensor {
        guard image.shape.rank == 4 else { throw XAIError.shapeMismatch(op: "blur", expected: "[N, C, H, W]", got: [image.shape]) }
        let (planes, h, w) = (image.shape[0] * image.shape[1], image.shape[2], image.shape[3])
        let k = blurKernel, r = k.count / 2
        var rows = [Double](repeating: 0, count: image.scalars.count)
        var out = [Float](repeating: 0, count: image.scalars.count)
        // Separable: along x, then along y (the kernel is an outer product).
        for p in 0..<planes {
            let o = p * h * w
            for y in 0..<h {
                for x in 0..<w {
                    var s = 0.0
                    for t in -r...r where x + t >= 0 && x + t < w { s += k[t + r] * Double(image.scalars[o + y * w + x + t]) }
                    rows[o + y * w + x] = s
                }
            }
            for y in 0..<h {
                for x in 0..<w {
                    var s = 0.0
                    for t in -r...r where y + t >= 0 && y + t < h { s += k[t + r] * rows[o + (y + t) * w + x] }
                    out[o + y * w + x] = Float(s)
                }
            }
        }
        return Tensor(unchecked: image.shape, out)
    }
}
