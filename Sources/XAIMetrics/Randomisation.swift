import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// Random logit (Sixt et al. 2020, "When Explanations Lie"; Quantus's `RandomLogit`): the map for
/// the target compared with the map for a random other class, by SSIM (as Quantus's default,
/// ``Similarity/ssim(_:_:height:width:window:)``) and by Spearman's rank correlation, both on
/// maps normalised by their maximum absolute value (Quantus's default `normalise_by_max`). A map
/// that explains the class should change with it: lower is better. The other class of image `b`
/// is drawn from `SeededGenerator(seed &+ 1_000_003 * b)`: `next() % (classes - 1)`, skipping the
/// target.
public struct RandomLogit: Sendable {
    public var seed: UInt64

    public init(seed: UInt64 = 0) { self.seed = seed }

    /// The class compared with `target` for image `image`.
    public func otherClass(image: Int, target: Int, classes: Int) -> Int {
        var generator = SeededGenerator(seed: copySeed(seed, image: image, copy: 0))
        let k = Int(generator.next() % UInt64(max(classes - 1, 1)))
        return k >= target ? k + 1 : k
    }

    /// The SSIM and Spearman results, one score per image each.
    /// - Parameter explain: the map (`[1, H, W]` or `[H, W]`) of one image `[1, C, H, W]` for a class.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         explain: (Tensor, Int) throws -> Tensor) throws -> (ssim: MetricResult, spearman: MetricResult) {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "random_logit")
        let (logits, targets) = try model.prepare(images, target: target)
        let classes = logits.shape.count / n
        guard classes >= 2 else {
            throw XAIError.unsupported(op: "random_logit", reason: "the model has \(classes) output: no other class to compare with")
        }
        var similarities: [Double] = [], correlations: [Double] = [], others: [Int] = []
        for b in 0..<n {
            let other = otherClass(image: b, target: targets[b], classes: classes)
            others.append(other)
            let second = try explain(try ExplainedModel.image(images, b), other)
            guard second.shape.count == h * w else {
                throw XAIError.shapeMismatch(op: "random_logit", expected: "a map of \(h)x\(w) for class \(other)", got: [second.shape])
            }
            try second.requireFinite("random_logit: the map for class \(other)")
            let first = Similarity.normalisedByMax(mapValues(maps, b, pixels: h * w)), again = Similarity.normalisedByMax(second.scalars[...])
            similarities.append(Similarity.ssim(first, again, height: h, width: w))
            correlations.append(Similarity.spearman(first, again))
        }
        let settings = ["seed": "\(seed)", "other classes": others.map(String.init).joined(separator: ","), "normalise": "by max |map|"]
        return (MetricResult(metric: "random_logit", direction: .lowerIsBetter, scores: similarities,
                             settings: settings.merging(["similarity": "SSIM, 7x7 uniform windows (scikit-image)"]) { $1 }),
                MetricResult(metric: "random_logit_spearman", direction: .lowerIsBetter, scores: correlations,
                             settings: settings.merging(["similarity": "Spearman rank correlation"]) { $1 }))
    }
}

/// Which end of the network a randomisation cascade starts from.
public enum RandomisationOrder: String, CaseIterable, Sendable {
    /// Adebayo et al.'s cascade: the output layer first.
    case topDown = "top-down"
    /// The input layer first, as Hedström et al. recommend for sMPRT and eMPRT (Quantus's
    /// `layer_order="bottom_up"`).
    case bottomUp = "bottom-up"
}

/// The model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency
/// Maps"), cascading from the top: the weighted layers (convolutions, Gemm, MatMul with a constant
/// weight) are randomised from the output backwards, and after each of `steps` stages the method
/// re-explains the image for the same class; each stage scores the Spearman rank correlation of
/// `|map|` before and after (Adebayo's "absolute value" variant). Stage 1 randomises the top layer
/// alone; stage `k` of `K` the top `ceil(L * (k - 1) / (K - 1))` of the `L` layers (at least 2 for
/// `k = 2`), so the last stage randomises every layer. A randomised layer's weights and bias are
/// redrawn from a normal distribution with the original tensor's standard deviation (seeded per
/// layer), so activations keep their scale. A method whose maps do not depend on the weights fails
/// the check: its maps stay similar. The score is the mean similarity over the stages (Quantus's
/// `return_average_correlation`); each image's per-stage similarities are its curve. Lower is better.
///
/// With `order` ``RandomisationOrder/bottomUp`` the stages randomise the same counts of layers from
/// the input instead. With `smoothing` it is sMPRT (Hedström et al. 2023, "Sanity Checks Revisited";
/// Quantus's `SmoothMPRT`): every map compared, the original model's included, is the mean of the
/// method's maps of noisy copies of the image: the noise of shattered gradients makes two single
/// maps differ whatever the weights, and would pass for a change of the model.
public struct ModelRandomisation: Sendable {
    /// sMPRT's denoising: `samples` maps averaged, of `samples - 1` copies with Gaussian noise of
    /// standard deviation `noise` times the image's range (its largest value less its smallest)
    /// and of the image itself (Quantus's: its last copy is noiseless). The copies are the same for
    /// every model compared, so the maps differ by the weights alone.
    public struct Smoothing: Sendable, Equatable {
        public static let sampleRange = 1...10_000
        public var samples: Int
        public var noise: Float

        public init(samples: Int = 50, noise: Float = 0.1) {
            self.samples = samples
            self.noise = noise
        }

        /// The noise of copy `copy` of image `image`: a stream of its own, apart from the layers'
        /// draws, which start at the seed itself.
        public static func noiseSeed(_ seed: UInt64, image: Int, copy: Int) -> UInt64 {
            copySeed(seed ^ 0x9E37_79B9_7F4A_7C15, image: image, copy: copy)
        }
    }

    /// The randomisation stage counts it takes.
    public static let stepRange = 1...1000
    public var steps: Int
    public var seed: UInt64
    public var order: RandomisationOrder
    public var smoothing: Smoothing?

    public init(steps: Int = 5, seed: UInt64 = 0, order: RandomisationOrder = .topDown, smoothing: Smoothing? = nil) {
        self.steps = steps
        self.seed = seed
        self.order = order
        self.smoothing = smoothing
    }

    var name: String { smoothing == nil ? "mprt" : "smooth_mprt" }

    /// The weighted nodes of `graph` from the output backwards, each with its weight and bias
    /// initializers.
    public static func layers(_ graph: Graph) -> [(node: String, parameters: [String])] {
        graph.nodes.reversed().compactMap { node -> (String, [String])? in
            switch node.op {
            case .conv, .gemm, .matMul:
                let constants = node.inputs.dropFirst().filter { graph.initializers[$0] != nil && !$0.isEmpty }
                return constants.isEmpty ? nil : (node.name, Array(constants))
            default: return nil
            }
        }
    }

    /// How many layers (from the top) stage `stage` (0-based) randomises, of `layers`.
    public func cut(stage: Int, layers: Int) -> Int {
        guard stage > 0, steps > 1 else { return min(1, layers) }
        let share = Int((Double(layers * stage) / Double(steps - 1)).rounded(.up))
        return min(layers, max(stage + 1, share))
    }

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`steps`, `samples`, `noise`).
    public func validate() throws {
        guard Self.stepRange.contains(steps) else {
            throw XAIError.invalidArgument(parameter: "steps", value: "\(steps)",
                                           reason: "must be between \(Self.stepRange.lowerBound) and \(Self.stepRange.upperBound) randomisation stages")
        }
        guard let smoothing else { return }
        guard Smoothing.sampleRange.contains(smoothing.samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(smoothing.samples)",
                                           reason: "must be between \(Smoothing.sampleRange.lowerBound) and \(Smoothing.sampleRange.upperBound) maps averaged")
        }
        guard smoothing.noise.isFinite, smoothing.noise >= 0 else {
            throw XAIError.invalidArgument(parameter: "noise", value: "\(smoothing.noise)", reason: "must be a finite share of the image's range, 0 or more")
        }
    }

    /// The graph with `count` weighted layers randomised, from the top or, bottom up, from the input.
    public func randomised(_ graph: Graph, count: Int) -> Graph {
        var copy = graph
        let layers = Array(Self.layers(graph).enumerated())
        // A layer's draw is seeded by its place from the top in either order, so both end on the
        // same fully randomised model.
        for (index, layer) in order == .topDown ? Array(layers.prefix(count)) : Array(layers.suffix(count)) {
            for (p, name) in layer.parameters.enumerated() {
                guard let t = graph.initializers[name], t.shape.count > 0 else { continue }
                let n = Double(t.shape.count)
                let mean = t.scalars.reduce(0.0) { $0 + Double($1) } / n
                let std = (t.scalars.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n).squareRoot()
                copy.initializers[name] = Tensor.gaussian(t.shape, std: Float(std), seed: seed &+ 7919 &* UInt64(index) &+ UInt64(p))
            }
        }
        return copy
    }

    /// `|map|` of image `b` as compared: the method's map on `model`, or with smoothing the mean of
    /// its maps of the noisy copies. A value made non-finite by random weights counts as 0.
    func comparedMap(_ model: ExplainedModel, images: Tensor, _ b: Int, target: Int, pixels: Int,
                     explain: (ExplainedModel, Tensor, Int) throws -> Tensor) throws -> [Double] {
        let image = try ExplainedModel.image(images, b)
        func mapOf(_ input: Tensor) throws -> Tensor {
            let map = try explain(model, input, target)
            guard map.shape.count == pixels else {
                throw XAIError.shapeMismatch(op: name, expected: "a map of \(pixels) pixels", got: [map.shape])
            }
            return map
        }
        guard let smoothing else { return try mapOf(image).scalars.map { $0.isFinite ? Double(abs($0)) : 0 } }
        let values = image.scalars
        let std = smoothing.noise * ((values.max() ?? 0) - (values.min() ?? 0))
        var sum = [Double](repeating: 0, count: pixels)
        for copy in 0..<smoothing.samples {
            let input = copy == smoothing.samples - 1 ? image
                : Tensor(unchecked: image.shape, zip(values, Tensor.gaussian(image.shape, std: std, seed: Smoothing.noiseSeed(seed, image: b, copy: copy)).scalars).map(+))
            let map = try mapOf(input).scalars
            for i in 0..<pixels { sum[i] += Double(map[i]) }
        }
        return sum.map { v in
            let mean = abs(v / Double(smoothing.samples))
            return mean.isFinite ? mean : 0
        }
    }

    /// - Parameter explain: the map of one image `[1, C, H, W]` for a class, on the given model.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         explain: (ExplainedModel, Tensor, Int) throws -> Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: name)
        try validate()
        let all = Self.layers(model.graph)
        guard !all.isEmpty else { throw XAIError.unsupported(op: name, reason: "the model has no weighted layer (Conv, Gemm, MatMul) to randomise") }
        let (_, targets) = try model.prepare(images, target: target)
        let cuts = (0..<steps).map { cut(stage: $0, layers: all.count) }
        // sMPRT smooths the original model's maps as it does the randomised ones: the maps given
        // are single maps, and would differ from smoothed ones even on the same weights.
        let originals: [[Double]] = try (0..<n).map { b in
            smoothing == nil ? mapValues(maps, b, pixels: h * w).map { Double(abs($0)) }
                : try comparedMap(model, images: images, b, target: targets[b], pixels: h * w, explain: explain)
        }
        var curves = [[Double]](repeating: [], count: n)
        for count in cuts {
            let randomised = try ExplainedModel(graph: randomised(model.graph, count: count), backend: model.backend)
            for b in 0..<n {
                let again = try comparedMap(randomised, images: images, b, target: targets[b], pixels: h * w, explain: explain)
                curves[b].append(Similarity.spearman(originals[b], again))
            }
        }
        let scores = curves.map { c in c.filter(\.isFinite).isEmpty ? .nan : c.filter(\.isFinite).reduce(0, +) / Double(c.filter(\.isFinite).count) }
        var settings = ["steps": "\(steps)", "seed": "\(seed)", "layers randomised per stage": cuts.map(String.init).joined(separator: ","),
                        "layers": "\(all.count)", "order": order.rawValue, "similarity": "Spearman of |map|, mean over stages",
                        "first layer randomised": order == .topDown ? all[0].node : all[all.count - 1].node]
        if let smoothing {
            settings["smoothing"] = "\(smoothing.samples) maps averaged, \(smoothing.samples - 1) of them with Gaussian noise of \(smoothing.noise) x the image's range, the original model's too"
        }
        return MetricResult(metric: name, direction: .lowerIsBetter, scores: scores, settings: settings, curves: curves)
    }
}

/// The efficient model-parameter randomisation test (eMPRT; Hedström et al. 2023, "Sanity Checks
/// Revisited"; Quantus's `EfficientMPRT`): how much more complex the method's map grows when every
/// weighted layer is randomised (``ModelRandomisation``'s last stage, the same draws), as the
/// relative rise of its discrete entropy, `(H(randomised) - H(map)) / H(map)`. `H` is the entropy
/// (natural log) of the histogram of the map's signed values in `bins` equal bins between its
/// smallest and largest value, counted as NumPy's `histogram` counts them (Quantus's
/// `discrete_entropy` with its 100 bins, `abs` and `normalise` off). A map that explains the model
/// turns to noise when the model does: higher is better. NaN where the map is constant (entropy 0).
/// Each image's curve is the two entropies.
public struct EfficientModelRandomisation: Sendable {
    public static let binRange = 2...1_000_000
    public var bins: Int
    public var seed: UInt64

    public init(bins: Int = 100, seed: UInt64 = 0) {
        self.bins = bins
        self.seed = seed
    }

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`bins`).
    public func validate() throws {
        guard Self.binRange.contains(bins) else {
            throw XAIError.invalidArgument(parameter: "bins", value: "\(bins)",
                                           reason: "must be between \(Self.binRange.lowerBound) and \(Self.binRange.upperBound) histogram bins")
        }
    }

    /// The entropy of the histogram of `values` in `bins` equal bins from the smallest value to the
    /// largest, the last bin closed; 0 for constant values. The bins are NumPy's: an index from the
    /// value's place in the range, then moved one bin where the value falls outside the edges
    /// `lo + i * (hi - lo) / bins` (so a value on an edge lands as NumPy lands it).
    public static func discreteEntropy(_ values: [Double], bins: Int) -> Double {
        guard bins > 1, let lo = values.min(), let hi = values.max(), hi > lo else { return 0 }
        let width = (hi - lo) / Double(bins)
        var counts = [Int](repeating: 0, count: bins)
        for v in values {
            var i = min(Int((v - lo) / (hi - lo) * Double(bins)), bins - 1)
            if v < Double(i) * width + lo {
                i -= 1
            } else if i < bins - 1, v >= Double(i + 1) * width + lo {
                i += 1
            }
            counts[i] += 1
        }
        let total = Double(values.count)
        return counts.reduce(0.0) { h, c in
            guard c > 0 else { return h }
            let p = Double(c) / total
            return h - p * log(p)
        }
    }

    /// - Parameter explain: the map of one image `[1, C, H, W]` for a class, on the given model.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         explain: (ExplainedModel, Tensor, Int) throws -> Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "efficient_mprt")
        try validate()
        let all = ModelRandomisation.layers(model.graph)
        guard !all.isEmpty else {
            throw XAIError.unsupported(op: "efficient_mprt", reason: "the model has no weighted layer (Conv, Gemm, MatMul) to randomise")
        }
        let (_, targets) = try model.prepare(images, target: target)
        let cascade = ModelRandomisation(steps: 1, seed: seed)
        let randomised = try ExplainedModel(graph: cascade.randomised(model.graph, count: all.count), backend: model.backend)
        var scores: [Double] = [], curves: [[Double]] = []
        for b in 0..<n {
            let before = Self.discreteEntropy(mapValues(maps, b, pixels: h * w).map(Double.init), bins: bins)
            let map = try explain(randomised, try ExplainedModel.image(images, b), targets[b])
            guard map.shape.count == h * w else {
                throw XAIError.shapeMismatch(op: "efficient_mprt", expected: "a map of \(h)x\(w)", got: [map.shape])
            }
            // A value made non-finite by random weights counts as 0, as in MPRT.
            let after = Self.discreteEntropy(map.scalars.map { $0.isFinite ? Double($0) : 0 }, bins: bins)
            scores.append(before > 0 ? (after - before) / before : .nan)
            curves.append([before, after])
        }
        return MetricResult(metric: "efficient_mprt", direction: .higherIsBetter, scores: scores,
                            settings: ["bins": "\(bins)", "seed": "\(seed)", "layers randomised": "all \(all.count)",
                                       "complexity": "entropy of the histogram of the signed map (Quantus's discrete_entropy)",
                                       "score": "(H(randomised) - H(map)) / H(map); NaN where the map is constant"],
                            curves: curves)
    }
}
