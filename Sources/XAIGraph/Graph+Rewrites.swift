import XAICore

/// Load-time rewrites. Each leaves the graph's outputs unchanged (tested on the zoo and the fixtures).
extension Graph {
    /// Every rewrite, in order: drop Identity/Dropout, fold constant subgraphs (the shape arithmetic
    /// exporters emit), fuse layer normalisation and GELU spelled out in arithmetic into one op each, fold batch-norm into the preceding convolution, fuse activations into the
    /// convolution/GEMM epilogue.
    public func optimized() throws -> Graph {
        try removingNaNGuardsOnSoftmax().removingIdentities().foldingConstants().fusingLayerNorm().fusingGELU().fusingMatMulBias().foldingScalesIntoProducts().splittingGathers().fusingRolls().foldingBatchNorm()
            .fusingResidualAdds().fusingActivations()
    }

    /// Moves `Add(conv(x), skip)` into the convolution as its residual input, when the convolution
    /// has no activation, feeds only the Add, and the two operands have the same shape at every
    /// batch size (the skip is computed, not a constant). The fused node takes the Add's place and
    /// output name, so a following ReLU then fuses too: a ResNet block ends in one convolution.
    public func fusingResidualAdds() -> Graph {
        guard let shapes = try? summary().shapes else { return self }
        var g = self
        let producers = g.producers
        let consumers = g.consumerCounts
        let outputNames = Set(outputs.map(\.name))
        var removed = Set<Int>()
        for (i, n) in g.nodes.enumerated() {
            guard case .binary(.add) = n.op, n.inputs.count == 2, let out = n.outputs.first else { continue }
            for (a, skip) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
                guard let c = producers[a], !removed.contains(c), case .conv(let p, .identity, let autoPad) = g.nodes[c].op,
                      g.nodes[c].inputs.count <= 3, consumers[a] == 1, !outputNames.contains(a),
                      let sa = shapes[a], sa == shapes[skip], initializers[skip] == nil, skip != a else { continue }
                let conv = g.nodes[c]
                let bias = conv.inputs.count > 2 ? conv.inputs[2] : ""
                g.nodes[i] = Node(name: conv.name, op: .conv(p, activation: .identity, autoPad: autoPad),
                                  inputs: [conv.inputs[0], conv.inputs[1], bias, skip], outputs: [out])
                removed.insert(c)
                break
            }
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g
    }

    /// Replaces GELU spelled out through Erf, as the TorchScript exporter writes it,
    /// `x * (1 + erf(x / sqrt 2)) * 0.5` (or `(x * 0.5) * (1 + erf(x * (1 / sqrt 2)))`), by one GELU,
    /// which the CPU backend hands to oneDNN's vectorised primitive. Only chains whose intermediate
    /// values nothing else reads are fused.
    public func fusingGELU() -> Graph {
        var g = self
        let index = ReaderIndex(g)
        let producers = index.producers
        func scalar(_ name: String) -> Double? {
            guard let t = initializers[name], t.shape.count == 1 else { return nil }
            return Double(t.scalars[0])
        }
        func onlyReader(_ value: String) -> Int? { index.onlyReader(value) }
        /// `(other input, node)` when node `i` is `op(value, c)` or `op(c, value)` with a constant `c` near `expected`.
        func withConstant(_ i: Int, _ op: BinaryOp, _ expected: Double, besides value: String) -> Bool {
            guard case .binary(op) = g.nodes[i].op, g.nodes[i].inputs.count == 2 else { return false }
            let other = g.nodes[i].inputs[0] == value ? g.nodes[i].inputs[1] : g.nodes[i].inputs[0]
            guard let c = scalar(other) else { return false }
            return abs(c - expected) <= 1e-6 * max(abs(expected), 1)
        }
        var removed = Set<Int>()
        for (e, node) in g.nodes.enumerated() {
            guard case .unary(.erf) = node.op, let erfIn = node.inputs.first, let scaled = producers[erfIn], !removed.contains(scaled),
                  onlyReader(erfIn) == e, let erfOut = node.outputs.first else { continue }
            // x / sqrt 2, or x * (1 / sqrt 2).
            let s = g.nodes[scaled]
            guard s.inputs.count == 2 else { continue }
            let x = scalar(s.inputs[1]) != nil ? s.inputs[0] : s.inputs[1]
            guard withConstant(scaled, .div, 2.0.squareRoot(), besides: x) && s.inputs[0] == x
                    || withConstant(scaled, .mul, 1 / 2.0.squareRoot(), besides: x) else { continue }
            // 1 + erf(.)
            guard let plus = onlyReader(erfOut), withConstant(plus, .add, 1, besides: erfOut), let plusOut = g.nodes[plus].outputs.first,
                  let product = onlyReader(plusOut), case .binary(.mul) = g.nodes[product].op, g.nodes[product].inputs.count == 2,
                  let productOut = g.nodes[product].outputs.first else { continue }
            let factor = g.nodes[product].inputs[0] == plusOut ? g.nodes[product].inputs[1] : g.nodes[product].inputs[0]
            var chain = [scaled, e, plus, product]
            let last: Int
            if factor == x, let half = onlyReader(productOut), withConstant(half, .mul, 0.5, besides: productOut) {
                // (x * (1 + erf)) * 0.5
                chain.append(half)
                last = half
            } else if let h = producers[factor], withConstant(h, .mul, 0.5, besides: x), g.nodes[h].inputs.contains(x), onlyReader(factor) == product {
                // (x * 0.5) * (1 + erf)
                chain.append(h)
                last = product
            } else {
                continue
            }
            guard chain.allSatisfy({ !removed.contains($0) }) else { continue }
            g.nodes[last] = Node(name: g.nodes[last].name, op: .unary(.gelu), inputs: [x], outputs: g.nodes[last].outputs)
            removed.formUnion(chain.filter { $0 != last })
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g.removingUnusedInitializers()
    }

    /// Replaces layer normalisation spelled out in arithmetic, as exporters write it below opset 17
    /// (PyTorch's TorchScript exporter, older timm and Hugging Face exports):
    /// `d = x - mean(x)`, `y = d / sqrt(mean(d^2) + eps)` over trailing axes, then optionally
    /// `* gamma + beta` with constants. One LayerNormalization takes the last node's place and output
    /// name: one pass over the rows instead of nine, and a backward of one primitive. Only chains whose
    /// intermediate values nothing else reads are fused.
    public func fusingLayerNorm() -> Graph {
        var g = self
        let index = ReaderIndex(g)
        func scalar(_ name: String) -> Float? {
            guard let t = initializers[name], t.shape.count == 1 else { return nil }
            return t.scalars[0]
        }
        /// The trailing axes a mean reduces (keeping them), as a count, when node `i` is one.
        func trailingMean(_ i: Int) -> Int? {
            guard case .reduce(.mean, let axes?, true) = g.nodes[i].op, !axes.isEmpty,
                  axes.sorted() == Array((-axes.count)...(-1)) else { return nil }
            return axes.count
        }
        /// `(value, constant)` when node `i` is `op(value, constant)` or, for commutative ops, the reverse.
        func withConstant(_ i: Int, _ op: BinaryOp) -> (String, Tensor)? {
            guard case .binary(op) = g.nodes[i].op, g.nodes[i].inputs.count == 2 else { return nil }
            let (a, b) = (g.nodes[i].inputs[0], g.nodes[i].inputs[1])
            if let t = initializers[b], initializers[a] == nil { return (a, t) }
            if op == .add || op == .mul, let t = initializers[a], initializers[b] == nil { return (b, t) }
            return nil
        }
        var removed = Set<Int>()
        for (i, node) in g.nodes.enumerated() {
            guard case .binary(.div) = node.op, node.inputs.count == 2, let divOut = node.outputs.first else { continue }
            let (d, s) = (node.inputs[0], node.inputs[1])
            // d = x - mean(x)
            guard let sub = index.producers[d], case .binary(.sub) = g.nodes[sub].op, g.nodes[sub].inputs.count == 2,
                  let mean = index.producers[g.nodes[sub].inputs[1]], let axes = trailingMean(mean),
                  g.nodes[mean].inputs.first == g.nodes[sub].inputs[0], index.onlyReader(g.nodes[sub].inputs[1]) == sub else { continue }
            let x = g.nodes[sub].inputs[0]
            // s = sqrt(mean(d^2) + eps)
            guard let root = index.producers[s], case .unary(.sqrt) = g.nodes[root].op, index.onlyReader(s) == i,
                  let plus = index.producers[g.nodes[root].inputs[0]], index.onlyReader(g.nodes[plus].outputs[0]) == root,
                  let (variance, epsilon) = withConstant(plus, .add), epsilon.shape.count == 1, epsilon.scalars[0] >= 0,
                  let spread = index.producers[variance], trailingMean(spread) == axes, index.onlyReader(variance) == plus,
                  let square = index.producers[g.nodes[spread].inputs[0]], index.onlyReader(g.nodes[square].outputs[0]) == spread else { continue }
            switch g.nodes[square].op {
            case .unary(.pow(2)) where g.nodes[square].inputs == [d]: break
            case .binary(.mul) where g.nodes[square].inputs == [d, d]: break
            default: continue
            }
            guard index.readerNodes(d) == [square, i], !index.outputNames.contains(d) else { continue }
            var chain = [sub, mean, root, plus, spread, square, i]
            // Then `* gamma + beta`, each optional, with constants that broadcast within the normalised axes.
            var last = i, output = divOut
            var scale = Tensor(unchecked: [1], [1]), bias: Tensor?
            func affine(_ t: Tensor) -> Tensor? {
                let dims = Array(t.shape.dims.drop { $0 == 1 })
                return dims.count <= axes ? Tensor(unchecked: Shape(dims.isEmpty ? [1] : dims), t.scalars) : nil
            }
            if let m = index.onlyReader(output), let (value, gamma) = withConstant(m, .mul), value == output, let gamma = affine(gamma) {
                (scale, last, output) = (gamma, m, g.nodes[m].outputs[0])
                chain.append(m)
            }
            if let a = index.onlyReader(output), let (value, beta) = withConstant(a, .add), value == output, let beta = affine(beta),
               scale.shape == beta.shape || scale.shape.count == 1 {
                (bias, last) = (beta, a)
                chain.append(a)
            }
            guard chain.allSatisfy({ !removed.contains($0) }) else { continue }
            let name = g.nodes[last].name
            g.initializers[name + ".scale"] = scale
            var inputs = [x, name + ".scale"]
            if let bias {
                g.initializers[name + ".bias"] = bias
                inputs.append(name + ".bias")
            }
            g.nodes[last] = Node(name: name, op: .layerNorm(axis: -axes, epsilon: epsilon.scalars[0]), inputs: inputs, outputs: g.nodes[last].outputs)
            removed.formUnion(chain.filter { $0 != last })
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g.removingUnusedInitializers()
    }

    /// Replaces Gathers that take every index of one axis once (a transformer's `q, k, v = qkv[0],
    /// qkv[1], qkv[2]`) by one Split and a Squeeze per piece: the same copies forward, and a backward
    /// that joins the pieces' gradients in one concatenation instead of scattering each into an array
    /// of zeros and summing them. Only where the axis has the same extent at batch 1 and 2 (never the
    /// batch axis) and the indices are constants.
    public func splittingGathers() -> Graph {
        guard let (one, two) = shapesAtBatchOneAndTwo() else { return self }
        struct Member { let node: Int, index: Int }
        var groups: [String: (data: String, axis: Int, members: [Member])] = [:]
        for (i, n) in nodes.enumerated() {
            guard case .gather(let axis) = n.op, n.inputs.count == 2, n.outputs.count == 1, initializers[n.inputs[0]] == nil,
                  let indices = initializers[n.inputs[1]], indices.shape.rank == 0, let shape = one[n.inputs[0]],
                  let ax = shape.normalizedAxis(axis), let other = two[n.inputs[0]], other.rank == shape.rank, other[ax] == shape[ax]
            else { continue }
            let index = Int(indices.scalars[0])
            let key = n.inputs[0] + "#\(ax)"
            groups[key, default: (n.inputs[0], ax, [])].members.append(Member(node: i, index: index < 0 ? index + shape[ax] : index))
        }
        var replacements: [Int: [Node]] = [:]
        var removed = Set<Int>()
        for (data, axis, members) in groups.values {
            guard members.count > 1, one[data]?[axis] == members.count, Set(members.map(\.index)) == Set(0..<members.count) else { continue }
            let ordered = members.sorted { $0.index < $1.index }
            let first = members.map(\.node).min() ?? ordered[0].node
            let pieces = ordered.map { nodes[$0.node].outputs[0] + ".piece" }
            replacements[first] = [Node(name: nodes[first].name + ".split", op: .split(axis: axis, sizes: nil), inputs: [data], outputs: pieces)]
                + zip(ordered, pieces).map { m, piece in
                    Node(name: nodes[m.node].name, op: .squeeze(axes: [axis]), inputs: [piece], outputs: nodes[m.node].outputs)
                }
            removed.formUnion(members.map(\.node))
        }
        guard !replacements.isEmpty else { return self }
        var g = self
        g.nodes = nodes.indices.flatMap { i in replacements[i] ?? (removed.contains(i) ? [] : [nodes[i]]) }
        return g.removingUnusedInitializers()
    }

    /// `torch.roll` as exporters spell it, `Concat(x[p:], x[:p])` along one axis (Swin's shifted
    /// windows), becomes one Roll: one copy forward and one backward, where the slices cost two
    /// copies forward and, backward, two slices, two zero-padded maps and their sum. The axis must
    /// have the same extent at batch 1 and 2 (never the batch).
    public func fusingRolls() -> Graph {
        guard let (one, two) = shapesAtBatchOneAndTwo() else { return self }
        let index = ReaderIndex(self)
        /// A slice of `data` along one axis with unit steps: (data, axis, start, count).
        func piece(_ value: String) -> (data: String, axis: Int, start: Int, count: Int)? {
            guard let p = index.producers[value], case .slice = nodes[p].op, nodes[p].outputs.count == 1, index.onlyReader(value) != nil else { return nil }
            let n = nodes[p]
            func constant(_ i: Int) -> [Int]? {
                i < n.inputs.count && !n.inputs[i].isEmpty ? initializers[n.inputs[i]].flatMap { try? $0.integers("slice") } : nil
            }
            guard let shape = one[n.inputs[0]], initializers[n.inputs[0]] == nil, let starts = constant(1), let ends = constant(2),
                  let r = try? sliceRanges(shape, starts: starts, ends: ends, axes: constant(3), steps: constant(4)), r.steps.allSatisfy({ $0 == 1 })
            else { return nil }
            let cut = (0..<shape.rank).filter { r.counts[$0] != shape[$0] }
            guard cut.count == 1, let a = cut.first, let other = two[n.inputs[0]], other.rank == shape.rank, other[a] == shape[a] else { return nil }
            return (n.inputs[0], a, r.starts[a], r.counts[a])
        }
        var replacements: [Int: Node] = [:]
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() {
            guard case .concat(let axis) = n.op, n.inputs.count == 2, n.outputs.count == 1,
                  let tail = piece(n.inputs[0]), let head = piece(n.inputs[1]), tail.data == head.data, tail.axis == head.axis,
                  let shape = one[tail.data], shape.normalizedAxis(axis) == tail.axis,
                  head.start == 0, tail.start == head.count, tail.start + tail.count == shape[tail.axis],
                  let s0 = index.producers[n.inputs[0]], let s1 = index.producers[n.inputs[1]] else { continue }
            // out[i] = x[(i + p) mod n] with p = head.count: a roll by -p.
            replacements[i] = Node(name: n.name, op: .roll(axis: tail.axis, shift: tail.count), inputs: [tail.data], outputs: n.outputs)
            removed.formUnion([s0, s1])
        }
        guard !replacements.isEmpty else { return self }
        var g = self
        g.nodes = nodes.indices.compactMap { i in replacements[i] ?? (removed.contains(i) ? nil : nodes[i]) }
        return g.removingUnusedInitializers()
    }

    /// Moves a constant bias added after a product with a constant 2-D weight (a linear layer on
    /// tokens: `MatMul(x, W) + b`) into the product, whose GEMM then starts from the bias instead
    /// of a second pass over the output (and whose backward needs no sum for the bias).
    public func fusingMatMulBias() -> Graph {
        var g = self
        let producers = g.producers
        let consumers = g.consumerCounts
        let outputNames = Set(outputs.map(\.name))
        var removed = Set<Int>()
        for (i, n) in g.nodes.enumerated() {
            guard case .binary(.add) = n.op, n.inputs.count == 2 else { continue }
            for (product, bias) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
                guard let p = producers[product], !removed.contains(p), case .matMul = g.nodes[p].op, g.nodes[p].inputs.count == 2,
                      consumers[product] == 1, !outputNames.contains(product),
                      let w = initializers[g.nodes[p].inputs[1]], w.shape.rank == 2, let c = initializers[bias],
                      c.shape.count == w.shape[1], c.shape.rank >= 1, c.shape.dims.dropLast().allSatisfy({ $0 == 1 }),
                      c.shape.rank <= 2 else { continue }
                let name = g.nodes[p].name + ".bias"
                g.initializers[name] = Tensor(unchecked: [c.shape.count], c.scalars)
                g.nodes[i] = Node(name: g.nodes[p].name, op: .matMul, inputs: g.nodes[p].inputs + [name], outputs: n.outputs)
                removed.insert(p)
                break
            }
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g.removingUnusedInitializers()
    }

    /// Folds a constant per-channel scale applied after a linear layer on tokens into the layer's
    /// weight columns and bias: ConvNeXt's layer scale, `gamma * permute(x W + b)`, becomes
    /// `permute(x (W gamma) + b gamma)`, one pass fewer forward and backward per block. The scale
    /// must vary along the product's output features only (a transpose between them is followed).
    public func foldingScalesIntoProducts() -> Graph {
        guard let shapes = try? summary().shapes else { return self }
        var g = self
        let index = ReaderIndex(self)
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() {
            guard case .binary(.mul) = n.op, n.inputs.count == 2, n.outputs.count == 1 else { continue }
            for (v, scale) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
                guard let gamma = initializers[scale], initializers[v] == nil, let vShape = shapes[v], gamma.shape.rank <= vShape.rank,
                      index.onlyReader(v) == i, let p = index.producers[v] else { continue }
                // The one axis of `v` the scale varies along (right-aligned broadcasting).
                let offset = vShape.rank - gamma.shape.rank
                let varying = (0..<gamma.shape.rank).filter { gamma.shape[$0] != 1 }.map { $0 + offset }
                guard varying.count == 1, let axis = varying.first, gamma.shape.count == vShape[axis] else { continue }
                // Through a transpose to the product.
                var product = p, productAxis = axis, transpose: Int?
                if case .transpose(let perm) = nodes[p].op, perm.count == vShape.rank, let source = index.producers[nodes[p].inputs[0]],
                   index.onlyReader(nodes[p].inputs[0]) == p {
                    transpose = p
                    product = source
                    productAxis = perm[axis]
                }
                let m = nodes[product]
                guard case .matMul = m.op, !removed.contains(product), m.outputs.count == 1, let out = shapes[m.outputs[0]],
                      productAxis == out.rank - 1, let w = initializers[m.inputs[1]], w.shape.rank == 2, w.shape[1] == gamma.shape.count
                else { continue }
                let columns = w.shape[1]
                let weightName = m.name + ".scaledWeight"
                g.initializers[weightName] = Tensor(unchecked: w.shape, w.scalars.enumerated().map { $0.element * gamma.scalars[$0.offset % columns] })
                var inputs = [m.inputs[0], weightName]
                if m.inputs.count > 2, let b = initializers[m.inputs[2]], b.shape.count == columns {
                    let biasName = m.name + ".scaledBias"
                    g.initializers[biasName] = Tensor(unchecked: b.shape, b.scalars.enumerated().map { $0.element * gamma.scalars[$0.offset] })
                    inputs.append(biasName)
                } else if m.inputs.count > 2 {
                    continue
                }
                g.nodes[product].inputs = inputs
                // The last node of the chain takes the Mul's output name; the Mul goes.
                g.nodes[transpose ?? product].outputs = n.outputs
                removed.insert(i)
                break
            }
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g.removingUnusedInitializers()
    }

    /// `Where(IsNaN(s), c, s)` with `s` a softmax's output is `s` (the dynamo exporter's attention
    /// guards it so; Hugging Face's ViT, DeiT and DINOv2 have one per block). A softmax is NaN only
    /// where its row holds a NaN or is all minus infinity: the first already makes every logit NaN
    /// (the same answer either way); the second needs an attention mask of minus infinity, which
    /// image classifiers do not have (Swin's masks are -100). The guard would otherwise be host
    /// arithmetic on an activation, which the executor refuses.
    /// Each guard becomes an Identity, which ``removingIdentities()`` then removes.
    public func removingNaNGuardsOnSoftmax() -> Graph {
        let index = ReaderIndex(self)
        var g = self
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() {
            guard case .hostArithmetic(.where) = n.op, n.inputs.count == 3, n.outputs.count == 1,
                  let c = index.producers[n.inputs[0]], case .hostArithmetic(.isNaN) = nodes[c].op, let s = nodes[c].inputs.first,
                  n.inputs[2] == s, let p = index.producers[s], case .softmax = nodes[p].op else { continue }
            g.nodes[i] = Node(name: n.name, op: .identity, inputs: [s], outputs: n.outputs)
            if index.readerNodes(n.inputs[0]) == [i] { removed.insert(c) }
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g.removingUnusedInitializers()
    }

    /// Removes Identity nodes (Dropout is imported as Identity) by renaming their readers' inputs.
    public func removingIdentities() -> Graph {
        var g = self
        let outputNames = Set(outputs.map(\.name))
        var rename: [String: String] = [:]
        g.nodes = nodes.filter { n in
            guard case .identity = n.op, let out = n.outputs.first, !outputNames.contains(out), let src = n.inputs.first else { return true }
            rename[out] = rename[src] ?? src
            return false
        }
        for i in g.nodes.indices {
            g.nodes[i].inputs = g.nodes[i].inputs.map { rename[$0] ?? $0 }
        }
        return g
    }

    /// Evaluates nodes whose inputs are all constants once, on the host, and stores their outputs as
    /// initializers.
    public func foldingConstants() throws -> Graph {
        var g = self
        let outputNames = Set(outputs.map(\.name))
        let executor = Executor(graph: Graph(name: name, inputs: [], outputs: [], initializers: [:], nodes: []), backend: ReferenceBackend())
        var kept: [Node] = []
        for n in nodes {
            let constantInputs = n.inputs.allSatisfy { $0.isEmpty || g.initializers[$0] != nil }
            let foldable: Bool
            if case .constant = n.op { foldable = true } else { foldable = n.op.isFoldable && constantInputs && !n.inputs.isEmpty }
            if foldable, !n.outputs.contains(where: outputNames.contains) {
                let values: [Tensor]
                do {
                    values = try executor.foldOnHost(n, n.inputs.map { $0.isEmpty ? nil : g.initializers[$0] })
                } catch let e as XAIError {
                    throw e.inNode(n.name, op: n.op.name)
                }
                for (name, t) in zip(n.outputs, values) { g.initializers[name] = t }
            } else {
                kept.append(n)
            }
        }
        g.nodes = kept
        return g.removingUnusedInitializers()
    }

    /// Folds an inference-mode BatchNormalization into the convolution that feeds only it:
    /// `w' = w * a`, `b' = b * a + c` with `a = scale / sqrt(var + eps)`, `c = beta - mean * a`.
    public func foldingBatchNorm() throws -> Graph {
        var g = self
        let producers = g.producers
        let consumers = g.consumerCounts
        var removed = Set<Int>()
        for (i, n) in g.nodes.enumerated() {
            guard case .batchNorm(let eps) = n.op, n.inputs.count == 5, let src = producers[n.inputs[0]], consumers[n.inputs[0]] == 1,
                  case .conv(_, .identity, _) = g.nodes[src].op, g.nodes[src].inputs.count >= 2,
                  let scale = g.initializers[n.inputs[1]], let shift = g.initializers[n.inputs[2]],
                  let mean = g.initializers[n.inputs[3]], let variance = g.initializers[n.inputs[4]],
                  let w = g.initializers[g.nodes[src].inputs[1]], w.shape.rank == 4, w.shape[0] > 0 else { continue }
            let conv = g.nodes[src]
            let (a, c) = try batchNormAffine(scale, shift, mean, variance, eps)
            let cout = w.shape[0], per = w.shape.count / cout
            guard a.shape.count == cout else { continue }
            var wv = w.scalars
            for co in 0..<cout { for j in 0..<per { wv[co * per + j] *= a.scalars[co] } }
            let oldBias = conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? g.initializers[conv.inputs[2]] : nil
            guard oldBias == nil || oldBias?.shape.count == cout else { continue }
            let bv = (0..<cout).map { co in (oldBias?.scalars[co] ?? 0) * a.scalars[co] + c.scalars[co] }
            let wName = conv.name + ".folded_weight", bName = conv.name + ".folded_bias"
            g.initializers[wName] = Tensor(unchecked: w.shape, wv)
            g.initializers[bName] = Tensor(unchecked: [cout], bv)
            g.nodes[src].inputs = [conv.inputs[0], wName, bName]
            g.nodes[src].outputs = n.outputs
            removed.insert(i)
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g.removingUnusedInitializers()
    }

    /// Moves an activation into the epilogue of the convolution or GEMM that feeds only it. Only
    /// activations whose derivative follows from their output are fused, so backward passes need
    /// nothing extra.
    public func fusingActivations() -> Graph {
        var g = self
        let producers = g.producers
        let consumers = g.consumerCounts
        let outputNames = Set(outputs.map(\.name))
        var removed = Set<Int>()
        for (i, n) in g.nodes.enumerated() {
            guard case .unary(let u) = n.op, u.derivativeFromOutput, let first = n.inputs.first, let src = producers[first],
                  consumers[first] == 1, !outputNames.contains(first) else { continue }
            switch g.nodes[src].op {
            case .conv(let p, .identity, let autoPad): g.nodes[src].op = .conv(p, activation: u, autoPad: autoPad)
            case .gemm(let ta, let tb, let alpha, let beta, .identity): g.nodes[src].op = .gemm(transA: ta, transB: tb, alpha: alpha, beta: beta, activation: u)
            default: continue
            }
            g.nodes[src].outputs = n.outputs
            removed.insert(i)
        }
        g.nodes = g.nodes.removing(positions: removed)
        return g
    }

    /// The inverse of ``fusingActivations()``: each convolution or GEMM with an activation in its
    /// epilogue becomes the plain product, writing `<output>:preactivation`, followed by the
    /// activation, writing the original output. Rules that need an activation's input as well as
    /// its output (DeepLIFT's rescale multipliers) run on this graph; its outputs are the same.
    public func unfusingActivations() -> Graph {
        var g = self
        var nodes: [Node] = []
        for node in g.nodes {
            let activation: UnaryOp
            var product = node
            switch node.op {
            case .conv(let p, let act, let autoPad) where act != .identity:
                activation = act
                product.op = .conv(p, activation: .identity, autoPad: autoPad)
            case .gemm(let ta, let tb, let alpha, let beta, let act) where act != .identity:
                activation = act
                product.op = .gemm(transA: ta, transB: tb, alpha: alpha, beta: beta, activation: .identity)
            default:
                nodes.append(node)
                continue
            }
            let pre = node.outputs[0] + ":preactivation"
            product.outputs = [pre]
            nodes.append(product)
            nodes.append(Node(name: node.name + ":activation", op: .unary(activation), inputs: [pre], outputs: node.outputs))
        }
        g.nodes = nodes
        return g
    }

    /// Every value's shape at batch 1 and at batch 2: an axis whose extent is the same in both
    /// does not follow the batch (rewrites that fix an extent at load need that).
    func shapesAtBatchOneAndTwo() -> (one: [String: Shape], two: [String: Shape])? {
        guard let input = imageInput, let one = try? summary().shapes else { return nil }
        let backend = ShapeBackend()
        guard let two = try? Executor(graph: self, backend: backend).forward(backend.array(try input.shape(batch: 2)), forBackward: true).values
        else { return nil }
        return (one, two.mapValues(\.shape))
    }

    func removingUnusedInitializers() -> Graph {
        var g = self
        var used = Set(nodes.flatMap(\.inputs))
        used.formUnion(outputs.map(\.name))
        used.formUnion(inputs.map(\.name))
        g.initializers = initializers.filter { used.contains($0.key) }
        return g
    }
}

extension Array where Element == Node {
    /// The nodes without those at `positions` (what a rewrite fused into others), in order.
    func removing(positions: Set<Int>) -> [Node] {
        enumerated().filter { !positions.contains($0.offset) }.map(\.element)
    }
}

/// Who reads each value of a graph, for the rewrites that fuse chains nothing else reads.
struct ReaderIndex {
    let producers: [String: Int]
    /// The positions of the nodes reading each value, one entry per input slot.
    let readers: [String: [Int]]
    let outputNames: Set<String>

    init(_ g: Graph) {
        producers = g.producers
        readers = Dictionary(grouping: g.nodes.indices.flatMap { i in g.nodes[i].inputs.filter { !$0.isEmpty }.map { ($0, i) } }, by: \.0)
            .mapValues { $0.map(\.1) }
        outputNames = Set(g.outputs.map(\.name))
    }

    /// The single reader of `value` (not a graph output), if exactly one input slot reads it.
    func onlyReader(_ value: String) -> Int? {
        guard !outputNames.contains(value), let r = readers[value], r.count == 1 else { return nil }
        return r[0]
    }

    /// The nodes reading `value`.
    func readerNodes(_ value: String) -> Set<Int> { Set(readers[value] ?? []) }
}

extension Graph {
    /// The layers that add a per-channel bias to an activation, as FullGrad sums them: each
    /// convolution with a bias (a batch norm folded into it included) and each batch norm left on
    /// its own (its bias `beta - mean * gamma / sqrt(var + eps)`), with the value the bias is added
    /// to. On a graph with activations unfused (``unfusingActivations()``) that value is the
    /// pre-activation, whose gradient FullGrad multiplies by the bias.
    public func biasLayers() throws -> [(value: String, bias: Tensor)] {
        var layers: [(String, Tensor)] = []
        for node in nodes {
            switch node.op {
            case .conv(_, let act, _) where act == .identity:
                guard node.inputs.count > 2, !node.inputs[2].isEmpty, let bias = initializers[node.inputs[2]] else { continue }
                layers.append((node.outputs[0], bias))
            case .batchNorm(let eps):
                guard node.inputs.count >= 5, let scale = initializers[node.inputs[1]], let beta = initializers[node.inputs[2]],
                      let mean = initializers[node.inputs[3]], let variance = initializers[node.inputs[4]] else { continue }
                layers.append((node.outputs[0], try batchNormAffine(scale, beta, mean, variance, eps).1))
            default:
                continue
            }
        }
        return layers
    }
}
