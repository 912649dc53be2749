import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Faithfulness correlation (Bhatt et al. 2020, "Evaluating and Aggregating Feature-based Model
/// Explanations", IJCAI): `runs` random subsets of `subsetSize` pixels (all their channels) are set
/// to the baseline; each run pairs the map's sum over the subset with the drop of the target's
/// logit, `f(x) - f(x with the subset removed)`, and the score is the Pearson correlation of the
/// pairs. Higher is better (1: the map predicts every drop up to scale).
///
/// Quantus 0.6's `FaithfulnessCorrelation` draws its subsets among the input's elements (one
/// channel of one pixel each) from numpy's global stream; xai removes whole pixels, as the paper's
/// "features" and as deletion does, from its own stream: run `r` of image `b` takes the first
/// `subsetSize` entries of a Fisher-Yates shuffle of the pixel indices driven by
/// `SeededGenerator(seed &+ 1_000_003 * b &+ r)` (`next() % remaining`), exported to the fixture
/// script. The copies are composited on the device (one segment per pixel) and run as batches.
public struct FaithfulnessCorrelation: Sendable {
    /// The run counts it takes (a correlation needs two points).
    public static let runRange = 2...100_000
    public var runs: Int
    public var subsetSize: Int
    public var baseline: Baseline
    public var seed: UInt64
    public var perturbationsPerEval: Int?

    public init(runs: Int = 100, subsetSize: Int = 224, baseline: Baseline = .zero, seed: UInt64 = 0, perturbationsPerEval: Int? = nil) {
        self.runs = runs
        self.subsetSize = subsetSize
        self.baseline = baseline
        self.seed = seed
        self.perturbationsPerEval = perturbationsPerEval
    }

    /// Checks the run count and the subset size for images of `pixels` pixels.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`runs`, `subsetSize`).
    public func validate(pixels: Int) throws {
        guard Self.runRange.contains(runs) else {
            throw XAIError.invalidArgument(parameter: "runs", value: "\(runs)",
                                           reason: "a correlation needs \(Self.runRange.lowerBound) to \(Self.runRange.upperBound) runs")
        }
        guard subsetSize >= 1, subsetSize < pixels else {
            throw XAIError.invalidArgument(parameter: "subsetSize", value: "\(subsetSize)", reason: "must be between 1 and the image's \(pixels - 1) pixels")
        }
    }

    /// The pixels removed in run `run` of image `image`.
    public func subset(image: Int, run: Int, pixels: Int) -> [Int] {
        var generator = SeededGenerator(seed: copySeed(seed, image: image, copy: run))
        var order = Array(0..<pixels)
        for i in 0..<subsetSize {
            let j = i + Int(generator.next() % UInt64(pixels - i))
            order.swapAt(i, j)
        }
        return Array(order[0..<subsetSize])
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "faithfulness_correlation")
        let pixels = h * w
        try validate(pixels: pixels)
        let (logits, targets) = try model.prepare(images, target: target)
        let classes = logits.shape.count / n
        let engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: .logit, progress: progress)
        let be = model.backend
        // One segment per pixel: segment p is pixel p (exact as a float below 2^24 pixels).
        let labels = try be.upload(Tensor(unchecked: Shape([h, w]), (0..<pixels).map(Float.init)))
        var scores: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let map = mapValues(maps, b, pixels: pixels)
            let subsets = (0..<runs).map { subset(image: b, run: $0, pixels: pixels) }
            let perturbed = try engine.evaluate(image: try be.upload(image), baseline: try be.upload(try model.baselineTensor(baseline, for: image)),
                                                target: targets[b], count: runs) { range in
                let rows = subsets[range].map { removed -> [Bool] in
                    var keep = [Bool](repeating: true, count: pixels)
                    for p in removed { keep[p] = false }
                    return keep
                }
                return .segments(labels: labels, rows: rows[...], segmentCount: pixels)
            }
            let clean = Double(logits.scalars[b * classes + targets[b]])
            let drops = perturbed.map { clean - $0 }
            let sums = subsets.map { $0.reduce(0.0) { $0 + Double(map[map.startIndex + $1]) } }
            scores.append(Similarity.pearson(sums, drops))
        }
        return MetricResult(metric: "faithfulness_correlation", direction: .higherIsBetter, scores: scores,
                            settings: ["runs": "\(runs)", "subset": "\(subsetSize) pixels, all channels", "baseline": "\(baseline)", "seed": "\(seed)",
                                       "definition": "Pearson(sum of the map over the subset, target logit drop)"])
    }
}

/// Infidelity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations"), as
/// Captum 0.9's `infidelity(normalize=True)`: for `samples` Gaussian perturbations `I` (standard
/// deviation `sigma`), `a_s = sum(I * map)` and `b_s = f(x) - f(x - I)` with `f` the target's
/// logit; the score is `mean((beta a_s - b_s)^2)` with `beta = sum(a b) / sum(a^2)`, the scale
/// that best fits (so a map's overall scale does not matter). Lower is better.
///
/// Semantics, stated: each perturbation is drawn per pixel and added equally to every channel, so
/// a map summed over channels (xai's maps) gives `sum(I * attribution)` exactly; and the map is
/// used as it is, Captum's `multiply_by_inputs=False` (Captum's `True` divides the perturbation by
/// `x - baseline`, which needs the per-channel attribution and blows up where `x` is near the
/// baseline). The noise of sample `s` of image `b` is `Tensor.gaussian([H, W], std: sigma, seed:
/// seed &+ 1_000_003 * b &+ s)`, exported to the fixture script.
public struct Infidelity: Sendable {
    /// The perturbation counts it takes.
    public static let sampleRange = 1...10_000
    public var sigma: Float
    public var samples: Int
    public var seed: UInt64

    public init(sigma: Float = 0.1, samples: Int = 10, seed: UInt64 = 0) {
        self.sigma = sigma
        self.samples = samples
        self.seed = seed
    }

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`sigma`, `samples`).
    public func validate() throws {
        guard sigma.isFinite, sigma > 0 else {
            throw XAIError.invalidArgument(parameter: "sigma", value: "\(sigma)", reason: "must be a positive number")
        }
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "infidelity needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) perturbations")
        }
    }

    /// The perturbation of sample `sample` of image `image`, `[H, W]`.
    public func noise(image: Int, sample: Int, height: Int, width: Int) -> Tensor {
        Tensor.gaussian(Shape([height, width]), std: sigma, seed: copySeed(seed, image: image, copy: sample))
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "infidelity")
        try validate()
        let (logits, targets) = try model.prepare(images, target: target)
        let classes = logits.shape.count / n
        let pixels = h * w
        let channels = images.shape[1]
        let chunk = try PerturbationEngine(model: model).batchSize(for: Shape([1, channels, h, w]))
        var scores: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let map = mapValues(maps, b, pixels: pixels)
            let clean = Double(logits.scalars[b * classes + targets[b]])
            var a: [Double] = [], drops: [Double] = []
            var start = 0
            while start < samples {
                let range = start..<min(start + chunk, samples)
                var batch = [Float](repeating: 0, count: range.count * channels * pixels)
                for (k, s) in range.enumerated() {
                    let d = noise(image: b, sample: s, height: h, width: w).scalars
                    var dot = 0.0
                    for p in 0..<pixels { dot += Double(d[p]) * Double(map[map.startIndex + p]) }
                    a.append(dot)
                    for c in 0..<channels {
                        let o = (k * channels + c) * pixels, i = c * pixels
                        for p in 0..<pixels { batch[o + p] = image.scalars[i + p] - d[p] }
                    }
                }
                let out = try model.logits(try model.backend.upload(Tensor(unchecked: Shape([range.count, channels, h, w]), batch)))
                drops += (0..<range.count).map { clean - Double(out.scalars[$0 * classes + targets[b]]) }
                start = range.upperBound
            }
            let ab = zip(a, drops).reduce(0.0) { $0 + $1.0 * $1.1 }, aa = a.reduce(0.0) { $0 + $1 * $1 }
            let beta = aa != 0 ? ab / aa : 0  // Captum's safe_div
            scores.append(zip(a, drops).reduce(0.0) { $0 + (beta * $1.0 - $1.1) * (beta * $1.0 - $1.1) } / Double(samples))
        }
        return MetricResult(metric: "infidelity", direction: .lowerIsBetter, scores: scores,
                            settings: ["sigma": "\(sigma)", "samples": "\(samples)", "seed": "\(seed)",
                                       "perturbation": "Gaussian per pixel, equal on every channel, subtracted from the image",
                                       "definition": "mean((beta sum(I*map) - (f(x) - f(x - I)))^2), beta fitted (Captum normalize=True, multiply_by_inputs=False)"])
    }
}

