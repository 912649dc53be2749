import Foundation
import XAICore

/// Runs a ``Graph`` on a backend: whole-batch forward passes that keep any named activations, and
/// backward passes from a seed gradient to the input and to named intermediate values. Gradients
/// never flow to weights.
///
/// Weights are uploaded once, on first use, into a cache guarded by a lock, so one executor may
/// serve several threads (each pass is independent; the backend must be thread-safe, as the CPU
/// and OpenCL backends are).
public final class Executor: Sendable {
    public let graph: Graph
    public let backend: any Backend
    private let constants = ConstantCache()

    /// A device copy of a constant changed by a rule (LRP's clamped or squared weights), made and
    /// uploaded once per executor, under `key` (the constant's name and the change).
    func modifiedConstant(_ key: String, shape: Shape, _ make: () throws -> Tensor) throws -> DeviceArray {
        try constants.array("\u{1}" + key, shape: shape) { try backend.upload(try make()) }
    }
    /// ``Graph/lastReads``, computed once.
    let lastReads: [[String]]
    /// Positions `i` where `nodes[i]` is a 1x1 convolution whose output only `nodes[i + 1]`, a
    /// depthwise convolution with constant weights and bias, reads: pairs a forward pass that keeps
    /// nothing for backward may hand to ``Backend/conv2dThenDepthwise(_:pointwise:depthwise:)``.
    let depthwisePairs: Set<Int>
    /// Where each node's time goes, when given (the bench's `--profile`).
    public let profile: OpProfile?
    /// Positions of nodes whose outputs depend only on the input's shape: shapes, constants and
    /// arithmetic on them (Swin's attention masks, built from the padded feature map's size). The
    /// load-time folding cannot reach them while the batch is symbolic; the executor computes them
    /// once per input shape and keeps them in ``shapeValues``.
    let shapeOnlyNodes: Set<Int>
    /// Values that are never negative (``Graph/nonNegativeValues()``).
    let nonNegativeValues: Set<String>
    /// Values a convolution or fully connected layer outputs through an activation, with that
    /// activation and the position of the first node that reads the value: where a backward may
    /// finish the value's gradient in the store of its last contribution (``GradientStore``).
    let activationOutputs: [String: (activation: UnaryOp, firstReader: Int)]
    /// Whether backward passes fuse gradient stores (``GradientStore``); the same bits either way.
    let fusesGradientStores: Bool
    private let shapeValues = ShapeValueCache()

    /// - Parameter fusesGradientStores: `false` runs every sum of gradients and every activation's
    ///   backward as an operation of its own (for comparison; the same bits); `nil` reads
    ///   `XAI_GRADIENT_STORES` (`fused`, the default, or `apart`).
    public init(graph: Graph, backend: any Backend, profile: OpProfile? = nil, fusesGradientStores: Bool? = nil) {
        self.graph = graph
        self.fusesGradientStores = fusesGradientStores ?? Self.gradientStoresFromEnvironment
        self.backend = backend
        self.profile = profile
        lastReads = graph.lastReads
        depthwisePairs = Self.depthwisePairs(graph)
        shapeOnlyNodes = Self.shapeOnlyNodes(graph)
        nonNegativeValues = graph.nonNegativeValues()
        activationOutputs = Self.activationOutputs(graph)
    }

    /// `XAI_GRADIENT_STORES`: `apart` turns the fused stores off (to time them against the
    /// operations they replace); another value is named on standard error once and ignored.
    static let gradientStoresFromEnvironment: Bool = {
        switch ProcessInfo.processInfo.environment["XAI_GRADIENT_STORES"] {
        case nil, "fused": return true
        case "apart": return false
        case let other?:
            FileHandle.standardError.write(Data("warning: XAI_GRADIENT_STORES=\(other) is neither fused nor apart; using fused\n".utf8))
            return true
        }
    }()

    static func activationOutputs(_ graph: Graph) -> [String: (activation: UnaryOp, firstReader: Int)] {
        var firstReader: [String: Int] = [:]
        for (i, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty && firstReader[name] == nil { firstReader[name] = i }
        }
        var outputs: [String: (activation: UnaryOp, firstReader: Int)] = [:]
        for node in graph.nodes {
            let activation: UnaryOp
            switch node.op {
            case .conv(_, let a, _): activation = a
            case .gemm(_, _, _, _, let a): activation = a
            default: continue
            }
            guard activation != .identity, node.outputs.count == 1, let first = firstReader[node.outputs[0]] else { continue }
            outputs[node.outputs[0]] = (activation, first)
        }
        return outputs
    }

    static func shapeOnlyNodes(_ graph: Graph) -> Set<Int> {
        var shapeOnly = Set(graph.initializers.keys)
        var nodes: Set<Int> = []
        for (i, node) in graph.nodes.enumerated() {
            let fromShapes: Bool
            switch node.op {
            case .shape, .constant: fromShapes = true
            default: fromShapes = !node.inputs.allSatisfy(\.isEmpty) && node.inputs.allSatisfy { $0.isEmpty || shapeOnly.contains($0) }
            }
            guard fromShapes else { continue }
            nodes.insert(i)
            shapeOnly.formUnion(node.outputs)
        }
        return nodes
    }

    static func depthwisePairs(_ graph: Graph) -> Set<Int> {
        let readers = graph.consumerCounts
        var pairs: Set<Int> = []
        for (i, (a, b)) in zip(graph.nodes, graph.nodes.dropFirst()).enumerated() {
            guard case .conv(let p, _, _) = a.op, case .conv(let q, _, _) = b.op, a.inputs.count <= 3, b.inputs.count == 3,
                  let mid = a.outputs.first, readers[mid] == 1, b.inputs[0] == mid,
                  let w = graph.initializers[a.inputs[1]], w.shape.rank == 4, w.shape[2] == 1, w.shape[3] == 1, p.groups == 1,
                  let d = graph.initializers[b.inputs[1]], d.shape.rank == 4, d.shape[1] == 1, q.groups == d.shape[0], q.groups == w.shape[0],
                  graph.initializers[b.inputs[2]] != nil else { continue }
            pairs.insert(i)
        }
        return pairs
    }

    /// The values of one forward pass that a backward pass needs.
    public struct Pass: Sendable {
        /// The values computed in the pass, by name, that a backward reads (only kept when the pass
        /// was run for backward; all of them unless it named its `backwardTo`).
        public fileprivate(set) var values: [String: Value]
        /// The graph outputs.
        public let outputs: [String: DeviceArray]
        /// The values asked for with `keep`.
        public let kept: [String: DeviceArray]
        /// The same values as the pass computed them: shape arithmetic stays on the host.
        public let keptValues: [String: Value]

        /// The graph output called `name`.
        /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` when the graph has no such output.
        public func output(_ name: String) throws -> DeviceArray {
            guard let y = outputs[name] else { throw XAIError.invalidArgument(parameter: "output", value: name, reason: "not an output of the graph") }
            return y
        }

        /// The kept activation called `name`.
        public func kept(_ name: String) throws -> DeviceArray {
            guard let a = kept[name] else { throw XAIError.invalidArgument(parameter: "layer", value: name, reason: "was not kept in the forward pass") }
            return a
        }
    }

    // MARK: Forward

    /// Runs the graph on a batch.
    /// - Parameters:
    ///   - input: the image batch, shaped as the graph's input (any batch size where it is dynamic).
    ///   - keep: activations to return in ``Pass/kept``.
    ///   - forBackward: retain what a later ``backward(_:seeds:wrt:)`` needs (more memory).
    ///   - backwardTo: with `forBackward`, the `wrt` of the one backward that will follow: only the
    ///     values its nodes read are retained, the rest are released after their last reader as in
    ///     a forward-only pass (a backward to a late layer, Grad-CAM's, then keeps a few tensors
    ///     instead of every activation). `nil` retains every value.
    ///   - replacing: activations whose computed values are replaced by these (shaped alike) for
    ///     the nodes after them: Ablation-CAM's ablated copies of a layer, where the layers after it
    ///     cannot run on their own.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` for an input of the wrong shape, and any
    ///   error of a node wrapped in ``XAIError/inNode(node:op:underlying:)``.
    public func forward(_ input: DeviceArray, keep: Set<String> = [], forBackward: Bool = false, backwardTo: Set<String>? = nil,
                        replacing: [String: DeviceArray] = [:]) throws -> Pass {
        guard let inputInfo = graph.imageInput else {
            throw XAIError.invalidArgument(parameter: "graph", value: graph.name, reason: "has no image input")
        }
        try checkInput(input.shape, inputInfo)
        for name in replacing.keys where graph.producers[name] == nil {
            throw XAIError.invalidArgument(parameter: "layer", value: name, reason: "no node of \(graph.name) computes it, so it cannot be replaced")
        }
        var values: [String: Value] = [inputInfo.name: .device(input)]
        var fusedIntoPrevious = false
        let shapeOnly = shapeValues.values(for: input.shape)
        var newShapeOnly: [String: Tensor] = [:]
        let retained = forBackward ? backwardTo.map(valuesReadByBackward(to:)) : nil
        for (index, (node, lastRead)) in zip(graph.nodes, lastReads).enumerated() {
            if fusedIntoPrevious {
                fusedIntoPrevious = false
            } else if shapeOnlyNodes.contains(index), let known = shapeOnly, node.outputs.allSatisfy({ known[$0] != nil }) {
                for name in node.outputs { values[name] = replacing[name].map(Value.device) ?? known[name].map(Value.host) }
            } else {
                do {
                    let args: [Value?] = try node.inputs.map { name in
                        if name.isEmpty { return nil }
                        if let v = values[name] { return v }
                        if let t = graph.initializers[name] { return .host(t) }
                        throw XAIError.invalidArgument(parameter: "inputs", value: name, reason: "no node computes it before this node reads it")
                    }
                    // The expanded activation between a fused pair is never made, so neither a
                    // backward pass nor `keep` may need it.
                    if !forBackward, depthwisePairs.contains(index), !keep.contains(node.outputs[0]), replacing[node.outputs[0]] == nil,
                       let y = try evaluateThenDepthwise(node, graph.nodes[index + 1], args) {
                        let name = graph.nodes[index + 1].outputs[0]
                        values[name] = .device(replacing[name] ?? y)
                        fusedIntoPrevious = true
                    } else {
                        // A pass kept for backward computes exactly: its activations are differentiated.
                        let outs = try profile.map { try $0.time(node, backward: false) { try evaluate(node, args, exact: forBackward) } }
                            ?? evaluate(node, args, exact: forBackward)
                        for (name, v) in zip(node.outputs, outs) {
                            values[name] = replacing[name].map(Value.device) ?? v
                            if shapeOnlyNodes.contains(index), case .host(let t) = v { newShapeOnly[name] = t }
                        }
                    }
                } catch let e as XAIError {
                    throw e.inNode(node.name, op: node.op.name)
                }
            }
            if !forBackward {
                // Release activations after their last reader.
                for name in lastRead where name != inputInfo.name && !keep.contains(name) { values[name] = nil }
            } else if let retained {
                for name in lastRead where name != inputInfo.name && !keep.contains(name) && !retained.contains(name) { values[name] = nil }
            }
        }
        if !newShapeOnly.isEmpty { shapeValues.add(newShapeOnly, for: input.shape) }
        var outputs: [String: DeviceArray] = [:]
        for o in graph.outputs {
            guard let v = values[o.name] else {
                throw XAIError.invalidArgument(parameter: "outputs", value: o.name, reason: "no node of \(graph.name) computes this output")
            }
            outputs[o.name] = try device(v, o.name)
        }
        var kept: [String: DeviceArray] = [:], keptValues: [String: Value] = [:]
        for k in keep {
            guard let v = values[k] else {
                throw XAIError.invalidArgument(parameter: "layer", value: k, reason: "no value of \(graph.name) has this name")
            }
            kept[k] = try device(v, k)
            keptValues[k] = v
        }
        return Pass(values: forBackward ? values : [:], outputs: outputs, kept: kept, keptValues: keptValues)
    }

    /// What runs when the activation `layer` is given (``forward(from:value:reading:)``): the nodes
    /// that read it or values computed from it, and constant subgraphs the optimiser kept, in the
    /// graph's order; and `across`, the values computed before the layer that those nodes read
    /// (skip connections around it: a transformer block's residual stream around its first norm),
    /// each with the first node that reads it. A layer that cuts the graph has none.
    public func nodesAfter(_ layer: String) -> (nodes: [Node], across: [(value: String, readBy: String)]) {
        var fromLayer: Set<String> = [layer], constant: Set<String> = [], seen: Set<String> = []
        var nodes: [Node] = [], across: [(value: String, readBy: String)] = []
        for node in graph.nodes where !node.outputs.contains(layer) {
            let inputs = node.inputs.filter { !$0.isEmpty && graph.initializers[$0] == nil }
            if inputs.contains(where: fromLayer.contains) {
                for name in inputs where !fromLayer.contains(name) && !constant.contains(name) && seen.insert(name).inserted {
                    across.append((name, node.name))
                }
                fromLayer.formUnion(node.outputs)
            } else if inputs.allSatisfy(constant.contains) {
                constant.formUnion(node.outputs)
            } else {
                continue  // before the layer
            }
            nodes.append(node)
        }
        return (nodes, across)
    }

    /// The graph's outputs computed from `value` given for the activation `layer` (any batch): only
    /// the nodes after the layer run (``nodesAfter(_:)``), each reading the layer, values computed
    /// from it, constants, shape arithmetic on them, or `across`: the clean values computed before
    /// the layer that a skip connection carries around it (``Pass/keptValues``), activations at
    /// `value`'s batch or at a batch of 1 (given to every copy in `value`). Ablation-CAM scores its
    /// ablated copies of a layer this way, without running the layers before it again.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`layer`) naming the node that
    ///   reads a value computed before the layer and not given in `across`: without it the layer
    ///   does not cut the graph there.
    public func forward(from layer: String, value: DeviceArray, reading across: [String: Value] = [:]) throws -> [String: DeviceArray] {
        let (nodes, needed) = nodesAfter(layer)
        var values: [String: Value] = [layer: .device(value)]
        for (name, reader) in needed {
            guard let given = across[name] else {
                throw XAIError.invalidArgument(parameter: "layer", value: layer,
                                               reason: "node '\(reader)' after it also reads '\(name)', computed before it: the layer does not cut the graph")
            }
            // A clean value at batch 1 goes to every copy (a fused store, as a convolution's
            // residual, takes no broadcast).
            let copies = value.shape.rank > 0 ? value.shape[0] : 1
            if case .device(let v) = given, v.shape.rank > 0, v.shape[0] == 1, copies > 1 {
                values[name] = .device(try backend.concat(Array(repeating: v, count: copies), axis: 0))
            } else {
                values[name] = given
            }
        }
        for node in nodes {
            let args: [Value?] = node.inputs.map { name in name.isEmpty ? nil : values[name] ?? graph.initializers[name].map(Value.host) }
            do {
                for (name, v) in zip(node.outputs, try evaluate(node, args)) { values[name] = v }
            } catch let e as XAIError {
                throw e.inNode(node.name, op: node.op.name)
            }
        }
        return try outputs(following: layer) { name in try values[name].map { try device($0, name) } }
    }

    /// The graph's outputs as `value` gives them (after a pass from `layer`), naming the layer where
    /// one does not follow from it.
    func outputs(following layer: String, _ value: (String) throws -> DeviceArray?) throws -> [String: DeviceArray] {
        var outputs: [String: DeviceArray] = [:]
        for o in graph.outputs {
            guard let v = try value(o.name) else {
                throw XAIError.invalidArgument(parameter: "layer", value: layer, reason: "output '\(o.name)' does not follow from it")
            }
            outputs[o.name] = v
        }
        return outputs
    }

    private func checkInput(_ shape: Shape, _ info: ValueInfo) throws {
        let ok = shape.rank == info.shape.count && zip(shape.dims, info.shape).allSatisfy { $1 == nil || $0 == $1 }
        guard ok else {
            let expected = "[" + info.shape.map { $0.map(String.init) ?? "N" }.joined(separator: "x") + "]"
            // A batch fixed at 1 is an export without a dynamic batch axis: say how to get one.
            let hint = info.shape.first == 1 && shape.rank == info.shape.count && shape[0] != 1
                ? " (its batch is fixed at 1: explain one image at a time, or export with a dynamic batch axis)" : ""
            throw XAIError.shapeMismatch(op: "input '\(info.name)' of \(graph.name)\(hint)", expected: expected, got: [shape])
        }
    }

    /// A device array for a value, uploading (and caching) host constants.
    func device(_ v: Value, _ name: String) throws -> DeviceArray {
        switch v {
        case .device(let a): return a
        case .host(let t):
            guard graph.initializers[name] != nil else { return try backend.upload(t) }
            return try constants.array(name, shape: t.shape) { try backend.upload(t) }
        }
    }

    /// A host tensor for a value: constants as they are; small activations (shape arithmetic fed by
    /// activations) downloaded.
    func host(_ v: Value, _ name: String, op: String) throws -> Tensor {
        switch v {
        case .host(let t): return t
        case .device(let a):
            guard a.shape.count <= 64 else { throw XAIError.unsupported(op: op, reason: "input '\(name)' must be a constant") }
            return try backend.download(a)
        }
    }

    // MARK: The op table (forward)

    /// The inputs of one node, as device arrays or host tensors on demand.
    private struct Arguments {
        let node: Node
        let values: [Value?]
        let device: (Value, String) throws -> DeviceArray
        let host: (Value, String) throws -> Tensor
        /// Whether convolutions must compute exactly (see ``ConvPlan/exact``).
        var exact = true

        func present(_ i: Int) -> Bool { i < values.count && values[i] != nil }

        func value(_ i: Int) throws -> Value {
            guard i < values.count, let v = values[i] else {
                throw XAIError.invalidArgument(parameter: "inputs", value: "\(i)", reason: "\(node.op.name) needs input \(i)")
            }
            return v
        }

        func array(_ i: Int) throws -> DeviceArray { try device(try value(i), node.inputs[i]) }
        func tensor(_ i: Int) throws -> Tensor { try host(try value(i), node.inputs[i]) }
        func integers(_ i: Int) throws -> [Int] { try tensor(i).integers("input '\(node.inputs[i])'") }
        func optionalIntegers(_ i: Int) throws -> [Int]? { present(i) ? try integers(i) : nil }
    }

    /// A pair from ``depthwisePairs`` as one backend operation, or `nil` where the backend declines.
    private func evaluateThenDepthwise(_ pointwise: Node, _ depthwise: Node, _ args: [Value?]) throws -> DeviceArray? {
        guard case .conv(let p, let act, let autoPad) = pointwise.op, case .conv(let q, let act2, let autoPad2) = depthwise.op,
              case .device(let x)? = args.first else { return nil }
        let a = Arguments(node: pointwise, values: args, device: device, host: { v, name in try self.host(v, name, op: pointwise.op.name) })
        let w = try a.array(1), b = a.present(2) ? try a.array(2) : nil
        let first = try ConvPlan(input: x.shape, weight: w.shape, bias: b?.shape, params: resolved(p, autoPad, x.shape, w.shape))
        let (dName, cName) = (depthwise.inputs[1], depthwise.inputs[2])
        guard let dw = graph.initializers[dName], let c = graph.initializers[cName] else { return nil }
        let d = try device(.host(dw), dName), bias = try device(.host(c), cName)
        let second = try ConvPlan(input: first.output, weight: d.shape, bias: bias.shape,
                                  params: resolved(q, autoPad2, first.output, d.shape))
        return try backend.conv2dThenDepthwise(x, pointwise: ConvolutionStep(weight: w, bias: b, plan: first, activation: act),
                                               depthwise: ConvolutionStep(weight: d, bias: bias, plan: second, activation: act2))
    }

    /// One node's outputs. `exact: false` (forward-only passes: perturbation batches) lets
    /// convolutions run on a faster algorithm where the backend's policy allows it.
    func evaluate(_ node: Node, _ args: [Value?], exact: Bool = false) throws -> [Value] {
        switch node.op {
        case .shape(let start, let end):
            guard let v = args.first ?? nil else { throw XAIError.invalidArgument(parameter: "inputs", value: "0", reason: "Shape needs an input") }
            return [.host(shapeSlice(v.shape, start: start, end: end))]
        case .constant(let t):
            return [.host(t)]
        default:
            break
        }
        // Shape arithmetic on constants (and Gather, whose data is small) runs on the host.
        let allHost = args.allSatisfy { if case .device? = $0 { return false }; return true }
        if case .gather(let axis) = node.op {
            // Gather from an activation (a transformer's class token) runs on the device; shape
            // arithmetic and constants on the host.
            if case .device(let x)?? = args.first, args.count > 1, let indices = args[1] {
                return [.device(try gatherOnDevice(x, try host(indices, node.inputs[1], op: "Gather"), axis: axis))]
            }
            return try foldOnHost(node, try node.inputs.indices.map { i in try args[i].map { try host($0, node.inputs[i], op: "Gather") } }).map(Value.host)
        }
        if allHost, !args.isEmpty, node.op.isFoldable {
            return try foldOnHost(node, args.map { v in if case .host(let t)? = v { return t }; return nil }).map(Value.host)
        }
        let arguments = Arguments(node: node, values: args, device: device, host: { v, name in try self.host(v, name, op: node.op.name) }, exact: exact)
        return try evaluate(node, on: backend, arguments)
    }

    /// Evaluates a node whose inputs are host constants, in float64 on the host; the load-time
    /// constant folding and the executor's shape arithmetic both come here.
    func foldOnHost(_ node: Node, _ inputs: [Tensor?]) throws -> [Tensor] {
        switch node.op {
        case .shape(let start, let end):
            guard let t = inputs.first ?? nil else { throw XAIError.invalidArgument(parameter: "inputs", value: "0", reason: "Shape needs an input") }
            return [shapeSlice(t.shape, start: start, end: end)]
        case .constant(let t):
            return [t]
        case .cast(let toFloat):
            // Constants: a cast to an integer type truncates toward zero; values stay float32.
            guard let t = inputs.first ?? nil else { throw XAIError.invalidArgument(parameter: "inputs", value: "0", reason: "Cast needs an input") }
            return [toFloat ? t : Tensor(unchecked: t.shape, t.scalars.map { $0.isFinite ? $0.rounded(.towardZero) : $0 })]
        case .slice:
            guard let t = inputs.first ?? nil else { throw XAIError.invalidArgument(parameter: "inputs", value: "0", reason: "Slice needs an input") }
            func ints(_ i: Int) throws -> [Int]? { try (i < inputs.count ? inputs[i] : nil)?.integers("input '\(node.inputs[i])'") }
            return [try stridedSlice(t, starts: try ints(1) ?? [], ends: try ints(2) ?? [], axes: try ints(3), steps: try ints(4))]
        case .gather(let axis):
            guard inputs.count >= 2, let data = inputs[0], let indices = inputs[1] else {
                throw XAIError.invalidArgument(parameter: "inputs", value: "", reason: "Gather needs data and indices")
            }
            return [try gather(data, indices, axis: axis)]
        case .hostArithmetic(let h):
            return [try h.evaluate(inputs)]
        case .resize(let mode):
            guard let t = inputs.first ?? nil else { throw XAIError.invalidArgument(parameter: "inputs", value: "0", reason: "Resize needs an input") }
            func input(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i].flatMap { $0.shape.count > 0 ? $0 : nil } : nil }
            return [try mode.apply(t, scales: input(2).map { $0.scalars.map(Double.init) }, sizes: try input(3)?.integers("sizes"))]
        case .split(let axis, let sizes):
            guard let t = inputs.first ?? nil else { throw XAIError.invalidArgument(parameter: "inputs", value: "0", reason: "Split needs an input") }
            let (ax, pieces) = try splitPieces(t.shape, axis: axis, sizes: sizes, count: node.outputs.count)
            return try pieces.map { start, size in
                var starts = [Int](repeating: 0, count: t.shape.rank), ends = t.shape.dims
                starts[ax] = start
                ends[ax] = start + size
                return try stridedSlice(t, starts: starts, ends: ends, axes: nil, steps: nil)
            }
        case .expand:
            guard inputs.count >= 2, let data = inputs[0], let shape = inputs[1] else {
                throw XAIError.invalidArgument(parameter: "inputs", value: "", reason: "Expand needs data and a shape")
            }
            return [try expanded(data, to: try shape.integers("shape"))]
        default:
            let reference = ReferenceBackend()
            let arguments = Arguments(node: node, values: inputs.map { $0.map(Value.host) },
                                      device: { v, _ in
                                          switch v {
                                          case .host(let t): return try reference.upload(t)
                                          case .device(let a): return a
                                          }
                                      },
                                      host: { v, _ in
                                          switch v {
                                          case .host(let t): return t
                                          case .device(let a): return try reference.download(a)
                                          }
                                      })
            return try evaluate(node, on: reference, arguments).map { v in
                switch v {
                case .host(let t): return t
                case .device(let a): return try reference.download(a)
                }
            }
        }
    }

    private func evaluate(_ node: Node, on be: any Backend, _ a: Arguments) throws -> [Value] {
        switch node.op {
        case .conv(let p, let act, let autoPad):
            let x = try a.array(0), w = try a.array(1)
            return [.device(try be.conv2d(x, weight: w, bias: a.present(2) ? try a.array(2) : nil, residual: a.present(3) ? try a.array(3) : nil,
                                          params: resolved(p, autoPad, x.shape, w.shape), activation: act, exact: a.exact))]
        case .batchNorm(let eps):
            let (scale, shift) = try batchNormAffine(try a.tensor(1), try a.tensor(2), try a.tensor(3), try a.tensor(4), eps)
            let x = try a.array(0)
            let shape = Shape([1, scale.shape.count] + [Int](repeating: 1, count: max(x.shape.rank - 2, 0)))
            let scaled = try be.binary(.mul, x, try be.upload(try scale.reshaped(shape)))
            return [.device(try be.binary(.add, scaled, try be.upload(try shift.reshaped(shape))))]
        case .gemm(let ta, let tb, let alpha, let beta, let act):
            let x = try a.array(0), w = try a.array(1)
            guard a.present(2) else {
                return [.device(try be.gemm(x, w, transposeA: ta, transposeB: tb, alpha: alpha, bias: nil, activation: act))]
            }
            let n = w.shape.rank == 2 ? (tb ? w.shape[0] : w.shape[1]) : 0
            var c = try a.array(2)
            if beta != 1 { c = try be.scaled(c, by: beta) }
            if c.shape.count == n && (c.shape.rank == 1 || c.shape.dims.dropLast().allSatisfy { $0 == 1 }) {
                return [.device(try be.gemm(x, w, transposeA: ta, transposeB: tb, alpha: alpha, bias: try c.reshaped([n]), activation: act))]
            }
            let y = try be.gemm(x, w, transposeA: ta, transposeB: tb, alpha: alpha, bias: nil, activation: .identity)
            return [.device(try be.unary(act, try be.binary(.add, y, c)))]
        case .matMul:
            let x = try a.array(0), w = try a.array(1)
            guard x.shape.rank >= 2, w.shape.rank >= 2 else {
                throw XAIError.unsupported(op: "MatMul", reason: "1-D operands (matrix-vector products) are not supported, got \(x.shape) and \(w.shape)")
            }
            return [.device(try be.batchedMatMul(x, w, bias: a.present(2) ? try a.array(2) : nil))]
        case .unary(let u):
            return [.device(try be.unary(u, try a.array(0)))]
        case .binary(let op):
            return [.device(try be.binary(op, try a.array(0), try a.array(1)))]
        case .pool(let p, let autoPad):
            let x = try a.array(0)
            return [.device(try be.pool2d(x, params: resolved(p, autoPad, x.shape)))]
        case .globalAveragePool:
            return [.device(try be.globalAveragePool(try a.array(0)))]
        case .flatten(let axis):
            let x = try a.array(0)
            guard let ax = axis == x.shape.rank ? axis : x.shape.normalizedAxis(axis) else {
                throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "Flatten: out of range for \(x.shape)")
            }
            let outer = x.shape.dims[..<ax].reduce(1, *)
            return [.device(try x.reshaped([outer, x.shape.count / max(outer, 1)]))]
        case .reshape(let allowZero):
            let x = try a.array(0)
            return [.device(try x.reshaped(try reshapeTarget(x.shape, try a.integers(1), allowZero: allowZero)))]
        case .transpose(let perm):
            let x = try a.array(0)
            return [.device(try be.permute(x, perm.isEmpty ? Array((0..<x.shape.rank).reversed()) : perm))]
        case .concat(let axis):
            let parts = try (0..<a.values.count).filter(a.present).map(a.array)
            return [.device(try be.concat(parts, axis: axis))]
        case .roll(let axis, let shift):
            return [.device(try be.roll(try a.array(0), axis: axis, shift: shift))]
        case .softmax(let axis, let log, let coerce2D):
            let x = try a.array(0)
            guard let ax = x.shape.normalizedAxis(axis) else {
                throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "\(node.op.name): out of range for \(x.shape)")
            }
            if coerce2D && ax != x.shape.rank - 1 {
                let outer = x.shape.dims[..<ax].reduce(1, *)
                let flat = try x.reshaped([outer, x.shape.count / max(outer, 1)])
                return [.device(try be.softmax(flat, axis: 1, log: log).reshaped(x.shape))]
            }
            return [.device(try be.softmax(x, axis: ax, log: log))]
        case .reduce(let op, let axes, let keepDims):
            let x = try a.array(0)
            let ax = axes ?? Array(0..<x.shape.rank)
            let y = try be.reduce(op, x, axes: ax)
            return [.device(keepDims ? y : try y.reshaped(try squeezed(y.shape, ax)))]
        case .layerNorm(let axis, let epsilon):
            let x = try a.array(0)
            return [.device(try be.layerNorm(x, axes: try layerNormAxes(x.shape, axis), epsilon: epsilon, scale: try a.array(1),
                                             bias: a.present(2) ? try a.array(2) : nil))]
        case .instanceNorm(let epsilon):
            let x = try a.array(0)
            let (axes, perChannel) = try instanceNormLayout(x.shape)
            return [.device(try be.layerNorm(x, axes: axes, epsilon: epsilon, scale: try a.array(1).reshaped(perChannel),
                                             bias: try a.array(2).reshaped(perChannel)))]
        case .expand:
            let x = try a.array(0)
            let shape = try expandedShape(x.shape, try a.integers(1))
            return [.device(shape == x.shape ? x : try be.binary(.add, x, try be.zeros(shape)))]
        case .hostArithmetic(let h):
            return [.host(try h.evaluate(try (0..<a.values.count).map { a.present($0) ? try a.tensor($0) : nil }))]
        case .einsum(let equation):
            return [.device(try equation.evaluate(try (0..<equation.inputs.count).map(a.array), on: be))]
        case .split(let axis, let sizes):
            let x = try a.array(0)
            let (ax, pieces) = try splitPieces(x.shape, axis: axis, sizes: sizes, count: node.outputs.count)
            return try pieces.map { start, size in
                var starts = [Int](repeating: 0, count: x.shape.rank), extents = x.shape.dims
                starts[ax] = start
                extents[ax] = size
                return .device(try be.slice(x, starts: starts, sizes: extents))
            }
        case .pad:
            let x = try a.array(0)
            let pads = try a.integers(1)
            guard pads.count == 2 * x.shape.rank, pads.allSatisfy({ $0 >= 0 }) else {
                throw XAIError.unsupported(op: "Pad", reason: "pads \(pads) for \(x.shape) (negative pads are not supported)")
            }
            let value = a.present(2) ? (try a.tensor(2).scalars.first ?? 0) : 0
            return [.device(try be.pad(x, before: Array(pads[..<x.shape.rank]), after: Array(pads[x.shape.rank...]), value: value))]
        case .squeeze(let axes):
            let x = try a.array(0)
            return [.device(try x.reshaped(try squeezed(x.shape, axes ?? x.shape.dims.indices.filter { x.shape[$0] == 1 })))]
        case .unsqueeze(let axes):
            let x = try a.array(0)
            return [.device(try x.reshaped(try unsqueezed(x.shape, axes)))]
        case .identity:
            return [.device(try a.array(0))]
        case .cast(let toFloat):
            guard toFloat else { throw XAIError.unsupported(op: "Cast", reason: "activations are float32; only casts to float types are supported") }
            return [.device(try a.array(0))]
        case .slice:
            let x = try a.array(0)
            let r = try sliceRanges(x.shape, starts: try a.integers(1), ends: try a.integers(2),
                                    axes: try a.optionalIntegers(3), steps: try a.optionalIntegers(4))
            return [.device(try be.slice(x, starts: r.starts, counts: r.counts, steps: r.steps))]
        case .constantOfShape(let value):
            let shape = try Shape(validating: try a.integers(0), what: "ConstantOfShape output")
            return [.host(Tensor(shape: shape, repeating: value))]
        case .shape, .gather, .constant:
            throw XAIError.unsupported(op: node.op.name, reason: "evaluated on the host only")
        case .resize:
            throw XAIError.unsupported(op: "Resize", reason: "of an activation (only constants are resized: position embeddings, bias tables)")
        }
    }

    // MARK: Backward

    /// The nodes a backward to `wrt` may differentiate (those reading a value that depends on
    /// something in `wrt`), and the values that depend on `wrt`. Shape arithmetic reads
    /// activations' shapes, never their values: no gradient flows through it (ViT's attention
    /// scale, the square root of a head's width, came from one).
    /// Nodes named in `heldConstant` are neither: their outputs count as constants (CP-LRP's attention).
    func differentiated(to wrt: Set<String>, heldConstant: Set<String> = []) -> (nodes: [Node], dependsOnWrt: Set<String>) {
        var dependsOnWrt = wrt, nodes: [Node] = []
        for (i, node) in graph.nodes.enumerated() where !shapeOnlyNodes.contains(i) && !heldConstant.contains(node.name)
            && node.inputs.contains(where: dependsOnWrt.contains) {
            dependsOnWrt.formUnion(node.outputs)
            nodes.append(node)
        }
        return (nodes, dependsOnWrt)
    }

    /// Values of the graph (besides its outputs, which are never released) that
    /// ``backward(_:seeds:wrt:)`` reads for this `wrt`: the values themselves, and every input and
    /// output of the nodes it differentiates.
    func valuesReadByBackward(to wrt: Set<String>) -> Set<String> {
        differentiated(to: wrt).nodes.reduce(into: wrt) { read, node in
            read.formUnion(node.inputs)
            read.formUnion(node.outputs)
        }
    }

    /// Gradients of `sum(seed * value)` over the seeded values, with respect to every value in `wrt`
    /// (the graph input by name, or intermediate values). Only the nodes between the seeded values
    /// and `wrt` are differentiated, so a backward to a late layer costs little.
    /// - Parameters:
    ///   - pass: a forward pass run with `forBackward: true`.
    ///   - seeds: the gradient of the loss with respect to each seeded value (shaped like it).
    ///   - wrt: the values to differentiate with respect to.
    ///   - rules: the backward rule of each op kind (default: the gradient everywhere); guided
    ///     backpropagation and deconvolution change the rectifiers' rule.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for unknown values,
    ///   ``XAIError/unsupported(op:reason:)`` (in a node) for a gradient that would need to reach weights.
    public func backward(_ pass: Pass, seeds: [String: DeviceArray], wrt: Set<String>,
                         rules: PropagationRules = .gradient) throws -> [String: DeviceArray] {
        guard !pass.values.isEmpty else {
            throw XAIError.invalidArgument(parameter: "pass", value: "", reason: "backward: the forward pass was not run with forBackward: true")
        }
        // Values that depend on something in `wrt`: only their producers need a backward rule.
        let dependsOnWrt = differentiated(to: wrt, heldConstant: rules.transformer?.heldConstant ?? []).dependsOnWrt
        var shapes: [String: Shape] = [:]
        for name in wrt {
            guard let v = pass.values[name] else {
                throw XAIError.invalidArgument(parameter: "wrt", value: name, reason: "no value of \(graph.name) has this name")
            }
            shapes[name] = v.shape
        }
        var grads: [String: DeviceArray] = [:]
        for (name, g) in seeds {
            guard let v = pass.values[name] else { throw XAIError.invalidArgument(parameter: "seeds", value: name, reason: "no value of \(graph.name) has this name") }
            guard v.shape == g.shape else {
                throw XAIError.shapeMismatch(op: "backward seed '\(name)'", expected: "the value's shape \(v.shape)", got: [g.shape])
            }
            grads[name] = g
        }
        // Gradients summed and carried back through their producer's activation in the store of
        // their last contribution, a convolution's input gradient (GradientStore): the producer's
        // rule then starts after its activation. Only under the gradient's own rules, which are
        // the ones that sum and take the activation's derivative.
        let storesFuse = fusesGradientStores && rules.rescaleAgainst == nil && rules.lrp == nil && rules.transformer == nil
        var throughActivation: Set<String> = []
        for (index, node) in graph.nodes.enumerated().reversed() {
            guard node.outputs.contains(where: { grads[$0] != nil }) else { continue }
            let needed = node.inputs.indices.filter { !node.inputs[$0].isEmpty && dependsOnWrt.contains(node.inputs[$0]) }
            if needed.isEmpty { continue }
            if case .split(let axis, _) = node.op {
                // Several outputs: their gradients (zeros where none arrived) joined along the axis.
                do {
                    let pieces = try node.outputs.map { name -> DeviceArray in
                        if let g = grads[name] { return g }
                        guard let v = pass.values[name] else {
                            throw XAIError.invalidArgument(parameter: "pass", value: name, reason: "backward: the value was not kept")
                        }
                        return try backend.zeros(v.shape)
                    }
                    let g = pieces.count == 1 ? pieces[0] : try backend.concat(pieces, axis: axis)
                    let name = node.inputs[0]
                    grads[name] = try grads[name].map { try backend.binary(.add, $0, g) } ?? g
                } catch let e as XAIError {
                    throw e.inNode(node.name, op: node.op.name)
                }
                continue
            }
            guard let gy = grads[node.outputs[0]] else { continue }
            var inputStore = GradientStore()
            if storesFuse, case .conv = node.op, needed.contains(0), node.inputs.filter({ $0 == node.inputs[0] }).count == 1 {
                let x = node.inputs[0]
                inputStore.accumulated = grads[x]
                // This node is x's last contribution when it is x's first reader; x's own gradient
                // is not asked for (wrt) nor given (seeds).
                if let site = activationOutputs[x], site.firstReader == index, !wrt.contains(x), seeds[x] == nil,
                   site.activation != .relu || rules.relu == .gradient {
                    inputStore.activation = (site.activation, try passValue(x, pass))
                }
            }
            let activationDone = throughActivation.contains(node.outputs[0])
            let inputGrads: [Int: DeviceArray]
            do {
                inputGrads = try profile.map { try $0.time(node, backward: true) { try vjp(node, pass, gy, needed, rules, activationDone: activationDone, inputStore: inputStore) } }
                    ?? vjp(node, pass, gy, needed, rules, activationDone: activationDone, inputStore: inputStore)
            } catch let e as XAIError {
                throw e.inNode(node.name, op: node.op.name)
            }
            for (i, g) in inputGrads {
                let name = node.inputs[i]
                if i == 0 && !inputStore.isEmpty {
                    // Already the sum (and through the activation): the store did both.
                    grads[name] = g
                    if inputStore.activation != nil { throughActivation.insert(name) }
                    continue
                }
                grads[name] = try grads[name].map { try backend.binary(.add, $0, g) } ?? g
            }
        }
        var result: [String: DeviceArray] = [:]
        for (name, shape) in shapes {
            result[name] = try grads[name] ?? backend.zeros(shape)
        }
        return result
    }

    /// The value `name` of the pass, or a constant of the graph, on the device.
    func passValue(_ name: String, _ pass: Pass) throws -> DeviceArray {
        if let v = pass.values[name] { return try device(v, name) }
        if let t = graph.initializers[name] { return try device(.host(t), name) }
        throw XAIError.invalidArgument(parameter: "pass", value: name, reason: "backward: the value was not kept")
    }

    /// The gradient table: one rule per op, gradients for the inputs listed in `needed`; `rules`
    /// replace the gradient of the op kinds they override.
    /// - Parameters:
    ///   - activationDone: `gy` is already through the node's fused activation (a consumer's
    ///     gradient store took its derivative).
    ///   - inputStore: how a convolution stores its input's gradient (``GradientStore``); the
    ///     caller passes a non-empty one only to convolutions under the gradient's rules.
    func vjp(_ node: Node, _ pass: Pass, _ gy: DeviceArray, _ needed: [Int], _ rules: PropagationRules,
             activationDone: Bool = false, inputStore: GradientStore = GradientStore()) throws -> [Int: DeviceArray] {
        let be = backend
        func value(_ i: Int) throws -> DeviceArray { try passValue(node.inputs[i], pass) }
        func hostValue(_ i: Int) throws -> Tensor {
            let name = node.inputs[i]
            if case .host(let t)? = pass.values[name] { return t }
            if let t = graph.initializers[name] { return t }
            throw XAIError.unsupported(op: node.op.name, reason: "input '\(name)' must be a constant")
        }
        func integers(_ i: Int) throws -> [Int]? {
            i < node.inputs.count && !node.inputs[i].isEmpty ? try hostValue(i).integers("input '\(node.inputs[i])'") : nil
        }
        func output() throws -> DeviceArray {
            guard let v = pass.values[node.outputs[0]] else {
                throw XAIError.invalidArgument(parameter: "pass", value: node.outputs[0], reason: "backward: the value was not kept")
            }
            return try device(v, node.outputs[0])
        }
        func only(_ g: DeviceArray) -> [Int: DeviceArray] { needed.contains(0) ? [0: g] : [:] }
        func requireInputOnly(_ what: String) throws {
            if needed.contains(where: { $0 != 0 }) {
                throw XAIError.unsupported(op: "backward of \(node.op.name)", reason: "gradients flow to activations only, not to \(what)")
            }
        }
        if let reference = rules.rescaleAgainst, let multipliers = try rescaleMultipliers(node, pass, reference, gy, needed) {
            return multipliers
        }
        if let lrp = rules.lrp, let relevance = try lrpRelevance(node, pass, lrp, gy, needed) {
            return relevance
        }
        if rules.transformer != nil {
            switch Self.transformerStep(node.op, needed) {
            case .gradient:
                break
            case .refused(let why):
                throw XAIError.unsupported(op: "attnlrp at \(node.op.name)", reason: why)
            case .identity:
                // g * y / (x + eps): the relevance x * g passes through unchanged.
                let ratio = try be.binary(.div, try output(), try be.adding(TransformerRules.identityEpsilon, to: try value(0)))
                return only(try be.binary(.mul, gy, ratio))
            case .normalization:
                try requireInputOnly("the scale and bias")
                let x = try value(0)
                let (axes, scale, epsilon): ([Int], DeviceArray, Float)
                switch node.op {
                case .instanceNorm(let eps):
                    let layout = try instanceNormLayout(x.shape)
                    (axes, scale, epsilon) = (layout.0, try value(1).reshaped(layout.1), eps)
                case .layerNorm(let axis, let eps):
                    (axes, scale, epsilon) = (try layerNormAxes(x.shape, axis), try value(1), eps)
                default:
                    throw XAIError.unsupported(op: node.op.name, reason: "is no normalisation")
                }
                return only(try be.layerNormBackwardHoldingDeviation(gy, input: x, axes: axes, epsilon: epsilon, scale: scale))
            case .uniform(let operands):
                var plain = rules
                plain.transformer = nil
                let share = try be.filled([1], value: 1 / Float(operands))
                return try vjp(node, pass, gy, needed, plain).mapValues { try be.binary(.mul, $0, share) }
            }
        }
        switch node.op {
        case .conv(let p, let act, let autoPad):
            // Inputs: x, weight, bias?, residual?; gradients reach x and the residual (a fan-out).
            if needed.contains(where: { $0 == 1 || $0 == 2 }) {
                throw XAIError.unsupported(op: "backward of \(node.op.name)", reason: "gradients flow to activations only, not to weights")
            }
            let g = activationDone ? gy : try rules.activationBackward(act, gy, on: be, valueIsOutput: true, value: output)
            var r: [Int: DeviceArray] = [:]
            if needed.contains(0) {
                let x = try value(0), w = try value(1)
                r[0] = try be.conv2dBackwardInput(g, weight: w, params: resolved(p, autoPad, x.shape, w.shape), inputShape: x.shape, store: inputStore)
            }
            if needed.contains(3) { r[3] = g }
            return r
        case .batchNorm(let eps):
            try requireInputOnly("batch-norm parameters")
            let (scale, _) = try batchNormAffine(try hostValue(1), try hostValue(2), try hostValue(3), try hostValue(4), eps)
            let shape = Shape([1, scale.shape.count] + [Int](repeating: 1, count: max(gy.shape.rank - 2, 0)))
            return only(try be.binary(.mul, gy, try be.upload(try scale.reshaped(shape))))
        case .gemm(let ta, let tb, let alpha, _, let act):
            try requireInputOnly("weights")
            let g = activationDone ? gy : try rules.activationBackward(act, gy, on: be, valueIsOutput: true, value: output)
            let w = try value(1)
            let dx = ta
                ? try be.gemm(w, g, transposeA: tb, transposeB: true, alpha: alpha, bias: nil, activation: .identity)
                : try be.gemm(g, w, transposeA: false, transposeB: !tb, alpha: alpha, bias: nil, activation: .identity)
            return only(dx)
        case .matMul:
            // Both operands may be activations (attention's products).
            return try be.batchedMatMulBackward(gradOutput: gy, a: try value(0), b: try value(1), needed: Set(needed))
        case .unary(let u):
            return only(try rules.activationBackward(u, gy, on: be, valueIsOutput: false) { try value(0) })
        case .binary(let op):
            return try be.binaryBackward(op, gradOutput: gy, a: try value(0), b: try value(1), needed: Set(needed))
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
            for (i, ax) in p.enumerated() where ax >= 0 && ax < p.count { inverse[ax] = i }
            return only(try be.permute(gy, inverse))
        case .concat(let axis):
            guard let ax = gy.shape.normalizedAxis(axis) else {
                throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "Concat: out of range for \(gy.shape)")
            }
            var r: [Int: DeviceArray] = [:]
            var offset = 0
            for i in node.inputs.indices where !node.inputs[i].isEmpty {
                let s = try value(i).shape
                if needed.contains(i) {
                    var starts = [Int](repeating: 0, count: s.rank)
                    starts[ax] = offset
                    r[i] = try be.slice(gy, starts: starts, sizes: s.dims)
                }
                offset += s[ax]
            }
            return r
        case .roll(let axis, let shift):
            return only(try be.roll(gy, axis: axis, shift: -shift))
        case .softmax(let axis, let log, let coerce2D):
            let y = try output()
            guard let ax = y.shape.normalizedAxis(axis) else {
                throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "\(node.op.name): out of range for \(y.shape)")
            }
            if coerce2D && ax != y.shape.rank - 1 {
                let outer = y.shape.dims[..<ax].reduce(1, *)
                let flat: Shape = [outer, y.shape.count / max(outer, 1)]
                return only(try be.softmaxBackward(try gy.reshaped(flat), output: try y.reshaped(flat), axis: 1, log: log).reshaped(y.shape))
            }
            return only(try be.softmaxBackward(gy, output: y, axis: ax, log: log))
        case .reduce(let op, let axes, _):
            let x = try value(0)
            let ax = axes ?? Array(0..<x.shape.rank)
            let plan = try ReducePlan(input: x.shape, axes: ax, op: node.op.name)
            return only(try be.reduceBackward(op, gradOutput: try gy.reshaped(plan.outputShape), input: x, axes: ax))
        case .layerNorm(let axis, let epsilon):
            try requireInputOnly("the scale and bias")
            let x = try value(0)
            return only(try be.layerNormBackward(gy, input: x, axes: try layerNormAxes(x.shape, axis), epsilon: epsilon, scale: try value(1)))
        case .expand:
            return only(try be.sum(gy, toShape: try value(0).shape))
        case .instanceNorm(let epsilon):
            try requireInputOnly("the scale and bias")
            let x = try value(0)
            let (axes, perChannel) = try instanceNormLayout(x.shape)
            return only(try be.layerNormBackward(gy, input: x, axes: axes, epsilon: epsilon, scale: try value(1).reshaped(perChannel)))
        case .einsum(let equation):
            var r: [Int: DeviceArray] = [:]
            for i in needed {
                guard let gradient = equation.gradientEquation(i) else {
                    throw XAIError.unsupported(op: "backward of Einsum \(equation)", reason: "operand \(i) has an axis summed away on its own")
                }
                let others = try node.inputs.indices.filter { $0 != i }.map { try value($0) }
                r[i] = try gradient.evaluate([gy] + others, on: be)
            }
            return r
        case .gather(let axis):
            guard needed.contains(0) else { return [:] }
            let x = try value(0)
            return only(try gatherBackward(gy, inputShape: x.shape, indices: try hostValue(1), axis: axis))
        case .pad:
            let x = try value(0)
            let pads = try integers(1) ?? []
            guard pads.count == 2 * x.shape.rank else { throw XAIError.unsupported(op: "Pad", reason: "pads \(pads) for \(x.shape)") }
            return only(try be.slice(gy, starts: Array(pads[..<x.shape.rank]), sizes: x.shape.dims))
        case .cast:
            return only(gy)
        case .slice:
            let x = try value(0)
            let r = try sliceRanges(x.shape, starts: try integers(1) ?? [], ends: try integers(2) ?? [],
                                    axes: try integers(3), steps: try integers(4))
            return only(try be.unslice(gy, into: x.shape, starts: r.starts, steps: r.steps))
        case .hostArithmetic(let h):
            // Comparisons, logic and IsNaN are flat: no gradient. The rest would carry one, which
            // host arithmetic does not compute: refused rather than dropped.
            switch h {
            case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual, .not, .and, .or, .isNaN, .ceil, .floor:
                return [:]
            case .where, .mod, .fmod, .integerDivide, .range, .scatterND, .gatherND, .neg, .abs, .min, .max, .tile:
                throw XAIError.unsupported(op: "backward of \(h.onnxName)", reason: "host arithmetic on an activation carries no gradient here")
            }
        case .shape, .constant, .constantOfShape:
            return [:]
        case .resize:
            throw XAIError.unsupported(op: "backward of Resize", reason: "only constants are resized")
        case .split:
            throw XAIError.unsupported(op: "Split", reason: "the backward pass joins a split's outputs before the gradient table")
        }
    }

    // MARK: Gather on the device

    /// Each piece of a Split as (start, extent) along the normalised axis.
    private func splitPieces(_ shape: Shape, axis: Int, sizes: [Int]?, count: Int) throws -> (Int, [(Int, Int)]) {
        guard let ax = shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "Split: out of range for \(shape)")
        }
        let n = shape[ax]
        let extents: [Int]
        if let sizes {
            guard sizes.count == count, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == n else {
                throw XAIError.invalidArgument(parameter: "split", value: "\(sizes)", reason: "Split: \(count) non-negative sizes adding up to \(n), the extent of axis \(ax) of \(shape)")
            }
            extents = sizes
        } else {
            guard count >= 1 else { throw XAIError.invalidArgument(parameter: "outputs", value: "0", reason: "Split: no outputs") }
            // Equal pieces, the last one smaller when the extent does not divide (ONNX opset 18).
            let piece = (n + count - 1) / count
            extents = (0..<count).map { k in max(min(piece, n - k * piece), 0) }
        }
        var start = 0
        return (ax, extents.map { e in defer { start += e }; return (start, e) })
    }

    /// InstanceNormalization's axes (the spatial ones) and the shape its per-channel scale takes.
    func instanceNormLayout(_ shape: Shape) throws -> ([Int], Shape) {
        guard shape.rank >= 3 else {
            throw XAIError.shapeMismatch(op: "InstanceNormalization", expected: "an input [N, C, spatial...]", got: [shape])
        }
        return (Array(2..<shape.rank), Shape([shape[1]] + [Int](repeating: 1, count: shape.rank - 2)))
    }

    /// The axes LayerNormalization normalises: `axis` to the last.
    func layerNormAxes(_ shape: Shape, _ axis: Int) throws -> [Int] {
        guard let ax = shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "LayerNormalization: out of range for \(shape)")
        }
        return Array(ax..<shape.rank)
    }

    /// ONNX Gather's picks along `axis` (negative indices counted from the end), checked.
    private func gatherPicks(_ shape: Shape, _ indices: Tensor, axis: Int) throws -> (axis: Int, picks: [Int]) {
        guard let ax = shape.normalizedAxis(axis) else {
            throw XAIError.invalidArgument(parameter: "axis", value: "\(axis)", reason: "Gather: out of range for \(shape)")
        }
        let n = shape[ax]
        let picks = try indices.integers("indices").map { raw -> Int in
            let i = raw < 0 ? raw + n : raw
            guard (0..<n).contains(i) else { throw XAIError.invalidArgument(parameter: "indices", value: "\(raw)", reason: "Gather: out of range \(n)") }
            return i
        }
        return (ax, picks)
    }

    /// Gather of an activation along `axis`: one slice per index, joined.
    private func gatherOnDevice(_ x: DeviceArray, _ indices: Tensor, axis: Int) throws -> DeviceArray {
        let (ax, picks) = try gatherPicks(x.shape, indices, axis: axis)
        let outShape = try Shape(validating: Array(x.shape.dims[..<ax]) + indices.shape.dims + Array(x.shape.dims[(ax + 1)...]), what: "Gather output")
        var sizes = x.shape.dims
        sizes[ax] = 1
        let parts = try picks.map { i -> DeviceArray in
            var starts = [Int](repeating: 0, count: x.shape.rank)
            starts[ax] = i
            return try backend.slice(x, starts: starts, sizes: sizes)
        }
        if parts.isEmpty { return try backend.zeros(outShape) }
        return try (parts.count == 1 ? parts[0] : try backend.concat(parts, axis: ax)).reshaped(outShape)
    }

    /// The gradient of ``gatherOnDevice(_:_:axis:)``: each pick's gradient placed back at its index
    /// (repeated indices add up).
    private func gatherBackward(_ gy: DeviceArray, inputShape: Shape, indices: Tensor, axis: Int) throws -> DeviceArray {
        let (ax, picks) = try gatherPicks(inputShape, indices, axis: axis)
        var picked = inputShape.dims
        picked[ax] = picks.count
        let g = try gy.reshaped(Shape(picked))
        var sizes = inputShape.dims
        sizes[ax] = 1
        var total: DeviceArray?
        for (k, i) in picks.enumerated() {
            var starts = [Int](repeating: 0, count: inputShape.rank)
            starts[ax] = k
            let part = try backend.slice(g, starts: starts, sizes: sizes)
            var before = [Int](repeating: 0, count: inputShape.rank), after = before
            before[ax] = i
            after[ax] = inputShape[ax] - i - 1
            let placed = try backend.pad(part, before: before, after: after, value: 0)
            total = try total.map { try backend.binary(.add, $0, placed) } ?? placed
        }
        return try total ?? backend.zeros(inputShape)
    }
}

/// Host values that depend only on the input's shape, by input shape (a few shapes at most: a
/// method runs one or two batch sizes); safe to use from several threads.
private final class ShapeValueCache: @unchecked Sendable {
    private var byShape: [Shape: [String: Tensor]] = [:]
    private let lock = NSLock()

    func values(for shape: Shape) -> [String: Tensor]? {
        lock.lock(); defer { lock.unlock() }
        return byShape[shape]
    }

    func add(_ values: [String: Tensor], for shape: Shape) {
        lock.lock(); defer { lock.unlock() }
        if byShape[shape] == nil, byShape.count >= 8 { byShape = [:] }
        byShape[shape, default: [:]].merge(values) { old, _ in old }
    }
}

/// Device copies of a graph's weights, uploaded on first use; safe to use from several threads.
private final class ConstantCache: @unchecked Sendable {
    private var arrays: [String: DeviceArray] = [:]
    private let lock = NSLock()

    func array(_ name: String, shape: Shape, upload: () throws -> DeviceArray) throws -> DeviceArray {
        lock.lock()
        if let cached = arrays[name], cached.shape == shape {
            lock.unlock()
            return cached
        }
        lock.unlock()
        let a = try upload()
        lock.lock(); defer { lock.unlock() }
        arrays[name] = a
        return a
    }
}
