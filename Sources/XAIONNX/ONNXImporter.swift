import Foundation
import SwiftProtobuf
import XAICore
import XAIGraph

/// What an ONNX file holds, before any op is mapped: enough for `xai inspect` to describe a model
/// even when some of its ops are unsupported.
public struct ONNXModelInfo: Sendable {
    public let path: String
    public let opset: Int
    public let producer: String
    public let inputs: [ValueInfo]
    public let outputs: [ValueInfo]
    /// Op type -> number of nodes.
    public let opHistogram: [String: Int]
    /// (op type, node name) of every node this importer cannot map.
    public let unsupported: [(op: String, node: String)]
    public let parameterCount: Int
}

/// Imports ONNX models (opsets 9 to 21) into a ``Graph``. Every error names the file and, where
/// there is one, the node, its op type and the opset.
public enum ONNXImporter {
    public static let supportedOpsets = 9...21
    /// The op types the importer maps: the keys of its op table.
    public static var supportedOps: Set<String> { Set(opTable.keys) }

    /// Loads and maps a model file; the graph is returned as exported (call `optimized()` to rewrite).
    /// - Throws: ``XAIError/file(path:reason:)`` for a missing, empty, truncated or foreign file;
    ///   otherwise the error wrapped in ``XAIError/inFile(path:underlying:)``.
    public static func load(path: String) throws -> Graph {
        try load(data: try contents(path), path: path)
    }

    /// Maps the bytes of a model file; `path` names it in errors and locates external weights.
    public static func load(data: Data, path: String) throws -> Graph {
        do {
            var importer = try Importer(model: try decode(data, path: path), path: path)
            return try importer.graph()
        } catch let e as XAIError {
            throw e.inFile(path)
        }
    }

    /// Describes a model file without requiring every op to be supported.
    public static func inspect(path: String) throws -> ONNXModelInfo {
        do {
            return try Importer(model: try decode(try contents(path), path: path), path: path).info()
        } catch let e as XAIError {
            throw e.inFile(path)
        }
    }

    static func contents(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw XAIError.file(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return data
    }

    static func decode(_ data: Data, path: String) throws -> Onnx_ModelProto {
        guard !data.isEmpty else { throw XAIError.file(path: path, reason: "empty file, not an ONNX model") }
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw XAIError.file(path: path, reason: "not an ONNX model (protobuf decoding failed: \(error)); the file may be truncated or of another format")
        }
        guard model.hasGraph, !model.graph.node.isEmpty, model.irVersion > 0 else {
            throw XAIError.file(path: path, reason: "not an ONNX model (no graph or IR version); the file may be truncated or of another format")
        }
        return model
    }
}

/// What an op's importer makes of a node: an op with its inputs, or a constant (no node).
enum Mapped {
    /// The op, its inputs, and constants the importer made for it (named after the node).
    case node(Op, inputs: [String], constants: [String: Tensor] = [:])
    /// Several nodes in order (a decomposition), the last one's outputs replaced by the ONNX node's.
    case nodes([(op: Op, inputs: [String])], constants: [String: Tensor])
    case constant(Tensor)
}

/// One ONNX node as its importer sees it: attributes, inputs and the opset, with errors that name
/// the node.
struct NodeContext {
    let proto: Onnx_NodeProto
    let name: String
    let opset: Int
    let importer: Importer

    var inputs: [String] { proto.input }
    var outputs: [String] { proto.output }

    func attr(_ key: String) -> Onnx_AttributeProto? { proto.attribute.first { $0.name == key } }
    func int(_ key: String, _ d: Int) -> Int { attr(key).map { Int(clamping: $0.i) } ?? d }
    func float(_ key: String, _ d: Float) -> Float { attr(key).map { $0.f } ?? d }
    func ints(_ key: String) -> [Int]? { attr(key).map { $0.ints.map { Int(clamping: $0) } } }
    func string(_ key: String) -> String? { attr(key).map { String(decoding: $0.s, as: UTF8.self) } }

    /// An error about this node (the file is added by the caller).
    func fail(_ why: String) -> XAIError {
        .unsupported(op: "\(proto.opType) node '\(name)' (opset \(opset))", reason: why)
    }

    func has(_ i: Int) -> Bool { i < proto.input.count && !proto.input[i].isEmpty }

    /// Whether input `i` holds integers or booleans (shape arithmetic), as the importer's type
    /// inference found.
    func isInteger(_ i: Int) -> Bool { has(i) && importer.integerValues.contains(proto.input[i]) }

    /// Input `i` as a constant, if it is one.
    func constant(_ i: Int) -> Tensor? { has(i) ? importer.constants[proto.input[i]] : nil }

    /// Input `i` as a constant list of integers, or `nil` when the input is absent.
    /// - Throws: when the input is present but not a constant of integers.
    func constantIntegers(_ i: Int, _ what: String) throws -> [Int]? {
        guard has(i) else { return nil }
        guard let t = constant(i) else { throw fail("\(what) must be a constant") }
        return try t.integers(what)
    }

    /// Requires at least `n` inputs and one output.
    func requireInputs(_ n: Int) throws {
        guard proto.input.count >= n, proto.input.prefix(n).allSatisfy({ !$0.isEmpty }), !proto.output.isEmpty, !proto.output[0].isEmpty else {
            throw fail("needs \(n) input\(n == 1 ? "" : "s") and an output, has \(proto.input.count) and \(proto.output.count)")
        }
    }

    func autoPad() throws -> AutoPad {
        switch string("auto_pad") ?? "NOTSET" {
        case "NOTSET", "": return .explicit
        case "SAME_UPPER": return .sameUpper
        case "SAME_LOWER": return .sameLower
        case "VALID": return .valid
        case let other: throw fail("auto_pad \(other)")
        }
    }

    func pads2D() throws -> (Int, Int, Int, Int) {
        let p = ints("pads") ?? [0, 0, 0, 0]
        guard p.count == 4 else { throw fail("only 2-D spatial pads are supported, got \(p)") }
        return (p[0], p[1], p[2], p[3])
    }

    func pair(_ key: String, default d: Int) throws -> (Int, Int) {
        let v = ints(key) ?? [d, d]
        guard v.count == 2 else { throw fail("only 2-D \(key) are supported, got \(v)") }
        return (v[0], v[1])
    }

    /// The op with the node's first `count` inputs (or all of them).
    func node(_ op: Op, inputs count: Int? = nil) -> Mapped {
        .node(op, inputs: count.map { Array(proto.input.prefix($0)) } ?? proto.input)
    }
}

/// The op table: ONNX op type -> its importer. The supported-op list is derived from the keys.
typealias OpImporter = @Sendable (NodeContext) throws -> Mapped

let opTable: [String: OpImporter] = {
    var t: [String: OpImporter] = [:]
    t["Conv"] = { n in
        try n.requireInputs(2)
        if let k = n.ints("kernel_shape"), k.count != 2 { throw n.fail("only 2-D convolutions are supported, kernel \(k)") }
        let p = Conv2DParams(strides: try n.pair("strides", default: 1), pads: try n.pads2D(),
                             dilations: try n.pair("dilations", default: 1), groups: n.int("group", 1))
        return n.node(.conv(p, activation: .identity, autoPad: try n.autoPad()), inputs: 3)
    }
    t["BatchNormalization"] = { n in
        try n.requireInputs(5)
        if n.int("training_mode", 0) != 0 { throw n.fail("training_mode=1") }
        return n.node(.batchNorm(epsilon: n.float("epsilon", 1e-5)), inputs: 5)
    }
    let unary: [(String, @Sendable (NodeContext) -> UnaryOp)] = [
        ("Relu", { _ in .relu }), ("Sigmoid", { _ in .sigmoid }), ("Tanh", { _ in .tanh }), ("HardSwish", { _ in .hardSwish }),
        ("LeakyRelu", { n in .leakyRelu(alpha: n.float("alpha", 0.01)) }),
        ("HardSigmoid", { n in .hardSigmoid(alpha: n.float("alpha", 0.2), beta: n.float("beta", 0.5)) }),
    ]
    for (name, op) in unary {
        t[name] = { n in
            try n.requireInputs(1)
            return n.node(.unary(op(n)), inputs: 1)
        }
    }
    t["Clip"] = { n in
        try n.requireInputs(1)
        var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
        if n.opset < 11 {
            lo = n.float("min", lo); hi = n.float("max", hi)
        } else {
            if n.has(1) {
                guard let v = n.constant(1)?.scalars.first else { throw n.fail("min must be a constant") }
                lo = v
            }
            if n.has(2) {
                guard let v = n.constant(2)?.scalars.first else { throw n.fail("max must be a constant") }
                hi = v
            }
        }
        guard !lo.isNaN, !hi.isNaN, lo <= hi else { throw n.fail("bounds \(lo)...\(hi)") }
        return n.node(lo == 0 && hi == .greatestFiniteMagnitude ? .unary(.relu) : .unary(.clip(lo, hi)), inputs: 1)
    }
    for (name, op) in [("Add", BinaryOp.add), ("Sub", .sub), ("Mul", .mul), ("Div", .div)] {
        t[name] = { n in
            try n.requireInputs(2)
            // Integer division truncates: `channels / 2` of shape arithmetic must not become 57.5.
            if op == .div && n.isInteger(0) && n.isInteger(1) { return n.node(.hostArithmetic(.integerDivide), inputs: 2) }
            return n.node(.binary(op), inputs: 2)
        }
    }
    t["Neg"] = { n in
        try n.requireInputs(1)
        let minusOne = n.name + ".minus_one"
        return .node(.binary(.mul), inputs: [n.inputs[0], minusOne], constants: [minusOne: Tensor(unchecked: [], [-1])])
    }
    t["Reciprocal"] = { n in
        try n.requireInputs(1)
        let one = n.name + ".one"
        return .node(.binary(.div), inputs: [one, n.inputs[0]], constants: [one: Tensor(unchecked: [], [1])])
    }
    let unaryFunctions: [(String, UnaryOp)] = [("Erf", .erf), ("Exp", .exp), ("Sqrt", .sqrt)]
    for (name, op) in unaryFunctions {
        t[name] = { n in
            try n.requireInputs(1)
            return n.node(.unary(op), inputs: 1)
        }
    }
    t["Gelu"] = { n in
        try n.requireInputs(1)
        switch n.string("approximate") ?? "none" {
        case "none": return n.node(.unary(.gelu), inputs: 1)
        case "tanh": return n.node(.unary(.geluTanh), inputs: 1)
        case let other: throw n.fail("approximate '\(other)' (none or tanh)")
        }
    }
    t["Pow"] = { n in
        try n.requireInputs(2)
        guard let e = n.constant(1), e.shape.count == 1 else { throw n.fail("the exponent must be a constant scalar") }
        return n.node(.unary(.pow(e.scalars[0])), inputs: 1)
    }
    t["LayerNormalization"] = { n in
        try n.requireInputs(2)
        if n.outputs.count > 1 && n.outputs.dropFirst().contains(where: { !$0.isEmpty }) { throw n.fail("the Mean and InvStdDev outputs") }
        return n.node(.layerNorm(axis: n.int("axis", -1), epsilon: n.float("epsilon", 1e-5)), inputs: 3)
    }
    t["InstanceNormalization"] = { n in
        try n.requireInputs(3)
        return n.node(.instanceNorm(epsilon: n.float("epsilon", 1e-5)), inputs: 3)
    }
    t["Expand"] = { n in
        try n.requireInputs(2)
        return n.node(.expand, inputs: 2)
    }
    let hostOps: [(String, HostArithmetic, Int)] = [
        ("Equal", .equal, 2), ("Less", .less, 2), ("Greater", .greater, 2), ("LessOrEqual", .lessOrEqual, 2),
        ("GreaterOrEqual", .greaterOrEqual, 2), ("Not", .not, 1), ("And", .and, 2), ("Or", .or, 2), ("Where", .where, 3),
        ("Range", .range, 3), ("ScatterND", .scatterND, 3), ("Abs", .abs, 1), ("Ceil", .ceil, 1), ("Floor", .floor, 1),
        ("Tile", .tile, 2), ("IsNaN", .isNaN, 1),
    ]
    for (name, op, count) in hostOps {
        t[name] = { n in
            try n.requireInputs(count)
            if op == .scatterND, let r = n.string("reduction"), r != "none" { throw n.fail("reduction '\(r)'") }
            return n.node(.hostArithmetic(op), inputs: count)
        }
    }
    t["GatherND"] = { n in
        try n.requireInputs(2)
        if n.int("batch_dims", 0) != 0 { throw n.fail("batch_dims \(n.int("batch_dims", 0))") }
        return n.node(.hostArithmetic(.gatherND), inputs: 2)
    }
    t["Mod"] = { n in
        try n.requireInputs(2)
        return n.node(.hostArithmetic(n.int("fmod", 0) != 0 ? .fmod : .mod), inputs: 2)
    }
    for (name, op) in [("Min", HostArithmetic.min), ("Max", .max)] {
        t[name] = { n in
            try n.requireInputs(1)
            return n.node(.hostArithmetic(op))
        }
    }
    t["Einsum"] = { n in
        try n.requireInputs(1)
        guard let equation = n.string("equation") else { throw n.fail("missing equation") }
        do {
            return n.node(.einsum(try EinsumEquation(equation, operands: n.inputs.count)))
        } catch let e as XAIError {
            throw n.fail("\(e)")
        }
    }
    t["Split"] = { n in
        try n.requireInputs(1)
        let sizes = n.opset >= 13 ? try n.constantIntegers(1, "split") : n.ints("split")
        if let sizes, sizes.count != n.outputs.count { throw n.fail("\(sizes.count) sizes for \(n.outputs.count) outputs") }
        if let k = n.attr("num_outputs").map({ Int(clamping: $0.i) }), k != n.outputs.count {
            throw n.fail("num_outputs \(k) for \(n.outputs.count) outputs")
        }
        return n.node(.split(axis: n.int("axis", 0), sizes: sizes), inputs: 1)
    }
    for kind in [Pool2DParams.Kind.max, .average] {
        t[kind == .max ? "MaxPool" : "AveragePool"] = { n in
            try n.requireInputs(1)
            if n.outputs.count > 1 && !n.outputs[1].isEmpty { throw n.fail("the Indices output is not supported") }
            if let d = n.ints("dilations"), d.contains(where: { $0 != 1 }) { throw n.fail("dilated pooling \(d)") }
            let p = Pool2DParams(kind, kernel: try n.pair("kernel_shape", default: 1), stride: try n.pair("strides", default: 1),
                                 padding: try n.pads2D(), ceilMode: n.int("ceil_mode", 0) != 0,
                                 countIncludePad: n.int("count_include_pad", 0) != 0)
            return n.node(.pool(p, autoPad: try n.autoPad()), inputs: 1)
        }
    }
    t["GlobalAveragePool"] = { n in
        try n.requireInputs(1)
        return n.node(.globalAveragePool, inputs: 1)
    }
    t["Gemm"] = { n in
        try n.requireInputs(2)
        return n.node(.gemm(transA: n.int("transA", 0) != 0, transB: n.int("transB", 0) != 0,
                            alpha: n.float("alpha", 1), beta: n.float("beta", 1), activation: .identity), inputs: 3)
    }
    t["MatMul"] = { n in
        try n.requireInputs(2)
        return n.node(.matMul, inputs: 2)
    }
    t["Flatten"] = { n in
        try n.requireInputs(1)
        return n.node(.flatten(axis: n.int("axis", 1)), inputs: 1)
    }
    t["Reshape"] = { n in
        try n.requireInputs(2)
        return n.node(.reshape(allowZero: n.int("allowzero", 0) != 0), inputs: 2)
    }
    t["Transpose"] = { n in
        try n.requireInputs(1)
        return n.node(.transpose(perm: n.ints("perm") ?? []), inputs: 1)
    }
    t["Concat"] = { n in
        try n.requireInputs(1)
        return n.node(.concat(axis: n.int("axis", 1)))
    }
    for log in [false, true] {
        t[log ? "LogSoftmax" : "Softmax"] = { n in
            try n.requireInputs(1)
            let legacy = n.opset < 13
            return n.node(.softmax(axis: n.int("axis", legacy ? 1 : -1), log: log, coerce2D: legacy), inputs: 1)
        }
    }
    for (name, op, inputFrom) in [("ReduceMean", ReduceOp.mean, 18), ("ReduceSum", .sum, 13), ("ReduceMax", .max, 18),
                                  ("ReduceMin", .min, 18), ("ReduceL2", .sum, 18)] {
        t[name] = { n in
            try n.requireInputs(1)
            var axes = n.ints("axes")
            if n.opset >= inputFrom {
                // Axes became an input; with none given, every axis is reduced.
                axes = try n.constantIntegers(1, "axes")
                if n.int("noop_with_empty_axes", 0) != 0 && (axes ?? []).isEmpty { throw n.fail("noop_with_empty_axes") }
            }
            let keepDims = n.int("keepdims", 1) != 0
            guard name == "ReduceL2" else { return n.node(.reduce(op, axes: axes, keepDims: keepDims), inputs: 1) }
            // sqrt(sum(x^2)): Swin V2's cosine attention.
            // Step k of a decomposition writes `<node>.<k>`.
            let squares = n.name + ".0", sum = n.name + ".1"
            return .nodes([(.unary(.pow(2)), [n.inputs[0]]), (.reduce(.sum, axes: axes, keepDims: keepDims), [squares]), (.unary(.sqrt), [sum])],
                          constants: [:])
        }
    }
    t["Resize"] = { n in
        try n.requireInputs(1)
        func named<T: RawRepresentable<String>>(_ key: String, _ fallback: T) throws -> T {
            guard let s = n.string(key) else { return fallback }
            guard let v = T(rawValue: s) else { throw n.fail("\(key) '\(s)'") }
            return v
        }
        // Opset 10: inputs X, scales, and nearest takes the floor (as Upsample); 11 on: X, roi, scales, sizes.
        let inputs = n.opset < 11 ? [n.inputs[0], "", n.inputs.count > 1 ? n.inputs[1] : ""] : Array(n.inputs.prefix(4))
        if (n.string("coordinate_transformation_mode") ?? "") == "tf_crop_and_resize" { throw n.fail("coordinate_transformation_mode 'tf_crop_and_resize'") }
        if n.int("antialias", 0) != 0 { throw n.fail("antialias 1") }
        if let policy = n.string("keep_aspect_ratio_policy"), policy != "stretch" { throw n.fail("keep_aspect_ratio_policy '\(policy)'") }
        let interpolation: ResizeMode.Interpolation = try named("mode", .nearest)
        let mode = ResizeMode(interpolation: interpolation, coordinates: try named("coordinate_transformation_mode", n.opset < 11 ? .asymmetric : .halfPixel),
                              rounding: try named("nearest_mode", n.opset < 11 ? .floor : .roundPreferFloor), cubicA: Double(n.float("cubic_coeff_a", -0.75)),
                              excludeOutside: n.int("exclude_outside", 0) != 0, axes: n.ints("axes"))
        return .node(.resize(mode), inputs: inputs, constants: [:])
    }
    t["Pad"] = { n in
        try n.requireInputs(1)
        let mode = n.string("mode") ?? "constant"
        guard mode == "constant" else { throw n.fail("pad mode '\(mode)' (only constant)") }
        if n.opset < 11 {
            // Opset 10 and earlier: pads and value are attributes; they become constant inputs.
            guard let pads = n.ints("pads") else { throw n.fail("missing pads") }
            let padsName = n.name + ".pads", valueName = n.name + ".value"
            return .node(.pad, inputs: [n.inputs[0], padsName, valueName],
                         constants: [padsName: Tensor(unchecked: [pads.count], pads.map(Float.init)),
                                     valueName: Tensor(unchecked: [1], [n.float("value", 0)])])
        }
        if n.has(3) { throw n.fail("the axes input") }
        try n.requireInputs(2)
        return n.node(.pad, inputs: 3)
    }
    for name in ["Dropout", "Identity"] {
        t[name] = { n in
            try n.requireInputs(1)
            if n.outputs.count > 1 && !n.outputs[1].isEmpty { throw n.fail("the mask output is not supported") }
            return n.node(.identity, inputs: 1)
        }
    }
    t["Constant"] = { n in
        guard let a = n.proto.attribute.first, !n.outputs.isEmpty else { throw n.fail("no value") }
        switch a.name {
        case "value": return .constant(try n.importer.tensor(a.t))
        case "value_float": return .constant(Tensor(unchecked: [], [a.f]))
        case "value_floats": return .constant(Tensor(unchecked: [a.floats.count], a.floats))
        case "value_int": return .constant(Tensor(unchecked: [], [Float(a.i)]))
        case "value_ints": return .constant(Tensor(unchecked: [a.ints.count], a.ints.map(Float.init)))
        default: throw n.fail("value attribute '\(a.name)'")
        }
    }
    t["Shape"] = { n in
        try n.requireInputs(1)
        return n.node(.shape(start: n.int("start", 0), end: n.attr("end").map { Int(clamping: $0.i) }), inputs: 1)
    }
    t["Slice"] = { n in
        if n.opset < 10 { throw n.fail("Slice with attributes (opset < 10)") }
        try n.requireInputs(3)
        return n.node(.slice, inputs: 5)
    }
    t["Cast"] = { n in
        try n.requireInputs(1)
        let floats: Set<Int> = [Onnx_TensorProto.DataType.float.rawValue, Onnx_TensorProto.DataType.float16.rawValue,
                                Onnx_TensorProto.DataType.double.rawValue, Onnx_TensorProto.DataType.bfloat16.rawValue]
        return n.node(.cast(toFloat: floats.contains(n.int("to", 1))), inputs: 1)
    }
    t["ConstantOfShape"] = { n in
        try n.requireInputs(1)
        let value = try n.attr("value").map { try n.importer.tensor($0.t).scalars.first ?? 0 } ?? 0
        return n.node(.constantOfShape(value: value), inputs: 1)
    }
    t["Gather"] = { n in
        try n.requireInputs(2)
        return n.node(.gather(axis: n.int("axis", 0)), inputs: 2)
    }
    for squeeze in [false, true] {
        t[squeeze ? "Squeeze" : "Unsqueeze"] = { n in
            try n.requireInputs(1)
            let axes = n.opset >= 13 ? try n.constantIntegers(1, "axes") : n.ints("axes")
            if squeeze { return n.node(.squeeze(axes: axes), inputs: 1) }
            guard let axes else { throw n.fail("missing axes") }
            return n.node(.unsqueeze(axes: axes), inputs: 1)
        }
    }
    return t
}()

/// One import: the model, its opset, and its constants.
struct Importer {
    let model: Onnx_ModelProto
    let path: String
    let opset: Int
    var constants: [String: Tensor] = [:]
    /// Values that hold integers or booleans (shape arithmetic), from ``inferIntegerValues()``.
    var integerValues: Set<String> = []

    init(model: Onnx_ModelProto, path: String) throws {
        self.model = model
        self.path = path
        let defaultDomain = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        opset = Int(clamping: defaultDomain?.version ?? 0)
        guard ONNXImporter.supportedOpsets.contains(opset) else {
            throw XAIError.unsupported(op: "opset \(opset)", reason: "supported opsets are \(ONNXImporter.supportedOpsets.lowerBound) to \(ONNXImporter.supportedOpsets.upperBound)")
        }
    }

    var directory: URL { URL(fileURLWithPath: path).deletingLastPathComponent() }

    func valueInfo(_ v: Onnx_ValueInfoProto) -> ValueInfo {
        let dims = v.type.tensorType.shape.dim.map { d -> Int? in
            if case .dimValue(let n)? = d.value, n > 0, n <= Int64(Int32.max) { return Int(n) }
            return nil
        }
        return ValueInfo(name: v.name, shape: dims)
    }

    func info() throws -> ONNXModelInfo {
        let g = model.graph
        let initNames = Set(g.initializer.map(\.name))
        var histogram: [String: Int] = [:]
        var unsupported: [(op: String, node: String)] = []
        for (i, n) in g.node.enumerated() {
            histogram[n.opType, default: 0] += 1
            if !n.domain.isEmpty && n.domain != "ai.onnx" || opTable[n.opType] == nil {
                unsupported.append((n.opType, n.name.isEmpty ? "\(n.opType)_\(i)" : n.name))
            }
        }
        let params = g.initializer.reduce(0) { total, t in total &+ t.dims.reduce(1) { $0 &* Int(clamping: $1) } }
        return ONNXModelInfo(path: path, opset: opset, producer: "\(model.producerName) \(model.producerVersion)".trimmingCharacters(in: .whitespaces),
                             inputs: g.input.filter { !initNames.contains($0.name) }.map(valueInfo),
                             outputs: g.output.map(valueInfo), opHistogram: histogram, unsupported: unsupported, parameterCount: params)
    }

    mutating func graph() throws -> Graph {
        let g = model.graph
        let unsupported = try info().unsupported
        if !unsupported.isEmpty {
            let list = unsupported.prefix(8).map { "\($0.op) (node '\($0.node)')" }.joined(separator: ", ")
            throw XAIError.unsupported(op: "opset \(opset) model", reason: "unsupported ops: \(list)\(unsupported.count > 8 ? ", ..." : "")")
        }
        for t in g.initializer { constants[t.name] = try tensor(t) }
        integerValues = inferIntegerValues()
        var nodes: [Node] = []
        for (i, proto) in g.node.enumerated() {
            let name = proto.name.isEmpty ? "\(proto.opType)_\(i)" : proto.name
            guard let importer = opTable[proto.opType] else { continue }
            let context = NodeContext(proto: proto, name: name, opset: opset, importer: self)
            switch try importer(context) {
            case .node(let op, let inputs, let extra):
                constants.merge(extra) { $1 }
                nodes.append(Node(name: name, op: op, inputs: inputs, outputs: proto.output))
            case .nodes(let steps, let extra):
                // Step k writes `<node>.<k>`, except the last, which writes the node's outputs.
                constants.merge(extra) { $1 }
                for (k, step) in steps.enumerated() {
                    let outs = k == steps.count - 1 ? proto.output : ["\(name).\(k)"]
                    nodes.append(Node(name: k == steps.count - 1 ? name : "\(name).\(k)", op: step.op, inputs: step.inputs, outputs: outs))
                }
            case .constant(let t):
                constants[proto.output[0]] = t
            }
        }
        let initNames = Set(g.initializer.map(\.name))
        let inputs = g.input.filter { !initNames.contains($0.name) }.map(valueInfo)
        guard !inputs.isEmpty else { throw XAIError.file(path: path, reason: "the graph has no input") }
        guard !g.output.isEmpty else { throw XAIError.file(path: path, reason: "the graph has no output") }
        return try Graph(name: URL(fileURLWithPath: path).lastPathComponent, inputs: inputs, outputs: g.output.map(valueInfo),
                         initializers: constants, nodes: nodes).sortedTopologically()
    }

    // MARK: Element types

    /// The values that hold integers or booleans: integer initializers and constants, what Shape,
    /// Size, comparisons and casts to integer types produce, and what shape-preserving and
    /// arithmetic ops make of them. ONNX keeps these types apart; this engine holds every value as
    /// float32, so the importer needs them where the semantics differ (integer division).
    func inferIntegerValues() -> Set<String> {
        let integerTypes: Set<Int> = [Onnx_TensorProto.DataType.int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool]
            .map(\.rawValue).reduce(into: []) { $0.insert($1) }
        var ints = Set(model.graph.initializer.filter { integerTypes.contains(Int($0.dataType)) }.map(\.name))
        for v in model.graph.input where integerTypes.contains(Int(v.type.tensorType.elemType)) { ints.insert(v.name) }
        let producesIntegers: Set<String> = ["Shape", "Size", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And",
                                             "Or", "NonZero", "ArgMax", "ArgMin"]
        // Ops whose result has the element type of their first input (Where: of its second).
        let keepsType: Set<String> = ["Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Min", "Max", "Gather", "GatherND", "Concat", "Slice",
                                      "Squeeze", "Unsqueeze", "Reshape", "Expand", "Tile", "ScatterND", "Identity", "Transpose", "Flatten",
                                      "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "Range", "Split", "CumSum"]
        for n in model.graph.node {
            let integer: Bool
            switch n.opType {
            case _ where producesIntegers.contains(n.opType): integer = true
            case "Cast": integer = integerTypes.contains(Int(n.attribute.first { $0.name == "to" }?.i ?? 1))
            case "Constant":
                guard let a = n.attribute.first else { continue }
                integer = a.name == "value_int" || a.name == "value_ints" || (a.name == "value" && integerTypes.contains(Int(a.t.dataType)))
            case "ConstantOfShape":
                integer = n.attribute.first { $0.name == "value" }.map { integerTypes.contains(Int($0.t.dataType)) } ?? false
            case "Where": integer = n.input.count > 1 && ints.contains(n.input[1])
            case _ where keepsType.contains(n.opType): integer = n.input.first.map(ints.contains) ?? false
            default: integer = false
            }
            if integer { ints.formUnion(n.output.filter { !$0.isEmpty }) }
        }
        return ints
    }

    // MARK: Tensors

    /// A constant tensor; its shape and stored size are checked before anything is allocated.
    func tensor(_ t: Onnx_TensorProto) throws -> Tensor {
        let what = "tensor '\(t.name)'"
        let shape = try Shape(validating: t.dims.map { Int(clamping: $0) }, what: what)
        var raw = t.rawData
        if t.dataLocation == .external {
            raw = try externalData(t, elementSize: Onnx_TensorProto.DataType(rawValue: Int(t.dataType)).map(Self.elementSize) ?? 4,
                                   count: shape.count)
        }
        func check(_ values: [Float]) throws -> Tensor {
            guard values.count == shape.count else {
                throw XAIError.file(path: path, reason: "\(what) has \(values.count) values for shape \(shape)")
            }
            return Tensor(unchecked: shape, values)
        }
        func fromRaw<T>(_ type: T.Type, _ convert: (T) -> Float) throws -> [Float] {
            let size = MemoryLayout<T>.size
            guard raw.count == shape.count * size else {
                throw XAIError.file(path: path, reason: "\(what) stores \(raw.count) bytes for shape \(shape) of \(size)-byte values")
            }
            return raw.withUnsafeBytes { buf in (0..<shape.count).map { convert(buf.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) } }
        }
        guard let type = Onnx_TensorProto.DataType(rawValue: Int(t.dataType)) else {
            throw XAIError.unsupported(op: what, reason: "element type \(t.dataType)")
        }
        switch type {
        case .float: return try check(raw.isEmpty ? t.floatData : try fromRaw(Float.self) { $0 })
        case .double: return try check(raw.isEmpty ? t.doubleData.map(Float.init) : try fromRaw(Double.self) { Float($0) })
        case .int64: return try check(raw.isEmpty ? t.int64Data.map(Float.init) : try fromRaw(Int64.self) { Float($0) })
        case .int32: return try check(raw.isEmpty ? t.int32Data.map(Float.init) : try fromRaw(Int32.self) { Float($0) })
        // bool, uint8, int8 and int16 are stored in int32_data when not raw.
        case .bool, .uint8: return try check(raw.isEmpty ? t.int32Data.map(Float.init) : try fromRaw(UInt8.self) { Float($0) })
        case .int8: return try check(raw.isEmpty ? t.int32Data.map(Float.init) : try fromRaw(Int8.self) { Float($0) })
        case .int16: return try check(raw.isEmpty ? t.int32Data.map(Float.init) : try fromRaw(Int16.self) { Float($0) })
        default:
            throw XAIError.unsupported(op: what, reason: "element type \(type) (float, double and integer tensors are supported)")
        }
    }

    static func elementSize(_ type: Onnx_TensorProto.DataType) -> Int {
        switch type {
        case .double, .int64, .uint64: return 8
        case .float, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        default: return 1
        }
    }

    /// Reads a tensor stored in a side file (`location`, `offset`, `length` relative to the model's
    /// folder), after checking that the side file holds that many bytes.
    func externalData(_ t: Onnx_TensorProto, elementSize: Int, count: Int) throws -> Data {
        var location = "", offset = 0, length: Int?
        for e in t.externalData {
            switch e.key {
            case "location": location = e.value
            case "offset": offset = Int(e.value) ?? -1
            case "length": length = Int(e.value) ?? -1
            default: break
            }
        }
        let file = directory.appendingPathComponent(location).path
        guard !location.isEmpty, !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw XAIError.file(path: path, reason: "external data location '\(location)' of tensor '\(t.name)' must be a relative path inside the model's folder")
        }
        let expected = length ?? count * elementSize
        guard offset >= 0, expected >= 0 else {
            throw XAIError.file(path: path, reason: "external data of tensor '\(t.name)' has a negative offset or length")
        }
        guard let size = (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int,
              let handle = FileHandle(forReadingAtPath: file) else {
            throw XAIError.file(path: file, reason: "external data for tensor '\(t.name)' of \(path) cannot be opened")
        }
        defer { try? handle.close() }
        guard offset <= size, expected <= size - offset else {
            throw XAIError.file(path: file, reason: "external data for tensor '\(t.name)' is truncated (\(max(size - offset, 0)) of \(expected) bytes)")
        }
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: expected) ?? Data()
            guard data.count == expected else {
                throw XAIError.file(path: file, reason: "external data for tensor '\(t.name)' is truncated (\(data.count) of \(expected) bytes)")
            }
            return data
        } catch let e as XAIError {
            throw e
        } catch {
            throw XAIError.file(path: file, reason: "reading external data for tensor '\(t.name)': \(error)")
        }
    }
}
