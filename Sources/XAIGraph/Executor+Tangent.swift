import XAICore

// Forward-mode products along piecewise-linear paths: the Jacobian of the outputs at a forward
// pass's point times a direction given at one activation. ShapleyCAM's Hessian-vector product
// needs the Jacobian times the activations themselves, `J A`, which a backward pass (it gives
// `J^T w`) cannot give without one pass per output.

extension Executor {
    /// `J t` for every graph output, `J` the Jacobian of the outputs with respect to the activation
    /// `layer` at the point of `pass`, and `t` (shaped like the layer) the direction. Each node
    /// after the layer applies its linear part to the directions reaching it: convolutions and
    /// linear layers without their bias, times the derivative of their fused activation at the
    /// pass's values; batch norms their scale; rectifiers their derivative; sums, pooling by the
    /// mean and the movement ops themselves (constants taking no direction). One forward's work.
    /// - Parameters:
    ///   - pass: a forward pass run with `forBackward: true` (with `backwardTo` containing `layer`
    ///     where it names values to keep: the same values serve).
    /// - Throws: ``XAIError/unsupported(op:reason:)`` naming a node after the layer that is not
    ///   piecewise linear in it (a smooth op, which has no linear part to apply exactly) or that
    ///   selects by value (max pooling, max and min: not taken).
    public func jacobianProduct(_ pass: Pass, layer: String, direction t: DeviceArray) throws -> [String: DeviceArray] {
        guard let layerValue = pass.values[layer] else {
            throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "not a value kept by the forward pass (run it with forBackward: true)")
        }
        guard layerValue.shape == t.shape else {
            throw XAIError.shapeMismatch(op: "Jacobian product at '\(layer)'", expected: "the layer's shape \(layerValue.shape)", got: [t.shape])
        }
        var tangents: [String: DeviceArray] = [layer: t]
        for node in graph.nodes where !node.outputs.contains(layer) && node.inputs.contains(where: { tangents[$0] != nil }) {
            let dependent = Set(node.inputs.indices.filter { !node.inputs[$0].isEmpty && tangents[node.inputs[$0]] != nil })
            do {
                let out = try tangent(node, dependent: dependent, tangents: tangents, pass: pass)
                for (name, v) in zip(node.outputs, out) { tangents[name] = v }
            } catch let e as XAIError {
                throw e.inNode(node.name, op: node.op.name)
            }
        }
        return try outputs(following: layer) { tangents[$0] }
    }

    /// The directions of one node's outputs, given those of its inputs at `dependent`.
    private func tangent(_ node: Node, dependent: Set<Int>, tangents: [String: DeviceArray], pass: Pass) throws -> [DeviceArray] {
        let be = backend
        func value(_ i: Int) throws -> Value {
            let name = node.inputs[i]
            guard let v = pass.values[name] ?? graph.initializers[name].map(Value.host) else {
                throw XAIError.invalidArgument(parameter: "pass", value: name, reason: "Jacobian product: the value was not kept")
            }
            return v
        }
        func output() throws -> DeviceArray {
            guard let v = pass.values[node.outputs[0]] else {
                throw XAIError.invalidArgument(parameter: "pass", value: node.outputs[0], reason: "Jacobian product: the value was not kept")
            }
            return try device(v, node.outputs[0])
        }
        func direction(_ i: Int) -> DeviceArray? { dependent.contains(i) ? tangents[node.inputs[i]] : nil }
        // The node itself on the directions: the dependent inputs replaced by theirs, the inputs at
        // `dropped` (biases, a pad's fill) left out, the rest as the pass saw them.
        func linearPart(_ op: Op, dropping dropped: Set<Int> = []) throws -> [DeviceArray] {
            let args: [Value?] = try node.inputs.indices.map { i in
                if node.inputs[i].isEmpty || dropped.contains(i) { return nil }
                if let d = direction(i) { return .device(d) }
                return try value(i)
            }
            let inputs = node.inputs.indices.map { dropped.contains($0) ? "" : node.inputs[$0] }
            return try evaluate(Node(name: node.name, op: op, inputs: inputs, outputs: node.outputs), args, exact: true)
                .enumerated().map { try device($1, node.outputs[$0]) }
        }
        func only(_ a: DeviceArray) -> [DeviceArray] { [a] }
        guard node.op.isPiecewiseLinear(inInputs: dependent) else {
            throw XAIError.unsupported(op: "Jacobian product", reason: "not piecewise linear in the layer, so it has no linear part to apply exactly")
        }
        switch node.op {
        case .conv(let p, let act, let autoPad):
            // The convolution of the data's direction plus the residual's, then the activation's derivative.
            var lin: DeviceArray
            if dependent.contains(0) {
                lin = try linearPart(.conv(p, activation: .identity, autoPad: autoPad), dropping: [2, 3])[0]
                if let r = direction(3) { lin = try be.binary(.add, lin, r) }
            } else if let r = direction(3) {
                lin = r
            } else {
                lin = try be.zeros(try output().shape)
            }
            return only(try PropagationRules.gradient.activationBackward(act, lin, on: be, valueIsOutput: true) { try output() })
        case .gemm(let ta, let tb, let alpha, let beta, let act):
            var lin: DeviceArray
            if dependent.contains(0) {
                lin = try linearPart(.gemm(transA: ta, transB: tb, alpha: alpha, beta: beta, activation: .identity), dropping: [2])[0]
                if let c = direction(2) { lin = try be.binary(.add, lin, try be.scaled(c, by: beta)) }
            } else if let c = direction(2) {
                lin = try be.binary(.add, try be.zeros(try output().shape), try be.scaled(c, by: beta))
            } else {
                lin = try be.zeros(try output().shape)
            }
            return only(try PropagationRules.gradient.activationBackward(act, lin, on: be, valueIsOutput: true) { try output() })
        case .batchNorm(let eps):
            guard let d = direction(0) else { return only(try be.zeros(try output().shape)) }
            let (scale, _) = try batchNormAffine(try host(try value(1), node.inputs[1], op: "BatchNormalization"),
                                                 try host(try value(2), node.inputs[2], op: "BatchNormalization"),
                                                 try host(try value(3), node.inputs[3], op: "BatchNormalization"),
                                                 try host(try value(4), node.inputs[4], op: "BatchNormalization"), eps)
            let shape = Shape([1, scale.shape.count] + [Int](repeating: 1, count: max(d.shape.rank - 2, 0)))
            return only(try be.binary(.mul, d, try be.upload(try scale.reshaped(shape))))
        case .unary(let u):
            guard let d = direction(0) else { return only(try be.zeros(try output().shape)) }
            return only(try PropagationRules.gradient.activationBackward(u, d, on: be, valueIsOutput: false) { try device(try value(0), node.inputs[0]) })
        case .binary(let op):
            // A sum's direction is the sum of its operands'; a product or quotient by a constant
            // is the same product of the direction.
            let shape = try output().shape
            let a = direction(0), b = direction(1)
            switch op {
            case .add, .sub:
                var r = try a ?? be.zeros(shape)
                if let b { r = try be.binary(op, r, b) }
                if r.shape != shape { r = try be.binary(.add, try be.zeros(shape), r) }
                return only(r)
            case .mul, .div:
                return try linearPart(node.op)
            }
        case .pool(let p, _):
            guard p.kind == .average else {
                throw XAIError.unsupported(op: "Jacobian product", reason: "max pooling after the layer is not taken (it selects by value)")
            }
            return try linearPart(node.op)
        case .reduce(let r, _, _):
            guard r == .sum || r == .mean else {
                throw XAIError.unsupported(op: "Jacobian product", reason: "a \(r) reduction after the layer is not taken (it selects by value)")
            }
            return try linearPart(node.op)
        case .matMul:
            // The bias (input 2) is a constant.
            return try linearPart(node.op, dropping: dependent.contains(2) ? [] : [2])
        case .pad:
            // The fill is a constant: the direction is padded with zeros.
            return try linearPart(node.op, dropping: [2])
        case .concat:
            // Inputs that do not depend on the layer have no direction: zeros of their shape.
            let args: [Value?] = try node.inputs.indices.map { i in
                if node.inputs[i].isEmpty { return nil }
                if let d = direction(i) { return .device(d) }
                return .device(try be.zeros(try value(i).shape))
            }
            return try evaluate(node, args, exact: true).enumerated().map { try device($1, node.outputs[$0]) }
        case .globalAveragePool, .flatten, .reshape, .transpose, .roll, .squeeze, .unsqueeze, .identity, .slice, .cast, .expand, .split,
             .gather, .einsum:
            return try linearPart(node.op)
        case .hostArithmetic, .constantOfShape, .shape, .constant:
            // Shape arithmetic on an activation's extents: no direction.
            return []
        case .softmax, .layerNorm, .instanceNorm, .resize:
            throw XAIError.unsupported(op: "Jacobian product", reason: "not piecewise linear in the layer")
        }
    }
}
