import Foundation
import XCTest
import XAI
import XAITestSupport

/// Relative input, output and representation stability against Quantus 0.6.0 and the paper's
/// definition (Tools/make_quantus_robustness_fixtures.py), on the CPU and on OpenCL, with a
/// closed-form explanation and xai's own noise stream.
final class QuantusRobustnessTests: XCTestCase, MetricFixtures {
    func fixture() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/quantus_robustness/manifest.json"))) as? [String: Any])
    }

    /// A list of scores, null read as NaN.
    func scores(_ value: Any?) throws -> [Double] {
        try XCTUnwrap(value as? [Any]).map { $0 is NSNull ? .nan : try XCTUnwrap($0 as? Double) }
    }

    func testRelativeStabilityMatchesQuantusAndTheDefinition() throws {
        let f = try fixture()
        let cases = try XCTUnwrap(f["cases"] as? [[String: Any]])
        let w = try NPY.read(folder + "/quantus_robustness/stability_weights.npy")
        let layer = try XCTUnwrap(f["layer"] as? String), seed = try XCTUnwrap(f["seed"] as? Int), samples = try XCTUnwrap(f["samples"] as? Int)
        let x = try images
        var quantusPairs: [String: [(Double, Double)]] = [:], referencePairs: [String: [(Double, Double)]] = [:]
        for (label, backend) in try TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            for c in cases {
                let bounds = try XCTUnwrap(c["noise"] as? [Double]), relu = try XCTUnwrap(c["relu"] as? Bool)
                let metric = RelativeStability(samples: samples, noise: Float(bounds[0])...Float(bounds[1]), layer: layer, seed: UInt64(seed))
                for (g, want) in zip(metric.noise(image: 0, sample: 0, shape: [1, 3, 64, 64]).scalars.prefix(4), try XCTUnwrap(c["noise_first_values"] as? [Double])) {
                    XCTAssertEqual(Double(g), want, accuracy: 1e-7, "the noise stream the fixture re-made")
                }
                let r = try metric.evaluate(model: model, images: x) { image, _ in self.explanation(image, w, relu: relu) }
                let reference = try XCTUnwrap(c["reference"] as? [String: Any]), quantus = try XCTUnwrap(c["quantus"] as? [String: Any])
                XCTAssertEqual(r.changedCopies, try XCTUnwrap(reference["changed"] as? [Int]), "copies that change the class, \(bounds) on \(label)")
                for (got, key) in [(r.input, "ris"), (r.output, "ros"), (r.representation, "rrs")] {
                    let want = try scores(reference[key])
                    // ROS divides by the change of the logits, small for small noise, and RRS by the
                    // relative change of post-ReLU activations, whose zeros weigh 1e6 times the
                    // rest: the float32 rounding of each framework (oneDNN, OpenCL, onnxruntime,
                    // torch) shows there, 2.3e-5 and 3.5e-5 seen. RIS reads the input itself.
                    let tolerance = key == "ros" ? 2e-4 : key == "rrs" ? 1e-4 : 1e-6
                    for b in 0..<2 {
                        if want[b].isNaN {
                            XCTAssertTrue(got.scores[b].isNaN, "\(key) image \(b): every copy changed the class, \(bounds) on \(label)")
                            continue
                        }
                        XCTAssertEqual(got.scores[b], want[b], accuracy: tolerance * abs(want[b]), "\(key) image \(b), \(bounds) relu \(relu) on \(label)")
                        referencePairs["\(key) \(label)", default: []].append((got.scores[b], want[b]))
                        // Quantus agrees where no copy changed the class (else its score is NaN).
                        let q = try scores(quantus[key])[b]
                        XCTAssertEqual(q.isNaN, r.changedCopies[b] > 0, "Quantus's NaN: \(key) image \(b), \(bounds)")
                        if !q.isNaN {
                            XCTAssertEqual(got.scores[b], q, accuracy: tolerance * abs(q), "\(key) image \(b) vs Quantus, \(bounds) on \(label)")
                            quantusPairs["\(key) \(label)", default: []].append((got.scores[b], q))
                        }
                    }
                    XCTAssertEqual(got.direction, .lowerIsBetter)
                }
                XCTAssertEqual(r.input.metric, "relative_input_stability")
                XCTAssertEqual(r.representation.settings["layer"], layer)
            }
        }
        for (k, pairs) in quantusPairs.sorted(by: { $0.key < $1.key }) { agreement("\(k) vs Quantus 0.6", pairs) }
        for (k, pairs) in referencePairs.sorted(by: { $0.key < $1.key }) { agreement("\(k) vs the definition", pairs) }
        XCTAssertGreaterThanOrEqual(quantusPairs.values.map(\.count).reduce(0, +), 2 * 3 * 3, "Quantus compared on three image-cases per metric and backend")
    }

    /// Every copy changing the class leaves the score undefined; a copy count or noise out of range
    /// is refused, naming the knob.
    func testRelativeStabilityRefusesBadKnobs() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let x = try images
        XCTAssertThrowsError(try RelativeStability(samples: 0).evaluate(model: model, images: x) { _, _ in Tensor(unchecked: [1, 64, 64], [Float](repeating: 1, count: 4096)) }) {
            guard case XAIError.invalidArgument(let p, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, "samples")
        }
        XCTAssertThrowsError(try RelativeStability(samples: 2, layer: "nope").evaluate(model: model, images: x) { _, _ in Tensor(unchecked: [1, 64, 64], [Float](repeating: 1, count: 4096)) }) {
            guard case XAIError.invalidArgument(let p, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, "layer")
        }
        XCTAssertThrowsError(try RelativeStability(noise: 0...Float.infinity).validate())
        var calls = 0
        XCTAssertThrowsError(try RelativeStability(samples: 2, noise: -0.01...0.01).evaluate(model: model, images: x) { image, _ in
            calls += 1
            return calls == 1 ? self.explanation(image, image, relu: false) : Tensor(unchecked: [1, 8], [Float](repeating: 1, count: 8))
        }) {
            guard case XAIError.shapeMismatch = $0 else { return XCTFail("\($0)") }
        }
    }
}
