import Foundation
import XAICore
import XAIMethods

/// Continuity (Montavon, Samek & Müller 2018, "Methods for interpreting and understanding deep
/// neural networks", Sec. 6.2), as Quantus 0.6.0's `Continuity`: the strongest change of the
/// explanation as the image slides sideways, `max_t ||R(x) - R(x_t)||_1 / ||x - x_t||_2`.
///
/// `x_t` is the image moved `t` pixels right (left for negative `t`), the columns it uncovers
/// filled with the image's smallest value (Quantus's "black"). The shifts are Quantus's:
/// `t = -W + k * d` for `k = 1...steps`, `d = (2W + 1) / steps` rounded down, so they run from
/// almost a whole width left to up to a whole width right. `R` is the explanation divided by its
/// largest magnitude, then made absolute (Quantus's `normalise_by_max` and `abs`, per image: Quantus
/// divides by the batch's largest, the same for a batch of one). The shift 0, where it falls, is
/// left out: it changes nothing, and Quantus's `0 / 1e-9` there is 0 for a method that gives the
/// same map twice, as every xai method does. Lower is more continuous.
///
/// Both maps are re-made by the method (the clean one too, as Quantus), so it costs `steps + 1`
/// explanations per image.
public struct Continuity: Sendable {
    /// The translation counts it takes (at most `2W + 1` for an image `W` wide).
    public static let stepRange = 1...10_000
    public var steps: Int

    public init(steps: Int = 28) {
        self.steps = steps
    }

    /// Checks the step count.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`steps`).
    public func validate(width: Int? = nil) throws {
        let upper = width.map { min(Self.stepRange.upperBound, 2 * $0 + 1) } ?? Self.stepRange.upperBound
        guard steps >= Self.stepRange.lowerBound, steps <= upper else {
            throw XAIError.invalidArgument(parameter: "steps", value: "\(steps)",
                                           reason: "continuity translates the image \(Self.stepRange.lowerBound) to \(upper) times"
                                               + (width.map { " (2 x its width \($0) + 1)" } ?? ""))
        }
    }

    /// The shifts, in pixels (positive: right), for an image `width` wide; the shift 0 left out.
    public func shifts(width: Int) -> [Int] {
        let d = (2 * width + 1) / max(steps, 1)
        return (1...max(steps, 1)).map { -width + $0 * d }.filter { $0 != 0 }
    }

    /// `image` `[1, C, H, W]` moved `shift` pixels along its width, the uncovered columns filled
    /// with its smallest value.
    public static func translated(_ image: Tensor, by shift: Int) -> Tensor {
        let (c, h, w) = (image.shape[1], image.shape[2], image.shape[3])
        let fill = image.scalars.min() ?? 0
        var out = [Float](repeating: fill, count: image.shape.count)
        // The columns that keep a pixel of the image; none once the shift reaches the width.
        let (first, end) = (max(0, shift), min(w, w + shift))
        guard first < end else { return Tensor(unchecked: image.shape, out) }
        image.scalars.withUnsafeBufferPointer { x in
            for row in 0..<(c * h) {
                let base = row * w
                for j in first..<end { out[base + j] = x[base + j - shift] }
            }
        }
        return Tensor(unchecked: image.shape, out)
    }

    /// `|e| / max |e|` in float64 (zeros where `e` is all zero, as Quantus leaves such a map).
    static func normalisedMagnitudes(_ e: Tensor) -> [Double] {
        let largest = e.scalars.reduce(0.0) { max($0, abs(Double($1))) }
        return e.scalars.map { largest > 0 ? abs(Double($0)) / largest : 0 }
    }

    /// - Parameter explain: the explanation of a batch of one `[1, C, H, W]` and the index of the
    ///   image it is (or is a translation of), so each image is explained for its own class.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`steps`), what `explain`
    ///   throws, ``XAIError/shapeMismatch(op:expected:got:)`` when a translation's explanation
    ///   differs in shape from the image's.
    public func evaluate(images: Tensor, explain: (Tensor, Int) throws -> Tensor) throws -> MetricResult {
        guard images.shape.rank == 4, images.shape[0] >= 1 else {
            throw XAIError.shapeMismatch(op: "continuity", expected: "images [N, C, H, W]", got: [images.shape])
        }
        let width = images.shape[3]
        try validate(width: width)
        let shifts = shifts(width: width)
        var scores: [Double] = []
        for b in 0..<images.shape[0] {
            let image = try ExplainedModel.image(images, b)
            let clean = try explain(image, b)
            try clean.requireFinite("continuity: the explanation of image \(b)")
            let reference = Self.normalisedMagnitudes(clean)
            var worst = 0.0
            for t in shifts {
                let moved = Self.translated(image, by: t)
                let e = try explain(moved, b)
                guard e.shape.count == clean.shape.count else {
                    throw XAIError.shapeMismatch(op: "continuity", expected: "explanations like the image's \(clean.shape)", got: [e.shape])
                }
                try e.requireFinite("continuity: the explanation of image \(b) moved \(t) pixels")
                let r = Self.normalisedMagnitudes(e)
                var l1 = 0.0
                for i in r.indices { l1 += abs(reference[i] - r[i]) }
                var squares = 0.0
                for (a, m) in zip(image.scalars, moved.scalars) { squares += (Double(a) - Double(m)) * (Double(a) - Double(m)) }
                worst = max(worst, l1 / (squares.squareRoot() + 1e-9))
            }
            scores.append(worst)
        }
        return MetricResult(metric: "continuity", direction: .lowerIsBetter, scores: scores,
                            settings: ["steps": "\(steps)", "shifts": shifts.map(String.init).joined(separator: ","),
                                       "translation": "along the width, uncovered columns filled with the image's smallest value",
                                       "definition": "max over shifts of ||R(x) - R(x_t)||_1 / ||x - x_t||_2, R = |e| / max |e|"])
    }
}
