import XAICore

extension Executor {
    /// DeepLIFT's multipliers at `node` (``PropagationRules/rescaleAgainst``): the gradients of
    /// the inputs in `needed`, or `nil` where the node is linear in them and its gradient is its
    /// multiplier.
    /// - Throws: ``XAIError/unsupported(op:reason:)`` for a nonlinear op without a rescale rule
    ///   (a product or quotient of two activations, attention's products, softmax, normalisation,
    ///   max/min reductions) and for an activation left fused into its product.
    func rescaleMultipliers(_ node: Node, _ pass: Pass, _ reference: Pass, _ gy: DeviceArray, _ needed: [Int]) throws -> [Int: DeviceArray]? {
        func refuse(_ why: String) -> XAIError {
            .unsupported(op: "deeplift at \(node.op.name) node '\(node.name)'", reason: why)
        }
        func value(_ name: String, in p: Pass) throws -> DeviceArray {
            if let v = p.values[name] { return try device(v, name) }
            if let t = graph.initializers[name] { return try device(.host(t), name) }
            throw XAIError.invalidArgument(parameter: "pass", value: name, reason: "deeplift: the value was not kept in both passes")
        }
        let be = backend
        switch node.op {
        case .unary(let u) where u != .identity:
            guard needed.contains(0) else { return [:] }
            let x = try value(node.inputs[0], in: pass), xr = try value(node.inputs[0], in: reference)
            let y = try value(node.outputs[0], in: pass), yr = try value(node.outputs[0], in: reference)
            let gradient = try be.unaryBackward(u, gradOutput: gy, value: x, valueIsOutput: false)
            let numerator = try be.binary(.mul, gy, try be.binary(.sub, y, yr))
            return [0: try rescaled(numerator, deltaIn: try be.binary(.sub, x, xr), gradient: gradient)]
        case .pool(let p, let autoPad) where p.kind == .max:
            // Captum's rule: each window's change y - y' split at m = max(y, y') into the part
            // above the reference's maximum, g (m - y'), routed to the image's window maximum, and
            // the part below, g (y - m), routed to the reference's; over x - x'. The shares sum to
            // g (y - y'): the rule conserves. Windows that share a maximum add their shares, as
            // the gradient does (Captum's max_unpool writes one of them).
            guard needed.contains(0) else { return [:] }
            let x = try value(node.inputs[0], in: pass), xr = try value(node.inputs[0], in: reference)
            let y = try be.download(try value(node.outputs[0], in: pass)), yr = try be.download(try value(node.outputs[0], in: reference))
            let above = try be.upload(Tensor(unchecked: y.shape, zip(y.scalars, yr.scalars).map { max($0, $1) - $1 }))
            let below = try be.upload(Tensor(unchecked: y.shape, zip(y.scalars, yr.scalars).map { $0 - max($0, $1) }))
            let params = resolved(p, autoPad, x.shape)
            let routed = try be.binary(.add, try be.pool2dBackward(try be.binary(.mul, gy, above), input: x, params: params),
                                       try be.pool2dBackward(try be.binary(.mul, gy, below), input: xr, params: params))
            let gradient = try be.pool2dBackward(gy, input: x, params: params)
            return [0: try rescaled(routed, deltaIn: try be.binary(.sub, x, xr), gradient: gradient)]
        default:
            if let why = Self.rescaleRefusal(node.op, needed) { throw refuse(why) }
            // Linear in the values that reach it (or no gradient at all): the gradient is the multiplier.
            return nil
        }
    }

    /// Why DeepLIFT's rules cannot carry a multiplier through `op` when the inputs at `needed`
    /// depend on the input, or `nil` where they can (a nonlinear op with a rescale rule, or an op
    /// linear in those inputs).
    static func rescaleRefusal(_ op: Op, _ needed: [Int]) -> String? {
        switch op {
        case .conv(_, let act, _) where act != .identity:
            return "its \(act) is fused into the convolution; DeepLIFT runs on the graph with activations unfused"
        case .gemm(_, _, _, _, let act) where act != .identity:
            return "its \(act) is fused into the product; DeepLIFT runs on the graph with activations unfused"
        case .binary(.mul), .matMul, .einsum:
            return needed.count > 1 ? "a product of two activations has no rescale rule" : nil
        case .binary(.div):
            return needed.contains(1) ? "a quotient by an activation has no rescale rule" : nil
        case .softmax:
            return "softmax has no rescale rule here; explain the logits before it"
        case .layerNorm, .instanceNorm:
            return "a normalisation over activations has no rescale rule"
        case .reduce(let r, _, _) where r == .max || r == .min:
            return "a max or min reduction has no rescale rule"
        case .unary, .binary, .conv, .gemm, .pool, .globalAveragePool, .batchNorm, .reduce, .flatten, .reshape, .squeeze, .unsqueeze,
             .identity, .transpose, .concat, .roll, .expand, .gather, .pad, .cast, .slice, .split, .resize, .hostArithmetic,
             .constantOfShape, .shape, .constant:
            return nil
        }
    }

    /// The first node a backward to `wrt` under DeepLIFT's rules would refuse, and why; `nil`
    /// where every node it differentiates has a rule (checked before any pass runs).
    public func rescaleRefusal(wrt: Set<String>) -> (node: String, op: String, reason: String)? {
        let (nodes, dependsOnWrt) = differentiated(to: wrt)
        for node in nodes {
            let needed = node.inputs.indices.filter { !node.inputs[$0].isEmpty && dependsOnWrt.contains(node.inputs[$0]) }
            if let why = Self.rescaleRefusal(node.op, needed) { return (node.name, node.op.name, why) }
        }
        return nil
    }

    /// `numerator / dx` where `|dx|` is at least the rescale epsilon, else `gradient`, elementwise.
    /// Computed on the host: no backend has a select (one download of each and one upload).
    private func rescaled(_ numerator: DeviceArray, deltaIn: DeviceArray, gradient: DeviceArray) throws -> DeviceArray {
        let n = try backend.download(numerator), d = try backend.download(deltaIn), g = try backend.download(gradient)
        let eps = PropagationRules.rescaleEpsilon
        var out = [Float](repeating: 0, count: n.shape.count)
        for i in out.indices { out[i] = abs(d.scalars[i]) < eps ? g.scalars[i] : n.scalars[i] / d.scalars[i] }
        return try backend.upload(Tensor(unchecked: n.shape, out))
    }
}
