import Foundation
import XAICore

/// Runs a ``Graph`` on a backend: whole-batch forward passes that keep any named activations, and
/// backward passes from a seed gradient to the input and to named intermediate values. Gradients
/// never flow to weights.
///
/// Weights are uploaded once, on first use. An executor is not safe to use from several threads at once.
public final class Executor: @unchecked Sendable {
    public let graph: Graph
    public let backend: any Backend
    private var deviceConstants: [String: DeviceArray] = [:]
    private let host = ReferenceBackend()

    public init(graph: Graph, backend: any Backend) {
        self.graph = graph
        self.backend = backend
    }

    /// The values of one forward pass that a backward pass needs.
    public struct Pass: @unchecked Sendable {
        /// Every value computed in the pass, by name (only kept when the pass was run for backward).
        public fileprivate(set) var values: [String: Value]
        /// The graph outputs.
        public let outputs: [String: DeviceArray]
        /// The values asked for with `keep`.
        public let kept: [String: DeviceArray]
    }

    // MARK: Forward

    /// Runs the graph on a batch. `keep` names activations to return; `forBackward` retains what a
    /// later ``backward(_:seeds:wrt:)`` needs (more memory).
    public func forward(_ input: DeviceArray, keep: Set<String> = [], forBackward: Bool = false) throws -> Pass {
        guard let inputInfo = graph.imageInput else { throw XAIError.invalidArgument(op: "forward", message: "graph \(graph.name) has no input") }
        try checkInput(input.shape, inputInfo)
        var values: [String: Value] = [inputInfo.name: .device(input)]
        var remaining = graph.consumerCounts
        for k in keep { remaining[k, default: 0] += 1 }
        for node in graph.nodes {
            let args: [Value?] = try node.inputs.map { name in
                if name.isEmpty { return nil }
                if let v = values[name] { return v }
                if let t = graph.initializers[name] { return .host(t) }
                throw XAIError.invalidArgument(op: "\(node.op.name) node '\(node.name)'", message: "input '\(name)' is not computed before it is used")
            }
            let outs: [Value]
            do {
                outs = try evaluate(node, args)
            } catch let e as XAIError {
                throw e.inNode(node)
            }
            for (name, v) in zip(node.outputs, outs) { values[name] = v }
            if !forBackward {
                // Release activations after their last reader.
                for name in node.inputs where !name.isEmpty {
                    remaining[name, default: 0] -= 1
                    if remaining[name]! <= 0 && name != inputInfo.name { values[name] = nil }
                }
            }
        }
        var outputs: [String: DeviceArray] = [:]
        for o in graph.outputs {
            guard let v = values[o.name] else { throw XAIError.invalidArgument(op: "forward", message: "output '\(o.name)' was not computed") }
            outputs[o.name] = try device(v, o.name)
        }
        var kept: [String: DeviceArray] = [:]
        for k in keep {
            guard let v = values[k] else {
                throw XAIError.invalidArgument(op: "forward", message: "no value named '\(k)' in \(graph.name)")
            }
            kept[k] = try device(v, k)
        }
        return Pass(values: forBackward ? values : [:], outputs: outputs, kept: kept)
    }

    private func checkInput(_ shape: Shape, _ info: ValueInfo) throws {
        let ok = shape.rank == info.shape.count && zip(shape.dims, info.shape).allSatisfy { $1 == nil || $0 == $1 }
        guard ok else {
            let expected = "[" + info.shape.map { $0.map(String.init) ?? "N" }.joined(separator: "x") + "]"
            throw XAIError.shapeMismatch(op: "input '\(info.name)' of \(graph.name)", message: "got \(shape), the model expects \(expected)")
        }
    }

    /// A device array for a value, uploading (and caching) host constants.
    func device(_ v: Value, _ name: String) throws -> DeviceArray {
        switch v {
        case .device(let a): return a
        case .host(let t):
            if let cached = deviceConstants[name], cached.shape == t.shape { return cached }
            let a = try backend.upload(t)
            if graph.initializers[name] != nil { deviceConstants[name] = a }
            return a
        }
    }

    // MARK: The op table (forward)

    private func evaluate(_ node: Node, _ args: [Value?]) throws -> [Value] {
        func arg(_ i: Int) throws -> Value {
            guard i < args.count, let v = args[i] else {
                throw XAIError.invalidArgument(op: node.op.name, message: "missing input \(i)")
            }
            return v
        }
        func dev(_ i: Int) throws -> DeviceArray { try device(try arg(i), node.inputs[i]) }
        func hostTensor(_ i: Int) throws -> Tensor {
            switch try arg(i) {
            case .host(let t): return t
            case .device(let a):
                // Shape arithmetic fed by activations: small, so download it.
                guard a.shape.count <= 64 else {
                    throw XAIError.unsupported(op: node.op.name, reason: "input '\(node.inputs[i])' must be a constant")
                }
                return try backend.download(a)
            }
        }
        // Shape arithmetic on constants runs on the host.
        let allHost = args.allSatisfy { if case .host = $0 { return true }; return $0 == nil }
        if allHost, !args.isEmpty, case let op = node.op, op.isShapeArithmetic || op.isCheapOnHost {
            return try evaluate(node, on: host, args)
        }
        switch node.op {
        case .shape(let start, let end):
            let dims = try arg(0).shape.dims
            let s = max(0, start < 0 ? start + dims.count : start)
            let e = min(dims.count, end.map { $0 < 0 ? $0 + dims.count : $0 } ?? dims.count)
            let part = s < e ? Array(dims[s..<e]) : []
            return [.host(try Tensor(shape: [part.count], scalars: part.map(Float.init)))]
        case .constant(let t):
            return [.host(t)]
        case .gather:
            return try evaluate(node, on: host, try args.map { v in try v.map { .host(try hostValue($0)) } })
        default:
            return try evaluate(node, on: backend, args, dev: dev, hostTensor: hostTensor)
        }
    }

    /// Runs a node on host values only and returns host tensors.
    func evaluateOnHost(_ node: Node, _ args: [Value?]) throws -> [Tensor] {
        try evaluate(node, on: host, args).map { v in
            switch v {
            case .host(let t): return t
            case .device(let a): return try host.download(a)
            }
        }
    }

    private func hostValue(_ v: Value) throws -> Tensor {
        switch v {
        case .host(let t): return t
        case .device(let a): return try backend.download(a)
        }
    }

    /// Runs a node whose inputs are all host values on the float64 host backend (constant folding).
    private func evaluate(_ node: Node, on hostBackend: ReferenceBackend, _ args: [Value?]) throws -> [Value] {
        if case .shape(let start, let end) = node.op {
            let dims = args[0]!.shape.dims
            let s = max(0, start < 0 ? start + dims.count : start)
            let e = min(dims.count, end.map { $0 < 0 ? $0 + dims.count : $0 } ?? dims.count)
            let part = s < e ? Array(dims[s..<e]) : []
            return [.host(try Tensor(shape: [part.count], scalars: part.map(Float.init)))]
        }
        if case .constant(let t) = node.op { return [.host(t)] }
        if case .cast(let toFloat) = node.op, case .host(let data)? = args[0] {
            // Constants: a cast to an integer type truncates toward zero; values stay float32.
            return [.host(toFloat ? data : try Tensor(shape: data.shape, scalars: data.scalars.map { $0.rounded(.towardZero) }))]
        }
        if case .slice = node.op, case .host(let data)? = args[0] {
            func ints(_ i: Int) -> [Int]? { if i < args.count, case .host(let t)? = args[i] { return t.integers }; return nil }
            return [.host(try stridedSlice(data, starts: ints(1) ?? [], ends: ints(2) ?? [], axes: ints(3), steps: ints(4)))]
        }
        if case .gather(let axis) = node.op {
            guard case .host(let data)? = args[0], case .host(let indices)? = args[1] else {
                throw XAIError.unsupported(op: "Gather", reason: "only constant data is supported")
            }
            return [.host(try gather(data, indices, axis: axis))]
        }
        let hostArrays = try args.map { v -> DeviceArray? in
            guard let v else { return nil }
            guard case .host(let t) = v else { preconditionFailure() }
            return try hostBackend.upload(t)
        }
        let outs = try evaluate(node, on: hostBackend, args, dev: { i in
            guard i < hostArrays.count, let a = hostArrays[i] else { throw XAIError.invalidArgument(op: node.op.name, message: "missing input \(i)") }
            return a
        }, hostTensor: { i in
            guard i < args.count, case .host(let t)? = args[i] else { throw XAIError.invalidArgument(op: node.op.name, message: "missing input \(i)") }
            return t
        })
        return try outs.map { v in
            guard case .device(let a) = v else { return v }
            return .host(try hostBackend.download(a))
        }
    }

    private func gather(_ data: Tensor, _ indices: Tensor, axis: Int) throws -> Tensor {
        guard let a = data.shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(op: "Gather", message: "axis \(axis) out of range for \(data.shape)")
        }
        let outer = data.shape.dims[..<a].reduce(1, *), inner = data.shape.dims[(a + 1)...].reduce(1, *), n = data.shape[a]
        var out: [Float] = []
        for o in 0..<outer {
            for raw in indices.integers {
                let i = raw < 0 ? raw + n : raw
                guard (0..<n).contains(i) else { throw XAIError.invalidArgument(op: "Gather", message: "index \(raw) out of range \(n)") }
                out.append(contentsOf: data.scalars[((o * n + i) * inner)..<((o * n + i + 1) * inner)])
            }
        }
        let dims = Array(data.shape.dims[..<a]) + indices.shape.dims + Array(data.shape.dims[(a + 1)...])
        return try Tensor(shape: Shape(dims), scalars: out)
    }

    private func evaluate(_ node: Node, on be: any Backend, _ args: [Value?],
                          dev: (Int) throws -> DeviceArray, hostTensor: (Int) throws -> Tensor) throws -> [Value] {
        func present(_ i: Int) -> Bool { i < args.count && args[i] != nil }
        switch node.op {
        case .conv(let p, let act, let autoPad):
            let x = try dev(0), w = try dev(1)
            let params = resolved(p, autoPad, x.shape, w.shape)
            return [.device(try be.conv2d(x, weight: w, bias: present(2) ? try dev(2) : nil, params: params, activation: act))]
        case .batchNorm(let eps):
            let (a, c) = try batchNormAffine(try hostTensor(1), try hostTensor(2), try hostTensor(3), try hostTensor(4), eps)
            let x = try dev(0)
            let shape = Shape([1, a.shape.count] + [Int](repeating: 1, count: max(x.shape.rank - 2, 0)))
            let scaled = try be.binary(.mul, x, try be.upload(try a.reshaped(shape)))
            return [.device(try be.binary(.add, scaled, try be.upload(try c.reshaped(shape))))]
        case .gemm(let ta, let tb, let alpha, let beta, let act):
            let a = try dev(0), b = try dev(1)
            var bias: DeviceArray?
            var fullC: DeviceArray?
            if present(2) {
                let n = tb ? b.shape[0] : b.shape[b.shape.rank - 1]
                let c = try hostOrDevice(args[2]!, node.inputs[2], be)
                if c.shape.count == n && (c.shape.rank == 1 || c.shape.dims.dropLast().allSatisfy { $0 == 1 }) {
                    bias = try c.reshaped([n])
                    if beta != 1 { bias = try be.binary(.mul, bias!, try be.filled([1], value: beta)) }
                } else {
                    fullC = beta == 1 ? c : try be.binary(.mul, c, try be.filled([1], value: beta))
                }
            }
            if let fullC {
                let y = try be.gemm(a, b, transposeA: ta, transposeB: tb, alpha: alpha, bias: nil, activation: .identity)
                return [.device(try be.unary(act, try be.binary(.add, y, fullC)))]
            }
            return [.device(try be.gemm(a, b, transposeA: ta, transposeB: tb, alpha: alpha, bias: bias, activation: act))]
        case .matMul:
            let a = try dev(0), b = try dev(1)
            guard a.shape.rank == 2, b.shape.rank == 2 else {
                throw XAIError.unsupported(op: "MatMul", reason: "only 2-D operands are supported, got \(a.shape) and \(b.shape)")
            }
            return [.device(try be.gemm(a, b, transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity))]
        case .unary(let u):
            return [.device(try be.unary(u, try dev(0)))]
        case .binary(let op):
            return [.device(try be.binary(op, try dev(0), try dev(1)))]
        case .pool(let p, let autoPad):
            let x = try dev(0)
            return [.device(try be.pool2d(x, params: resolved(p, autoPad, x.shape)))]
        case .globalAveragePool:
            return [.device(try be.globalAveragePool(try dev(0)))]
        case .flatten(let axis):
            let x = try dev(0)
            let a = axis < 0 ? axis + x.shape.rank : axis
            let outer = x.shape.dims[..<a].reduce(1, *)
            return [.device(try x.reshaped([outer, x.shape.count / max(outer, 1)]))]
        case .reshape(let allowZero):
            let x = try dev(0)
            return [.device(try x.reshaped(try reshapeTarget(x.shape, try hostTensor(1).integers, allowZero: allowZero)))]
        case .transpose(let perm):
            let x = try dev(0)
            let p = perm.isEmpty ? Array((0..<x.shape.rank).reversed()) : perm
            return [.device(try be.permute(x, p))]
        case .concat(let axis):
            let parts = try (0..<args.count).filter(present).map(dev)
            return [.device(try be.concat(parts, axis: axis))]
        case .softmax(let axis, let log, let coerce2D):
            let x = try dev(0)
            guard let a = x.shape.normalizedAxis(axis) else {
                throw XAIError.invalidArgument(op: node.op.name, message: "axis \(axis) out of range for \(x.shape)")
            }
            if coerce2D && a != x.shape.rank - 1 {
                let outer = x.shape.dims[..<a].reduce(1, *)
                let flat = try x.reshaped([outer, x.shape.count / max(outer, 1)])
                return [.device(try be.softmax(flat, axis: 1, log: log).reshaped(x.shape))]
            }
            return [.device(try be.softmax(x, axis: a, log: log))]
        case .reduceMean(let axes, let keepDims):
            let x = try dev(0)
            let ax = axes ?? Array(0..<x.shape.rank)
            let y = try be.reduce(.mean, x, axes: ax)
            return [.device(keepDims ? y : try y.reshaped(squeezed(y.shape, ax)))]
        case .pad:
            let x = try dev(0)
            let pads = try hostTensor(1).integers
            guard pads.count == 2 * x.shape.rank, pads.allSatisfy({ $0 >= 0 }) else {
                throw XAIError.unsupported(op: "Pad", reason: "pads \(pads) for \(x.shape) (negative pads are not supported)")
            }
            let value = present(2) ? (try hostTensor(2).scalars.first ?? 0) : 0
            return [.device(try be.pad(x, before: Array(pads[..<x.shape.rank]), after: Array(pads[x.shape.rank...]), value: value))]
        case .squeeze(let axes):
            let x = try dev(0)
            let ax = axes ?? x.shape.dims.indices.filter { x.shape[$0] == 1 }
            return [.device(try x.reshaped(squeezed(x.shape, ax)))]
        case .unsqueeze(let axes):
            let x = try dev(0)
            return [.device(try x.reshaped(try unsqueezed(x.shape, axes)))]
        case .identity:
            return [.device(try dev(0))]
        case .cast(let toFloat):
            guard toFloat else { throw XAIError.unsupported(op: "Cast", reason: "activations are float32; only casts to float types are supported") }
            return [.device(try dev(0))]
        case .slice:
            let x = try dev(0)
            let (starts, sizes) = try sliceBox(x.shape, starts: try hostTensor(1).integers, ends: try hostTensor(2).integers,
                                               axes: present(3) ? try hostTensor(3).integers : nil, steps: present(4) ? try hostTensor(4).integers : nil)
            return [.device(try be.slice(x, starts: starts, sizes: sizes))]
        case .constantOfShape(let value):
            let dims = try hostTensor(0).integers
            return [.host(Tensor(shape: Shape(dims), repeating: value))]
        case .shape, .gather, .constant:
            throw XAIError.unsupported(op: node.op.name, reason: "evaluated on the host only")
        }
    }

    private func hostOrDevice(_ v: Value, _ name: String, _ be: any Backend) throws -> DeviceArray {
        if be === backend { return try device(v, name) }
        switch v {
        case .device(let a): return a
        case .host(let t): return try be.upload(t)
        }
    }

    // MARK: Backward

    /// Gradients of `sum(seed * value)` over the seeded values, with respect to every value in `wrt`
    /// (the graph input by name, or intermediate values). Only the nodes between the seeded values
    /// and `wrt` are differentiated, so a backward to a late layer costs little.
    public func backward(_ pass: Pass, seeds: [String: DeviceArray], wrt: Set<String>) throws -> [String: DeviceArray] {
        guard !pass.values.isEmpty else {
            throw XAIError.invalidArgument(op: "backward", message: "the forward pass was not run with forBackward: true")
        }
        // Values that depend on something in `wrt`: only their producers need a backward rule.
        var dependsOnWrt = wrt
        for node in graph.nodes where node.inputs.contains(where: dependsOnWrt.contains) {
            dependsOnWrt.formUnion(node.outputs)
        }
        for name in wrt where pass.values[name] == nil {
            throw XAIError.invalidArgument(op: "backward", message: "no value named '\(name)' in \(graph.name)")
        }
        var grads: [String: DeviceArray] = [:]
        for (name, g) in seeds {
            guard let v = pass.values[name] else { throw XAIError.invalidArgument(op: "backward", message: "no value named '\(name)' to seed") }
            guard v.shape == g.shape else {
                throw XAIError.shapeMismatch(op: "backward seed '\(name)'", message: "seed \(g.shape) for value \(v.shape)")
            }
            grads[name] = g
        }
        for node in graph.nodes.reversed() {
            guard node.outputs.contains(where: { grads[$0] != nil }) else { continue }
            let needed = node.inputs.indices.filter { !node.inputs[$0].isEmpty && dependsOnWrt.contains(node.inputs[$0]) }
            if needed.isEmpty { continue }
            guard let gy = grads[node.outputs[0]] else { continue }
            let inputGrads: [Int: DeviceArray]
            do {
                inputGrads = try vjp(node, pass, gy, needed)
            } catch let e as XAIError {
                throw e.inNode(node)
            }
            for (i, g) in inputGrads {
                let name = node.inputs[i]
                if let existing = grads[name] {
                    grads[name] = try backend.binary(.add, existing, g)
                } else {
                    grads[name] = g
                }
            }
        }
        var result: [String: DeviceArray] = [:]
        for name in wrt {
            result[name] = try grads[name] ?? backend.zeros(pass.values[name]!.shape)
        }
        return result
    }

    /// The gradient table: one rule per op, gradients for the inputs listed in `needed`.
    private func vjp(_ node: Node, _ pass: Pass, _ gy: DeviceArray, _ needed: [Int]) throws -> [Int: DeviceArray] {
        let be = backend
        func value(_ i: Int) throws -> DeviceArray {
            let name = node.inputs[i]
            if let v = pass.values[name] { return try device(v, name) }
            if let t = graph.initializers[name] { return try device(.host(t), name) }
            throw XAIError.invalidArgument(op: "backward", message: "value '\(name)' was not kept")
        }
        func output() throws -> DeviceArray { try device(pass.values[node.outputs[0]]!, node.outputs[0]) }
        func only(_ g: DeviceArray) -> [Int: DeviceArray] { needed.contains(0) ? [0: g] : [:] }
        func requireInputOnly(_ what: String) throws {
            if needed.contains(where: { $0 != 0 }) {
                throw XAIError.unsupported(op: "backward of \(node.op.name)", reason: "gradients flow to activations only, not to \(what)")
            }
        }
        switch node.op {
        case .conv(let p, let act, let autoPad):
            try requireInputOnly("weights")
            var g = gy
            if act != .identity { g = try be.unaryBackward(act, gradOutput: gy, value: try output(), valueIsOutput: true) }
            let x = try value(0), w = try value(1)
            return only(try be.conv2dBackwardInput(g, weight: w, params: resolved(p, autoPad, x.shape, w.shape), inputShape: x.shape))
        case .batchNorm(let eps):
            try requireInputOnly("batch-norm parameters")
            let (a, _) = try batchNormAffine(try hostOf(node, 1, pass), try hostOf(node, 2, pass), try hostOf(node, 3, pass), try hostOf(node, 4, pass), eps)
            let shape = Shape([1, a.shape.count] + [Int](repeating: 1, count: max(gy.shape.rank - 2, 0)))
            return only(try be.binary(.mul, gy, try be.upload(try a.reshaped(shape))))
        case .gemm(let ta, let tb, let alpha, _, let act):
            try requireInputOnly("weights")
            var g = gy
            if act != .identity { g = try be.unaryBackward(act, gradOutput: gy, value: try output(), valueIsOutput: true) }
            let b = try value(1)
            let da = ta
                ? try be.gemm(b, g, transposeA: tb, transposeB: true, alpha: alpha, bias: nil, activation: .identity)
                : try be.gemm(g, b, transposeA: false, transposeB: !tb, alpha: alpha, bias: nil, activation: .identity)
            return only(da)
        case .matMul:
            try requireInputOnly("the second operand")
            return only(try be.gemm(gy, try value(1), transposeA: false, transposeB: true, alpha: 1, bias: nil, activation: .identity))
        case .unary(let u):
            return only(try be.unaryBackward(u, gradOutput: gy, value: try value(0), valueIsOutput: false))
        case .binary(let op):
            let (da, db) = try be.binaryBackward(op, gradOutput: gy, a: try value(0), b: try value(1))
            var r: [Int: DeviceArray] = [:]
            if needed.contains(0) { r[0] = da }
            if needed.contains(1) { r[1] = db }
            return r
        case .pool(let p, let autoPad):
            let x = try value(0)
            return only(try be.pool2dBackward(gy, input: x, params: resolved(p, autoPad, x.shape)))
        case .globalAveragePool:
            return only(try be.globalAveragePoolBackward(gy, input: try value(0)))
        case .flatten, .reshape, .squeeze, .unsqueeze, .identity:
            return only(try gy.reshaped(try value(0).shape))
        case .transpose(let perm):
            let p = perm.isEmpty ? Array((0..<gy.shape.rank).reversed()) : perm
            var inverse = [Int](repeating: 0, count: p.count)
            for (i, a) in p.enumerated() { inverse[a] = i }
            return only(try be.permute(gy, inverse))
        case .concat(let axis):
            guard let a = gy.shape.normalizedAxis(axis) else { throw XAIError.invalidArgument(op: "Concat", message: "axis \(axis)") }
            var r: [Int: DeviceArray] = [:]
            var offset = 0
            for i in node.inputs.indices {
                let s = try value(i).shape
                if needed.contains(i) {
                    var starts = [Int](repeating: 0, count: s.rank)
                    starts[a] = offset
                    r[i] = try be.slice(gy, starts: starts, sizes: s.dims)
                }
                offset += s[a]
            }
            return r
        case .softmax(let axis, let log, let coerce2D):
            let y = try output()
            guard let a = y.shape.normalizedAxis(axis) else { throw XAIError.invalidArgument(op: node.op.name, message: "axis \(axis)") }
            if coerce2D && a != y.shape.rank - 1 {
                let outer = y.shape.dims[..<a].reduce(1, *)
                let flat: Shape = [outer, y.shape.count / max(outer, 1)]
                return only(try be.softmaxBackward(try gy.reshaped(flat), output: try y.reshaped(flat), axis: 1, log: log).reshaped(y.shape))
            }
            return only(try be.softmaxBackward(gy, output: y, axis: a, log: log))
        case .reduceMean(let axes, _):
            let x = try value(0)
            let ax = axes ?? Array(0..<x.shape.rank)
            let plan = try ReducePlan(input: x.shape, axes: ax, op: "ReduceMean")
            return only(try be.reduceBackward(.mean, gradOutput: try gy.reshaped(plan.outputShape), input: x, axes: ax))
        case .pad:
            let x = try value(0)
            let pads = try hostOf(node, 1, pass).integers
            return only(try be.slice(gy, starts: Array(pads[..<x.shape.rank]), sizes: x.shape.dims))
        case .cast:
            return only(gy)
        case .slice:
            let x = try value(0)
            let (starts, sizes) = try sliceBox(x.shape, starts: try hostOf(node, 1, pass).integers, ends: try hostOf(node, 2, pass).integers,
                                               axes: node.inputs.count > 3 && !node.inputs[3].isEmpty ? try hostOf(node, 3, pass).integers : nil,
                                               steps: node.inputs.count > 4 && !node.inputs[4].isEmpty ? try hostOf(node, 4, pass).integers : nil)
            let after = (0..<x.shape.rank).map { x.shape[$0] - starts[$0] - sizes[$0] }
            return only(try be.pad(gy, before: starts, after: after, value: 0))
        case .shape, .gather, .constant, .constantOfShape:
            return [:]
        }
    }

    private func hostOf(_ node: Node, _ i: Int, _ pass: Pass? = nil) throws -> Tensor {
        if let pass, case .host(let t)? = pass.values[node.inputs[i]] { return t }
        guard let t = graph.initializers[node.inputs[i]] else {
            throw XAIError.unsupported(op: node.op.name, reason: "input '\(node.inputs[i])' must be a constant")
        }
        return t
    }
}

/// Convolution pads for `auto_pad` modes, from the actual input size.
func resolved(_ p: Conv2DParams, _ autoPad: AutoPad, _ input: Shape, _ weight: Shape) -> Conv2DParams {
    guard input.rank == 4, weight.rank == 4,
          let (t, b) = autoPad.pads(input: input[2], kernel: weight[2], stride: p.strideH, dilation: p.dilationH),
          let (l, r) = autoPad.pads(input: input[3], kernel: weight[3], stride: p.strideW, dilation: p.dilationW) else { return p }
    var q = p
    (q.padTop, q.padLeft, q.padBottom, q.padRight) = (t, l, b, r)
    return q
}

/// Pooling pads for `auto_pad` modes.
func resolved(_ p: Pool2DParams, _ autoPad: AutoPad, _ input: Shape) -> Pool2DParams {
    guard input.rank == 4,
          let (t, b) = autoPad.pads(input: input[2], kernel: p.kernelH, stride: p.strideH, dilation: 1),
          let (l, r) = autoPad.pads(input: input[3], kernel: p.kernelW, stride: p.strideW, dilation: 1) else { return p }
    var q = p
    (q.padTop, q.padLeft, q.padBottom, q.padRight) = (t, l, b, r)
    return q
}

/// Per-channel `a = scale / sqrt(var + eps)`, `c = bias - mean * a`, so that BN(x) = a x + c.
func batchNormAffine(_ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor, _ eps: Float) throws -> (Tensor, Tensor) {
    let n = scale.shape.count
    guard bias.shape.count == n, mean.shape.count == n, variance.shape.count == n else {
        throw XAIError.shapeMismatch(op: "BatchNormalization", message: "parameters \(scale.shape) \(bias.shape) \(mean.shape) \(variance.shape)")
    }
    var a = [Float](repeating: 0, count: n), c = [Float](repeating: 0, count: n)
    for i in 0..<n {
        let ai = Double(scale.scalars[i]) / (Double(variance.scalars[i]) + Double(eps)).squareRoot()
        a[i] = Float(ai)
        c[i] = Float(Double(bias.scalars[i]) - Double(mean.scalars[i]) * ai)
    }
    return (try Tensor(shape: [n], scalars: a), try Tensor(shape: [n], scalars: c))
}

/// ONNX Reshape semantics: 0 copies the input extent (unless `allowZero`), one -1 is inferred.
func reshapeTarget(_ input: Shape, _ target: [Int], allowZero: Bool) throws -> Shape {
    var dims = target.enumerated().map { i, d in (d == 0 && !allowZero && i < input.rank) ? input[i] : d }
    let known = dims.filter { $0 != -1 }.reduce(1, *)
    if let i = dims.firstIndex(of: -1) {
        guard known > 0, input.count % known == 0, dims.filter({ $0 == -1 }).count == 1 else {
            throw XAIError.shapeMismatch(op: "Reshape", message: "cannot reshape \(input) to \(target)")
        }
        dims[i] = input.count / known
    }
    guard dims.allSatisfy({ $0 >= 0 }), dims.reduce(1, *) == input.count else {
        throw XAIError.shapeMismatch(op: "Reshape", message: "cannot reshape \(input) to \(target)")
    }
    return Shape(dims)
}

/// ONNX Slice with any steps (negative ones reverse), for constants on the host.
func stridedSlice(_ t: Tensor, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> Tensor {
    let axes = axes ?? Array(0..<starts.count)
    let steps = steps ?? [Int](repeating: 1, count: starts.count)
    guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count, !steps.contains(0) else {
        throw XAIError.invalidArgument(op: "Slice", message: "starts \(starts), ends \(ends), axes \(axes), steps \(steps)")
    }
    // Per axis: the list of source indices.
    var picks = t.shape.dims.map { Array(0..<$0) }
    for (i, a0) in axes.enumerated() {
        guard let a = t.shape.normalizedAxis(a0) else { throw XAIError.invalidArgument(op: "Slice", message: "axis \(a0) for \(t.shape)") }
        let n = t.shape[a], step = steps[i]
        var s = starts[i] < 0 ? starts[i] + n : starts[i]
        var e = ends[i] < 0 ? ends[i] + n : ends[i]
        if step > 0 {
            s = min(max(s, 0), n); e = min(max(e, 0), n)
            picks[a] = Array(stride(from: s, to: e, by: step))
        } else {
            s = min(max(s, -1), n - 1); e = min(max(e, -1), n - 1)
            picks[a] = Array(stride(from: s, to: e, by: step))
        }
    }
    let outShape = Shape(picks.map(\.count))
    let strides = t.shape.strides
    var out: [Float] = []
    out.reserveCapacity(outShape.count)
    var idx = [Int](repeating: 0, count: outShape.rank)
    for _ in 0..<outShape.count {
        var off = 0
        for d in 0..<idx.count { off += picks[d][idx[d]] * strides[d] }
        out.append(t.scalars[off])
        var d = idx.count - 1
        while d >= 0 { idx[d] += 1; if idx[d] < outShape[d] { break }; idx[d] = 0; d -= 1 }
    }
    return try Tensor(shape: outShape, scalars: out)
}

/// ONNX Slice (unit steps) as a box: clamped starts and sizes per axis.
func sliceBox(_ shape: Shape, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> ([Int], [Int]) {
    let axes = axes ?? Array(0..<starts.count)
    guard starts.count == ends.count, axes.count == starts.count else {
        throw XAIError.invalidArgument(op: "Slice", message: "starts \(starts), ends \(ends), axes \(axes)")
    }
    if let steps, steps.contains(where: { $0 != 1 }) { throw XAIError.unsupported(op: "Slice", reason: "steps \(steps) (only 1)") }
    var lo = [Int](repeating: 0, count: shape.rank), size = shape.dims
    for (i, a0) in axes.enumerated() {
        guard let a = shape.normalizedAxis(a0) else { throw XAIError.invalidArgument(op: "Slice", message: "axis \(a0) for \(shape)") }
        let n = shape[a]
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + n : v, 0), n) }
        let s = clamp(starts[i]), e = clamp(ends[i])
        lo[a] = s
        size[a] = max(e - s, 0)
    }
    return (lo, size)
}

func squeezed(_ shape: Shape, _ axes: [Int]) -> Shape {
    let set = Set(axes.map { $0 < 0 ? $0 + shape.rank : $0 })
    return Shape(shape.dims.enumerated().filter { !set.contains($0.offset) }.map(\.element))
}

func unsqueezed(_ shape: Shape, _ axes: [Int]) throws -> Shape {
    let rank = shape.rank + axes.count
    let set = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
    guard set.count == axes.count, set.allSatisfy({ (0..<rank).contains($0) }) else {
        throw XAIError.invalidArgument(op: "Unsqueeze", message: "axes \(axes) for \(shape)")
    }
    var it = shape.dims.makeIterator()
    return Shape((0..<rank).map { set.contains($0) ? 1 : it.next()! })
}

extension Op {
    /// Ops on small integer tensors that exporters emit around Reshape.
    var isShapeArithmetic: Bool {
        switch self {
        case .shape, .gather, .constant, .constantOfShape, .unsqueeze, .squeeze, .concat, .reshape, .flatten, .slice, .cast: return true
        default: return false
        }
    }

    /// Ops cheap enough to run on host constants (for folding).
    var isCheapOnHost: Bool {
        switch self {
        case .binary, .unary, .transpose, .identity: return true
        default: return false
        }
    }
}

extension XAIError {
    /// Adds the node's name and op to an error raised while running it.
    func inNode(_ node: Node) -> XAIError {
        switch self {
        case .shapeMismatch(let op, let m) where !op.contains("node '"):
            return .shapeMismatch(op: "\(op) (node '\(node.name)', \(node.op.name))", message: m)
        case .invalidArgument(let op, let m) where !op.contains("node '"):
            return .invalidArgument(op: "\(op) (node '\(node.name)', \(node.op.name))", message: m)
        case .unsupported(let op, let r) where !op.contains("node '"):
            return .unsupported(op: "\(op) (node '\(node.name)')", reason: r)
        default:
            return self
        }
    }
}
