import XAICore

/// How a backward pass carries the signal through a rectifier (`Relu`, fused into a convolution
/// or a GEMM or on its own). The gradient is the default; the others are the modified backward
/// passes of guided backpropagation and deconvolution, which differ from it at this op only.
public enum ReLURule: String, Sendable, CaseIterable {
    /// `g * (x > 0)`: the gradient.
    case gradient
    /// `relu(g) * (x > 0)`: only positive signal, only where the unit was active (Springenberg et
    /// al.; Captum's GuidedBackprop).
    case guided
    /// `relu(g)`: only positive signal, wherever the unit was (Zeiler & Fergus; Captum's
    /// Deconvolution).
    case deconvolution
}

/// The backward rules a method names, op kind by op kind: ``Executor/backward(_:seeds:wrt:rules:)``
/// takes the gradient wherever a rule is not overridden here. One place maps op kinds to rules, as
/// the executor's gradient table maps op kinds to their vector-Jacobian products.
public struct PropagationRules: Sendable {
    public var relu: ReLURule
    /// DeepLIFT's rescale rule (Shrikumar et al.) against this reference pass, a forward of the
    /// baselines run with `forBackward` on the same executor: each nonlinear op carries back
    /// `g * (y - y') / (x - x')` (where `|x - x'| < 1e-10`, its gradient), max pooling Captum's
    /// rule; linear ops take their gradient; a nonlinear op with no such rule is refused with its
    /// node named. The graph must have its activations unfused (``Graph/unfusingActivations()``).
    public var rescaleAgainst: Executor.Pass?
    /// Layer-wise relevance propagation: the seeds are relevances, and each node with a rule here
    /// maps its output's relevance to its input's (``LRPRule``); the others take their gradient.
    public var lrp: LRPRules?
    /// AttnLRP's rules for transformers (or CP-LRP's, with the attention held constant).
    public var transformer: TransformerRules?

    public init(relu: ReLURule = .gradient, rescaleAgainst: Executor.Pass? = nil, lrp: LRPRules? = nil, transformer: TransformerRules? = nil) {
        self.relu = relu
        self.rescaleAgainst = rescaleAgainst
        self.lrp = lrp
        self.transformer = transformer
    }

    /// The plain gradient everywhere.
    public static let gradient = PropagationRules()

    /// Below this `|x - x'|`, the rescale rule takes the gradient (Captum's `eps`).
    public static let rescaleEpsilon: Float = 1e-10

    /// The backward of the pointwise `activation` under these rules: `gy` carried back through it,
    /// where `value` is its input (or its output when `valueIsOutput`).
    func activationBackward(_ activation: UnaryOp, _ gy: DeviceArray, on backend: any Backend, valueIsOutput: Bool,
                            value: () throws -> DeviceArray) throws -> DeviceArray {
        if activation == .identity { return gy }
        if activation == .relu {
            switch relu {
            case .gradient: break
            case .guided:
                let v = try value()
                if let fused = try backend.guidedReLUBackward(gy, value: v) { return fused }
                return try backend.unary(.relu, try backend.unaryBackward(.relu, gradOutput: gy, value: v, valueIsOutput: valueIsOutput))
            case .deconvolution:
                return try backend.unary(.relu, gy)
            }
        }
        return try backend.unaryBackward(activation, gradOutput: gy, value: try value(), valueIsOutput: valueIsOutput)
    }
}

/// AttnLRP (Achtibat et al., ICML 2024) in its gradient-times-input form, as `lxt`'s efficient
/// rules compute it: the backward is the gradient except
/// - at normalisations (LayerNormalization, InstanceNormalization): the identity rule, the
///   deviation held constant, so the normalisation is linear in its input;
/// - at pointwise activations (GELU, SiLU, sigmoid, tanh, ...): the identity rule, `g * y / x`, which
///   passes relevance `x * g` through unchanged;
/// - at a product of two activations (attention's `Q K^T` and `A V`, gates): the uniform rule, each
///   operand's gradient divided by the number of operands that depend on the input;
/// - at the nodes `heldConstant` names: no gradient, and their outputs count as constants. CP-LRP
///   (Ali et al., ICML 2022) holds the attention's softmax constant, so attention mixes values
///   linearly and `A V` is no product of two activations.
/// The relevance at the input is `x * g`. Run it on the graph with activations unfused
/// (``Graph/unfusingActivations()``): the identity rule reads an activation's input.
public struct TransformerRules: Sendable {
    public var heldConstant: Set<String>

    public init(heldConstant: Set<String> = []) {
        self.heldConstant = heldConstant
    }

    /// Added to an activation's input before dividing by it (`lxt`'s).
    public static let identityEpsilon: Float = 1e-10
}
