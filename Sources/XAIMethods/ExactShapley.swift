import Foundation
import XAICore
import XAIGraph

/// Exact Shapley values of the segments by evaluating all `2^M` coalitions (at most 16 segments):
/// `phi_i = sum over S without i of |S|! (M - |S| - 1)! / M! (v(S + i) - v(S))`. The oracle the
/// KernelSHAP tests compare with; usable on its own for coarse segmentations.
public struct ExactShapley: ModelMethod {
    public let name = "shapley"
    public let model: ExplainedModel
    public var segmentation: Segmentation
    public var engine: PerturbationEngine
    public static let maximumPlayers = 16

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - segmentation: superpixels (at most ``maximumPlayers``; checked when the method runs).
    ///   - perturbationsPerEval: copies per forward batch (default: from the memory budget).
    ///   - output: the score read for each copy.
    ///   - progress: called after every batch.
    public init(model: ExplainedModel, segmentation: Segmentation, perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit,
                progress: PerturbationProgress? = nil) {
        self.model = model
        self.segmentation = segmentation
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try explainSegments(model: model, engine: engine, segmentation: segmentation, input: input, target: target, baseline: baseline) { game in
            let m = game.players
            guard m <= Self.maximumPlayers else {
                throw XAIError.invalidArgument(parameter: "segments", value: "\(m)", reason: "exact Shapley values need at most \(Self.maximumPlayers) segments; use kernelshap")
            }
            let all = 1 << m
            let v = try game.values((0..<all).map { s in (0..<m).map { s >> $0 & 1 == 1 } })
            var factorial = [1.0]
            for i in 1...m { factorial.append(factorial[i - 1] * Double(i)) }
            var phi = [Double](repeating: 0, count: m)
            for s in 0..<all {
                let size = s.nonzeroBitCount
                guard size < m else { continue }
                let weight = factorial[size] * factorial[m - size - 1] / factorial[m]
                for i in 0..<m where s >> i & 1 == 0 { phi[i] += weight * (v[s | 1 << i] - v[s]) }
            }
            return (phi, ["baseValue": v[0]])
        }
    }
}
