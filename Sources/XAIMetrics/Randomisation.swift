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
        var generator = SeededGenerator(seed: seed &+ 1_000_003 &* UInt64(image))
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
public struct ModelRandomisation: Sendable {
    /// The randomisation stage counts it takes.
    public static let stepRange = 1...1000
    public var steps: Int
    public var seed: UInt64

    public init(steps: Int = 5, seed: UInt64 = 0) {
        self.steps = steps
        self.seed = seed
    }

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

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`steps`).
    public func validate() throws {
        guard Self.stepRange.contains(steps) else {
            throw XAIError.invalidArgument(parameter: "steps", value: "\(steps)",
                                           reason: "must be between \(Self.stepRange.lowerBound) and \(Self.stepRange.upperBound) randomisation stages")
        }
    }

    /// The graph with its top `count` weighted layers randomised.
    public func randomised(_ graph: Graph, count: Int) -> Graph {
        var copy = graph
        for (index, layer) in Self.layers(graph).prefix(count).enumerated() {
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

    /// - Parameter explain: the map of one image `[1, C, H, W]` for a class, on the given model.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         explain: (ExplainedModel, Tensor, Int) throws -> Tensor) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "mprt")
        try validate()
        let all = Self.layers(model.graph)
        guard !all.isEmpty else { throw XAIError.unsupported(op: "mprt", reason: "the model has no weighted layer (Conv, Gemm, MatMul) to randomise") }
        let (_, targets) = try model.prepare(images, target: target)
        let cuts = (0..<steps).map { cut(stage: $0, layers: all.count) }
        var curves = [[Double]](repeating: [], count: n)
        for count in cuts {
            let randomised = try ExplainedModel(graph: randomised(model.graph, count: count), backend: model.backend)
            for b in 0..<n {
                let map = try explain(randomised, try ExplainedModel.image(images, b), targets[b])
                guard map.shape.count == h * w else {
                    throw XAIError.shapeMismatch(op: "mprt", expected: "a map of \(h)x\(w)", got: [map.shape])
                }
                // A map made non-finite by random weights is as dissimilar as it gets.
                let again = map.scalars.map { $0.isFinite ? Double(abs($0)) : 0 }
                curves[b].append(Similarity.spearman(mapValues(maps, b, pixels: h * w).map { Double(abs($0)) }, again))
            }
        }
        let scores = curves.map { c in c.filter(\.isFinite).isEmpty ? .nan : c.filter(\.isFinite).reduce(0, +) / Double(c.filter(\.isFinite).count) }
        return MetricResult(metric: "mprt", direction: .lowerIsBetter, scores: scores,
                            settings: ["steps": "\(steps)", "seed": "\(seed)", "layers randomised per stage": cuts.map(String.init).joined(separator: ","),
                                       "layers": "\(all.count), from the output", "similarity": "Spearman of |map|, mean over stages",
                                       "first layer randomised": all[0].node],
                            curves: curves)
    }
}
