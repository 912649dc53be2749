import Foundation
import XAICore
import XAIGraph

/// How a `[C, H, W]` input attribution becomes an `[H, W]` map.
public enum ChannelReduction: String, Sendable, CaseIterable {
    /// max over channels of |a| (Simonyan et al.; Captum's Saliency with abs=True followed by a max).
    case maxAbsolute
    /// sum over channels (signed; what Gradient x Input and Integrated Gradients sum to).
    case sum
    /// mean over channels of |a|.
    case meanAbsolute
}

func reduceChannels(_ raw: Tensor, _ mode: ChannelReduction) -> Tensor {
    let (n, c) = (raw.shape[0], raw.shape[1])
    let plane = raw.shape.count / (n * c)
    var out = [Float](repeating: 0, count: n * plane)
    for b in 0..<n {
        for p in 0..<plane {
            var acc: Float = 0
            for ch in 0..<c {
                let v = raw.scalars[(b * c + ch) * plane + p]
                switch mode {
                case .maxAbsolute: acc = max(acc, abs(v))
                case .sum: acc += v
                case .meanAbsolute: acc += abs(v) / Float(c)
                }
            }
            out[b * plane + p] = acc
        }
    }
    return Tensor(unchecked: Shape([n] + raw.shape.dims.suffix(2)), out)
}

/// A gradient method whose raw attribution of a batch can stay on the device, for the wrappers
/// that average many of them there (SmoothGrad): the noisy copies go in, nothing comes out.
public protocol DeviceRawAttribution: ModelMethod {
    /// The raw attribution `[N, C, H, W]` of the batch `x`, image `b` for class `targets[b]`, on the device.
    func rawAttribution(_ x: DeviceArray, targets: [Int]) throws -> DeviceArray
}

/// Vanilla gradient saliency: the gradient of the target logit with respect to the input.
/// One forward and one backward for the whole batch.
public struct Saliency: ModelMethod {
    public let name = "saliency"
    public let model: ExplainedModel
    /// `raw` keeps the sign; the map reduces channels with `reduction` (default: max |gradient|).
    public var reduction: ChannelReduction

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - reduction: how channels of the gradient become one map value (default max |gradient|).
    public init(model: ExplainedModel, reduction: ChannelReduction = .maxAbsolute) {
        self.model = model
        self.reduction = reduction
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try model.validate(input)
        let r = try model.gradients(try model.backend.upload(input), target: target, wrt: [model.inputName])
        let raw = try model.backend.download(try model.inputGradient(r.grads))
        return Attribution(map: reduceChannels(raw, reduction), raw: raw, targets: r.targets, scores: ExplainedModel.scores(r.logits, r.targets))
    }
}

extension Saliency: DeviceRawAttribution {
    public func rawAttribution(_ x: DeviceArray, targets: [Int]) throws -> DeviceArray {
        try model.inputGradient(x, targets: targets)
    }
}

extension InputXGradient: DeviceRawAttribution {
    public func rawAttribution(_ x: DeviceArray, targets: [Int]) throws -> DeviceArray {
        try model.backend.binary(.mul, try model.inputGradient(x, targets: targets), x)
    }
}

/// Gradient x Input: the input times its gradient; the map sums over channels.
public struct InputXGradient: ModelMethod {
    public let name = "inputxgrad"
    public let model: ExplainedModel

    /// - Parameter model: the model to explain.
    public init(model: ExplainedModel) { self.model = model }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try model.validate(input)
        let be = model.backend
        let x = try be.upload(input)
        let r = try model.gradients(x, target: target, wrt: [model.inputName])
        let raw = try be.download(try be.binary(.mul, try model.inputGradient(r.grads), x))
        return Attribution(map: reduceChannels(raw, .sum), raw: raw, targets: r.targets, scores: ExplainedModel.scores(r.logits, r.targets))
    }
}

/// How Integrated Gradients places its steps on the path from the baseline to the input.
public enum IntegrationRule: String, Sendable, CaseIterable {
    /// The most path steps any rule takes.
    public static let maximumSteps = 100_000

    case left, right, middle, trapezoid, gaussLegendre = "gausslegendre"

    /// The fewest steps the rule takes (the trapezoid needs both ends).
    public var minimumSteps: Int { self == .trapezoid ? 2 : 1 }

    /// Path positions in [0, 1] and their weights, which sum to 1. The trapezoid rule's weights sum
    /// to 1 (Captum's sum to (n-1)/n: it halves the end weights of 1/n).
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`steps`) for fewer than
    ///   ``minimumSteps`` or more than 100,000 steps.
    public func nodes(_ n: Int) throws -> (alphas: [Double], weights: [Double]) {
        guard n >= minimumSteps, n <= Self.maximumSteps else {
            throw XAIError.invalidArgument(parameter: "steps", value: "\(n)", reason: "the \(rawValue) rule needs \(minimumSteps) to \(Self.maximumSteps) steps")
        }
        let dn = Double(n)
        switch self {
        case .left: return ((0..<n).map { Double($0) / dn }, [Double](repeating: 1 / dn, count: n))
        case .right: return ((1...n).map { Double($0) / dn }, [Double](repeating: 1 / dn, count: n))
        case .middle: return ((0..<n).map { (Double($0) + 0.5) / dn }, [Double](repeating: 1 / dn, count: n))
        case .trapezoid:
            var w = [Double](repeating: 1 / (dn - 1), count: n)
            w[0] /= 2; w[n - 1] /= 2
            return ((0..<n).map { Double($0) / (dn - 1) }, w)
        case .gaussLegendre:
            let (x, w) = legendreNodes(n)
            return (x.map { ($0 + 1) / 2 }, w.map { $0 / 2 })
        }
    }
}

/// Gauss-Legendre nodes and weights on [-1, 1] (Newton iteration on P_n), ascending.
func legendreNodes(_ n: Int) -> ([Double], [Double]) {
    var x = [Double](repeating: 0, count: n), w = [Double](repeating: 0, count: n)
    for i in 0..<((n + 1) / 2) {
        var z = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
        var dp = 0.0
        for _ in 0..<100 {
            var p0 = 1.0, p1 = z
            for k in 2...max(n, 2) where n >= 2 {
                let pk = ((2 * Double(k) - 1) * z * p1 - (Double(k) - 1) * p0) / Double(k)
                p0 = p1; p1 = pk
            }
            if n == 1 { p1 = z; p0 = 1 }
            dp = Double(n) * (z * p1 - p0) / (z * z - 1)
            let dz = p1 / dp
            z -= dz
            if abs(dz) < 1e-15 { break }
        }
        x[i] = -z; x[n - 1 - i] = z
        let wi = 2 / ((1 - z * z) * dp * dp)
        w[i] = wi; w[n - 1 - i] = wi
    }
    return (x, w)
}

/// Integrated Gradients (Sundararajan et al.): `(x - baseline) * integral of the gradient along the
/// straight path`, with the path steps run as large batches. Reports the completeness delta
/// `|sum(attribution) - (f(x) - f(baseline))|` for every image.
public struct IntegratedGradients: ModelMethod {
    public let name = "ig"
    public let model: ExplainedModel
    /// Number of path points (default 50).
    public var steps: Int
    public var rule: IntegrationRule
    /// Path points per forward/backward batch; by default as many as fit a quarter of the backend's
    /// memory budget (the activations and gradients of one image per point). Results do not depend
    /// on it beyond float rounding.
    public var internalBatchSize: Int?

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - steps: path points (the rule's minimum to 100,000; checked when the method runs).
    ///   - rule: where the points lie on the path and how they are weighted.
    ///   - internalBatchSize: path points per forward/backward batch (default: from the memory budget).
    /// `attribute` throws ``XAIError/invalidArgument(parameter:value:reason:)`` naming `steps` or
    /// `internalBatchSize`, and ``XAIError/tooLarge(what:bytes:limit:)`` for a batch beyond the budget.
    public init(model: ExplainedModel, steps: Int = 50, rule: IntegrationRule = .gaussLegendre, internalBatchSize: Int? = nil) {
        self.model = model
        self.steps = steps
        self.rule = rule
        self.internalBatchSize = internalBatchSize
    }

    /// Path points per batch: `internalBatchSize` (checked against the memory budget), or as many
    /// as fit a quarter of it (the activations kept for backward plus their gradients per point).
    func batchSize() throws -> Int {
        try model.batchSize(requested: internalBatchSize, bytesPerItem: try model.bytesPerImageForBackward(), cap: steps, parameter: "batch")
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (alphas, weights) = try rule.nodes(steps)
        let (batch, _, resolved) = try model.prepareOnDevice(input, target: target)
        let n = input.shape[0]
        let chunk = try batchSize()
        var raws: [Tensor] = [], targets: [Int] = [], scoreList: [Float] = []
        var deltas: [Double] = [], differences: [Double] = []
        // The path positions and weights go to the device once; each batch reads its slice.
        let alphaArray = try be.upload(try Tensor(shape: [steps, 1, 1, 1], scalars: alphas.map(Float.init)))
        let weightArray = try be.upload(try Tensor(shape: [steps, 1, 1, 1], scalars: weights.map(Float.init)))
        for b in 0..<n {
            let (xb, base) = try model.imageAndBaseline(input, b, baseline)
            let x = try model.image(batch, b), b0 = try be.upload(base)
            let diff = try be.binary(.sub, x, b0)
            // The weighted path gradients are summed on the device, each element in step order
            // (float32 with compensation), so the result does not depend on how the steps were
            // batched, and only the finished attribution comes back.
            var state: DeviceArray?
            try model.inBatches(steps, of: chunk) { range in
                let (start, count) = (range.lowerBound, range.count)
                // Path points b0 + alpha_k (x - b0), built on the device.
                let a = try be.slice(alphaArray, starts: [start, 0, 0, 0], sizes: [count, 1, 1, 1])
                let points = try be.binary(.add, try be.binary(.mul, a, diff), b0)
                let g = try model.inputGradient(points, targets: [Int](repeating: resolved[b], count: count))
                let w = try be.slice(weightArray, starts: [start, 0, 0, 0], sizes: [count, 1, 1, 1])
                state = try be.runningSum(try be.binary(.mul, g, w), state: state, absolute: false)
            }
            guard let state else { throw XAIError.invalidArgument(parameter: "steps", value: "\(steps)", reason: "no path points") }
            // The running mean over a count of 1 is the compensated sum itself.
            let integral = try be.runningMean(state, count: 1, squares: false)
            let raw = try be.download(try be.binary(.mul, try integral.reshaped(xb.shape), diff))
            // Completeness: f(x) - f(baseline) against the attribution's sum.
            // (In one batch of 2 where the graph allows it.)
            let ends = model.fixedBatch == 1 ? try Tensor.concatenated([model.logits(x), model.logits(b0)], axis: 0)
                : try model.logits(try be.concat([x, b0], axis: 0))
            let classes = ends.shape[1]
            let fx = Double(ends.scalars[resolved[b]]), fb = Double(ends.scalars[classes + resolved[b]])
            let sum = raw.scalars.reduce(0.0) { $0 + Double($1) }
            deltas.append(abs(sum - (fx - fb)))
            differences.append(fx - fb)
            raws.append(raw)
            targets.append(resolved[b])
            scoreList.append(Float(fx))
        }
        let raw = try ExplainedModel.stack(raws)
        return Attribution(map: reduceChannels(raw, .sum), raw: raw, targets: targets, scores: scoreList,
                           diagnostics: ["completenessDelta": deltas, "outputDifference": differences])
    }
}
