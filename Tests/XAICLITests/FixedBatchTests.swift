import Foundation
import XCTest
import XAI
import XAITestSupport

/// A model exported without a dynamic batch axis (`torch.onnx.export`'s default) fixes its batch
/// at 1, in its input and in the reshapes traced at that batch (Tools/make_fixed_batch_fixtures.py:
/// the architecture fixtures' ViT). Every method runs on it, one copy and one image at a time.
final class FixedBatchTests: XCTestCase {
    let folder = fixturesDirectory + "/fixed_batch/vit"

    /// Each method the registry builds explains two images with the fixed-batch export, and gives
    /// what it gives with the same network exported with a dynamic batch, image by image; the
    /// graph itself refuses two images, saying why.
    func testMethodsRunOneImageAndOneCopyAtATime() throws {
        let input = try NPY.read(folder + "/input.npy")
        let fixed = try ExplainedModel(graph: try ONNXImporter.load(path: folder + "/model.onnx").optimized(), backend: CPUBackend())
        let dynamic = try ExplainedModel(graph: try ONNXImporter.load(path: fixturesDirectory + "/architectures/vit_torchscript/model.onnx").optimized(),
                                         backend: CPUBackend())
        XCTAssertEqual(fixed.fixedBatch, 1)
        XCTAssertNil(dynamic.fixedBatch)
        XCTAssertThrowsError(try fixed.executor.forward(try fixed.backend.upload(input))) { error in
            XCTAssertTrue("\(error)".contains("batch is fixed at 1"), "\(error)")
        }
        // The model's logits of a batch: one image at a time.
        let logits = try NPY.read(folder + "/logits.npy")
        XCTAssertLessThan(relativeL2(try fixed.logits(try fixed.backend.upload(input)).scalars.map(Double.init), logits.scalars.map(Double.init)), 1e-5)
        XCTAssertEqual(try fixed.batchSize(requested: 64, bytesPerItem: 1, cap: 100, parameter: "batch"), 1)
        XCTAssertEqual(try fixed.batchSize(requested: nil, bytesPerItem: 1, cap: 100, parameter: "batch"), 1)
        XCTAssertThrowsError(try fixed.batchSize(requested: 0, bytesPerItem: 1, cap: 100, parameter: "batch"))
        var c = MethodConfiguration()
        (c.samples, c.steps, c.masks, c.iterations, c.batch) = (24, 8, 24, 3, 16)
        let targets = [1, 3]
        let methods = try MethodRegistry.expand("all", model: fixed)
        XCTAssertEqual(methods, try MethodRegistry.expand("all", model: dynamic))
        XCTAssertGreaterThan(methods.count, 20)
        for name in methods {
            let got = try MethodRegistry.make(name, model: fixed, configuration: c).method.attribute(input, target: .perImage(targets), baseline: .zero)
            let method = try MethodRegistry.make(name, model: dynamic, configuration: c).method
            let want = try Attribution.joined((0..<2).map { b in
                try method.attribute(try input.sliced(starts: [b, 0, 0, 0], sizes: [1, 3, 32, 32]), target: .index(targets[b]), baseline: .zero)
            })
            XCTAssertEqual(got.targets, targets, name)
            XCTAssertEqual(got.map.shape, [2, 32, 32], name)
            XCTAssertLessThan(relativeL2(got.map.scalars.map(Double.init), want.map.scalars.map(Double.init)), 1e-5, name)
        }
    }

    /// DeepLiftShap runs an image against its baselines in one batch: on a graph fixed at batch 1
    /// it takes one baseline, and refuses several naming the baseline.
    func testDeepLiftShapTakesOneBaselineWhereTheBatchIsFixed() throws {
        var graph = try ONNXImporter.load(path: fixturesDirectory + "/models/small_resnet/model.onnx").optimized()
        graph.inputs[0].shape[0] = 1
        let model = try ExplainedModel(graph: graph, backend: CPUBackend())
        XCTAssertEqual(model.fixedBatch, 1)
        let input = try NPY.read(fixturesDirectory + "/models/small_resnet/input.npy")
        let dims = Array(input.shape.dims.dropFirst())
        let one = Tensor.uniform(Shape([1] + dims), in: -1...1, seed: 5), two = Tensor.uniform(Shape([2] + dims), in: -1...1, seed: 6)
        let method = DeepLIFT(model: model, overBaselines: true), image = try input.sliced(starts: [0, 0, 0, 0], sizes: [1] + dims)
        XCTAssertEqual(try method.attribute(image, target: .predicted, baseline: .tensor(one)).map.shape[0], 1)
        XCTAssertThrowsError(try method.attribute(image, target: .predicted, baseline: .tensor(two))) { error in
            XCTAssertTrue("\(error)".contains("baseline") && "\(error)".contains("fixes its batch at 1"), "\(error)")
        }
    }

    /// Joining one-image explanations undoes splitting them: maps, raw tensors, targets, scores,
    /// diagnostics and segments.
    func testJoiningUndoesSplitting() throws {
        let model = try ExplainedModel(graph: try ONNXImporter.load(path: fixturesDirectory + "/models/small_resnet/model.onnx").optimized(),
                                       backend: CPUBackend())
        let input = try NPY.read(fixturesDirectory + "/models/small_resnet/input.npy")
        var c = MethodConfiguration()
        (c.samples, c.segmentation, c.segments) = (32, "grid", 4)
        for name in ["ig", "lime"] {
            let a = try MethodRegistry.make(name, model: model, configuration: c).method.attribute(input, target: .predicted, baseline: .zero)
            let n = a.targets.count
            let joined = try Attribution.joined(try (0..<n).map { try a.image($0, of: n) })
            XCTAssertEqual(joined.map.scalars, a.map.scalars, name)
            XCTAssertEqual(joined.map.shape, a.map.shape, name)
            XCTAssertEqual(joined.raw?.scalars, a.raw?.scalars, name)
            XCTAssertEqual(joined.segments?.scalars, a.segments?.scalars, name)
            XCTAssertEqual(joined.targets, a.targets, name)
            XCTAssertEqual(joined.scores, a.scores, name)
            XCTAssertEqual(joined.diagnostics, a.diagnostics, name)
            XCTAssertFalse(a.diagnostics.isEmpty, name)
        }
        XCTAssertThrowsError(try Attribution.joined([]))
    }
}
