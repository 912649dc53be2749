import Foundation
import XCTest
import XAI
import XAITestSupport

/// The metrics against independent implementations (Tools/make_metric_fixtures.py): the RISE
/// authors' deletion/insertion protocol in numpy + onnxruntime, and Quantus 0.6.
final class MetricReferenceTests: XCTestCase, MetricFixtures {
    func testInsertionStartIsTheAuthorsBlur() throws {
        let expected = try NPY.read(folder + "/blurred.npy")
        let got = try PixelCurve.blur(try images)
        XCTAssertEqual(got.shape.count, expected.shape.count)
        let worst = zip(got.scalars, expected.scalars).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-5)
    }

    func testDeletionAndInsertionMatchTheRISEProtocol() throws {
        let m = try manifest()
        let names = try XCTUnwrap(m["map_sets"] as? [String])
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            var curvePairs: [(Double, Double)] = [], areaPairs: [(Double, Double)] = []
            defer {
                agreement("deletion/insertion curves vs the RISE protocol (\(label))", curvePairs)
                agreement("deletion/insertion areas vs the RISE protocol (\(label))", areaPairs)
            }
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            // PoCL is slow: the OpenCL backend checks the default step on the tied map set.
            for step in [16, 19] where label == "cpu" || step == 19 {
                for mode in PixelCurve.Mode.allCases {
                    let curves = try NPY.read(folder + "/\(mode.rawValue)_step\(step).npy")
                    let areas = try XCTUnwrap((m[mode.rawValue] as? [String: Any])?["\(step)"] as? [[Double]])
                    let points = curves.shape[2]
                    for (k, name) in names.enumerated() where label == "cpu" || name == "tied" {
                        // Step 19 is the default at 64x64: ceil(4096 / 224).
                        let metric = PixelCurve(mode: mode, step: step == 19 ? nil : step, perturbationsPerEval: 40)
                        let r = try metric.evaluate(model: model, images: try images, maps: try maps(k))
                        XCTAssertEqual(r.settings["step"], "\(step)")
                        XCTAssertEqual(r.direction, mode == .deletion ? .lowerIsBetter : .higherIsBetter)
                        for b in 0..<2 {
                            let curve = try XCTUnwrap(r.curves?[b])
                            XCTAssertEqual(curve.count, points, "\(mode) \(name) step \(step)")
                            let want = (0..<points).map { Double(curves.scalars[(k * 2 + b) * points + $0]) }
                            let worst = zip(curve, want).map { abs($0 - $1) }.max() ?? .infinity
                            XCTAssertLessThan(worst, 2e-4, "\(mode) \(name) image \(b) step \(step) on \(label)")
                            XCTAssertEqual(r.scores[b], areas[k][b], accuracy: 1e-4, "\(mode) area \(name) image \(b) step \(step) on \(label)")
                            curvePairs += zip(curve, want).map { ($0, $1) }
                            areaPairs.append((r.scores[b], areas[k][b]))
                        }
                    }
                }
            }
        }
    }

    func testMapMetricsMatchQuantus() throws {
        let m = try manifest()
        let names = try XCTUnwrap(m["map_sets"] as? [String])
        let quantus = try XCTUnwrap(m["quantus_scores"] as? [String: [String: [Double]]])
        let masks = try NPY.read(folder + "/masks.npy")
        var pairs: [String: [(Double, Double)]] = [:]
        defer { for (metric, p) in pairs.sorted(by: { $0.key < $1.key }) { agreement("\(metric) vs Quantus 0.6", p) } }
        func close(_ got: [Double], _ want: [Double]?, _ what: String, tolerance: Double = 1e-5) {
            guard let want else { return XCTFail("\(what): no fixture") }
            pairs[String(what.split(separator: " ").dropLast().joined(separator: " ")), default: []] += zip(got, want).map { ($0, $1) }
            XCTAssertEqual(got.count, want.count, what)
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: tolerance * max(1, abs(w)), what) }
        }
        for (k, name) in names.enumerated() {
            let a = try maps(k), q = try XCTUnwrap(quantus[name])
            close(try Sparseness().evaluate(images: try images, maps: a).scores, q["sparseness"], "sparseness \(name)")
            close(try Complexity().evaluate(images: try images, maps: a).scores, q["complexity"], "complexity \(name)")
            close(try Localisation.pointingGame(images: try images, maps: a, masks: masks, tolerance: 0).scores, q["pointing_game"], "pointing game \(name)")
            let positive = Tensor(unchecked: a.shape, a.scalars.map(abs))
            close(try Localisation.relevanceMass(images: try images, maps: positive, masks: masks).scores, q["relevance_mass_of_abs"], "relevance mass \(name)")
            if name != "tied" {
                close(try Localisation.relevanceRank(images: try images, maps: a, masks: masks).scores, q["relevance_rank"], "relevance rank \(name)")
            }
        }
    }

    /// Captum's sensitivity_max on a closed-form explanation, fed xai's own noise stream.
    func testSensitivityMatchesCaptum() throws {
        let m = try manifest()
        let spec = try XCTUnwrap(m["sensitivity"] as? [String: Any])
        let cases = try XCTUnwrap(spec["cases"] as? [String: [String: [Double]]])
        let w = try NPY.read(folder + "/sensitivity_weights.npy")
        let x = try images
        let explain = { (batch: Tensor) -> Tensor in
            let per = w.shape.count
            return Tensor(unchecked: batch.shape, batch.scalars.enumerated().map { i, v in Float(tanh(Double(v)) * Double(w.scalars[i % per])) })
        }
        for (radius, expected) in cases {
            let metric = Sensitivity(radius: try XCTUnwrap(Float(radius)), samples: 10, seed: 7)
            let first = Array(metric.noise(image: 0, sample: 0, shape: [1, 3, 64, 64]).scalars.prefix(4))
            XCTAssertEqual(first, try XCTUnwrap(expected["noise_first_values"]).map { Float($0) }, "the noise stream the script re-implements")
            let r = try metric.evaluate(images: x, explain: explain)
            for (got, key) in [(r.max, "captum_sensitivity_max"), (r.max, "sensitivity_max"), (r.average, "sensitivity_avg"), (r.lipschitz, "local_lipschitz")] {
                let want = try XCTUnwrap(expected[key])
                for b in 0..<2 { XCTAssertEqual(got.scores[b], want[b], accuracy: 1e-5 * want[b], "\(key) radius \(radius) image \(b)") }
                agreement("\(key) radius \(radius) vs " + (key.hasPrefix("captum") ? "Captum 0.9" : "numpy"), zip(got.scores, want).map { ($0, $1) })
            }
            XCTAssertEqual(r.max.direction, .lowerIsBetter)
        }
    }

    /// Without noise a method re-run with its seed gives the same map: stochastic methods are
    /// compared with themselves, not with another draw.
    func testSensitivityWithoutNoiseIsZeroForStochasticMethods() throws {
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            let x = try ExplainedModel.image(try images, 0)
            var c = MethodConfiguration()
            c.samples = 32
            c.segmentation = "grid"
            c.segments = 4
            let lime = try MethodRegistry.make("lime", model: model, configuration: c)
            let target = try model.prepare(x, target: .predicted).targets[0]
            let explain = { (batch: Tensor) in try lime.method.attribute(batch, target: .index(target), baseline: lime.baseline).map }
            XCTAssertEqual(try Sensitivity(radius: 0, samples: 3).evaluate(images: x, explain: explain).max.scores, [0], "LIME on \(label)")
            c.samples = 4
            let smooth = try MethodRegistry.make("smoothgrad", model: model, configuration: c)
            XCTAssertEqual(try Sensitivity(radius: 0, samples: 3).evaluate(images: x) { batch in
                try smooth.method.attribute(batch, target: .index(target), baseline: smooth.baseline).map
            }.max.scores, [0], "SmoothGrad redraws the same noise for every copy on \(label)")
            let noisy = try Sensitivity(radius: 0.2, samples: 3).evaluate(images: x, explain: explain)
            XCTAssertGreaterThan(noisy.max.scores[0], 0, label)
            XCTAssertGreaterThanOrEqual(noisy.max.scores[0], noisy.average.scores[0], label)
            XCTAssertThrowsError(try Sensitivity(radius: -1).evaluate(images: x, explain: explain)) { error in
                guard case XAIError.invalidArgument("radius", _, _) = error else { return XCTFail("\(error)") }
            }
        }
    }

    /// Integrated Gradients' map is complete; a saliency map is not.
    func testCompletenessSeparatesCompleteMaps() throws {
        let x = try images
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            let ig = try IntegratedGradients(model: model, steps: 64).attribute(x)
            let complete = try Completeness().evaluate(model: model, images: x, maps: ig.map)
            for (b, score) in complete.scores.enumerated() {
                XCTAssertEqual(score, try XCTUnwrap(ig.diagnostics["completenessDelta"])[b], accuracy: 1e-3, label)
                XCTAssertLessThan(score, 0.01 * abs(try XCTUnwrap(ig.diagnostics["outputDifference"])[b]), label)
            }
            let saliency = try Saliency(model: model).attribute(x)
            let incomplete = try Completeness().evaluate(model: model, images: x, maps: saliency.map)
            XCTAssertGreaterThan(incomplete.mean, 10 * complete.mean, label)
        }
    }

    func testLocalisationOnKnownMaps() throws {
        let x = try images
        var map = [Float](repeating: 0, count: 2 * 64 * 64), mask = [Float](repeating: 0, count: 2 * 64 * 64)
        // Image 0: the peak 3 px outside the mask (a hit at the default 4 px tolerance at 64, a miss at 0);
        // image 1: an empty mask.
        for y in 10..<20 { for x in 10..<20 { mask[y * 64 + x] = 1 } }
        map[22 * 64 + 15] = 5
        map[12 * 64 + 12] = 1
        map[15 * 64 + 15] = -3  // negative evidence inside the mask: not relevance mass
        map[4096 + 100] = 1
        let maps = Tensor(unchecked: [2, 64, 64], map), masks = Tensor(unchecked: [2, 64, 64], mask)
        let pg = try Localisation.pointingGame(images: x, maps: maps, masks: masks)
        XCTAssertEqual(pg.settings["tolerance"], "4 px")
        XCTAssertEqual(pg.scores[0], 1)
        XCTAssertTrue(pg.scores[1].isNaN, "an empty mask is neither hit nor miss")
        XCTAssertEqual(pg.count, 1)
        XCTAssertEqual(try Localisation.pointingGame(images: x, maps: maps, masks: masks, tolerance: 0).scores[0], 0)
        XCTAssertEqual(try Localisation.relevanceMass(images: x, maps: maps, masks: masks).scores[0], 1.0 / 6.0, accuracy: 1e-12)
        XCTAssertEqual(try Localisation.relevanceRank(images: x, maps: maps, masks: masks).scores[0], 1.0 / 100.0, accuracy: 1e-12)
        let constant = Tensor(unchecked: [2, 64, 64], [Float](repeating: 1, count: 2 * 4096))
        XCTAssertEqual(try Sparseness().evaluate(images: x, maps: constant).scores[0], 0, accuracy: 1e-9)
        XCTAssertEqual(try Complexity().evaluate(images: x, maps: constant).scores[0], log(4096), accuracy: 1e-9)
        let single = try Complexity().evaluate(images: x, maps: maps)
        XCTAssertLessThan(single.scores[1], 1e-9, "one pixel: no uncertainty")
        XCTAssertEqual(single.scores[0], -[5.0, 1, 3].map { $0 / 9 * log($0 / 9) }.reduce(0, +), accuracy: 1e-9)
    }

    func testMetricsNameWhatIsWrong() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let x = try images
        let wrong = Tensor(unchecked: [2, 64, 63], [Float](repeating: 0, count: 2 * 64 * 63))
        XCTAssertThrowsError(try PixelCurve(mode: .deletion).evaluate(model: model, images: x, maps: wrong)) { error in
            guard case XAIError.shapeMismatch(let op, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "deletion")
        }
        var values = [Float](repeating: 0.5, count: 2 * 4096)
        values[77] = .nan
        XCTAssertThrowsError(try Sparseness().evaluate(images: x, maps: Tensor(unchecked: [2, 64, 64], values))) { error in
            guard case XAIError.nonFinite(let what, 1) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("sparseness"), what)
        }
        XCTAssertThrowsError(try PixelCurve(mode: .insertion, step: 0).evaluate(model: model, images: x, maps: try maps(0))) { error in
            guard case XAIError.invalidArgument("step", _, _) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try Localisation.pointingGame(images: x, maps: try maps(0), masks: Tensor(unchecked: [1, 64, 64], [Float](repeating: 1, count: 4096)))) { error in
            guard case XAIError.shapeMismatch("pointing_game", _, _) = error else { return XCTFail("\(error)") }
        }
    }
}
