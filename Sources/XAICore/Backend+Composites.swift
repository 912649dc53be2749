// Ops written once on top of the primitives, so every backend gets them for free.
extension Backend {
    /// An array of zeros.
    public func zeros(_ shape: Shape) throws -> DeviceArray { try filled(shape, value: 0) }

    /// Fully connected layer: `x` `[N, K]`, `weight` `[M, K]` (PyTorch/ONNX layout), `bias` `[M]`.
    public func fullyConnected(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?,
                               activation: UnaryOp = .identity) throws -> DeviceArray {
        try gemm(x, weight, transposeA: false, transposeB: true, alpha: 1, bias: bias, activation: activation)
    }

    /// Gradient of ``fullyConnected(_:weight:bias:activation:)`` (no activation) with respect to `x`.
    public func fullyConnectedBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray) throws -> DeviceArray {
        try gemm(gradOutput, weight, transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity)
    }

    /// `[N, C, H, W] -> [N, C, 1, 1]` mean.
    public func globalAveragePool(_ x: DeviceArray) throws -> DeviceArray {
        guard x.shape.rank == 4 else { throw XAIError.shapeMismatch(op: "globalAveragePool", expected: "a 4-D input", got: [x.shape]) }
        return try reduce(.mean, x, axes: [2, 3])
    }

    /// The gradient of ``globalAveragePool(_:)``: each output's gradient spread evenly over its plane.
    public func globalAveragePoolBackward(_ gradOutput: DeviceArray, input: DeviceArray) throws -> DeviceArray {
        try reduceBackward(.mean, gradOutput: gradOutput, input: input, axes: [2, 3])
    }

    /// Sums a broadcast result back to `shape` (the backward of numpy broadcasting).
    public func sum(_ x: DeviceArray, toShape shape: Shape) throws -> DeviceArray {
        if x.shape == shape { return x }
        let offset = x.shape.rank - shape.rank
        guard offset >= 0 else { throw XAIError.shapeMismatch(op: "sumToShape", expected: "a shape \(x.shape) broadcasts to", got: [shape]) }
        var axes: [Int] = Array(0..<offset)
        for i in 0..<shape.rank where shape[i] != x.shape[i + offset] {
            guard shape[i] == 1 else { throw XAIError.shapeMismatch(op: "sumToShape", expected: "a shape \(x.shape) broadcasts to", got: [shape]) }
            axes.append(i + offset)
        }
        let reduced = axes.isEmpty ? x : try reduce(.sum, x, axes: axes)
        return try reduced.reshaped(shape)
    }

    /// Gradients of `a op b` with respect to both operands.
    public func binaryBackward(_ op: BinaryOp, gradOutput: DeviceArray, a: DeviceArray, b: DeviceArray) throws -> (DeviceArray, DeviceArray) {
        switch op {
        case .add:
            return (try sum(gradOutput, toShape: a.shape), try sum(gradOutput, toShape: b.shape))
        case .sub:
            return (try sum(gradOutput, toShape: a.shape), try sum(try scaled(gradOutput, by: -1), toShape: b.shape))
        case .mul:
            return (try sum(try binary(.mul, gradOutput, b), toShape: a.shape),
                    try sum(try binary(.mul, gradOutput, a), toShape: b.shape))
        case .div:
            // d/da = g / b; d/db = -g * a / b^2 = -(g / b) * (a / b)
            let gOverB = try binary(.div, gradOutput, b)
            let aOverB = try binary(.div, a, b)
            let db = try scaled(try binary(.mul, gOverB, aOverB), by: -1)
            return (try sum(gOverB, toShape: a.shape), try sum(db, toShape: b.shape))
        }
    }

    /// `x * factor`.
    public func scaled(_ x: DeviceArray, by factor: Float) throws -> DeviceArray {
        try binary(.mul, x, try filled([1], value: factor))
    }

    /// `x + value`.
    public func adding(_ value: Float, to x: DeviceArray) throws -> DeviceArray {
        try binary(.add, x, try filled([1], value: value))
    }
}
