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

/// Imports ONNX models (opsets 9 to 21) into a ``Graph``. Errors name the file, the node, the op type
/// and the opset.
public enum ONNXImporter {
    public static let supportedOpsets = 9...21
    public static let supportedOps: Set<String> = [
        "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
        "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm", "MatMul", "Flatten",
        "Reshape", "Transpose", "Concat", "Softmax", "LogSoftmax", "Dropout", "Identity", "Constant", "Shape",
        "Gather", "Unsqueeze", "Squeeze", "ReduceMean", "Pad", "Slice", "Cast", "ConstantOfShape",
    ]

    /// Loads and maps a model file; the graph is returned as exported (call `optimized()` to rewrite).
    public static func load(path: String) throws -> Graph {
        let model = try read(path)
        var importer = try Importer(model: model, path: path)
        return try importer.graph()
    }

    /// Describes a model file without requiring every op to be supported.
    public static func inspect(path: String) throws -> ONNXModelInfo {
        let model = try read(path)
        let importer = try Importer(model: model, path: path)
        return try importer.info()
    }

    static func read(_ path: String) throws -> Onnx_ModelProto {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw XAIError.file(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
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

/// One import: the model, its opset, and its constants.
struct Importer {
    let model: Onnx_ModelProto
    let path: String
    let opset: Int
    var constants: [String: Tensor] = [:]

    init(model: Onnx_ModelProto, path: String) throws {
        self.model = model
        self.path = path
        let defaultDomain = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        opset = Int(defaultDomain?.version ?? 0)
        guard ONNXImporter.supportedOpsets.contains(opset) else {
            throw XAIError.unsupported(op: "\(path): opset \(opset)", reason: "supported opsets are \(ONNXImporter.supportedOpsets.lowerBound) to \(ONNXImporter.supportedOpsets.upperBound)")
        }
    }

    var directory: URL { URL(fileURLWithPath: path).deletingLastPathComponent() }

    func valueInfo(_ v: Onnx_ValueInfoProto) -> ValueInfo {
        let dims = v.type.tensorType.shape.dim.map { d -> Int? in
            if case .dimValue(let n)? = d.value, n > 0 { return Int(n) }
            return nil
        }
        return ValueInfo(name: v.name, shape: dims)
    }

    func info() throws -> ONNXModelInfo {
        let g = model.graph
        let initNames = Set(g.initializer.map(\.name))
        var histogram: [String: Int] = [:]
        var unsupported: [(op: String, node: String)] = []
        for n in g.node {
            histogram[n.opType, default: 0] += 1
            if !n.domain.isEmpty && n.domain != "ai.onnx" || !ONNXImporter.supportedOps.contains(n.opType) {
                unsupported.append((n.opType, n.name))
            }
        }
        let params = g.initializer.reduce(0) { $0 + Int($1.dims.reduce(1, *)) }
        return ONNXModelInfo(path: path, opset: opset, producer: "\(model.producerName) \(model.producerVersion)".trimmingCharacters(in: .whitespaces),
                             inputs: g.input.filter { !initNames.contains($0.name) }.map(valueInfo),
                             outputs: g.output.map(valueInfo), opHistogram: histogram, unsupported: unsupported, parameterCount: params)
    }

    mutating func graph() throws -> Graph {
        let g = model.graph
        for t in g.initializer { constants[t.name] = try tensor(t) }
        let unsupported = try info().unsupported
        if !unsupported.isEmpty {
            let list = unsupported.prefix(8).map { "\($0.op) (node '\($0.node)')" }.joined(separator: ", ")
            throw XAIError.unsupported(op: "\(path) (opset \(opset))", reason: "unsupported ops: \(list)\(unsupported.count > 8 ? ", ..." : "")")
        }
        var nodes: [Node] = []
        for (i, n) in g.node.enumerated() {
            let name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            if let node = try map(n, name: name) { nodes.append(node) }
        }
        let initNames = Set(g.initializer.map(\.name))
        let inputs = g.input.filter { !initNames.contains($0.name) }.map(valueInfo)
        guard !inputs.isEmpty else { throw XAIError.file(path: path, reason: "the graph has no input") }
        return Graph(name: URL(fileURLWithPath: path).lastPathComponent, inputs: inputs, outputs: g.output.map(valueInfo),
                     initializers: constants, nodes: nodes)
    }

    // MARK: Attributes

    func attr(_ n: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? { n.attribute.first { $0.name == name } }
    func int(_ n: Onnx_NodeProto, _ name: String, _ d: Int) -> Int { attr(n, name).map { Int($0.i) } ?? d }
    func float(_ n: Onnx_NodeProto, _ name: String, _ d: Float) -> Float { attr(n, name).map { $0.f } ?? d }
    func ints(_ n: Onnx_NodeProto, _ name: String) -> [Int]? { attr(n, name).map { $0.ints.map(Int.init) } }
    func string(_ n: Onnx_NodeProto, _ name: String) -> String? { attr(n, name).map { String(decoding: $0.s, as: UTF8.self) } }

    func fail(_ n: Onnx_NodeProto, _ name: String, _ why: String) -> XAIError {
        .unsupported(op: "\(path): \(n.opType) node '\(name)' (opset \(opset))", reason: why)
    }

    func constant(_ n: Onnx_NodeProto, _ i: Int) -> Tensor? {
        i < n.input.count && !n.input[i].isEmpty ? constants[n.input[i]] : nil
    }

    func autoPad(_ n: Onnx_NodeProto, _ name: String) throws -> AutoPad {
        switch string(n, "auto_pad") ?? "NOTSET" {
        case "NOTSET", "": return .explicit
        case "SAME_UPPER": return .sameUpper
        case "SAME_LOWER": return .sameLower
        case "VALID": return .valid
        case let other: throw fail(n, name, "auto_pad \(other)")
        }
    }

    func pads2D(_ n: Onnx_NodeProto, _ name: String) throws -> (Int, Int, Int, Int) {
        let p = ints(n, "pads") ?? [0, 0, 0, 0]
        guard p.count == 4 else { throw fail(n, name, "only 2-D spatial pads are supported, got \(p)") }
        return (p[0], p[1], p[2], p[3])
    }

    func pair(_ n: Onnx_NodeProto, _ attrName: String, _ name: String, default d: Int) throws -> (Int, Int) {
        let v = ints(n, attrName) ?? [d, d]
        guard v.count == 2 else { throw fail(n, name, "only 2-D \(attrName) are supported, got \(v)") }
        return (v[0], v[1])
    }

    // MARK: The op table

    mutating func map(_ n: Onnx_NodeProto, name: String) throws -> Node? {
        var op: Op
        var inputs = n.input
        let outputs = n.output
        switch n.opType {
        case "Conv":
            if let k = ints(n, "kernel_shape"), k.count != 2 { throw fail(n, name, "only 2-D convolutions are supported, kernel \(k)") }
            let p = try Conv2DParams(strides: pair(n, "strides", name, default: 1), pads: pads2D(n, name),
                                     dilations: pair(n, "dilations", name, default: 1), groups: int(n, "group", 1))
            op = .conv(p, activation: .identity, autoPad: try autoPad(n, name))
        case "BatchNormalization":
            if int(n, "training_mode", 0) != 0 { throw fail(n, name, "training_mode=1") }
            op = .batchNorm(epsilon: float(n, "epsilon", 1e-5))
            inputs = Array(inputs.prefix(5))
        case "Relu": op = .unary(.relu)
        case "LeakyRelu": op = .unary(.leakyRelu(alpha: float(n, "alpha", 0.01)))
        case "Sigmoid": op = .unary(.sigmoid)
        case "Tanh": op = .unary(.tanh)
        case "HardSigmoid": op = .unary(.hardSigmoid(alpha: float(n, "alpha", 0.2), beta: float(n, "beta", 0.5)))
        case "HardSwish": op = .unary(.hardSwish)
        case "Clip":
            var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
            if opset < 11 {
                lo = float(n, "min", lo); hi = float(n, "max", hi)
            } else {
                if n.input.count > 1 && !n.input[1].isEmpty {
                    guard let t = constant(n, 1), let v = t.scalars.first else { throw fail(n, name, "min must be a constant") }
                    lo = v
                }
                if n.input.count > 2 && !n.input[2].isEmpty {
                    guard let t = constant(n, 2), let v = t.scalars.first else { throw fail(n, name, "max must be a constant") }
                    hi = v
                }
            }
            op = lo == 0 && hi == .greatestFiniteMagnitude ? .unary(.relu) : .unary(.clip(lo, hi))
            inputs = [n.input[0]]
        case "Add": op = .binary(.add)
        case "Sub": op = .binary(.sub)
        case "Mul": op = .binary(.mul)
        case "Div": op = .binary(.div)
        case "MaxPool", "AveragePool":
            if outputs.count > 1 && !outputs[1].isEmpty { throw fail(n, name, "the Indices output is not supported") }
            let k = try pair(n, "kernel_shape", name, default: 1)
            if let d = ints(n, "dilations"), d.contains(where: { $0 != 1 }) { throw fail(n, name, "dilated pooling \(d)") }
            let p = Pool2DParams(n.opType == "MaxPool" ? .max : .average, kernel: k, stride: try pair(n, "strides", name, default: 1),
                                 padding: try pads2D(n, name), ceilMode: int(n, "ceil_mode", 0) != 0,
                                 countIncludePad: int(n, "count_include_pad", 0) != 0)
            op = .pool(p, autoPad: try autoPad(n, name))
        case "GlobalAveragePool": op = .globalAveragePool
        case "Gemm":
            op = .gemm(transA: int(n, "transA", 0) != 0, transB: int(n, "transB", 0) != 0,
                       alpha: float(n, "alpha", 1), beta: float(n, "beta", 1), activation: .identity)
        case "MatMul": op = .matMul
        case "Flatten": op = .flatten(axis: int(n, "axis", 1))
        case "Reshape":
            if opset < 5 { throw fail(n, name, "Reshape with a shape attribute") }
            op = .reshape(allowZero: int(n, "allowzero", 0) != 0)
        case "Transpose": op = .transpose(perm: ints(n, "perm") ?? [])
        case "Concat": op = .concat(axis: int(n, "axis", 1))
        case "Softmax", "LogSoftmax":
            let legacy = opset < 13
            op = .softmax(axis: int(n, "axis", legacy ? 1 : -1), log: n.opType == "LogSoftmax", coerce2D: legacy)
        case "ReduceMean":
            var axes = ints(n, "axes")
            if opset >= 18 {
                axes = constant(n, 1)?.integers
                if n.input.count > 1 && !n.input[1].isEmpty && axes == nil { throw fail(n, name, "axes must be a constant") }
                if int(n, "noop_with_empty_axes", 0) != 0 { throw fail(n, name, "noop_with_empty_axes") }
                inputs = [n.input[0]]
            }
            op = .reduceMean(axes: axes, keepDims: int(n, "keepdims", 1) != 0)
        case "Pad":
            let mode = string(n, "mode") ?? "constant"
            guard mode == "constant" else { throw fail(n, name, "pad mode '\(mode)' (only constant)") }
            if opset < 11 {
                guard let pads = ints(n, "pads") else { throw fail(n, name, "missing pads") }
                let padsName = name + ".pads", valueName = name + ".value"
                constants[padsName] = try Tensor(shape: [pads.count], scalars: pads.map(Float.init))
                constants[valueName] = try Tensor(shape: [1], scalars: [float(n, "value", 0)])
                inputs = [n.input[0], padsName, valueName]
            } else {
                if n.input.count > 3 && !n.input[3].isEmpty { throw fail(n, name, "the axes input") }
                inputs = Array(inputs.prefix(3))
            }
            op = .pad
        case "Dropout", "Identity":
            if outputs.count > 1 && !outputs[1].isEmpty { throw fail(n, name, "the mask output is not supported") }
            op = .identity
            inputs = [n.input[0]]
        case "Constant":
            guard let a = n.attribute.first else { throw fail(n, name, "no value") }
            let t: Tensor
            switch a.name {
            case "value": t = try tensor(a.t)
            case "value_float": t = try Tensor(shape: [], scalars: [a.f])
            case "value_floats": t = try Tensor(shape: [a.floats.count], scalars: a.floats)
            case "value_int": t = try Tensor(shape: [], scalars: [Float(a.i)])
            case "value_ints": t = try Tensor(shape: [a.ints.count], scalars: a.ints.map(Float.init))
            default: throw fail(n, name, "value attribute '\(a.name)'")
            }
            constants[outputs[0]] = t
            return nil
        case "Shape": op = .shape(start: int(n, "start", 0), end: attr(n, "end").map { Int($0.i) })
        case "Slice":
            if opset < 10 { throw fail(n, name, "Slice with attributes (opset < 10)") }
            op = .slice
        case "Cast":
            op = .cast(toFloat: [1, 10, 11, 16].contains(int(n, "to", 1)))
        case "ConstantOfShape":
            let value = try attr(n, "value").map { try tensor($0.t).scalars.first ?? 0 } ?? 0
            op = .constantOfShape(value: value)
        case "Gather": op = .gather(axis: int(n, "axis", 0))
        case "Unsqueeze", "Squeeze":
            var axes = ints(n, "axes")
            if opset >= 13 {
                axes = constant(n, 1)?.integers
                if n.input.count > 1 && !n.input[1].isEmpty && axes == nil { throw fail(n, name, "axes must be a constant") }
                inputs = [n.input[0]]
            }
            if n.opType == "Unsqueeze" {
                guard let axes else { throw fail(n, name, "missing axes") }
                op = .unsqueeze(axes: axes)
            } else {
                op = .squeeze(axes: axes)
            }
        default:
            throw fail(n, name, "op not supported")
        }
        return Node(name: name, op: op, inputs: inputs, outputs: outputs)
    }

    // MARK: Tensors

    func tensor(_ t: Onnx_TensorProto) throws -> Tensor {
        let shape = Shape(t.dims.map { Int($0) })
        var raw = t.rawData
        if t.dataLocation == .external {
            raw = try externalData(t)
        }
        func check(_ values: [Float]) throws -> Tensor {
            guard values.count == shape.count else {
                throw XAIError.file(path: path, reason: "tensor '\(t.name)' has \(values.count) values for shape \(shape)")
            }
            return try Tensor(shape: shape, scalars: values)
        }
        func fromRaw<T>(_ type: T.Type, _ convert: (T) -> Float) -> [Float] {
            let n = raw.count / MemoryLayout<T>.size
            return raw.withUnsafeBytes { buf in (0..<n).map { convert(buf.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) } }
        }
        switch t.dataType {
        case 1: return try check(raw.isEmpty ? t.floatData : fromRaw(Float.self) { $0 })
        case 11: return try check(raw.isEmpty ? t.doubleData.map(Float.init) : fromRaw(Double.self) { Float($0) })
        case 7: return try check(raw.isEmpty ? t.int64Data.map(Float.init) : fromRaw(Int64.self) { Float($0) })
        case 6: return try check(raw.isEmpty ? t.int32Data.map(Float.init) : fromRaw(Int32.self) { Float($0) })
        case 9, 2, 3, 5:  // bool, uint8, int8, int16 are stored in int32_data when not raw
            let size = t.dataType == 5 ? 2 : 1
            if raw.isEmpty { return try check(t.int32Data.map(Float.init)) }
            switch (t.dataType, size) {
            case (3, _): return try check(fromRaw(Int8.self) { Float($0) })
            case (5, _): return try check(fromRaw(Int16.self) { Float($0) })
            default: return try check(fromRaw(UInt8.self) { Float($0) })
            }
        default:
            throw XAIError.unsupported(op: "\(path): tensor '\(t.name)'", reason: "element type \(t.dataType) (float, double and integer tensors are supported)")
        }
    }

    /// Reads a tensor stored in a side file (`location`, `offset`, `length` relative to the model's folder).
    func externalData(_ t: Onnx_TensorProto) throws -> Data {
        var location = "", offset = 0, length: Int?
        for e in t.externalData {
            switch e.key {
            case "location": location = e.value
            case "offset": offset = Int(e.value) ?? 0
            case "length": length = Int(e.value)
            default: break
            }
        }
        let file = directory.appendingPathComponent(location).path
        guard !location.isEmpty, !location.contains(".."), let handle = FileHandle(forReadingAtPath: file) else {
            throw XAIError.file(path: file, reason: "external data for tensor '\(t.name)' of \(path) cannot be opened")
        }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try length.map { try handle.read(upToCount: $0) ?? Data() } ?? handle.readToEnd() ?? Data()
            if let length, data.count != length {
                throw XAIError.file(path: file, reason: "external data for tensor '\(t.name)' is truncated (\(data.count) of \(length) bytes)")
            }
            return data
        } catch let e as XAIError {
            throw e
        } catch {
            throw XAIError.file(path: file, reason: "reading external data for tensor '\(t.name)': \(error)")
        }
    }
}
