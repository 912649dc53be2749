import XAICore

// What the executor, the load-time rewrites, the CAM family and the model summary need to know
// about each op, in one place. Every switch here is exhaustive, so a new op does not compile until
// each property is decided for it.

extension Op {
    /// Whether a node of this op is evaluated once, on the host, when all its inputs are constants:
    /// shape arithmetic (Shape, Gather, Concat of shapes, ...) and cheap elementwise ops, which
    /// exporters emit around Reshape, and matrix products of constants (Swin V2's position-bias MLP
    /// over its constant coordinate table). Convolutions and pooling on constants are left to the device.
    public var isFoldable: Bool {
        switch self {
        case .constant, .shape, .gather, .constantOfShape, .unsqueeze, .squeeze, .concat, .reshape, .flatten, .slice, .cast,
             .binary, .unary, .transpose, .identity, .expand, .hostArithmetic, .split, .reduce, .gemm, .matMul, .resize:
            return true
        case .conv, .batchNorm, .pool, .globalAveragePool, .softmax, .pad, .layerNorm, .einsum, .instanceNorm, .roll:
            return false
        }
    }

    /// Whether the op's output is piecewise linear in the inputs at `dependent` (the indices of the
    /// inputs that depend on some earlier value), so that its second derivative with respect to
    /// that value vanishes almost everywhere. Grad-CAM++'s closed form is exact only along paths of
    /// such ops.
    public func isPiecewiseLinear(inInputs dependent: Set<Int>) -> Bool {
        switch self {
        case .conv(_, let act, _):
            // Linear in the data, the bias and the residual; a product when the weights depend too.
            return act.isPiecewiseLinear && dependent.isSubset(of: [0, 2, 3])
        case .gemm(_, _, _, _, let act):
            return act.isPiecewiseLinear && dependent.isSubset(of: [0, 2])
        case .batchNorm:
            return dependent.isSubset(of: [0])
        case .matMul, .einsum:
            return dependent.count < 2
        case .unary(let u):
            return u.isPiecewiseLinear
        case .binary(.add), .binary(.sub):
            return true
        case .binary(.mul):
            // A product is linear in the layer only when one factor does not depend on it.
            return dependent.count < 2
        case .binary(.div):
            // A quotient only when the divisor does not.
            return !dependent.contains(1)
        case .softmax, .layerNorm, .instanceNorm, .resize:
            return false
        case .reduce, .hostArithmetic, .expand, .split:
            // Sums and means are linear; max and min select one element, like max pooling.
            return true
        case .pool, .globalAveragePool, .flatten, .reshape, .transpose, .concat, .roll, .pad, .squeeze, .unsqueeze,
             .identity, .slice, .cast, .constantOfShape, .shape, .gather, .constant:
            return true
        }
    }

    /// Floating-point operations (2 x multiply-adds) of the op's convolutions and matrix products,
    /// given its input shapes and output shape; 0 for everything else.
    public func flops(inputs: [Shape?], output: Shape) -> Double {
        switch self {
        case .conv:
            guard inputs.count > 1, let w = inputs[1], w.rank == 4, w[0] > 0 else { return 0 }
            return 2 * Double(output.count) * Double(w.count / w[0])
        case .gemm(let ta, _, _, _, _):
            guard let a = inputs.first ?? nil, a.rank == 2 else { return 0 }
            return 2 * Double(output.count) * Double(ta ? a[0] : a[1])
        case .matMul:
            guard let a = inputs.first ?? nil, a.rank >= 2 else { return 0 }
            return 2 * Double(output.count) * Double(a[a.rank - 1])
        case .batchNorm, .unary, .binary, .pool, .globalAveragePool, .flatten, .reshape, .transpose, .concat, .roll, .softmax,
             .reduce, .pad, .squeeze, .unsqueeze, .identity, .slice, .cast, .constantOfShape, .shape, .gather, .constant,
             .layerNorm, .expand, .hostArithmetic, .split, .einsum, .instanceNorm, .resize:
            return 0
        }
    }

    /// Ops that only relabel their input's elements (no copy): views between pooling and a classifier.
    public var isView: Bool {
        switch self {
        case .flatten, .reshape, .squeeze, .unsqueeze, .identity: return true
        case .conv, .batchNorm, .gemm, .matMul, .unary, .binary, .pool, .globalAveragePool, .transpose, .concat, .roll, .softmax,
             .reduce, .pad, .slice, .cast, .constantOfShape, .shape, .gather, .constant, .layerNorm, .expand, .hostArithmetic, .split, .einsum, .instanceNorm, .resize:
            return false
        }
    }
}

extension UnaryOp {
    /// Ops whose second derivative vanishes almost everywhere.
    public var isPiecewiseLinear: Bool {
        switch self {
        case .identity, .relu, .clip, .leakyRelu, .hardSigmoid: return true
        case .sigmoid, .tanh, .silu, .hardSwish, .gelu, .geluTanh, .erf, .exp, .sqrt: return false
        case .pow(let p): return p == 1 || p == 0
        }
    }
}
