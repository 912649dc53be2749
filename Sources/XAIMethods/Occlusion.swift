import Foundation
import XAICore
import XAIGraph

/// Occlusion (Zeiler and Fergus) with Captum's semantics: a window slides over the image with a
/// stride (the last window in each direction is clipped to the image, so every pixel is covered);
/// each pixel gets the mean, over the windows that cover it, of `f(x) - f(x with the window
/// replaced by the baseline)`. The windows run as device batches built from rectangles.
///
/// By default each batch runs incrementally (``Executor/forward(copiesOf:patches:at:plan:)``):
/// an occluded copy differs from the image only inside its window, so each layer recomputes only
/// the part of its activation the window reaches, spliced into the clean image's. The result is the
/// full recomputation's up to rounding; `diagnostics["convolutionWork"]` gives the fraction of the
/// full forward passes' convolution multiply-adds that ran.
public struct Occlusion: ModelMethod {
    public let name = "occlusion"
    public let model: ExplainedModel
    /// Window height and width in pixels (default 16 x 16); it spans every channel.
    public var window: (height: Int, width: Int)
    /// Window step (default 8 x 8).
    public var stride: (height: Int, width: Int)
    /// Recompute only what each window changes (default); `false` runs every copy through the
    /// whole network.
    public var incremental: Bool
    public var engine: PerturbationEngine

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - window: the occluding rectangle (at most the image; checked when the method runs).
    ///   - stride: the step between windows (positive).
    ///   - incremental: recompute only what each window changes (exact; the default).
    ///   - perturbationsPerEval: occluded copies per forward batch (default: from the memory budget).
    ///   - output: the score read for each copy (logit or probability).
    ///   - progress: called after every batch with (copies done, copies in all).
    public init(model: ExplainedModel, window: (height: Int, width: Int) = (16, 16), stride: (height: Int, width: Int) = (8, 8),
                incremental: Bool = true, perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.window = window
        self.stride = stride
        self.incremental = incremental
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    /// The clipped windows for an `height x width` image, row by row.
    public func windows(height: Int, width: Int) throws -> [MaskRect] {
        guard window.height >= 1, window.width >= 1, window.height <= height, window.width <= width else {
            throw XAIError.invalidArgument(parameter: "window", value: "\(window.height)x\(window.width)", reason: "does not fit a \(height)x\(width) image")
        }
        guard stride.height >= 1, stride.width >= 1 else {
            throw XAIError.invalidArgument(parameter: "stride", value: "\(stride.height)x\(stride.width)", reason: "must be positive")
        }
        func starts(_ size: Int, _ win: Int, _ step: Int) -> [Int] {
            // Captum's count; with a stride above the window the last start can fall outside the
            // image, and that window would cover nothing.
            let count = (size - win + step - 1) / step + 1
            return (0..<count).map { $0 * step }.filter { $0 < size }
        }
        return starts(height, window.height, stride.height).flatMap { top in
            starts(width, window.width, stride.width).map { left in
                MaskRect(top: top, left: left, height: min(window.height, height - top), width: min(window.width, width - left))
            }
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (logits, targets) = try model.prepare(input, target: target)
        let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        let rects = try windows(height: height, width: width)
        let clean = try engine.scores(logits, targets: targets)
        var maps = [Float](repeating: 0, count: n * height * width)
        var work: [Double] = []
        for b in 0..<n {
            let (xb, baseTensor) = try model.imageAndBaseline(input, b, baseline)
            let image = try be.upload(xb), base = try be.upload(baseTensor)
            let occluded: [Double]
            if incremental {
                let (scores, fraction) = try engine.scoresWithRectanglesRemoved(image: image, baseline: base, rects: rects, target: targets[b])
                occluded = scores
                work.append(fraction)
            } else {
                occluded = try engine.evaluate(image: image, baseline: base, target: targets[b], count: rects.count) { .rectangles(Array(rects[$0])) }
            }
            var total = [Double](repeating: 0, count: height * width), covered = [Double](repeating: 0, count: height * width)
            for (r, s) in zip(rects, occluded) {
                let change = clean[b] - s
                for y in r.top..<(r.top + r.height) {
                    for x in r.left..<(r.left + r.width) {
                        total[y * width + x] += change
                        covered[y * width + x] += 1
                    }
                }
            }
            for p in 0..<(height * width) { maps[b * height * width + p] = Float(total[p] / covered[p]) }
        }
        return Attribution(map: Tensor(unchecked: [n, height, width], maps), raw: nil, targets: targets, scores: ExplainedModel.scores(logits, targets),
                           diagnostics: incremental ? ["convolutionWork": work] : [:])
    }
}
