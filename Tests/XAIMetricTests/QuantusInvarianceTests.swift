import Foundation
import XCTest
import XAI
import XAITestSupport

/// Input invariance against Quantus 0.6.0 (Tools/make_quantus_invariance_fixtures.py), on the CPU
/// and on OpenCL: saliency and Gradient x Input on the small ResNet, the shifted model xai's
/// (rebuilt by the script and handed to Quantus in place of its own).
final class QuantusInvarianceTests: XCTestCase, MetricFixtures {
    func fixture() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/quantus_invariance/expected.json"))) as? [String: Any])
    }

    func explain(_ method: String, _ model: ExplainedModel, _ image: Tensor, _ target: Int) throws -> Tensor {
        let m = try MethodRegistry.make(method, model: model, configuration: MethodConfiguration())
        return try m.method.attribute(image, target: .index(target), baseline: m.baseline).map
    }

    func testInputInvarianceMatchesQuantus() throws {
        let f = try fixture()
        let targets = try XCTUnwrap(f["targets"] as? [Int]), cases = try XCTUnwrap(f["cases"] as? [[String: Any]])
        let x = try images
        var pairs: [(Double, Double)] = []
        for (label, backend) in try TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            for c in cases {
                let shift = try XCTUnwrap(c["shift"] as? Double), methods = try XCTUnwrap(c["methods"] as? [String: [String: Any]])
                for (method, want) in methods {
                    let maps = try Tensor(unchecked: [2, 64, 64], (0..<2).flatMap { b in try explain(method, model, try ExplainedModel.image(x, b), targets[b]).scalars })
                    let r = try InputInvariance(shift: Float(shift)).evaluate(model: model, images: x, maps: maps, target: .perImage(targets)) {
                        try self.explain(method, $0, $1, $2)
                    }
                    let quantus = try XCTUnwrap(want["quantus"] as? [Bool]), largest = try XCTUnwrap(want["largest_change"] as? [Double])
                    let relative = try XCTUnwrap(want["relative_change"] as? [Double])
                    for b in 0..<2 {
                        let what = "\(method), shift \(shift), image \(b) on \(label)"
                        XCTAssertEqual(r.scores[b], quantus[b] ? 1 : 0, what)
                        let curve = try XCTUnwrap(r.curves?[b])
                        XCTAssertLessThan(curve[2], 1e-4, "the shifted model computes the original's logits: \(what)")
                        if relative[b] == 0 {
                            // A piecewise-linear network's gradient does not see the shift at all.
                            XCTAssertLessThan(curve[0], 1e-6, what)
                        } else {
                            XCTAssertEqual(curve[0], largest[b], accuracy: 1e-4 * largest[b], what)
                            XCTAssertEqual(curve[1], relative[b], accuracy: 1e-4 * relative[b], what)
                            pairs += [(curve[0], largest[b]), (curve[1], relative[b])]
                        }
                    }
                }
            }
        }
        agreement("input invariance changes vs torch", pairs)
    }

    /// The first layer must be a convolution; the knobs are checked by name.
    func testInputInvarianceNamesWhatIsWrong() throws {
        let graph = try Models.load(modelPath)
        let model = try ExplainedModel(graph: graph, backend: CPUBackend())
        let x = try images, maps = try NPY.read(folder + "/quantus_randomisation/maps.npy")
        for (metric, parameter) in [(InputInvariance(shift: 0), "shift"), (InputInvariance(shift: .infinity), "shift"), (InputInvariance(tolerance: .nan), "tolerance")] {
            XCTAssertThrowsError(try metric.evaluate(model: model, images: x, maps: maps) { _, _, _ in maps }) { error in
                guard case XAIError.invalidArgument(parameter, _, _) = error else { return XCTFail("\(error)") }
            }
        }
        // NumPy's isclose: the tolerance is absolute plus 1e-5 relative to the second map.
        let large = Tensor(unchecked: [2, 64, 64], maps.scalars.map { $0 * 1e5 })
        let near = try InputInvariance().evaluate(model: model, images: x, maps: large) { _, _, _ in
            Tensor(unchecked: [64, 64], large.scalars[0..<4096].map { $0 * (1 + 5e-6) })
        }
        XCTAssertGreaterThan(try XCTUnwrap(near.curves?[0][0]), 1e-4, "changes over the absolute tolerance")
        XCTAssertEqual(near.scores[0], 1, "but within the relative one")
        var first = graph
        let input = try XCTUnwrap(graph.inputs.first?.name)
        first.nodes.insert(Node(name: "clip", op: .unary(.relu), inputs: [input], outputs: ["clipped"]), at: 0)
        for i in first.nodes.indices.dropFirst() {
            first.nodes[i].inputs = first.nodes[i].inputs.map { $0 == input ? "clipped" : $0 }
        }
        XCTAssertThrowsError(try InputInvariance().shiftedGraph(first, height: 64, width: 64)) { error in
            guard case XAIError.unsupported("input_invariance", let reason) = error, reason.contains("'clip'") else { return XCTFail("\(error)") }
        }
        // The padding moves into a Pad filled with the shift; the rest of the graph is untouched.
        let shifted = try InputInvariance(shift: 0.5).shiftedGraph(graph, height: 64, width: 64)
        XCTAssertEqual(shifted.nodes.count, graph.nodes.count + 1)
        XCTAssertEqual(shifted.nodes.first?.op, .pad)
        XCTAssertEqual(Array(shifted.nodes.dropFirst(2)), Array(graph.nodes.dropFirst()))
    }
}
