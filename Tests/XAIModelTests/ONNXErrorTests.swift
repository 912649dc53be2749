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
}
