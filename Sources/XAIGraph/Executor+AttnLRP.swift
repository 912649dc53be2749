import XAICore

/// What AttnLRP's rules (``TransformerRules``) do at one op, given which of its inputs depend on
/// the input.
enum TransformerStep: Equatable {
    /// The gradient: linear ops (AttnLRP's epsilon rule in gradient-times-input form), rectifiers
    /// (where `y / x` is the gradient), softmax (its rule is its gradient times its input), max
    /// pooling and reshapes.
    case gradient
    /// `g * y / x`: relevance passes a pointwise activation unchanged.
    case identity
    /// The normalisation's backward with its deviation held constant.
    case normalization
    /// The gradient shared evenly among the operands that depend on the input.
    case uniform(operands: Int)
    /// No rule applies; why.
    case refused(String)
}

extension Executor {
    /// AttnLRP's step at `op` when the inputs at `needed` depend on the input.
    static func transformerStep(_ op: Op, _ needed: [Int]) -> TransformerStep {
        switch op {
        case .conv(_, let act, _), .gemm(_, _, _, _, let act):
            return act == .identity || act == .relu ? .gradient
                : .refused("its \(act) is fused into the product; AttnLRP runs on the graph with activations unfused")
        case .unary(let u):
            switch u {
            case .identity, .relu:
                return .gradient
            case .clip, .leakyRelu, .sigmoid, .tanh, .silu, .hardSigmoid, .hardSwish, .gelu, .geluTanh:
                return .identity
            case .erf, .exp, .sqrt, .pow:
                return .refused("\(u) on an activation is arithmetic inside a function the graph rewrites did not recognise (a spelled-out GELU, softmax or normalisation); AttnLRP has a rule for the whole function, not for its parts")
            }
        case .binary(.mul), .matMul, .einsum:
            return needed.count > 1 ? .uniform(operands: needed.count) : .gradient
        case .binary(.div):
            return needed.contains(1)
                ? .refused("a quotient by an activation has no AttnLRP rule (a normalisation the graph rewrites did not recognise)") : .gradient
        case .layerNorm, .instanceNorm:
            return needed == [0] ? .normalization : .refused("only the normalised input may depend on the image")
        case .binary, .pool, .globalAveragePool, .batchNorm, .reduce, .flatten, .reshape, .squeeze, .unsqueeze, .identity, .transpose,
             .concat, .roll, .expand, .gather, .pad, .cast, .slice, .split, .resize, .hostArithmetic, .constantOfShape, .shape,
             .constant, .softmax:
            return .gradient
        }
    }

    /// The first node a backward to `wrt` under `rules` would refuse, and why; `nil` where every
    /// node it differentiates has a rule (checked before any pass runs).
    public func transformerRefusal(wrt: Set<String>, rules: TransformerRules) -> (node: String, op: String, reason: String)? {
        let (nodes, dependsOnWrt) = differentiated(to: wrt, heldConstant: rules.heldConstant)
        for node in nodes {
            let needed = node.inputs.indices.filter { !node.inputs[$0].isEmpty && dependsOnWrt.contains(node.inputs[$0]) }
            if case .refused(let why) = Self.transformerStep(node.op, needed) { return (node.name, node.op.name, why) }
        }
        return nil
    }
}
