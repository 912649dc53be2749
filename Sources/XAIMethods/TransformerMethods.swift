import Foundation
import XAICore
import XAIGraph

/// AttnLRP (Achtibat et al., "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for
/// Transformers", ICML 2024) and CP-LRP (Ali et al., "XAI for Transformers: Better Explanations
/// through Conservative Propagation", ICML 2022), as `lxt` computes them: one forward and one
/// backward whose rules (``TransformerRules``) keep relevance `x * g` through normalisations,
/// activations and attention; the relevance at the input is the image times that backward. The map
/// sums it over channels, as `lxt`'s heatmaps do. `relevanceSum` (per image) is the relevance the
/// input received: close to the target logit where the biases are small.
public struct AttnLRP: ModelMethod {
    public enum Variant: String, Sendable, CaseIterable {
        /// Softmax by its gradient, each product of two activations (`Q K^T`, `A V`) by the uniform rule.
        case attnLRP = "attnlrp"
        /// The attention's softmax held constant: relevance flows through the values only.
        case conservative = "cp-lrp"
    }

    public var name: String { variant.rawValue }
    public let model: ExplainedModel
    public var variant: Variant

    public init(model: ExplainedModel, variant: Variant = .attnLRP) {
        self.model = model
        self.variant = variant
    }

    /// The rules of this variant for the model: CP-LRP holds every attention softmax constant.
    public func rules() -> TransformerRules {
        switch variant {
        case .attnLRP: return TransformerRules()
        case .conservative: return TransformerRules(heldConstant: Set(model.attentionSoftmaxes().map { model.graph.nodes[$0].name }))
        }
    }

    /// Throws, naming the node, where no rule applies (a spelled-out function the graph rewrites
    /// did not recognise); CP-LRP also throws for a model with no attention to hold constant.
    public func validate() throws {
        if variant == .conservative && model.attentionSoftmaxes().isEmpty {
            throw XAIError.unsupported(op: name, reason: "\(model.graph.name) has no attention (no Softmax over a product of two activations) to hold constant; use attnlrp")
        }
        if let refusal = model.unfusedExecutor().transformerRefusal(wrt: [model.inputName], rules: rules()) {
            throw XAIError.unsupported(op: "\(name) at \(refusal.op) node '\(refusal.node)'", reason: refusal.reason)
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try validate()
        try model.validate(input)
        let be = model.backend
        let x = try be.upload(input)
        let r = try model.gradients(x, target: target, wrt: [model.inputName], rules: PropagationRules(transformer: rules()),
                                    executor: model.unfusedExecutor())
        try r.logits.requireFinite("logits of the input images")
        let raw = try be.download(try be.binary(.mul, x, try model.inputGradient(r.grads)))
        return Attribution(map: reduceChannels(raw, .sum), raw: raw, targets: r.targets, scores: ExplainedModel.scores(r.logits, r.targets),
                           diagnostics: ["relevanceSum": relevanceSums(raw)])
    }
}

/// The relevance each image of `raw` (`[N, ...]`) received, summed in float64 (the LRP methods'
/// `relevanceSum`).
func relevanceSums(_ raw: Tensor) -> [Double] {
    let per = raw.shape.count / max(raw.shape[0], 1)
    return (0..<raw.shape[0]).map { b in raw.scalars[(b * per)..<((b + 1) * per)].reduce(0.0) { $0 + Double($1) } }
}
