import Foundation
import SwiftProtobuf
import XCTest
import XAI
import XAITestSupport
@testable import XAIONNX

/// Files and arguments a hostile or careless user could pass: each gets an error that names the
/// file, node or parameter, never a trap or an out-of-memory kill.
final class HostileInputTests: ScratchFolderTestCase {
    // MARK: ONNX

    func tensorProto(_ name: String, dims: [Int64], values: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims
        t.dataType = 1
        t.floatData = values
        return t
    }

    func node(_ op: String, _ name: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        return n
    }

    func model(_ nodes: [Onnx_NodeProto], initializers: [Onnx_TensorProto] = [], output: String, inputShape: [Int64] = [1, 3, 4, 4]) -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var op = Onnx_OperatorSetIdProto()
        op.version = 17
        m.opsetImport = [op]
        var input = Onnx_ValueInfoProto()
        input.name = "x"
        var type = Onnx_TypeProto.Tensor()
        type.elemType = 1
        var shape = Onnx_TensorShapeProto()
        shape.dim = inputShape.map { v in var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = v; return d }
        type.shape = shape
        input.type.tensorType = type
        m.graph.input = [input]
        var out = Onnx_ValueInfoProto()
        out.name = output
        m.graph.output = [out]
        m.graph.node = nodes
        m.graph.initializer = initializers
        return m
    }

    func save(_ m: Onnx_ModelProto, _ name: String) throws -> String {
        let path = tmp.appendingPathComponent(name).path
        try m.serializedData().write(to: URL(fileURLWithPath: path))
        return path
    }

    func expectError(_ path: String, code: XAIError.Code? = nil, mentioning parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Models.load(path), file: file, line: line) { error in
            guard let e = error as? XAIError else { return XCTFail("not an XAIError: \(error)", file: file, line: line) }
            if let code { XCTAssertEqual(e.code, code, "\(e)", file: file, line: line) }
            for p in parts { XCTAssertTrue("\(e)".contains(p), "'\(e)' should mention '\(p)'", file: file, line: line) }
        }
    }

    func testNegativeAndHugeInitializerShapesAreRefusedBeforeAllocating() throws {
        let negative = try save(model([node("Add", "add", ["x", "w"], ["y"])], initializers: [tensorProto("w", dims: [-3, 4], values: [])], output: "y"),
                                "negative.onnx")
        expectError(negative, mentioning: ["negative.onnx", "tensor 'w'", "negative"])
        let huge = try save(model([node("Add", "add", ["x", "w"], ["y"])], initializers: [tensorProto("w", dims: [1 << 20, 1 << 20, 1 << 10], values: [])],
                                  output: "y"), "huge.onnx")
        expectError(huge, code: .outOfMemory, mentioning: ["huge.onnx", "tensor 'w'", "allowed"])
        let overflow = try save(model([node("Add", "add", ["x", "w"], ["y"])], initializers: [tensorProto("w", dims: [Int64.max, 4], values: [])],
                                      output: "y"), "overflow.onnx")
        expectError(overflow, code: .outOfMemory, mentioning: ["overflow.onnx", "tensor 'w'"])
    }

    func testConstantOfShapeClaimingTerabytesIsRefused() throws {
        let shape = tensorProto("shape", dims: [3], values: [100_000, 100_000, 100])
        let m = model([node("ConstantOfShape", "big", ["shape"], ["c"]), node("Add", "add", ["x", "c"], ["y"])], initializers: [shape], output: "y")
        expectError(try save(m, "constant.onnx"), code: .outOfMemory, mentioning: ["constant.onnx", "node 'big'", "ConstantOfShape"])
        let negative = tensorProto("shape", dims: [2], values: [-5, 3])
        let m2 = model([node("ConstantOfShape", "neg", ["shape"], ["c"]), node("Add", "add", ["x", "c"], ["y"])], initializers: [negative], output: "y")
        expectError(try save(m2, "negative_constant.onnx"), mentioning: ["negative_constant.onnx", "node 'neg'", "negative"])
    }

    func testNodesOutOfOrderAreSortedAndCyclesNamed() throws {
        // y = relu(relu(x)) with the nodes listed backwards: imported in dependency order.
        let backwards = try save(model([node("Relu", "second", ["a"], ["y"]), node("Relu", "first", ["x"], ["a"])], output: "y"), "backwards.onnx")
        let graph = try Models.load(backwards, optimize: false)
        XCTAssertEqual(graph.nodes.map(\.name), ["first", "second"])
        let backend = CPUBackend()
        let x = Tensor.uniform([1, 3, 4, 4], seed: 1)
        let y = try backend.download(try Executor(graph: graph, backend: backend).forward(try backend.upload(x)).output("y"))
        XCTAssertEqual(y.scalars, x.scalars.map { max($0, 0) })
        let cycle = try save(model([node("Relu", "p", ["q_out"], ["p_out"]), node("Relu", "q", ["p_out"], ["q_out"]),
                                    node("Add", "add", ["x", "p_out"], ["y"])], output: "y"), "cycle.onnx")
        expectError(cycle, mentioning: ["cycle.onnx", "node 'p'", "cycle"])
        let dangling = try save(model([node("Relu", "r", ["nowhere"], ["y"])], output: "y"), "dangling.onnx")
        expectError(dangling, mentioning: ["dangling.onnx", "node 'r'", "nowhere"])
    }

    func testNodesWithTooFewInputsAreNamed() throws {
        let m = model([node("Conv", "lonely", ["x"], ["y"])], output: "y")
        expectError(try save(m, "conv.onnx"), code: .unsupported, mentioning: ["conv.onnx", "Conv node 'lonely'", "needs 2 inputs"])
    }

    // MARK: .npy

    func npy(header: String, body: [UInt8] = []) -> Data {
        var h = header
        h += String(repeating: " ", count: (64 - (10 + h.utf8.count + 1) % 64) % 64) + "\n"
        return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xff), UInt8(h.utf8.count >> 8)] + Array(h.utf8) + body)
    }

    func testMalformedNPYHeadersAreRefused() throws {
        let cases: [(String, XAIError.Code)] = [
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", .file),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 2), }", .outOfMemory),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", .outOfMemory),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, x), }", .file),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': )3(, }", .file),
            ("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", .file),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", .file),  // truncated data
        ]
        for (header, code) in cases {
            XCTAssertThrowsError(try NPY.decode(npy(header: header), path: "bad.npy"), header) { error in
                guard let e = error as? XAIError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.code, code, "\(header): \(e)")
                XCTAssertTrue("\(e)".contains("bad.npy"), "\(e)")
            }
        }
    }

    /// A tensor with NaN or infinity is refused by name in `xai predict` and `xai explain`, and the run goes on.
    func testNonFiniteInputTensorsAreNamed() throws {
        var t = Tensor.uniform([3, 64, 64], seed: 4)
        t[1, 10, 10] = .nan
        t[2, 0, 0] = .infinity
        let bad = tmp.appendingPathComponent("nan.npy").path
        try NPY.write(t, to: bad)
        let model = fixturesDirectory + "/models/small_resnet/model.onnx"
        let good = fixturesDirectory + "/models/small_resnet/input.npy"
        let predict = try runXAI(["predict", model, bad, good])
        XCTAssertEqual(predict.status, 1, predict.output + predict.error)
        XCTAssertTrue(predict.error.contains("nan.npy") && predict.error.contains("2 values are NaN or infinite"), predict.error)
        XCTAssertTrue(predict.output.contains("input_0:"), "the good file was still predicted: \(predict.output)")
        let explain = try runXAI(["explain", model, bad, "--method", "saliency", "--out", tmp.appendingPathComponent("out").path, "--quiet"])
        XCTAssertEqual(explain.status, 1, explain.output + explain.error)
        XCTAssertTrue(explain.error.contains("nan.npy"), explain.error)
    }

    // MARK: Pictures

    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~c
    }

    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let n = UInt32(data.count), c = crc32(body)
        return [UInt8(n >> 24), UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)] + body
            + [UInt8(c >> 24), UInt8(c >> 16 & 255), UInt8(c >> 8 & 255), UInt8(c & 255)]
    }

    func testPicturesClaimingHugeSizesAreRefusedBeforeDecoding() throws {
        let side: UInt32 = 100_000
        let dims = [UInt8(side >> 24), UInt8(side >> 16 & 255), UInt8(side >> 8 & 255), UInt8(side & 255)]
        let png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", dims + dims + [8, 2, 0, 0, 0]) + chunk("IDAT", [0x78, 0x9C, 3, 0, 0, 0, 0, 1])
            + chunk("IEND", [])
        XCTAssertThrowsError(try RGBImage.decode(Data(png), path: "huge.png")) { error in
            guard let e = error as? XAIError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.code, .outOfMemory, "\(e)")
            XCTAssertTrue("\(e)".contains("huge.png") && "\(e)".contains("100000x100000"), "\(e)")
        }
        // A JPEG header of 65000 x 65000 (SOF0, then the start of scan).
        let sof: [UInt8] = [0xFF, 0xC0, 0, 17, 8, 0xFD, 0xE8, 0xFD, 0xE8, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]
        let sos: [UInt8] = [0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]
        let jpeg: [UInt8] = [0xFF, 0xD8] + sof + sos + [0, 0, 0, 0xFF, 0xD9]
        XCTAssertThrowsError(try RGBImage.decode(Data(jpeg), path: "huge.jpg")) { error in
            guard let e = error as? XAIError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(e)".contains("huge.jpg"), "\(e)")
        }
    }

    // MARK: Library arguments

    func testPublicPreconditionsAreErrors() throws {
        XCTAssertThrowsError(try IntegrationRule.trapezoid.nodes(1))
        XCTAssertThrowsError(try IntegrationRule.gaussLegendre.nodes(0))
        XCTAssertNoThrow(try IntegrationRule.middle.nodes(1))
        XCTAssertThrowsError(try spearmanCorrelation([1, 2], [1]))
        XCTAssertThrowsError(try RGBImage(width: 2, height: 2, pixels: [1, 2, 3]))
        XCTAssertThrowsError(try RGBImage(width: Int.max, height: 3, pixels: []))
        XCTAssertThrowsError(try MaskSpec.rectangles([]).hostValue(sample: 0, y: 0, x: 0, height: 1, width: 1))
        let labels = try CPUBackend().upload(Tensor(shape: [2, 2]))
        XCTAssertThrowsError(try MaskSpec.segments(labels: labels, keep: [1], wordsPerSample: 1).hostValue(sample: 0, y: 0, x: 0, height: 2, width: 2))
        XCTAssertThrowsError(try Shape(validating: [3, -1]))
        XCTAssertThrowsError(try Shape(validating: [Int.max, 2]))
        XCTAssertThrowsError(try Tensor(shape: [2], scalars: [.nan, 1]).integers("x"))
        XCTAssertEqual(try Tensor(shape: [2], scalars: [9.3e18, -9.3e18]).integers("x"), [Int.max, Int.min])
    }

    /// RISE once force-unwrapped a half's sum, which is absent when every score in it is zero.
    func testRISEWithScoresThatAreAllZero() throws {
        let dir = fixturesDirectory + "/models/small_resnet"
        var graph = try Models.load(dir + "/model.onnx")
        // Zero the classifier so every logit is 0.
        for n in graph.nodes { if case .gemm = n.op { for w in n.inputs.dropFirst() { graph.initializers[w] = graph.initializers[w].map { Tensor(shape: $0.shape) } } } }
        let model = try ExplainedModel(graph: graph, backend: CPUBackend())
        let input = try ExplainedModel.image(try NPY.read(dir + "/input.npy"), 0)
        let a = try RISE(model: model, masks: 8, gridSize: 4, output: .logit).attribute(input)
        XCTAssertTrue(a.map.scalars.allSatisfy { $0 == 0 })
    }

    func testBatchesBeyondTheMemoryBudgetAreRefusedBeforeAllocating() throws {
        let dir = fixturesDirectory + "/models/small_resnet"
        let model = try ExplainedModel(graph: try Models.load(dir + "/model.onnx"), backend: CPUBackend(memoryBudget: 64 << 20))
        let input = try ExplainedModel.image(try NPY.read(dir + "/input.npy"), 0)
        XCTAssertThrowsError(try IntegratedGradients(model: model, steps: 4, internalBatchSize: 1_000_000_000).attribute(input)) { error in
            guard case XAIError.tooLarge(let what, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("batch"), what)
        }
        XCTAssertThrowsError(try Occlusion(model: model, perturbationsPerEval: 1 << 40).attribute(input)) { error in
            XCTAssertEqual((error as? XAIError)?.code, .outOfMemory, "\(error)")
        }
        // An array alone larger than the machine is refused by the CPU backend.
        XCTAssertThrowsError(try CPUBackend().filled([1 << 30, 1 << 20], value: 0)) { error in
            guard case XAIError.outOfMemory = error else { return XCTFail("\(error)") }
        }
    }

    func testNonFiniteInputsAndBaselinesAreRefused() throws {
        let dir = fixturesDirectory + "/models/small_resnet"
        let model = try ExplainedModel(graph: try Models.load(dir + "/model.onnx"), backend: CPUBackend())
        var input = try ExplainedModel.image(try NPY.read(dir + "/input.npy"), 0)
        input[0, 0, 3, 3] = .nan
        for method in [Saliency(model: model), GradientCAM(model: model), Occlusion(model: model)] as [any AttributionMethod] {
            XCTAssertThrowsError(try method.attribute(input)) { error in
                guard case XAIError.nonFinite(let what, 1) = error else { return XCTFail("\(method.name): \(error)") }
                XCTAssertEqual(what, "input images")
            }
        }
        let clean = try ExplainedModel.image(try NPY.read(dir + "/input.npy"), 0)
        XCTAssertThrowsError(try IntegratedGradients(model: model, steps: 4).attribute(clean, target: .predicted, baseline: .perChannel([0, .infinity, 0]))) { error in
            guard case XAIError.nonFinite("baseline", _) = error else { return XCTFail("\(error)") }
        }
    }
}
