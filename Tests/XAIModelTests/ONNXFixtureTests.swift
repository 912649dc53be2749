import Foundation
import XCTest
import XAI
import XAITestSupport

/// The committed fixtures (Tools/make_fixtures.py): our logits vs onnxruntime, our input and
/// intermediate gradients vs PyTorch, on every backend, with and without the load-time rewrites.
final class ONNXFixtureTests: XCTestCase {
    struct Fixture {
        let name: String
        let folder: String
        let taps: [String]
    }

    static let fixtures: [Fixture] = {
        let dir = fixturesDirectory + "/models"
        guard let data = FileManager.default.contents(atPath: dir + "/manifest.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let models = json["models"] as? [String: [String: Any]] else { return [] }
        return models.keys.sorted().map { name in
            Fixture(name: name, folder: dir + "/" + name, taps: models[name]!["tap_values"] as! [String])
        }
    }()

    func testFixturesArePresent() {
        XCTAssertEqual(Self.fixtures.map(\.name), ["mobile_block", "op_zoo", "plain_cnn", "small_resnet", "squeeze_block"])
    }

    func testLogitsMatchOnnxRuntimeAndGradientsMatchPyTorch() throws {
        for f in Self.fixtures {
            let raw = try ONNXImporter.load(path: f.folder + "/model.onnx")
            let input = try NPY.read(f.folder + "/input.npy")
            let logits = try NPY.read(f.folder + "/logits.npy")
            let target = try NPY.read(f.folder + "/target.npy").integers("fixture")
            let expectedGrads = try [NPY.read(f.folder + "/grad_input.npy")] + (0..<f.taps.count).map { try NPY.read(f.folder + "/grad_\($0).npy") }
            for (variant, graph) in [("optimized", try raw.optimized()), ("as exported", raw)] {
                for (label, backend) in TestBackends.all() {
                    let context = "\(f.name) (\(variant)) on \(label)"
                    let executor = Executor(graph: graph, backend: backend)
                    let x = try backend.upload(input)
                    let pass = try executor.forward(x, forBackward: true)
                    let y = try backend.download(pass.outputs[graph.outputs[0].name]!)
                    XCTAssertEqual(y.shape, logits.shape, context)
                    XCTAssertLessThan(relativeL2(doubles(y), doubles(logits)), 1e-4, "logits of \(context)")

                    var seed = Tensor(shape: y.shape)
                    for (b, t) in target.enumerated() { seed[b, t] = 1 }
                    let names = [graph.imageInput!.name] + f.taps
                    let grads = try executor.backward(pass, seeds: [graph.outputs[0].name: try backend.upload(seed)], wrt: Set(names))
                    for (name, expected) in zip(names, expectedGrads) {
                        let got = try backend.download(grads[name]!)
                        XCTAssertEqual(got.shape, expected.shape, "gradient \(name) of \(context)")
                        XCTAssertLessThan(relativeL2(doubles(got), doubles(expected)), 1e-3, "gradient \(name) of \(context)")
                    }
                }
            }
        }
    }

    /// A realistic-size export against onnxruntime: the committed SqueezeNet 1.1 (224x224) in every
    /// run, or a user's own folder given by XAI_ONNX_CHECK_DIR (model.onnx, input.npy and
    /// onnxruntime's logits.npy; e.g. a torchvision ResNet-50, too big to commit).
    func testRealisticExportMatchesOnnxRuntime() throws {
        let dir = ProcessInfo.processInfo.environment["XAI_ONNX_CHECK_DIR"] ?? fixturesDirectory + "/models/squeezenet1_1"
        let graph = try ONNXImporter.load(path: dir + "/model.onnx").optimized()
        let input = try NPY.read(dir + "/input.npy"), expected = try NPY.read(dir + "/logits.npy")
        for (label, backend) in TestBackends.all() where label != "cpu-im2col" && label != "opencl-tiled" {
            let y = try backend.download(try Executor(graph: graph, backend: backend).forward(try backend.upload(input)).output(graph.outputs[0].name))
            let error = relativeL2(doubles(y), doubles(expected))
            print("\(dir) on \(label): relative L2 error vs onnxruntime \(error)")
            XCTAssertLessThan(error, 1e-4, label)
        }
    }

    func testExternalDataLoadsTheSameWeights() throws {
        let folder = fixturesDirectory + "/models/plain_cnn"
        let inline = try ONNXImporter.load(path: folder + "/model.onnx")
        let external = try ONNXImporter.load(path: folder + "/model_external.onnx")
        XCTAssertEqual(inline.parameterCount, external.parameterCount)
        XCTAssertGreaterThan(external.parameterCount, 1000)
        let backend = CPUBackend()
        let input = try backend.upload(try NPY.read(folder + "/input.npy"))
        let a = try backend.download(try Executor(graph: try inline.optimized(), backend: backend).forward(input).outputs["logits"]!)
        let b = try backend.download(try Executor(graph: try external.optimized(), backend: backend).forward(input).outputs["logits"]!)
        XCTAssertEqual(a, b)
    }

    func testMissingExternalDataNamesTheFile() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("xai-external-\(getpid())")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let copy = tmp.appendingPathComponent("model_external.onnx").path
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/models/plain_cnn/model_external.onnx", toPath: copy)
        XCTAssertThrowsError(try ONNXImporter.load(path: copy)) { error in
            XCTAssertTrue("\(error)".contains("model_external.onnx.data"), "\(error)")
        }
    }

    func testRewritesShrinkTheGraphs() throws {
        for f in Self.fixtures {
            let raw = try ONNXImporter.load(path: f.folder + "/model.onnx")
            let optimized = try raw.optimized()
            XCTAssertLessThan(optimized.nodes.count, raw.nodes.count, f.name)
            // Batch-norm after a convolution is folded (squeeze_block keeps one after a Concat on purpose).
            let producers = optimized.producers
            for n in optimized.nodes {
                if case .batchNorm = n.op, let p = producers[n.inputs[0]], case .conv = optimized.nodes[p].op {
                    XCTFail("\(f.name): batch-norm '\(n.name)' after a convolution was not folded")
                }
                // Constants are folded; shape arithmetic stays only where it reads a run-time Shape (the batch).
                if case .constant = n.op { XCTFail("\(f.name): constant node '\(n.name)' left") }
                if n.op.isShapeArithmeticForTests, case .shape = n.op {} else if n.op.isShapeArithmeticForTests {
                    XCTAssertTrue(n.inputs.contains { producers[$0] != nil }, "\(f.name): '\(n.name)' has only constant inputs and was not folded")
                }
            }
        }
    }

    func testBatchOfTwoEqualsTwoSingleImages() throws {
        let backend = CPUBackend()
        for f in Self.fixtures {
            let graph = try ONNXImporter.load(path: f.folder + "/model.onnx").optimized()
            let executor = Executor(graph: graph, backend: backend)
            let input = try NPY.read(f.folder + "/input.npy")
            let both = try backend.download(try executor.forward(try backend.upload(input)).outputs.values.first!)
            let per = input.shape.count / 2
            for b in 0..<2 {
                let one = try Tensor(shape: Shape([1] + input.shape.dims.dropFirst()), scalars: Array(input.scalars[(b * per)..<((b + 1) * per)]))
                let y = try backend.download(try executor.forward(try backend.upload(one)).outputs.values.first!)
                let classes = y.shape.count
                XCTAssertLessThan(relativeL2(doubles(y), both.scalars[(b * classes)..<((b + 1) * classes)].map(Double.init)), 1e-5, f.name)
            }
        }
    }
}

extension Op {
    var isShapeArithmeticForTests: Bool {
        switch self {
        case .shape, .gather, .constant, .unsqueeze, .squeeze: return true
        default: return false
        }
    }
}
