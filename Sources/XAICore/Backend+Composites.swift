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
        try reduce(.mean, x, axes: try globalPoolingAxes(x.shape))
    }

    /// The gradient of ``globalAveragePool(_:)``: each output's gradient spread evenly over its plane.
    public func globalAveragePoolBackward(_ gradOutput: DeviceArray, input: DeviceArray) throws -> DeviceArray {
        try reduceBackward(.mean, gradOutput: gradOutput, input: input, axes: try globalPoolingAxes(input.shape))
    }

    /// Every axis after batch and channels: an image's plane, or a token sequence `[N, C, T]`
    /// (Hugging Face's Swin pools its tokens with `AdaptiveAvgPool1d`, exported as GlobalAveragePool).
    private func globalPoolingAxes(_ shape: Shape) throws -> [Int] {
        guard shape.rank >= 3 else {
            throw XAIError.shapeMismatch(op: "globalAveragePool", expected: "an input [N, C, spatial...] with at least one spatial axis", got: [shape])
        }
        return Array(2..<shape.rank)
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

    /// Gradients of `a op b` with respect to the operands in `needed` (0: `a`, 1: `b`): a bias or a
    /// constant factor needs none, and its sum over the broadcast axes costs a pass over the gradient.
    public func binaryBackward(_ op: BinaryOp, gradOutput g: DeviceArray, a: DeviceArray, b: DeviceArray, needed: Set<Int>) throws -> [Int: DeviceArray] {
        var r: [Int: DeviceArray] = [:]
        switch op {
        case .add:
            if needed.contains(0) { r[0] = try sum(g, toShape: a.shape) }
            if needed.contains(1) { r[1] = try sum(g, toShape: b.shape) }
        case .sub:
            if needed.contains(0) { r[0] = try sum(g, toShape: a.shape) }
            if needed.contains(1) { r[1] = try sum(try scaled(g, by: -1), toShape: b.shape) }
        case .mul:
            if needed.contains(0) { r[0] = try sum(try binary(.mul, g, b), toShape: a.shape) }
            if needed.contains(1) { r[1] = try sum(try binary(.mul, g, a), toShape: b.shape) }
        case .div:
            let gOverB = try binary(.div, g, b)
            if needed.contains(0) { r[0] = try sum(gOverB, toShape: a.shape) }
            if needed.contains(1) { r[1] = try sum(try scaled(try binary(.mul, gOverB, try binary(.div, a, b)), by: -1), toShape: b.shape) }
        }
        return r
    }

    /// Gradients of `a op b` with respect to both operands.
    public func binaryBackward(_ op: BinaryOp, gradOutput: DeviceArray, a: DeviceArray, b: DeviceArray) throws -> (DeviceArray, DeviceArray) {
        let r = try binaryBackward(op, gradOutput: gradOutput, a: a, b: b, needed: [0, 1])
        guard let da = r[0], let db = r[1] else {
            throw XAIError.invalidArgument(parameter: "needed", value: "[0, 1]", reason: "binaryBackward returned no gradient")
        }
        return (da, db)
    }

    /// `x * factor`.
    public func scaled(_ x: DeviceArray, by factor: Float) throws -> DeviceArray {
        try binary(.mul, x, try filled([1], value: factor))
    }

    /// The mean `(sum + compensation) / count` of a ``runningSum(_:state:absolute:)`` state
    /// `[4, item]` after `count` rows, of the values or, with `squares`, of their squares: `[1, item]`.
    public func runningMean(_ state: DeviceArray, count: Int, squares: Bool) throws -> DeviceArray {
        guard state.shape.rank == 2, state.shape[0] == 4, count >= 1 else {
            throw XAIError.shapeMismatch(op: "runningMean", expected: "a running-sum state [4, item] and count >= 1", got: [state.shape])
        }
        let item = state.shape[1], first = squares ? 2 : 0
        let sum = try binary(.add, try slice(state, starts: [first, 0], sizes: [1, item]), try slice(state, starts: [first + 1, 0], sizes: [1, item]))
        return try binary(.div, sum, try filled([1], value: Float(count)))
    }

    /// `x + value`.
    public func adding(_ value: Float, to x: DeviceArray) throws -> DeviceArray {
        try binary(.add, x, try filled([1], value: value))
    }

    /// Matrix products of the last two axes, `op(a) @ op(b)`, with numpy broadcasting of the leading
    /// axes (ONNX MatMul; attention's `Q K^T` and `A V`). A 2-D `b` (a linear layer's weight) makes
    /// one GEMM of all of `a`'s rows; otherwise one GEMM per matrix of the broadcast batch.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` for operands below rank 2, inner
    ///   extents that differ, or batch axes that do not broadcast.
    public func batchedMatMul(_ a: DeviceArray, _ b: DeviceArray, transposeA: Bool = false, transposeB: Bool = false,
                              bias: DeviceArray? = nil) throws -> DeviceArray {
        let plan = try BatchedGemmPlan(a: a.shape, b: b.shape, transposeA: transposeA, transposeB: transposeB)
        let (m, n, ka) = (plan.m, plan.n, plan.k)
        let (sa, sb) = (a.shape, b.shape)
        let batchA = Shape(Array(sa.dims.dropLast(2))), batch = Shape(plan.batch)
        if let bias, bias.shape.count != n {
            throw XAIError.shapeMismatch(op: "MatMul", expected: "a bias of \(n) values", got: [sa, sb, bias.shape])
        }
        if sb.rank == 2 && !transposeA {
            let rows = try a.reshaped([batchA.count * m, ka])
            let y = try gemm(rows, b, transposeA: false, transposeB: transposeB, alpha: 1, bias: try bias?.reshaped([n]), activation: .identity)
            return try y.reshaped(Shape(batch.dims + [m, n]))
        }
        if let bias { return try binary(.add, try batchedMatMul(a, b, transposeA: transposeA, transposeB: transposeB), try bias.reshaped([n])) }
        if let y = try batchedGemm(a, b, plan: plan) { return y }
        let batchB = Shape(Array(sb.dims.dropLast(2)))
        let count = batch.count
        // Each operand as [count, rows, columns], broadcast along the batch where it has fewer matrices.
        func stacked(_ x: DeviceArray, _ own: Shape) throws -> DeviceArray {
            let r = x.shape.rank
            let matrix = [x.shape[r - 2], x.shape[r - 1]]
            let full = own == batch ? x : try binary(.add, x, try zeros(Shape(batch.dims + matrix)))
            return try full.reshaped(Shape([count] + matrix))
        }
        let a3 = try stacked(a, batchA), b3 = try stacked(b, batchB)
        var parts: [DeviceArray] = []
        parts.reserveCapacity(count)
        for i in 0..<count {
            let ai = try slice(a3, starts: [i, 0, 0], sizes: [1, a3.shape[1], a3.shape[2]]).reshaped([a3.shape[1], a3.shape[2]])
            let bi = try slice(b3, starts: [i, 0, 0], sizes: [1, b3.shape[1], b3.shape[2]]).reshaped([b3.shape[1], b3.shape[2]])
            parts.append(try gemm(ai, bi, transposeA: transposeA, transposeB: transposeB, alpha: 1, bias: nil, activation: .identity)
                .reshaped([1, m, n]))
        }
        let y = count == 1 ? parts[0] : try concat(parts, axis: 0)
        return try y.reshaped(Shape(batch.dims + [m, n]))
    }

    /// Gradients of ``batchedMatMul(_:_:transposeA:transposeB:)`` (no transposes) with respect to
    /// the operands in `needed` (0: `a`, 1: `b`), summed back over broadcast batch axes.
    public func batchedMatMulBackward(gradOutput: DeviceArray, a: DeviceArray, b: DeviceArray, needed: Set<Int>) throws -> [Int: DeviceArray] {
        var r: [Int: DeviceArray] = [:]
        if needed.contains(0) {
            r[0] = try sum(try batchedMatMul(gradOutput, b, transposeB: true), toShape: a.shape)
        }
        if needed.contains(1) {
            r[1] = try sum(try batchedMatMul(a, gradOutput, transposeA: true), toShape: b.shape)
        }
        return r
    }

    /// Layer normalisation over `axes` (the trailing ones): `(x - mean) / sqrt(var + epsilon) * scale + bias`,
    /// `scale` and `bias` broadcast against the normalised axes (ONNX LayerNormalization): the
    /// ``Backend/layerNorm(_:scale:bias:plan:)`` primitive where the scale has one value per
    /// normalised element and the backend has it, else composed of reductions and arithmetic.
    public func layerNorm(_ x: DeviceArray, axes: [Int], epsilon: Float, scale: DeviceArray, bias: DeviceArray?) throws -> DeviceArray {
        if let plan = try layerNormPlan(x.shape, axes: axes, epsilon: epsilon, scale: scale.shape, bias: bias?.shape) {
            guard supports(.layerNorm) else {
                return try onHost([x, scale] + (bias.map { [$0] } ?? [])) { r, a in try r.layerNorm(a[0], scale: a[1], bias: a.count > 2 ? a[2] : nil, plan: plan) }
            }
            return try layerNorm(x, scale: scale, bias: bias, plan: plan)
        }
        return try layerNormComposed(x, axes: axes, epsilon: epsilon, scale: scale, bias: bias)
    }

    /// The primitive's plan when `axes` are the trailing axes and the scale and bias have one value
    /// per normalised element; `nil` for other (broadcast) forms, which are composed.
    func layerNormPlan(_ shape: Shape, axes: [Int], epsilon: Float, scale: Shape, bias: Shape?) throws -> LayerNormPlan? {
        let normalized = Set(axes.compactMap(shape.normalizedAxis))
        guard let first = normalized.min(), normalized == Set(first..<shape.rank), normalized.count == axes.count else { return nil }
        let columns = shape.dims[first...].reduce(1, *)
        guard scale.count == columns, (bias?.count ?? columns) == columns else { return nil }
        return try LayerNormPlan(shape, axis: first, epsilon: epsilon, scale: scale, bias: bias)
    }

    /// Layer normalisation from reductions and broadcast arithmetic (any broadcastable scale).
    func layerNormComposed(_ x: DeviceArray, axes: [Int], epsilon: Float, scale: DeviceArray, bias: DeviceArray?) throws -> DeviceArray {
        let (normalized, _) = try layerNormParts(x, axes: axes, epsilon: epsilon)
        let scaled = try binary(.mul, normalized, scale)
        return try bias.map { try binary(.add, scaled, $0) } ?? scaled
    }

    /// `x - mean` over `axes` divided by the standard deviation, and that deviation (kept axes extent 1).
    func layerNormParts(_ x: DeviceArray, axes: [Int], epsilon: Float) throws -> (DeviceArray, DeviceArray) {
        let centred = try binary(.sub, x, try reduce(.mean, x, axes: axes))
        let variance = try reduce(.mean, try binary(.mul, centred, centred), axes: axes)
        let deviation = try unary(.sqrt, try adding(epsilon, to: variance))
        return (try binary(.div, centred, deviation), deviation)
    }

    /// The gradient of ``layerNorm(_:axes:epsilon:scale:bias:)`` with respect to `x`:
    /// `(g' - mean(g') - xhat * mean(g' * xhat)) / deviation` with `g' = gradOutput * scale`.
    public func layerNormBackward(_ gradOutput: DeviceArray, input x: DeviceArray, axes: [Int], epsilon: Float, scale: DeviceArray) throws -> DeviceArray {
        if let plan = try layerNormPlan(x.shape, axes: axes, epsilon: epsilon, scale: scale.shape, bias: nil) {
            guard gradOutput.shape == x.shape else {
                throw XAIError.shapeMismatch(op: "layerNormBackward", expected: "a gradient shaped like the input", got: [gradOutput.shape, x.shape])
            }
            guard supports(.layerNormBackward) else {
                return try onHost([gradOutput, x, scale]) { r, a in try r.layerNormBackward(a[0], input: a[1], scale: a[2], plan: plan) }
            }
            return try layerNormBackward(gradOutput, input: x, scale: scale, plan: plan)
        }
        return try layerNormBackwardComposed(gradOutput, input: x, axes: axes, epsilon: epsilon, scale: scale)
    }

    func layerNormBackwardComposed(_ gradOutput: DeviceArray, input x: DeviceArray, axes: [Int], epsilon: Float, scale: DeviceArray) throws -> DeviceArray {
        let (normalized, deviation) = try layerNormParts(x, axes: axes, epsilon: epsilon)
        let g = try binary(.mul, gradOutput, scale)
        let meanG = try reduce(.mean, g, axes: axes)
        let meanGX = try reduce(.mean, try binary(.mul, g, normalized), axes: axes)
        let inner = try binary(.sub, try binary(.sub, g, meanG), try binary(.mul, normalized, meanGX))
        return try binary(.div, inner, deviation)
    }

    /// 1 where `x > 0` (`positive`) or `x < 0` (else), 0 elsewhere: a hard sigmoid of slope
    /// 1e30, exact outside `|x| < 1e-30` (where the masks it makes weigh nothing that counts).
    public func indicator(_ x: DeviceArray, positive: Bool) throws -> DeviceArray {
        try unary(.hardSigmoid(alpha: positive ? 1e30 : -1e30, beta: 0), x)
    }

    /// `r / (z + s sign z)`, sign 0 = +1 (Zennit's `stabilize`), elementwise on the device: the
    /// sign's step is a hard sigmoid of slope 1e30 (1 for `z >= 0`, 0 below -1e-30), so
    /// `z + s (2 step - 1)` adds exactly `s` or `-s`.
    public func stabilizedDivide(_ r: DeviceArray, by z: DeviceArray, stabilizer s: Float) throws -> DeviceArray {
        if r.shape == z.shape, let fused = try fusedStabilizedDivide(r, by: z, stabilizer: s) { return fused }
        let step = try unary(.hardSigmoid(alpha: 1e30, beta: 1), z)
        let offset = try adding(-s, to: try scaled(step, by: 2 * s))
        return try binary(.div, r, try binary(.add, z, offset))
    }

    /// The backward of ``layerNorm(_:axes:epsilon:scale:bias:)`` with the deviation held constant,
    /// `(g' - mean(g')) / deviation` with `g' = gradOutput * scale`: the norm as the linear map it
    /// is for fixed statistics (AttnLRP's identity rule for normalisation, `lxt`'s
    /// `(x - mean) / stop_gradient(std)`).
    public func layerNormBackwardHoldingDeviation(_ gradOutput: DeviceArray, input x: DeviceArray, axes: [Int], epsilon: Float,
                                                  scale: DeviceArray) throws -> DeviceArray {
        let (_, deviation) = try layerNormParts(x, axes: axes, epsilon: epsilon)
        let g = try binary(.mul, gradOutput, scale)
        return try binary(.div, try binary(.sub, g, try reduce(.mean, g, axes: axes)), deviation)
    }
}
