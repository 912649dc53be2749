import Foundation
import XCTest
import XAI
import XAITestSupport

/// Faithfulness correlation, infidelity, random logit and MPRT: against Quantus, Captum,
/// scikit-image and scipy (Tools/make_metric_fixtures.py), and on models where the answer is known.
final class FaithfulnessTests: XCTestCase, MetricFixtures {
    /// `input [1, 3, s, s] -> flatten -> linear (3 s^2 -> 4)`: every logit is linear in the input.
    func linearModel(_ backend: any Backend, size: Int = 12) throws -> ExplainedModel {
        let nodes = [
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["input"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["f", "fw", "fb"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "linear", inputs: [ValueInfo(name: "input", shape: [nil, 3, size, size])], outputs: [ValueInfo(name: "logits", shape: [nil, 4])],
                          initializers: ["fw": .uniform([4, 3 * size * size], seed: 11), "fb": .uniform([4], seed: 12)], nodes: nodes)
        return try ExplainedModel(graph: graph, backend: backend)
    }

    func testFaithfulnessCorrelationMatchesQuantus() throws {
        let spec = try XCTUnwrap(try manifest()["faithfulness_correlation"] as? [String: Any])
        let scores = try XCTUnwrap(spec["scores"] as? [String: [Double]])
        let names = try XCTUnwrap(try manifest()["map_sets"] as? [String])
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            let metric = FaithfulnessCorrelation(runs: try XCTUnwrap(spec["runs"] as? Int), subsetSize: try XCTUnwrap(spec["subset"] as? Int),
                                                 seed: UInt64(try XCTUnwrap(spec["seed"] as? Int)), perturbationsPerEval: 7)
            var pairs: [(Double, Double)] = []
            for (k, name) in names.enumerated() where label == "cpu" || name == "smooth" {
                let r = try metric.evaluate(model: model, images: try images, maps: try maps(k))
                let want = try XCTUnwrap(scores[name])
                for b in 0..<2 { XCTAssertEqual(r.scores[b], want[b], accuracy: 1e-4, "\(name) image \(b) on \(label)") }
                pairs += zip(r.scores, want).map { ($0, $1) }
                XCTAssertEqual(r.direction, .higherIsBetter)
            }
            agreement("faithfulness_correlation vs Quantus 0.6 (\(label))", pairs)
        }
    }

    func testInfidelityMatchesCaptum() throws {
        let spec = try XCTUnwrap(try manifest()["infidelity"] as? [String: Any])
        let scores = try XCTUnwrap(spec["scores"] as? [String: [Double]])
        let names = try XCTUnwrap(try manifest()["map_sets"] as? [String])
        let metric = Infidelity(sigma: Float(try XCTUnwrap(spec["sigma"] as? Double)), samples: try XCTUnwrap(spec["samples"] as? Int),
                                seed: UInt64(try XCTUnwrap(spec["seed"] as? Int)))
        XCTAssertEqual(Array(metric.noise(image: 0, sample: 0, height: 64, width: 64).scalars.prefix(4)),
                       try XCTUnwrap(spec["noise_first_values"] as? [Double]).map { Float($0) }, "the noise stream the script re-implements")
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            var pairs: [(Double, Double)] = []
            for (k, name) in names.enumerated() where label == "cpu" || name == "peaked" {
                let r = try metric.evaluate(model: model, images: try images, maps: try maps(k))
                let want = try XCTUnwrap(scores[name])
                for b in 0..<2 { XCTAssertEqual(r.scores[b], want[b], accuracy: 2e-3 * want[b], "\(name) image \(b) on \(label)") }
                pairs += zip(r.scores, want).map { ($0, $1) }
                XCTAssertEqual(r.direction, .lowerIsBetter)
            }
            agreement("infidelity vs Captum 0.9 (\(label))", pairs)
        }
    }

    func testSimilaritiesMatchScikitImageAndScipy() throws {
        let spec = try XCTUnwrap(try manifest()["similarity"] as? [String: Any])
        let pairs = try XCTUnwrap(spec["pairs"] as? [[Int]]), ssim = try XCTUnwrap(spec["ssim"] as? [Double])
        let rho = try XCTUnwrap(spec["spearman"] as? [Double])
        var ssimPairs: [(Double, Double)] = [], rhoPairs: [(Double, Double)] = []
        for (i, pair) in pairs.enumerated() {
            let a = Similarity.normalisedByMax(try maps(pair[0]).scalars[(pair[1] * 4096)..<((pair[1] + 1) * 4096)])
            let b = Similarity.normalisedByMax(try maps(pair[2]).scalars[(pair[3] * 4096)..<((pair[3] + 1) * 4096)])
            ssimPairs.append((Similarity.ssim(a, b, height: 64, width: 64), ssim[i]))
            rhoPairs.append((Similarity.spearman(a, b), rho[i]))
            XCTAssertEqual(ssimPairs[i].0, ssim[i], accuracy: 1e-9, "SSIM pair \(pair)")
            XCTAssertEqual(rhoPairs[i].0, rho[i], accuracy: 1e-9, "Spearman pair \(pair)")
        }
        agreement("SSIM vs scikit-image", ssimPairs)
        agreement("Spearman vs scipy", rhoPairs)
        let a = Similarity.normalisedByMax(try maps(2).scalars[0..<4096])
        XCTAssertEqual(Similarity.ssim(a, a, height: 64, width: 64), 1, accuracy: 1e-12)
        XCTAssertTrue(Similarity.ssim(Array(a[0..<36]), Array(a[0..<36]), height: 6, width: 6).isNaN, "smaller than a window")
    }

    /// On a linear model with a zero baseline, Gradient x Input is the exact effect of removing any
    /// set of pixels: faithfulness correlation 1, completeness 0. Infidelity uses the map as it is
    /// (Captum's `multiply_by_inputs=False`), so there the gradient summed over channels scores 0.
    func testGradientTimesInputIsFaithfulOnALinearModel() throws {
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try linearModel(backend)
            let x = Tensor.uniform([2, 3, 12, 12], in: -1...1, seed: 21)
            let gxi = try MethodRegistry.make("inputxgrad", model: model, configuration: MethodConfiguration())
            let a = try gxi.method.attribute(x, target: .predicted, baseline: gxi.baseline)
            let fc = try FaithfulnessCorrelation(runs: 30, subsetSize: 20, seed: 4).evaluate(model: model, images: x, maps: a.map)
            for s in fc.scores { XCTAssertEqual(s, 1, accuracy: 1e-5, label) }
            for s in try Completeness().evaluate(model: model, images: x, maps: a.map).scores { XCTAssertEqual(s, 0, accuracy: 1e-4, label) }
            let weights = Tensor.uniform([4, 3 * 144], seed: 11).scalars
            let gradient = Tensor(unchecked: a.map.shape, a.targets.flatMap { t in
                (0..<144).map { p in (0..<3).reduce(Float(0)) { $0 + weights[t * 432 + $1 * 144 + p] } }
            })
            for s in try Infidelity(samples: 8).evaluate(model: model, images: x, maps: gradient).scores { XCTAssertEqual(s, 0, accuracy: 1e-9, label) }
            XCTAssertGreaterThan(try Infidelity(samples: 8).evaluate(model: model, images: x, maps: a.map).mean, 1e-3, label)
            // A map that ignores the input's sign predicts the drops worse.
            let magnitude = Tensor(unchecked: a.map.shape, a.map.scalars.map(abs))
            let worse = try FaithfulnessCorrelation(runs: 30, subsetSize: 20, seed: 4).evaluate(model: model, images: x, maps: magnitude)
            XCTAssertLessThan(worse.mean, 0.9, label)
        }
    }

    func testSubsetsAreDistinctPixelsFromTheSeed() throws {
        let metric = FaithfulnessCorrelation(subsetSize: 50, seed: 9)
        let s = metric.subset(image: 1, run: 3, pixels: 400)
        XCTAssertEqual(Set(s).count, 50)
        XCTAssertTrue(s.allSatisfy { (0..<400).contains($0) })
        XCTAssertEqual(s, metric.subset(image: 1, run: 3, pixels: 400))
        XCTAssertNotEqual(s, metric.subset(image: 1, run: 4, pixels: 400))
        XCTAssertNotEqual(s, metric.subset(image: 0, run: 3, pixels: 400))
    }

    /// Random logit: the other class is never the target; an explainer that ignores the class
    /// scores 1, Gradient x Input on a linear model (a different weight row per class) much less.
    func testRandomLogitComparesWithAnotherClass() throws {
        let model = try linearModel(CPUBackend())
        let x = Tensor.uniform([2, 3, 12, 12], in: -1...1, seed: 22)
        let metric = RandomLogit(seed: 5)
        for t in 0..<4 {
            for b in 0..<20 {
                let other = metric.otherClass(image: b, target: t, classes: 4)
                XCTAssertNotEqual(other, t)
                XCTAssertTrue((0..<4).contains(other))
            }
        }
        let fixed = Tensor.uniform([2, 12, 12], in: 0...1, seed: 23)
        var asked: [Int] = []
        let same = try metric.evaluate(model: model, images: x, maps: fixed) { image, cls in
            asked.append(cls)
            let b = asked.count - 1
            return Tensor(unchecked: [12, 12], Array(fixed.scalars[(b * 144)..<((b + 1) * 144)]))
        }
        for s in same.ssim.scores + same.spearman.scores { XCTAssertEqual(s, 1, accuracy: 1e-9) }
        let targets = try model.prepare(x, target: .predicted).targets
        for (b, cls) in asked.enumerated() { XCTAssertNotEqual(cls, targets[b]) }
        // Gradient x Input on a linear model: W[t] * x against W[o] * x, unrelated rows.
        let gxi = try MethodRegistry.make("inputxgrad", model: model, configuration: MethodConfiguration())
        let a = try gxi.method.attribute(x, target: .predicted, baseline: gxi.baseline)
        let differs = try metric.evaluate(model: model, images: x, maps: a.map) { image, cls in
            try gxi.method.attribute(image, target: .index(cls), baseline: gxi.baseline).map
        }
        XCTAssertLessThan(differs.spearman.mean, 0.5)
        XCTAssertLessThan(differs.ssim.mean, 0.5)
    }

    /// Randomising the top layer changes Grad-CAM's map; the stages cascade to every layer.
    func testModelRandomisationChangesGradCAM() throws {
        // On the OpenCL backend too: a randomised copy must not run on weights the device cached for the original.
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            let x = try images
            let cam = try MethodRegistry.make("gradcam", model: model, configuration: MethodConfiguration())
            let maps = try cam.method.attribute(x, target: .predicted, baseline: cam.baseline).map
            let layers = ModelRandomisation.layers(model.graph)
            XCTAssertGreaterThan(layers.count, 3)
            let lastWeighted = model.graph.nodes.last { n in layers.contains { $0.node == n.name } }
            XCTAssertEqual(layers.first?.node, lastWeighted?.name, "the cascade starts at the top")
            let metric = ModelRandomisation(steps: 3, seed: 2)
            XCTAssertEqual((0..<3).map { metric.cut(stage: $0, layers: layers.count) }, [1, (layers.count + 1) / 2, layers.count])
            var calls = 0
            let r = try metric.evaluate(model: model, images: x, maps: maps) { randomised, image, target in
                calls += 1
                let m = try MethodRegistry.make("gradcam", model: randomised, configuration: MethodConfiguration())
                return try m.method.attribute(image, target: .index(target), baseline: m.baseline).map
            }
            XCTAssertEqual(calls, 6, label)
            for b in 0..<2 {
                let curve = try XCTUnwrap(r.curves?[b])
                XCTAssertEqual(curve.count, 3)
                XCTAssertLessThan(curve[0], 0.9, "the top layer randomised must change Grad-CAM (image \(b), \(label))")
            }
            // The model itself is untouched, and an explainer that ignores the weights fails the check.
            let again = try cam.method.attribute(x, target: .predicted, baseline: cam.baseline).map
            XCTAssertEqual(again.scalars, maps.scalars, "the model is untouched on \(label)")
            let blind = try metric.evaluate(model: model, images: x, maps: maps) { _, image, _ in
                Tensor(unchecked: [64, 64], Array(maps.scalars[0..<4096]))
            }
            XCTAssertEqual(blind.scores[0], 1, accuracy: 1e-9, label)
        }
    }

    func testNewMetricsNameWhatIsWrong() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let x = try images, m = try maps(0)
        XCTAssertThrowsError(try FaithfulnessCorrelation(runs: 1).evaluate(model: model, images: x, maps: m)) { error in
            guard case XAIError.invalidArgument("runs", _, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try FaithfulnessCorrelation(subsetSize: 4096).evaluate(model: model, images: x, maps: m)) { error in
            guard case XAIError.invalidArgument("subsetSize", _, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try Infidelity(sigma: .nan).evaluate(model: model, images: x, maps: m)) { error in
            guard case XAIError.invalidArgument("sigma", _, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try ModelRandomisation(steps: 0).evaluate(model: model, images: x, maps: m) { _, _, _ in m }) { error in
            guard case XAIError.invalidArgument("steps", _, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try RandomLogit().evaluate(model: model, images: x, maps: m) { _, _ in Tensor(unchecked: [3], [1, 2, 3]) }) { error in
            guard case XAIError.shapeMismatch("random_logit", _, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try Infidelity().evaluate(model: model, images: x, maps: Tensor(unchecked: [2, 8, 8], [Float](repeating: 1, count: 128)))) { error in
            guard case XAIError.shapeMismatch("infidelity", _, _) = error else { return XCTFail("\(error)") }
        }
    }
}
