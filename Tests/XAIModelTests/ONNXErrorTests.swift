import Foundation
import SwiftProtobuf
import XCTest
import XAI
import XAITestSupport
@testable import XAIONNX

/// Malformed and unsupported models each give an error that names the file, op and node; the
/// process survives.
final class ONNXErrorTests: ScratchFolderTestCase {
    func expectError(_ path: String, containing parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ONNXImporter.load(path: path), file: file, line: line) { error in
            let text = "\(error)"
            for p in parts { XCTAssertTrue(text.contains(p), "'\(text)' should mention '\(p)'", file: file, line: line) }
        }
    }

    func testMissingFile() {
        expectError(tmp.path + "/nope.onnx", containing: ["nope.onnx", "no such file"])
    }

    func testTruncatedFile() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/models/small_resnet/model.onnx"))
        let path = tmp.appendingPathComponent("truncated.onnx").path
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: path))
        expectError(path, containing: ["truncated.onnx"])
    }

    func testWrongMagic() throws {
        let path = tmp.appendingPathComponent("image.onnx").path
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + (0..<200).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: path))
        expectError(path, containing: ["image.onnx", "not an ONNX model"])
    }

    func model(opset: Int64, nodes: [Onnx_NodeProto]) -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var op = Onnx_OperatorSetIdProto()
        op.version = opset
        m.opsetImport = [op]
        var input = Onnx_ValueInfoProto()
        input.name = "x"
        var type = Onnx_TypeProto.Tensor()
        type.elemType = 1
        var shape = Onnx_TensorShapeProto()
        shape.dim = [Int64(1), 3, 8, 8].map { v in var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = v; return d }
        type.shape = shape
        input.type.tensorType = type
        m.graph.input = [input]
        var output = Onnx_ValueInfoProto()
        output.name = nodes.last!.output[0]
        m.graph.output = [output]
        m.graph.node = nodes
        return m
    }

    func node(_ op: String, _ name: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        return n
    }

    func testUnsupportedOpNamesOpNodeAndOpset() throws {
        let m = model(opset: 17, nodes: [node("Relu", "first", ["x"], ["a"]), node("LSTM", "my_lstm", ["a"], ["y"])])
        let path = tmp.appendingPathComponent("lstm.onnx").path
        try m.serializedData().write(to: URL(fileURLWithPath: path))
        expectError(path, containing: ["lstm.onnx", "LSTM", "my_lstm", "opset 17"])
        let info = try ONNXImporter.inspect(path: path)
        XCTAssertEqual(info.unsupported.map(\.op), ["LSTM"])
        XCTAssertEqual(info.opHistogram, ["Relu": 1, "LSTM": 1])
    }

    func testUnsupportedOpset() throws {
        let m = model(opset: 7, nodes: [node("Relu", "r", ["x"], ["y"])])
        let path = tmp.appendingPathComponent("old.onnx").path
        try m.serializedData().write(to: URL(fileURLWithPath: path))
        expectError(path, containing: ["old.onnx", "opset 7"])
    }

    func testInputShapeMismatchNamesInputAndShapes() throws {
        let graph = try ONNXImporter.load(path: fixturesDirectory + "/models/plain_cnn/model.onnx").optimized()
        let backend = CPUBackend()
        let executor = Executor(graph: graph, backend: backend)
        let wrong = try backend.upload(Tensor.uniform([1, 3, 28, 32], seed: 1))  // H and W swapped
        XCTAssertThrowsError(try executor.forward(wrong)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("input") && text.contains("[1x3x28x32]") && text.contains("[Nx3x32x28]"), text)
        }
    }

    func testMissingBackwardRuleIsReported() throws {
        // Gradients never flow to weights: asking for one names the op.
        let graph = try ONNXImporter.load(path: fixturesDirectory + "/models/plain_cnn/model.onnx").optimized()
        let backend = CPUBackend()
        let executor = Executor(graph: graph, backend: backend)
        let input = try NPY.read(fixturesDirectory + "/models/plain_cnn/input.npy")
        let pass = try executor.forward(try backend.upload(input), forBackward: true)
        let weight = graph.nodes.first { if case .conv = $0.op { return true }; return false }!.inputs[1]
        let out = graph.outputs[0].name
        XCTAssertThrowsError(try executor.backward(pass, seeds: [out: try backend.filled(pass.outputs[out]!.shape, value: 1)], wrt: [weight]))
    }

    // MARK: Attribute defaults, dropped inputs and made constants (generated-mutant survivors)

    /// A one-input model of `nodes` over an input of `shape`, with float initializers.
    func tinyModel(opset: Int64, shape: [Int64], nodes: [Onnx_NodeProto], initializers: [String: [Float]] = [:],
                   initializerShapes: [String: [Int64]] = [:]) -> Onnx_ModelProto {
        var m = model(opset: opset, nodes: nodes)
        m.graph.input[0].type.tensorType.shape.dim = shape.map { v in var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = v; return d }
        m.graph.initializer = initializers.keys.sorted().map { name in
            var t = Onnx_TensorProto()
            t.name = name
            t.dataType = 1
            t.dims = initializerShapes[name] ?? [Int64(initializers[name]!.count)]
            t.floatData = initializers[name]!
            return t
        }
        return m
    }

    func imported(_ m: Onnx_ModelProto, _ name: String) throws -> Graph {
        let path = tmp.appendingPathComponent(name).path
        try m.serializedData().write(to: URL(fileURLWithPath: path))
        return try ONNXImporter.load(path: path)
    }

    /// ONNX's attribute defaults: LayerNormalization over the last axis; Softmax over axis 1 with
    /// the input flattened to 2-D before opset 13, over the last axis from 13.
    func testAttributeDefaultsAreONNXs() throws {
        let norm = try imported(tinyModel(opset: 17, shape: [1, 3, 8, 8], nodes: [node("LayerNormalization", "ln", ["x", "g", "b"], ["y"])],
                                          initializers: ["g": [Float](repeating: 1, count: 8), "b": [Float](repeating: 0, count: 8)]), "ln.onnx")
        guard case .layerNorm(let axis, let epsilon)? = norm.nodes.first(where: { $0.name == "ln" })?.op else { return XCTFail("no layer norm") }
        XCTAssertEqual(axis, -1)
        XCTAssertEqual(epsilon, 1e-5)
        for (opset, expected, coerced) in [(Int64(11), 1, true), (13, -1, false)] {
            let g = try imported(tinyModel(opset: opset, shape: [1, 3, 8, 8], nodes: [node("Softmax", "sm", ["x"], ["y"])]), "softmax\(opset).onnx")
            guard case .softmax(let axis, let log, let coerce2D)? = g.nodes.first(where: { $0.name == "sm" })?.op else { return XCTFail("no softmax") }
            XCTAssertEqual(axis, expected, "opset \(opset)")
            XCTAssertEqual(coerce2D, coerced, "opset \(opset)")
            XCTAssertFalse(log)
        }
    }

    /// Neg and Reciprocal become a product and a quotient with a constant the importer makes; the
    /// constants are in the graph and the values are -x and 1/x.
    func testImporterMadeConstantsReachTheGraph() throws {
        let g = try imported(tinyModel(opset: 13, shape: [1, 3, 8, 8], nodes: [node("Neg", "neg", ["x"], ["a"]),
                                                                                node("Reciprocal", "inv", ["a"], ["y"])]), "neg.onnx")
        XCTAssertEqual(g.initializers["neg.minus_one"]?.scalars, [-1])
        XCTAssertEqual(g.initializers["inv.one"]?.scalars, [1])
        let backend = CPUBackend()
        let x = Tensor(unchecked: [1, 3, 8, 8], (0..<192).map { Float($0 % 13) / 4 + 0.5 })
        let y = try backend.download(try Executor(graph: try g.optimized(), backend: backend).forward(try backend.upload(x)).outputs["y"]!)
        for (a, b) in zip(y.scalars, x.scalars) { XCTAssertEqual(a, -1 / b, accuracy: 1e-6) }
    }

    /// A Conv keeps at most its three inputs (data, weight, bias); a Resize without inputs is an
    /// error naming the node, not a trap.
    func testInputCountsAreChecked() throws {
        var conv = node("Conv", "c", ["x", "w", "b", "extra"], ["y"])
        var kernel = Onnx_AttributeProto()
        kernel.name = "kernel_shape"
        kernel.type = .ints
        kernel.ints = [1, 1]
        conv.attribute = [kernel]
        let g = try imported(tinyModel(opset: 13, shape: [1, 3, 8, 8], nodes: [conv],
                                       initializers: ["w": [Float](repeating: 0.5, count: 6), "b": [0.25, -0.25], "extra": [7]],
                                       initializerShapes: ["w": [2, 3, 1, 1], "b": [2], "extra": [1]]), "conv4.onnx")
        XCTAssertEqual(g.nodes.first { $0.name == "c" }?.inputs, ["x", "w", "b"])
        let resize = node("Resize", "rs", [], ["y"])
        let path = tmp.appendingPathComponent("resize0.onnx").path
        try tinyModel(opset: 13, shape: [1, 3, 8, 8], nodes: [resize]).serializedData().write(to: URL(fileURLWithPath: path))
        expectError(path, containing: ["rs"])
    }

    /// External data whose `length` disagrees with the tensor's shape is refused, naming the tensor.
    func testExternalDataLengthMustMatchTheTensor() throws {
        let side = tmp.appendingPathComponent("weights.bin")
        try Data((0..<64).map { UInt8($0) }).write(to: side)
        for (length, accepted) in [("32", true), ("24", false), ("40", false)] {
            var m = tinyModel(opset: 13, shape: [1, 3, 8, 8], nodes: [node("Add", "add", ["x", "w"], ["y"])])
            var t = Onnx_TensorProto()
            t.name = "w"
            t.dataType = 1
            t.dims = [8]
            t.dataLocation = .external
            t.externalData = [("location", "weights.bin"), ("offset", "8"), ("length", length)].map { k, v in
                var e = Onnx_StringStringEntryProto()
                e.key = k
                e.value = v
                return e
            }
            m.graph.initializer = [t]
            let path = tmp.appendingPathComponent("external\(length).onnx").path
            try m.serializedData().write(to: URL(fileURLWithPath: path))
            if accepted {
                XCTAssertNoThrow(try ONNXImporter.load(path: path), "length \(length)")
            } else {
                expectError(path, containing: ["'w'"])
            }
        }
    }
}
