import XAICore

/// A graph input or output: its name and its shape, with `nil` for a dynamic extent (the batch).
public struct ValueInfo: Sendable, Hashable {
    public var name: String
    public var shape: [Int?]

    public init(name: String, shape: [Int?]) {
        self.name = name
        self.shape = shape
    }

    /// The concrete shape for a batch size (dynamic extents other than the first become errors).
    public func shape(batch: Int) throws -> Shape {
        try Shape(validating: shape.enumerated().map { i, d in
            if let d { return d }
            guard i == 0 else {
                throw XAIError.unsupported(op: "input '\(name)'", reason: "a dynamic extent on axis \(i) (only the batch axis may be dynamic)")
            }
            return batch
        }, what: "input '\(name)'")
    }
}

/// What a node computes. Attributes are resolved at import time; tensor-valued parameters
/// (weights, shapes, pads) are node inputs that name initializers.
public enum Op: Sendable, Hashable {
    /// Inputs: x, weight, bias?, residual? (an empty name for an absent bias). The activation is a
    /// fused epilogue applied after the residual is added (a ResNet block's `relu(conv + skip)`);
    /// `autoPad` other than `.explicit` replaces the pads with ones computed from the input size.
    case conv(Conv2DParams, activation: UnaryOp, autoPad: AutoPad)
    /// Inputs: x, scale, bias, mean, variance (inference mode).
    case batchNorm(epsilon: Float)
    /// `alpha * op(A) * op(B) + beta * C`; inputs: A, B, C?.
    case gemm(transA: Bool, transB: Bool, alpha: Float, beta: Float, activation: UnaryOp)
    /// Matrix product of the last two axes with numpy broadcasting of the leading ones (a CNN's
    /// head, a transformer's linear layers and its attention products); inputs A, B (rank >= 2) and
    /// an optional bias of B's last extent added to every row (a following Add, fused at load).
    case matMul
    case unary(UnaryOp)
    case binary(BinaryOp)
    case pool(Pool2DParams, autoPad: AutoPad)
    case globalAveragePool
    /// Inputs: data.
    case flatten(axis: Int)
    /// Inputs: data, shape (a constant).
    case reshape(allowZero: Bool)
    case transpose(perm: [Int])
    case concat(axis: Int)
    /// `out[i] = x[(i - shift) mod n]` along `axis` (`torch.roll`, which exporters spell as two
    /// Slices and a Concat; fused back at load by ``Graph/fusingRolls()``). Not an ONNX op.
    case roll(axis: Int, shift: Int)
    /// `coerce2D`: opset < 13 semantics (softmax over the flattened axes from `axis` on).
    case softmax(axis: Int, log: Bool, coerce2D: Bool)
    /// `axes == nil` reduces every axis.
    case reduce(ReduceOp, axes: [Int]?, keepDims: Bool)
    /// Normalisation over the axes from `axis` on, then `* scale + bias`; inputs: x, scale, bias?.
    case layerNorm(axis: Int, epsilon: Float)
    /// Normalisation of each image's channel over its spatial axes, then `* scale + bias` per
    /// channel (ONNX InstanceNormalization; GroupNorm with one group exports through it); inputs:
    /// x, scale, bias.
    case instanceNorm(epsilon: Float)
    /// Broadcast to a shape (numpy rules, either side may broadcast); inputs: data, shape (a constant).
    case expand
    /// `torch.einsum` as exported: one or two operands, lettered axes (``EinsumEquation``).
    case einsum(EinsumEquation)
    /// Pieces along an axis, one per output: `sizes`, or equal pieces (the last smaller) when `nil`;
    /// inputs: data.
    case split(axis: Int, sizes: [Int]?)
    /// Integer and boolean arithmetic on shapes and masks, evaluated on the host (see ``HostArithmetic``).
    case hostArithmetic(HostArithmetic)
    /// Constant padding; inputs: data, pads (a constant `[begin..., end...]`), value?.
    case pad
    case squeeze(axes: [Int]?)
    case unsqueeze(axes: [Int])
    /// Removed at load time (Dropout in inference, Identity).
    case identity
    /// Slice with unit steps; inputs: data, starts, ends, axes? (constants).
    case slice
    /// ONNX Resize of a constant (position embeddings interpolated to the input's grid); inputs:
    /// data, roi (unused), scales?, sizes?. Evaluated on the host (``ResizeMode``).
    case resize(ResizeMode)
    /// Element-type conversion; values stay float32, so only conversions to a float type (or of
    /// constants) are accepted.
    case cast(toFloat: Bool)
    /// Shape arithmetic, evaluated on the host (constant-folded).
    case constantOfShape(value: Float)
    case shape(start: Int, end: Int?)
    case gather(axis: Int)
    case constant(Tensor)

    /// The op's name in messages and in the gradient table.
    public var name: String {
        switch self {
        case .conv: return "Conv"
        case .batchNorm: return "BatchNormalization"
        case .gemm: return "Gemm"
        case .matMul: return "MatMul"
        case .unary(let u):
            switch u {
            case .identity: return "Identity"
            case .relu: return "Relu"
            case .clip: return "Clip"
            case .leakyRelu: return "LeakyRelu"
            case .sigmoid: return "Sigmoid"
            case .tanh: return "Tanh"
            case .silu: return "SiLU"
            case .hardSigmoid: return "HardSigmoid"
            case .hardSwish: return "HardSwish"
            case .gelu, .geluTanh: return "Gelu"
            case .erf: return "Erf"
            case .exp: return "Exp"
            case .sqrt: return "Sqrt"
            case .pow: return "Pow"
            }
        case .binary(let b): return "\(b)".capitalized
        case .pool(let p, _): return p.kind == .max ? "MaxPool" : "AveragePool"
        case .globalAveragePool: return "GlobalAveragePool"
        case .flatten: return "Flatten"
        case .reshape: return "Reshape"
        case .transpose: return "Transpose"
        case .concat: return "Concat"
        case .roll: return "Roll"
        case .softmax(_, let log, _): return log ? "LogSoftmax" : "Softmax"
        case .reduce(let op, _, _):
            switch op {
            case .sum: return "ReduceSum"
            case .mean: return "ReduceMean"
            case .max: return "ReduceMax"
            case .min: return "ReduceMin"
            }
        case .layerNorm: return "LayerNormalization"
        case .instanceNorm: return "InstanceNormalization"
        case .expand: return "Expand"
        case .split: return "Split"
        case .einsum: return "Einsum"
        case .hostArithmetic(let h): return h.onnxName
        case .pad: return "Pad"
        case .squeeze: return "Squeeze"
        case .unsqueeze: return "Unsqueeze"
        case .identity: return "Identity"
        case .slice: return "Slice"
        case .resize: return "Resize"
        case .cast: return "Cast"
        case .constantOfShape: return "ConstantOfShape"
        case .shape: return "Shape"
        case .gather: return "Gather"
        case .constant: return "Constant"
        }
    }
}

/// The ops exporters use to compute shapes, indices and attention masks: evaluated on the host in
/// float64 (integers and booleans held as floats, exact below 2^24), folded at load when their inputs
/// are constants, and never differentiated.
public enum HostArithmetic: String, Sendable, Hashable, CaseIterable {
    case equal, less, greater, lessOrEqual, greaterOrEqual, not, and, or
    /// `Where(condition, x, y)`.
    case `where`
    /// ONNX `Mod` with `fmod = 0` (the result takes the divisor's sign, as Python's `%`).
    case mod
    /// ONNX `Mod` with `fmod = 1` (the dividend's sign, as C's `fmod`).
    case fmod
    /// `Div` of integer tensors, truncating toward zero (ONNX integer semantics).
    case integerDivide
    /// `Range(start, limit, delta)`.
    case range
    /// `ScatterND(data, indices, updates)` without reduction.
    case scatterND
    /// `GatherND(data, indices)` with `batch_dims = 0`.
    case gatherND
    case neg, abs, ceil, floor
    /// `IsNaN(x)`: 1 where x is NaN (exporters guard attention weights with it).
    case isNaN
    case min, max
    /// `Tile(input, repeats)`.
    case tile

    /// The ONNX op type, for messages.
    public var onnxName: String {
        switch self {
        case .equal: return "Equal"
        case .less: return "Less"
        case .greater: return "Greater"
        case .lessOrEqual: return "LessOrEqual"
        case .greaterOrEqual: return "GreaterOrEqual"
        case .not: return "Not"
        case .and: return "And"
        case .or: return "Or"
        case .where: return "Where"
        case .mod, .fmod: return "Mod"
        case .integerDivide: return "Div"
        case .range: return "Range"
        case .scatterND: return "ScatterND"
        case .gatherND: return "GatherND"
        case .neg: return "Neg"
        case .abs: return "Abs"
        case .isNaN: return "IsNaN"
        case .ceil: return "Ceil"
        case .floor: return "Floor"
        case .min: return "Min"
        case .max: return "Max"
        case .tile: return "Tile"
        }
    }
}

/// ONNX `auto_pad`: explicit pads, or pads chosen so that the output is `ceil(input / stride)`.
public enum AutoPad: Sendable, Hashable {
    case explicit, sameUpper, sameLower, valid

    /// (before, after) padding for one spatial axis.
    public func pads(input: Int, kernel: Int, stride: Int, dilation: Int) -> (Int, Int)? {
        switch self {
        case .explicit: return nil
        case .valid: return (0, 0)
        case .sameUpper, .sameLower:
            let out = (input + stride - 1) / stride
            let total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - input, 0)
            let small = total / 2
            return self == .sameUpper ? (small, total - small) : (total - small, small)
        }
    }
}

/// One computation: `outputs = op(inputs)`, values named as in the source model.
public struct Node: Sendable, Hashable {
    public var name: String
    public var op: Op
    public var inputs: [String]
    public var outputs: [String]

    public init(name: String, op: Op, inputs: [String], outputs: [String]) {
        self.name = name
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// A model: named values flowing through nodes in topological order, weights as initializers.
public struct Graph: Sendable {
    public var name: String
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var initializers: [String: Tensor]
    public var nodes: [Node]
    /// Class labels, when the model names them.
    public var labels: [String]?

    public init(name: String, inputs: [ValueInfo], outputs: [ValueInfo], initializers: [String: Tensor], nodes: [Node], labels: [String]? = nil) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.nodes = nodes
        self.labels = labels
    }

    /// The single image input (the first input that is not an initializer).
    public var imageInput: ValueInfo? { inputs.first { initializers[$0.name] == nil } }

    /// Number of weights.
    public var parameterCount: Int { initializers.values.reduce(0) { $0 + $1.shape.count } }

    /// The same graph with its nodes in an order where every value is computed before it is read
    /// (ONNX requires that order; some exporters and hand-edited files break it). The relative order
    /// of independent nodes is kept.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` naming a node that reads a value
    ///   nothing computes, or that is part of a cycle.
    public func sortedTopologically() throws -> Graph {
        var available = Set(inputs.map(\.name)).union(initializers.keys)
        available.insert("")
        // The common case: already in order.
        var inOrder = true
        var seen = available
        for n in nodes {
            if !n.inputs.allSatisfy(seen.contains) { inOrder = false; break }
            seen.formUnion(n.outputs)
        }
        if inOrder { return self }
        // Kahn's algorithm, taking ready nodes in their original order.
        var waiting = [Int](repeating: 0, count: nodes.count)
        var readers: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            for v in Set(n.inputs) where !available.contains(v) {
                waiting[i] += 1
                readers[v, default: []].append(i)
            }
        }
        var ready = nodes.indices.filter { waiting[$0] == 0 }.reversed().map { $0 }
        var sorted: [Node] = []
        sorted.reserveCapacity(nodes.count)
        while let i = ready.popLast() {
            sorted.append(nodes[i])
            var released: [Int] = []
            for v in nodes[i].outputs where available.insert(v).inserted {
                for r in readers[v] ?? [] {
                    waiting[r] -= 1
                    if waiting[r] == 0 { released.append(r) }
                }
            }
            ready += released.sorted().reversed()
        }
        if sorted.count < nodes.count {
            let produced = Set(nodes.flatMap(\.outputs))
            let stuck = nodes.indices.first { waiting[$0] > 0 } ?? 0
            let n = nodes[stuck]
            let missing = n.inputs.first { !available.contains($0) } ?? ""
            let why = produced.contains(missing) ? "it is computed in a cycle that includes this node" : "no node, input or initializer of the model has this name"
            throw XAIError.inNode(node: n.name, op: n.op.name,
                                  underlying: .invalidArgument(parameter: "inputs", value: missing, reason: "the node reads it but \(why)"))
        }
        var g = self
        g.nodes = sorted
        return g
    }

    /// The node producing each value.
    public var producers: [String: Int] {
        var p: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs { p[o] = i } }
        return p
    }

    /// How many node inputs read each value (graph outputs count once more).
    public var consumerCounts: [String: Int] {
        var c: [String: Int] = [:]
        for n in nodes { for i in n.inputs where !i.isEmpty { c[i, default: 0] += 1 } }
        for o in outputs { c[o.name, default: 0] += 1 }
        return c
    }

    /// The values each node reads for the last time, by node position: after `nodes[i]` runs,
    /// `lastReads[i]` may be released. Graph outputs are read by the caller and never appear. The
    /// executor's forward pass releases by this schedule and the batch-size estimate walks it, so
    /// both see the same peak.
    public var lastReads: [[String]] {
        var remaining = consumerCounts
        return nodes.map { node in
            var last: [String] = []
            for name in node.inputs where !name.isEmpty {
                let left = remaining[name, default: 0] - 1
                remaining[name] = left
                if left == 0 { last.append(name) }
            }
            return last
        }
    }
}
