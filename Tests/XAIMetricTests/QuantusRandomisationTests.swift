import Foundation
import XCTest
import XAI
import XAITestSupport

/// MPRT, smooth MPRT and efficient MPRT against Quantus 0.6.0 (Tools/make_quantus_randomisation_fixtures.py),
/// on the CPU and on OpenCL: Gradient x Input on the small ResNet, the randomised models xai's
/// (rebuilt by the script and handed to Quantus in place of its own randomisation).
final class QuantusRandomisationTests: XCTestCase, MetricFixtures {
    var sub: String { folder + "/quantus_randomisation" }

    func fixture() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sub + "/expected.json"))) as? [String: Any])
    }

    /// Quantus's per-stage similarities, `[stage][image]`, in the stages' order.
    func stages(_ entry: Any?) throws -> [[Double]] {
        let stages = try XCTUnwrap((entry as? [String: Any])?["stages"] as? [String: [Double]])
        return stages.keys.sorted().map { stages[$0] ?? [] }
    }

    func inputXGradient(_ model: ExplainedModel, _ image: Tensor, _ target: Int) throws -> Tensor {
        let m = try MethodRegistry.make("inputxgrad", model: model, configuration: MethodConfiguration())
        return try m.method.attribute(image, target: .index(target), baseline: m.baseline).map
    }

    func testRandomisationTestsMatchQuantus() throws {
        let f = try fixture()
        let seed = UInt64(try XCTUnwrap(f["seed"] as? Int)), steps = try XCTUnwrap(f["steps"] as? Int)
        let samples = try XCTUnwrap(f["samples"] as? Int), noise = Float(try XCTUnwrap(f["noise"] as? Double))
        let x = try images, torchMaps = try NPY.read(sub + "/maps.npy")
        let firstNoise = Tensor.gaussian([4], seed: ModelRandomisation.Smoothing.noiseSeed(seed, image: 0, copy: 0))
        for (g, want) in zip(firstNoise.scalars, try XCTUnwrap((f["smooth_mprt"] as? [String: Any])?["noise_first_values"] as? [Double])) {
            XCTAssertEqual(Double(g), want, accuracy: 1e-7, "the noise stream the fixture re-made")
        }
        var pairs: [String: [(Double, Double)]] = [:]
        for (label, backend) in try TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            XCTAssertEqual(ModelRandomisation.layers(model.graph).map(\.node), try XCTUnwrap(f["layers"] as? [String]))
            let targets = try XCTUnwrap(f["targets"] as? [Int])
            // The maps explain each image's own predicted class.
            let own = try Tensor(unchecked: [2, 64, 64], (0..<2).flatMap { b in try inputXGradient(model, try ExplainedModel.image(x, b), targets[b]).scalars })
            for (a, b) in zip(own.scalars, torchMaps.scalars) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b)), "Gradient x Input against torch on \(label)") }

            let mprt = try ModelRandomisation(steps: steps, seed: seed).evaluate(model: model, images: x, maps: own, target: .perImage(targets)) {
                try self.inputXGradient($0, $1, $2)
            }
            let smooth = ModelRandomisation(steps: steps, seed: seed, order: .bottomUp, smoothing: .init(samples: samples, noise: noise))
            let smoothed = try smooth.evaluate(model: model, images: x, maps: own, target: .perImage(targets)) { try self.inputXGradient($0, $1, $2) }
            XCTAssertEqual(smoothed.metric, "smooth_mprt")
            XCTAssertEqual(smoothed.settings["order"], "bottom-up")
            for (result, key) in [(mprt, "mprt"), (smoothed, "smooth_mprt")] {
                let want = try stages(f[key])
                XCTAssertEqual(want.count, steps)
                for b in 0..<2 {
                    let curve = try XCTUnwrap(result.curves?[b])
                    XCTAssertEqual(curve.count, steps)
                    for (stage, similarity) in curve.enumerated() {
                        // Spearman over 4096 pixels: float32 rounding of each framework moves near-ties.
                        XCTAssertEqual(similarity, want[stage][b], accuracy: 1e-4, "\(key) stage \(stage) image \(b) on \(label)")
                        pairs[key, default: []].append((similarity, want[stage][b]))
                    }
                    XCTAssertEqual(result.scores[b], curve.reduce(0, +) / Double(steps), accuracy: 1e-12, "the mean over the stages")
                }
            }

            let efficient = try EfficientModelRandomisation(bins: 100, seed: seed).evaluate(model: model, images: x, maps: own, target: .perImage(targets)) {
                try self.inputXGradient($0, $1, $2)
            }
            let e = try XCTUnwrap(f["efficient_mprt"] as? [String: Any])
            let (want, before, after) = (try XCTUnwrap(e["scores"] as? [Double]), try XCTUnwrap(e["entropy_before"] as? [Double]),
                                         try XCTUnwrap(e["entropy_after"] as? [Double]))
            for b in 0..<2 {
                let curve = try XCTUnwrap(efficient.curves?[b])
                // A value within float32 rounding of a bin edge can land in the next bin here or in
                // torch: one of 4096 values moves the entropy by about 1e-3 at most.
                XCTAssertEqual(curve[0], before[b], accuracy: 2e-3, "entropy of the map, image \(b) on \(label)")
                XCTAssertEqual(curve[1], after[b], accuracy: 2e-3, "entropy of the randomised model's map, image \(b) on \(label)")
                XCTAssertEqual(efficient.scores[b], want[b], accuracy: 1e-3, "efficient_mprt image \(b) on \(label)")
                XCTAssertEqual(efficient.scores[b], (curve[1] - curve[0]) / curve[0], accuracy: 1e-12)
                pairs["efficient_mprt", default: []].append((efficient.scores[b], want[b]))
                pairs["efficient_mprt entropies", default: []] += [(curve[0], before[b]), (curve[1], after[b])]
            }
        }
        for (key, p) in pairs.sorted(by: { $0.key < $1.key }) { agreement("\(key) vs Quantus", p) }
    }

    /// The discrete entropy bins as NumPy's histogram does, values on the edges included, and
    /// takes scipy's entropy of the counts.
    func testDiscreteEntropyMatchesNumPyAndScipy() throws {
        let f = try fixture()
        let cases = try XCTUnwrap(f["entropies"] as? [[String: Any]])
        let mapValues: [String: [Double]] = [
            "map0": Array(try NPY.read(sub + "/maps.npy").scalars.prefix(4096)).map(Double.init),
            "random_map1": Array(try NPY.read(sub + "/random_maps.npy").scalars.suffix(4096)).map(Double.init),
        ]
        var pairs: [(Double, Double)] = []
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String), bins = try XCTUnwrap(c["bins"] as? Int), want = try XCTUnwrap(c["entropy"] as? Double)
            // Written as strings: Foundation's JSON reader does not round every double exactly.
            let values = try mapValues[name] ?? XCTUnwrap(c["values"] as? [String]).map { try XCTUnwrap(Double($0)) }
            let got = EfficientModelRandomisation.discreteEntropy(values, bins: bins)
            XCTAssertEqual(got, want, accuracy: 1e-12, "\(name) in \(bins) bins")
            pairs.append((got, want))
        }
        XCTAssertEqual(EfficientModelRandomisation.discreteEntropy([2, 2, 2], bins: 10), 0, "a constant map has no entropy")
        XCTAssertEqual(EfficientModelRandomisation.discreteEntropy([0, 1], bins: 2), log(2), accuracy: 1e-15)
        agreement("discrete entropy vs numpy/scipy", pairs)
    }

    /// A map that ignores the model fails eMPRT (no rise: 0) and is NaN where it is constant; the
    /// knobs are checked before any work.
    func testEfficientAndSmoothMPRTNameWhatIsWrong() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let x = try images, maps = try NPY.read(sub + "/maps.npy")
        let blind = try EfficientModelRandomisation().evaluate(model: model, images: x, maps: maps) { _, _, _ in
            Tensor(unchecked: [64, 64], Array(maps.scalars[0..<4096]))
        }
        XCTAssertEqual(blind.scores[0], 0, accuracy: 1e-12)
        let constant = Tensor(unchecked: [2, 64, 64], [Float](repeating: 0.5, count: 8192))
        let flat = try EfficientModelRandomisation().evaluate(model: model, images: x, maps: constant) { _, _, _ in
            Tensor(unchecked: [64, 64], Array(maps.scalars[0..<4096]))
        }
        XCTAssertTrue(flat.scores.allSatisfy(\.isNaN))
        XCTAssertThrowsError(try EfficientModelRandomisation(bins: 1).evaluate(model: model, images: x, maps: maps) { _, _, _ in maps }) { error in
            guard case XAIError.invalidArgument("bins", _, _) = error else { return XCTFail("\(error)") }
        }
        for (smoothing, parameter) in [(ModelRandomisation.Smoothing(samples: 0), "samples"), (.init(noise: .nan), "noise"), (.init(noise: -1), "noise")] {
            XCTAssertThrowsError(try ModelRandomisation(smoothing: smoothing).evaluate(model: model, images: x, maps: maps) { _, _, _ in maps }) { error in
                guard case XAIError.invalidArgument(parameter, _, _) = error else { return XCTFail("\(error)") }
            }
        }
        // Bottom up, the first stage redraws the input layer alone; both orders end on the same model.
        let layers = ModelRandomisation.layers(model.graph)
        let bottom = ModelRandomisation(seed: 3, order: .bottomUp), top = ModelRandomisation(seed: 3)
        let first = bottom.randomised(model.graph, count: 1)
        let changed = model.graph.initializers.keys.filter { first.initializers[$0]?.scalars != model.graph.initializers[$0]?.scalars }
        XCTAssertEqual(Set(changed), Set(try XCTUnwrap(layers.last).parameters), "bottom-up starts at \(layers.last?.node ?? "")")
        let (fromBottom, fromTop) = (bottom.randomised(model.graph, count: layers.count), top.randomised(model.graph, count: layers.count))
        for name in model.graph.initializers.keys {
            XCTAssertEqual(fromBottom.initializers[name]?.scalars, fromTop.initializers[name]?.scalars, name)
        }
        XCTAssertThrowsError(try ModelRandomisation(smoothing: .init(samples: 2)).evaluate(model: model, images: x, maps: maps) { _, _, _ in
            Tensor(unchecked: [3], [1, 2, 3])
        }) { error in
            guard case XAIError.shapeMismatch("smooth_mprt", _, _) = error else { return XCTFail("\(error)") }
        }
    }
}
