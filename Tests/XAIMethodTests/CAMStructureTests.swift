import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIMethods

/// How the CAM family reads a model's structure (token grids, the linear head's weight layout) and
/// how a batch's attribution splits into images.
final class CAMStructureTests: XCTestCase {
    /// `input [N, 3, s, s] -> 1x1 conv (3 -> 4) -> global pool -> flatten -> linear (4 -> 5)`, the
    /// linear layer's weight stored `[5, 4]` (transB) or `[4, 5]`.
    func headModel(transposed: Bool, size: Int = 32, width: Int? = nil, backend: any Backend = CPUBackend()) throws -> ExplainedModel {
        let weight = Tensor.uniform([5, 4], seed: 3)
        let nodes = [
            Node(name: "conv", op: .conv(Conv2DParams(), activation: .identity, autoPad: .explicit), inputs: ["input", "w", "b"], outputs: ["c"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["c"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(transA: false, transB: transposed, alpha: 1, beta: 1, activation: .identity), inputs: ["f", "fw", "fb"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "head", inputs: [ValueInfo(name: "input", shape: [nil, 3, size, width ?? size])], outputs: [ValueInfo(name: "logits", shape: [nil, 5])],
                          initializers: ["w": .uniform([4, 3, 1, 1], seed: 1), "b": .uniform([4], seed: 2),
                                         "fw": transposed ? weight : try weight.permuted([1, 0]), "fb": .uniform([5], seed: 4)], nodes: nodes)
        return try ExplainedModel(graph: graph, backend: backend)
    }

    /// CAM reads the class weights whichever way the linear layer stores them.
    func testCAMReadsTheHeadInEitherLayout() throws {
        let x = Tensor.uniform([2, 3, 32, 32], seed: 9)
        let a = try CAM(model: try headModel(transposed: true)).attribute(x, target: .perImage([1, 4]), baseline: .zero)
        let b = try CAM(model: try headModel(transposed: false)).attribute(x, target: .perImage([1, 4]), baseline: .zero)
        XCTAssertNil(mismatch(doubles(try XCTUnwrap(b.raw)), doubles(try XCTUnwrap(a.raw)), rtol: 1e-6, atol: 1e-7))
        XCTAssertEqual(b.map, a.map)
    }

    /// Tokens split into at most 16 leading tokens and a grid of the input's aspect ratio.
    func testTokenGridsTakeAtMostSixteenLeadingTokens() throws {
        let model = try headModel(transposed: true)  // a square 32x32 input
        XCTAssertTrue(try model.tokenGrid(197).map { $0 == (1, 14, 14) } ?? false)
        XCTAssertTrue(try model.tokenGrid(100 + 16).map { $0 == (16, 10, 10) } ?? false)
        // 117 tokens: a 10x10 grid would need 17 leading tokens, and 101...117 hold no square.
        XCTAssertNil(try model.tokenGrid(100 + 17))
        XCTAssertNil(try model.tokenGrid(1))
    }

    /// One image of a batch's attribution: its slice of every tensor and per-image value, shaped as
    /// a batch of one; values shared by the batch stay whole.
    func testOneImageOfABatchIsItsSliceOfEverything() throws {
        let map = Tensor.uniform([3, 4, 5], seed: 1), raw = Tensor.uniform([3, 2, 4, 5], seed: 2), segments = Tensor.uniform([3, 4, 5], seed: 3)
        let a = Attribution(map: map, raw: raw, targets: [7, 8, 9], scores: [0.1, 0.2, 0.3],
                            diagnostics: ["perImage": [1, 2, 3], "shared": [42]], segments: segments)
        let one = try a.image(1, of: 3)
        XCTAssertEqual(one.map.shape, [1, 4, 5])
        XCTAssertEqual(one.map.scalars, Array(map.scalars[20..<40]))
        XCTAssertEqual(one.raw?.shape, [1, 2, 4, 5])
        XCTAssertEqual(one.raw?.scalars, Array(raw.scalars[40..<80]))
        XCTAssertEqual(one.segments?.scalars, Array(segments.scalars[20..<40]))
        XCTAssertEqual(one.targets, [8])
        XCTAssertEqual(one.scores, [0.2])
        XCTAssertEqual(one.diagnostics["perImage"], [2])
        XCTAssertEqual(one.diagnostics["shared"], [42])
        XCTAssertEqual(try a.image(2, of: 3).map.scalars, Array(map.scalars[40..<60]))
        XCTAssertThrowsError(try a.image(0, of: 2))
    }

    /// Guided Grad-CAM at a chosen layer is guided backpropagation times that layer's Grad-CAM
    /// (nearest-upsampled), not the default layer's.
    func testGuidedGradCAMUsesTheLayerItIsGiven() throws {
        let c = MethodReferenceTests.cases[0]
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: c.graph, backend: backend)
            let target = Target.perImage(c.targets)
            let layer = "/layer1/relu2/Relu_output_0"
            XCTAssertNotEqual(try model.camLayer(nil), layer)
            let chosen = try XCTUnwrap(try GuidedGradCAM(model: model, layer: layer).attribute(c.input, target: target).raw)
            let byDefault = try XCTUnwrap(try GuidedGradCAM(model: model).attribute(c.input, target: target).raw)
            XCTAssertNotNil(mismatch(doubles(chosen), doubles(byDefault)), "the layer must matter on \(label)")
            let guided = try XCTUnwrap(try ModifiedBackprop(model: model, kind: .guided).attribute(c.input, target: target).raw)
            let cam = try XCTUnwrap(try GradientCAM(model: model, layer: layer).attribute(c.input, target: target).raw)
            let (n, ch, h, w) = (guided.shape[0], guided.shape[1], guided.shape[2], guided.shape[3])
            let up = nearestUpsample(try cam.reshaped([n, 1, cam.shape[1], cam.shape[2]]), height: h, width: w)
            var expected = guided.scalars
            for b in 0..<n { for k in 0..<ch { for p in 0..<(h * w) { expected[(b * ch + k) * h * w + p] *= up[b * h * w + p] } } }
            XCTAssertNil(mismatch(doubles(chosen), expected.map(Double.init), rtol: 1e-5, atol: 1e-7), label)
        }
    }

    /// The perturbing CAMs on a non-square image: each map has the activation's own height and
    /// width. On a linear head Ablation-CAM is CAM up to a scale: it sets channel k to the image's
    /// smallest activation minus 1e7 (as pytorch-grad-cam does), so the logit drops by
    /// w_k (mean A_k - smallest + 1e7), which is 1e7 w_k to about 1e-6.
    func testPerturbingCAMsOnANonSquareImage() throws {
        let x = Tensor.uniform([2, 3, 12, 20], seed: 5)
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try headModel(transposed: true, size: 12, width: 20, backend: backend)
            for method in [ScoreCAM(model: model) as any AttributionMethod, AblationCAM(model: model, relu: false)] {
                let a = try method.attribute(x, target: .perImage([0, 3]), baseline: .zero)
                XCTAssertEqual(a.raw?.shape, [2, 12, 20], "\(method.name) on \(label)")
                XCTAssertEqual(a.map.shape, [2, 12, 20], "\(method.name) on \(label)")
                XCTAssertEqual(a.map.nonFiniteCount, 0, "\(method.name) on \(label)")
            }
            let cam = try XCTUnwrap(try CAM(model: model, relu: false).attribute(x, target: .perImage([0, 3]), baseline: .zero).raw)
            // The 4 channels in one batch, and in batches of 3 and 1.
            for batch in [nil, 3] {
                let ablation = try XCTUnwrap(try AblationCAM(model: model, relu: false, internalBatchSize: batch).attribute(x, target: .perImage([0, 3]), baseline: .zero).raw)
                for b in 0..<2 {
                    let p = Array(ablation.scalars[(b * 240)..<((b + 1) * 240)]).map(Double.init), q = Array(cam.scalars[(b * 240)..<((b + 1) * 240)]).map(Double.init)
                    let scale = zip(p, q).reduce(0) { $0 + $1.0 * $1.1 } / q.reduce(0) { $0 + $1 * $1 }
                    XCTAssertLessThan(relativeL2(p, q.map { $0 * scale }), 1e-4, "Ablation-CAM is CAM up to a scale on a linear head (image \(b), \(label), batch \(String(describing: batch)))")
                }
            }
        }
    }
}
