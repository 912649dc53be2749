import XAICore

/// A layer-wise relevance propagation rule, as Zennit names and defines them. Each maps the
/// relevance `R` at a layer's output to its input; the layers without a rule take their gradient
/// (max pooling's winner takes all, reshapes and concatenations move relevance as they move
/// values), as in Zennit.
public enum LRPRule: Sendable, Equatable {
    /// `x * W^T (R / (z + eps sign z))` (Bach et al.); LRP-0 at `eps = 0`.
    case epsilon(Float)
    /// Only positive contributions: `x+ W+` and `x- W-` (alpha 1, beta 0, negative inputs included).
    case zPlus
    /// `alpha` times the positive contributions minus `beta` times the negative ones.
    case alphaBeta(alpha: Float, beta: Float)
    /// Positive weights boosted by `gamma`, applied per sign of the output (Zennit's generalised
    /// form, which also takes negative inputs).
    case gamma(Float)
    /// Every input and weight 1: relevance spread evenly over each output's receptive field.
    case flat
    /// Inputs 1, weights (and bias) squared.
    case wSquare
    /// Deep Taylor's z-box for the input layer: inputs bounded per channel by `low` and `high`.
    case zBox(low: [Float], high: [Float])
    /// Relevance passed through unchanged (activations, batch normalisation) to the one input
    /// that depends on the image.
    case pass
    /// The z-rule without weights, for pooling: `x * pool^T (R / z)`.
    case norm
    /// z+ with the bias left out of the denominator, so relevance is conserved: Chefer et al.'s
    /// alpha 1, beta 0 for transformers' linear layers.
    case zPlusWithoutBias
    /// A product of activations (attention's `Q K^T` and `A V`) by gradient times input, each
    /// operand's relevance `x_i * d z / d x_i (R / z)` times `share` (Chefer et al. halve both).
    case product(share: Float)
    /// A sum of activations (a residual connection), each summand's relevance `x_i R / z` rescaled
    /// per image so that the summands split the total by the share of their sums' magnitudes,
    /// `|S_i| / sum_j |S_j|` (Chefer et al.'s `Add`).
    case normalizedSum
}

/// Zennit's composites: which rule each layer takes, by kind and position.
public enum LRPComposite: String, Sendable, CaseIterable {
    /// The first convolution or dense layer flat, the other convolutions z+, dense layers epsilon.
    case epsilonPlusFlat = "epsilon-plus-flat"
    /// The first convolution z-box, the other convolutions gamma, dense layers epsilon.
    case epsilonGammaBox = "epsilon-gamma-box"
    /// Convolutions alpha 2 beta 1, dense layers epsilon.
    case epsilonAlpha2Beta1 = "epsilon-alpha2-beta1"
    /// Every convolution and dense layer epsilon: LRP-epsilon, Captum's `LRP` with its default rules.
    case epsilon

    /// The rule of every node of `graph` this composite assigns one to: activations and batch
    /// normalisation pass, average pooling (and global average pooling) the norm rule, convolutions
    /// and dense layers (GEMMs) by the composite. `low` and `high` bound the input per channel
    /// (the z-box rule's); `epsilon` is the dense layers' epsilon, `gamma` the gamma rule's.
    public func rules(for graph: Graph, epsilon: Float = 1e-6, gamma: Float = 0.25, low: [Float] = [], high: [Float] = []) -> [String: LRPRule] {
        var rules: [String: LRPRule] = [:]
        var firstSeen = false
        for node in graph.nodes {
            switch node.op {
            case .unary, .batchNorm:
                rules[node.name] = .pass
            case .globalAveragePool:
                rules[node.name] = .norm
            case .pool(let p, _) where p.kind == .average:
                rules[node.name] = .norm
            case .conv, .gemm:
                let isConv: Bool
                if case .conv = node.op { isConv = true } else { isConv = false }
                // The first layer: the first convolution for the z-box, the first convolution or
                // dense layer for the flat rule, none for alpha-beta (Zennit's first maps).
                if !firstSeen && (self == .epsilonPlusFlat || (self == .epsilonGammaBox && isConv)) {
                    firstSeen = true
                    rules[node.name] = self == .epsilonPlusFlat ? .flat : .zBox(low: low, high: high)
                    continue
                }
                if !isConv {
                    rules[node.name] = .epsilon(epsilon)
                } else {
                    switch self {
                    case .epsilonPlusFlat: rules[node.name] = .zPlus
                    case .epsilonGammaBox: rules[node.name] = .gamma(gamma)
                    case .epsilonAlpha2Beta1: rules[node.name] = .alphaBeta(alpha: 2, beta: 1)
                    case .epsilon: rules[node.name] = .epsilon(epsilon)
                    }
                }
            default:
                continue
            }
        }
        return rules
    }
}

/// The rules of one LRP backward: by node name, with the stabiliser every rule but epsilon adds
/// to its denominators (`z + s sign z`, sign 0 = +1, Zennit's `stabilize`).
public struct LRPRules: Sendable {
    public var byNode: [String: LRPRule]
    public var stabilizer: Float

    public init(byNode: [String: LRPRule], stabilizer: Float = 1e-6) {
        self.byNode = byNode
        self.stabilizer = stabilizer
    }
}

extension Executor {
    /// The relevance of a node's input under its LRP rule (``PropagationRules/lrp``), or `nil`
    /// where the node has no rule and takes its gradient.
    /// - Throws: ``XAIError/unsupported(op:reason:)`` where the rule cannot apply (a transposed
    ///   dense layer's input, a layer whose weight is not a constant).
    func lrpRelevance(_ node: Node, _ pass: Pass, _ lrp: LRPRules, _ relevance: DeviceArray, _ needed: [Int]) throws -> [Int: DeviceArray]? {
        guard let rule = lrp.byNode[node.name] else { return nil }
        func refuse(_ why: String) -> XAIError { .unsupported(op: "lrp at \(node.op.name) node '\(node.name)'", reason: why) }
        let be = backend
        if rule == .pass {
            guard needed.count <= 1 else { throw refuse("the pass rule takes one input that depends on the image; \(needed.count) do") }
            return needed.first.map { [$0: relevance] } ?? [:]
        }
        if case .product(let share) = rule { return try productRelevance(node, pass, relevance, needed, share: share, stabilizer: lrp.stabilizer) }
        if rule == .normalizedSum { return try normalizedSumRelevance(node, pass, relevance, needed, stabilizer: lrp.stabilizer) }
        guard needed.contains(0) else { return [:] }
        func value(_ i: Int) throws -> DeviceArray { try passValue(node.inputs[i], pass) }
        func host(_ i: Int) throws -> Tensor? {
            guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
            if let t = graph.initializers[node.inputs[i]] { return t }
            throw refuse("input '\(node.inputs[i])' must be a constant for the rule to modify it")
        }
        let x = try value(0)
        let s = lrp.stabilizer

        // A layer as a function of (input, weight, bias) and its input gradient for a weight, the
        // weight and bias named by their change (`Change`), made and uploaded once per executor.
        let forward: (DeviceArray, Change, Change?) throws -> DeviceArray
        let backwardThrough: (DeviceArray, Change) throws -> DeviceArray
        let bias: Tensor?
        switch node.op {
        case .conv(let p, _, let autoPad):
            guard let w = try host(1) else { throw refuse("no weight") }
            bias = try host(2)
            let params = resolved(p, autoPad, x.shape, w.shape)
            let (wName, bName) = (node.inputs[1], node.inputs.count > 2 ? node.inputs[2] : "")
            forward = { input, wc, bc in
                try be.conv2d(input, weight: try self.changed(wName, w, wc), bias: try bc.flatMap { c in try bias.map { try self.changed(bName, $0, c) } },
                              params: params, activation: .identity)
            }
            backwardThrough = { g, wc in try be.conv2dBackwardInput(g, weight: try self.changed(wName, w, wc), params: params, inputShape: x.shape) }
        case .gemm(let ta, let tb, let alpha, let beta, _):
            guard !ta else { throw refuse("a dense layer with a transposed input") }
            guard let w = try host(1) else { throw refuse("no weight") }
            bias = try host(2).map { b in Tensor(unchecked: b.shape, b.scalars.map { $0 * beta }) }
            let (wName, bName) = (node.inputs[1], node.inputs.count > 2 ? node.inputs[2] + "*\(beta)" : "")
            forward = { input, wc, bc in
                try be.gemm(input, try self.changed(wName, w, wc), transposeA: false, transposeB: tb, alpha: alpha,
                            bias: try bc.flatMap { c in try bias.map { try self.changed(bName, $0, c) } }, activation: .identity)
            }
            backwardThrough = { g, wc in
                try be.gemm(g, try self.changed(wName, w, wc), transposeA: false, transposeB: !tb, alpha: alpha, bias: nil, activation: .identity)
            }
        case .matMul:
            // A linear layer on tokens: a constant 2-D weight [K, M] (and the bias fused after it).
            guard let w = try host(1), w.shape.rank == 2, x.shape.rank >= 2, x.shape[x.shape.rank - 1] == w.shape[0] else {
                throw refuse("a product with a weight that is no constant 2-D matrix")
            }
            bias = try host(2)
            let (k, m) = (w.shape[0], w.shape[1])
            let rows = x.shape.count / max(k, 1)
            let outShape = Shape(Array(x.shape.dims.dropLast()) + [m])
            let (wName, bName) = (node.inputs[1], node.inputs.count > 2 ? node.inputs[2] : "")
            forward = { input, wc, bc in
                try be.gemm(try input.reshaped([rows, k]), try self.changed(wName, w, wc), transposeA: false, transposeB: false, alpha: 1,
                            bias: try bc.flatMap { c in try bias.map { try self.changed(bName, $0, c) } }, activation: .identity).reshaped(outShape)
            }
            backwardThrough = { g, wc in
                try be.gemm(try g.reshaped([rows, m]), try self.changed(wName, w, wc), transposeA: false, transposeB: true, alpha: 1,
                            bias: nil, activation: .identity).reshaped(x.shape)
            }
        case .pool(let p, let autoPad) where p.kind == .average:
            let params = resolved(p, autoPad, x.shape)
            let g = try be.stabilizedDivide(relevance, by: try be.pool2d(x, params: params), stabilizer: s)
            return [0: try be.binary(.mul, x, try be.pool2dBackward(g, input: x, params: params))]
        case .globalAveragePool:
            let g = try be.stabilizedDivide(relevance, by: try be.globalAveragePool(x), stabilizer: s)
            return [0: try be.binary(.mul, x, try be.globalAveragePoolBackward(g, input: x))]
        default:
            throw refuse("the \(rule) rule applies to convolutions, dense layers and pooling")
        }

        // The input split by sign, only for the rules that weigh the parts apart (z+, alpha-beta,
        // gamma), once. After a ReLU every input is at least 0 (known from the graph, else looked
        // up): there is no negative part, and the terms that would read it are left out.
        var signs: (positive: DeviceArray, negative: DeviceArray?)?
        func split() throws -> (positive: DeviceArray, negative: DeviceArray?) {
            if let signs { return signs }
            if nonNegativeValues.contains(node.inputs[0]) {
                signs = (positive: x, negative: nil)
                return (x, nil)
            }
            let positive = try be.unary(.relu, x)
            let hasNegative = try be.download(try be.reduce(.min, x, axes: Array(0..<x.shape.rank))).scalars.first.map { $0 < 0 } ?? true
            let parts = (positive: positive, negative: hasNegative ? try be.binary(.sub, x, positive) : nil)
            signs = parts
            return parts
        }
        func sum(_ a: DeviceArray, _ b: DeviceArray) throws -> DeviceArray { try be.binary(.add, a, b) }
        func times(_ a: DeviceArray, _ b: DeviceArray) throws -> DeviceArray { try be.binary(.mul, a, b) }
        func z(_ input: DeviceArray, _ w: Change, _ b: Change?) throws -> DeviceArray { try forward(input, w, b) }
        func divided(_ r: DeviceArray, by z: DeviceArray, stabilizer: Float) throws -> DeviceArray {
            try be.stabilizedDivide(r, by: z, stabilizer: stabilizer)
        }
        /// `part * W^T g` summed over the terms, those of the negative part left out where there is none.
        func terms(_ list: [(negativePart: Bool, g: DeviceArray, w: Change)]) throws -> DeviceArray {
            let parts = try split()
            var total: DeviceArray?
            for t in list {
                guard let input = t.negativePart ? parts.negative : parts.positive else { continue }
                let term = try times(input, try backwardThrough(t.g, t.w))
                total = try total.map { try sum($0, term) } ?? term
            }
            guard let total else { throw refuse("no term") }
            return total
        }
        /// `z(x+, W_p, b_p) + z(x-, W_n)`: a positive-input term with its bias and a negative-input
        /// term without.
        func pair(_ wp: Change, _ bp: Change?, _ wn: Change) throws -> DeviceArray {
            let parts = try split()
            let first = try z(parts.positive, wp, bp)
            guard let negative = parts.negative else { return first }
            return try sum(first, try z(negative, wn, nil))
        }

        // A residual sum fused into the convolution: Zennit's residual canonizer makes it a sum
        // with the norm rule, z = m + r for the branch m = conv(x) + b and the residual r; each
        // summand takes its share of the relevance, m R / z and r R / z, and the branch's share
        // then goes through the convolution's rule.
        var r = relevance
        var residualRelevance: DeviceArray?
        if case .conv = node.op, node.inputs.count > 3, !node.inputs[3].isEmpty {
            let residual = try value(3)
            let branch = try forward(x, .unchanged, .unchanged)
            let share = try divided(r, by: try sum(branch, residual), stabilizer: s)
            if needed.contains(3) { residualRelevance = try times(residual, share) }
            r = try times(branch, share)
        }
        var result: [Int: DeviceArray] = [0: try relevanceThroughRule(r)]
        if let residualRelevance { result[3] = residualRelevance }
        return result

        func relevanceThroughRule(_ r: DeviceArray) throws -> DeviceArray {
            switch rule {
            case .epsilon(let epsilon):
                let g = try divided(r, by: try z(x, .unchanged, .unchanged), stabilizer: epsilon)
                return try times(x, try backwardThrough(g, .unchanged))
            case .zPlus, .zPlusWithoutBias:
                let g = try divided(r, by: try pair(.plus, rule == .zPlus ? .plus : nil, .minus), stabilizer: s)
                return try terms([(false, g, .plus), (true, g, .minus)])
            case .alphaBeta(let alpha, let beta):
                let gp = try divided(r, by: try pair(.plus, .plus, .minus), stabilizer: s)
                let gn = try divided(r, by: try pair(.minus, .minus, .plus), stabilizer: s)
                let up = try terms([(false, gp, .plus), (true, gp, .minus)])
                let down = try terms([(false, gn, .minus), (true, gn, .plus)])
                return try be.binary(.sub, try be.scaled(up, by: alpha), try be.scaled(down, by: beta))
            case .gamma(let g):
                let plain = try z(x, .unchanged, .unchanged)
                let up = try pair(.boostedPlus(g), .boostedPlus(g), .boostedMinus(g))
                let down = try pair(.boostedMinus(g), .boostedMinus(g), .boostedPlus(g))
                // The positive outputs' relevance through the boosted positive weights, the
                // negative outputs' through the boosted negative ones.
                let gp = try divided(try times(r, try be.indicator(plain, positive: true)), by: up, stabilizer: s)
                let gn = try divided(try times(r, try be.indicator(plain, positive: false)), by: down, stabilizer: s)
                return try terms([(false, gp, .boostedPlus(g)), (true, gp, .boostedMinus(g)),
                                  (false, gn, .boostedMinus(g)), (true, gn, .boostedPlus(g))])
            case .flat, .wSquare:
                // Flat: weights 1 and no bias; w-square: weights and bias squared (Zennit's mods).
                let w: Change = rule == .flat ? .ones : .square
                let ones = try be.filled(x.shape, value: 1)
                let g = try divided(r, by: try z(ones, w, rule == .flat ? nil : .square), stabilizer: s)
                return try backwardThrough(g, w)
            case .zBox(let low, let high):
                let channels = x.shape.rank > 1 ? x.shape[1] : 1
                guard low.count == channels, high.count == channels else {
                    throw refuse("the z-box rule needs \(channels) lower and upper bounds, one per input channel; got \(low.count) and \(high.count)")
                }
                let plane = x.shape.count / max(x.shape[0] * channels, 1)
                func bound(_ v: [Float]) throws -> DeviceArray {
                    var t = [Float](repeating: 0, count: x.shape.count)
                    for i in t.indices { t[i] = v[(i / plane) % channels] }
                    return try be.upload(Tensor(unchecked: x.shape, t))
                }
                let (l, h) = (try bound(low), try bound(high))
                let denominator = try be.binary(.sub, try be.binary(.sub, try z(x, .unchanged, .unchanged), try z(l, .plus, .plus)), try z(h, .minus, .minus))
                let g = try divided(r, by: denominator, stabilizer: s)
                let parts = try be.binary(.sub, try times(x, try backwardThrough(g, .unchanged)), try times(l, try backwardThrough(g, .plus)))
                return try be.binary(.sub, parts, try times(h, try backwardThrough(g, .minus)))
            case .pass, .norm, .product, .normalizedSum:
                throw refuse("the \(rule) rule does not apply to a layer with weights")
            }
        }
    }

    /// ``LRPRule/product(share:)``: `share * x_i * (d z / d x_i)^T (R / z)` for each operand `i`
    /// that depends on the image.
    private func productRelevance(_ node: Node, _ pass: Pass, _ relevance: DeviceArray, _ needed: [Int], share: Float,
                                  stabilizer s: Float) throws -> [Int: DeviceArray] {
        let be = backend
        let g = try be.stabilizedDivide(relevance, by: try passValue(node.outputs[0], pass), stabilizer: s)
        let grads = try vjp(node, pass, g, needed, .gradient)
        let factor = try be.filled([1], value: share)
        return try grads.reduce(into: [:]) { r, entry in
            r[entry.key] = try be.binary(.mul, try be.binary(.mul, try passValue(node.inputs[entry.key], pass), entry.value), factor)
        }
    }

    /// ``LRPRule/normalizedSum``: each summand's `x_i R / z`, rescaled per image to
    /// `|S_i| / sum_j |S_j|` of the image's total relevance (`S_i` the summand's own sum), over
    /// every summand that is an activation.
    private func normalizedSumRelevance(_ node: Node, _ pass: Pass, _ relevance: DeviceArray, _ needed: [Int],
                                        stabilizer s: Float) throws -> [Int: DeviceArray] {
        let be = backend
        let r = try be.download(relevance)
        let z = try passValue(node.outputs[0], pass)
        let ratio = try be.download(try be.stabilizedDivide(relevance, by: z, stabilizer: s))
        // Every summand that is an activation takes its share, also those the backward does not
        // continue through (a residual when the relevance is wanted at a layer inside the branch).
        var parts: [Int: Tensor] = [:]
        for i in node.inputs.indices where !node.inputs[i].isEmpty && graph.initializers[node.inputs[i]] == nil {
            let x = try be.download(try passValue(node.inputs[i], pass))
            guard x.shape == z.shape else { throw XAIError.unsupported(op: "lrp at \(node.op.name) node '\(node.name)'", reason: "the normalised sum needs summands shaped like the sum, not \(x.shape) for \(z.shape)") }
            parts[i] = Tensor(unchecked: x.shape, zip(x.scalars, ratio.scalars).map(*))
        }
        let images = max(z.shape[0], 1), per = z.shape.count / images
        func totals(_ t: Tensor) -> [Double] {
            (0..<images).map { b in t.scalars[(b * per)..<((b + 1) * per)].reduce(0.0) { $0 + Double($1) } }
        }
        let relevanceTotals = totals(r), partTotals = parts.mapValues(totals)
        let magnitudes = (0..<images).map { b in partTotals.values.reduce(0.0) { $0 + abs($1[b]) } }
        var result: [Int: DeviceArray] = [:]
        for (i, part) in parts where needed.contains(i) {
            var scaled = part.scalars
            for b in 0..<images {
                let own = partTotals[i]?[b] ?? 0
                let factor = own == 0 || magnitudes[b] == 0 ? 0 : abs(own) / magnitudes[b] * relevanceTotals[b] / own
                for j in (b * per)..<((b + 1) * per) { scaled[j] = Float(Double(scaled[j]) * factor) }
            }
            result[i] = try be.upload(Tensor(unchecked: part.shape, scaled))
        }
        return result
    }

    /// The rules of Chefer et al.'s transformer attribution (CVPR 2021) for every node a backward
    /// to `wrt` differentiates: linear layers (convolutions, dense layers, products with a constant
    /// weight) z+ without bias; products of two activations the product rule, halved; sums of two
    /// activations the normalised sum; activations, normalisations, softmax and scalings by a
    /// constant pass; the other ops (reshapes, slices, gathers) move relevance by their gradient.
    public func transformerAttributionRules(wrt: Set<String>) -> [String: LRPRule] {
        let (nodes, dependsOnWrt) = differentiated(to: wrt)
        var rules: [String: LRPRule] = [:]
        for node in nodes {
            let needed = node.inputs.indices.filter { !node.inputs[$0].isEmpty && dependsOnWrt.contains(node.inputs[$0]) }
            switch node.op {
            case .conv, .gemm:
                rules[node.name] = .zPlusWithoutBias
            case .matMul where needed == [0] && graph.initializers[node.inputs[1]]?.shape.rank == 2:
                rules[node.name] = .zPlusWithoutBias
            case .matMul, .einsum, .binary(.mul):
                rules[node.name] = needed.count > 1 ? .product(share: 0.5) : .pass
            case .binary(.div) where needed == [0]:
                rules[node.name] = .pass
            case .binary(.add) where needed.count > 1:
                rules[node.name] = .normalizedSum
            case .unary, .layerNorm, .instanceNorm, .softmax, .batchNorm:
                rules[node.name] = .pass
            default:
                continue
            }
        }
        return rules
    }

    /// A rule's change to a weight or bias (Zennit's parameter modifiers).
    enum Change: Hashable {
        case unchanged, plus, minus, ones, square, boostedPlus(Float), boostedMinus(Float)

        func apply(_ v: Float) -> Float {
            switch self {
            case .unchanged: return v
            case .plus: return max(v, 0)
            case .minus: return min(v, 0)
            case .ones: return 1
            case .square: return v * v
            case .boostedPlus(let g): return v + g * max(v, 0)
            case .boostedMinus(let g): return v + g * min(v, 0)
            }
        }
    }

    /// The constant `name` (`t`) changed by `change`, on the device, made once per executor.
    func changed(_ name: String, _ t: Tensor, _ change: Change) throws -> DeviceArray {
        if change == .unchanged, !name.contains("*") { return try device(.host(t), name) }
        return try modifiedConstant("\(name)|\(change)", shape: t.shape) { Tensor(unchecked: t.shape, t.scalars.map(change.apply)) }
    }


}

extension Graph {
    /// Values that are never negative, whatever the input: the outputs of rectifiers (ReLU, and
    /// clips from 0 or more, alone or fused into a convolution or dense layer), sigmoids and
    /// softmax, and what pooling, moving, slicing and joining make of such values alone. LRP's
    /// sign split skips its look at the values for these.
    public func nonNegativeValues() -> Set<String> {
        func nonNegative(_ a: UnaryOp) -> Bool {
            switch a {
            case .relu, .sigmoid, .hardSigmoid: return true
            case .clip(let low, _): return low >= 0
            default: return false
            }
        }
        var known = Set<String>()
        for node in nodes {
            let dataKnown = node.inputs.first.map(known.contains) ?? false
            let result: Bool
            switch node.op {
            case .unary(let a), .conv(_, let a, _), .gemm(_, _, _, _, let a):
                result = nonNegative(a)
            case .softmax(_, let log, _):
                result = !log
            case .pool, .globalAveragePool, .flatten, .reshape, .squeeze, .unsqueeze, .identity, .transpose, .slice, .split, .gather,
                 .expand, .roll, .cast:
                result = dataKnown
            case .concat:
                result = !node.inputs.isEmpty && node.inputs.allSatisfy { $0.isEmpty || known.contains($0) }
            default:
                result = false
            }
            if result { known.formUnion(node.outputs) }
        }
        return known
    }
}
