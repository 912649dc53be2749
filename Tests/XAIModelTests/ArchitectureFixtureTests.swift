import Foundation
import XCTest
import XAI
import XAITestSupport

/// Today's architectures (Tools/make_architecture_fixtures.py): small instances of torchvision's
/// ViT, ConvNeXt, ShuffleNetV2 and Swin, each exported with the default (dynamo, opset 20) and the
/// TorchScript (opset 17) exporter. Our logits against onnxruntime's and our input gradients against
/// PyTorch's autograd, on every backend, as exported and rewritten.
final class ArchitectureFixtureTests: XCTestCase {
    static let directory = fixturesDirectory + "/architectures"

    static let names: [String] = {
        guard let data = FileManager.default.contents(atPath: directory + "/manifest.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let models = json["models"] as? [String: Any] else { return [] }
        return models.keys.sorted()
    }()

    func testEveryArchitectureAndExporterIsPresent() {
        XCTAssertEqual(Self.names, ["convnext_dynamo", "convnext_torchscript", "shufflenet_dynamo", "shufflenet_torchscript",
                                    "swin_dynamo", "swin_torchscript", "vit_dynamo", "vit_torchscript"])
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = Self.directory + "/" + name
        let raw = try ONNXImporter.load(path: folder + "/model.onnx")
        let input = try NPY.read(folder + "/input.npy")
        let logits = try NPY.read(folder + "/logits.npy")
        let target = try NPY.read(folder + "/target.npy").integers("fixture")
        let expected = try NPY.read(folder + "/grad_input.npy")
        for (variant, graph) in [("optimized", try raw.optimized()), ("as exported", raw)] {
            for (label, backend) in TestBackends.all() {
                let context = "\(name) (\(variant)) on \(label)"
                let executor = Executor(graph: graph, backend: backend)
                let pass = try executor.forward(try backend.upload(input), forBackward: true)
                let output = graph.outputs[0].name
                let y = try backend.download(try pass.output(output))
                XCTAssertEqual(y.shape, logits.shape, context, file: file, line: line)
                XCTAssertLessThan(relativeL2(doubles(y), doubles(logits)), 1e-4, "logits of \(context)", file: file, line: line)
                var seed = Tensor(shape: y.shape)
                for (b, t) in target.enumerated() { seed[b, t] = 1 }
                let inputName = graph.imageInput!.name
                let grads = try executor.backward(pass, seeds: [output: try backend.upload(seed)], wrt: [inputName])
                let got = try backend.download(grads[inputName]!)
                XCTAssertEqual(got.shape, expected.shape, "gradient of \(context)", file: file, line: line)
                let error = relativeL2(doubles(got), doubles(expected))
                XCTAssertLessThan(error, 1e-4, "input gradient of \(context)", file: file, line: line)
            }
        }
    }

    func testViTDynamo() throws { try check("vit_dynamo") }
    func testViTTorchScript() throws { try check("vit_torchscript") }
    func testConvNeXtDynamo() throws { try check("convnext_dynamo") }
    func testConvNeXtTorchScript() throws { try check("convnext_torchscript") }
    func testShuffleNetDynamo() throws { try check("shufflenet_dynamo") }
    func testShuffleNetTorchScript() throws { try check("shufflenet_torchscript") }
    func testSwinDynamo() throws { try check("swin_dynamo") }
    func testSwinTorchScript() throws { try check("swin_torchscript") }
}
