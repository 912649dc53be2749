import Foundation
import XCTest
import XAI
import XAITestSupport

/// ROAD against pytorch-grad-cam 1.5.7 (Tools/make_road_fixtures.py: its `ROADCombined` and the
/// averages of each order, its `NoisyLinearImputer` without noise) on the small_resnet fixture,
/// and the imputation against its defining equations; the confidence metrics (Average Drop,
/// Increase in Confidence) against its `DropInConfidence` and `IncreaseInConfidence`.
final class CAMMetricTests: XCTestCase, MetricFixtures {
    private var roadFolder: String { folder + "/road" }

    private func roadManifest() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: roadFolder + "/manifest.json"))) as? [String: Any])
    }

    /// Map set `k` (0 uniform, 1 smooth), `[2, 64, 64]`.
    private func roadMaps(_ k: Int) throws -> Tensor {
        let all = try NPY.read(roadFolder + "/maps.npy")
        let per = all.shape.count / all.shape[0]
        return Tensor(unchecked: Shape(Array(all.shape.dims.dropFirst())), Array(all.scalars[(k * per)..<((k + 1) * per)]))
    }

    func testROADMatchesPytorchGradCam() throws {
        let m = try roadManifest()
        let sets = try XCTUnwrap(m["percentile_sets"] as? [String: [Int]])
        let scores = try XCTUnwrap(m["scores"] as? [String: [String: [Double]]])
        let targets = try XCTUnwrap(m["targets"] as? [Int])
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            var pairs: [String: [(Double, Double)]] = [:]
            for score in ROAD.Score.allCases {
                for (k, name) in ["uniform", "smooth"].enumerated() {
                    // PoCL is slow: the OpenCL backend checks the default percentiles on the smooth maps.
                    for (setName, percentiles) in sets where label == "cpu" || (setName == "default" && name == "smooth") {
                        let road = ROAD(percentiles: percentiles, noise: 0, score: score)
                        let r = try road.evaluate(model: model, images: try images, maps: try roadMaps(k), target: .perImage(targets))
                        let expected = try XCTUnwrap(scores["\(score.rawValue)/\(name)/\(setName)"])
                        for (metric, result) in [("road_morf", r.morf), ("road_lerf", r.lerf), ("road", r.combined)] {
                            let reference = try XCTUnwrap(expected[metric])
                            XCTAssertEqual(result.metric, metric)
                            // Seen: 1.3e-6 (logit) and 3.3e-7 (probability) on the CPU backend.
                            let tolerance = score == .logit ? 2e-5 : 5e-6
                            for b in 0..<2 {
                                XCTAssertEqual(result.scores[b], reference[b], accuracy: tolerance, "\(label) \(score) \(name) \(setName) \(metric) image \(b)")
                                pairs[score.rawValue, default: []].append((result.scores[b], reference[b]))
                            }
                        }
                        XCTAssertEqual(r.morf.direction, .lowerIsBetter)
                        XCTAssertEqual(r.lerf.direction, .higherIsBetter)
                        XCTAssertEqual(r.combined.direction, .higherIsBetter)
                    }
                }
            }
            for (score, p) in pairs { agreement("ROAD \(score) vs pytorch-grad-cam (\(label))", p) }
        }
    }

    func testImputationMatchesTheROADAuthorsImputer() throws {
        let expected = try NPY.read(roadFolder + "/imputed.npy")
        let image = try ExplainedModel.image(try images, 0)
        let map = try roadMaps(1)
        let pixels = 64 * 64
        let slice = map.scalars[0..<pixels]
        for (k, (percentile, order)) in [(30, ROAD.Order.mostRelevantFirst), (70, .leastRelevantFirst)].enumerated() {
            let keep = ROAD.kept(slice, percentile: percentile, order: order)
            let got = try LinearImputation.impute(image.scalars, channels: 3, height: 64, width: 64, keep: keep)
            let reference = expected.scalars[(k * 3 * pixels)..<((k + 1) * 3 * pixels)]
            let worst = zip(got, reference).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            print(String(format: "agreement ROAD imputation vs pytorch-grad-cam (%d): max abs error %.2e", percentile, worst))
            XCTAssertLessThan(worst, 1e-5)
        }
    }

    /// Every imputed pixel is the weighted mean of its neighbours inside the image (known ones
    /// with their values, imputed ones with theirs), checked in float64; kept pixels keep their
    /// values; a constant image stays constant.
    func testImputedPixelsSolveTheNeighbourEquations() throws {
        let (c, h, w) = (2, 23, 31)
        let image = Tensor.uniform(Shape([c, h, w]), in: -2...3, seed: 41).scalars
        var generator = SeededGenerator(seed: 42)
        // Removed pixels in blobs and single holes, the image's edges and corners among them.
        let keep = (0..<(h * w)).map { p -> Bool in
            let (y, x) = (p / w, p % w)
            if y < 4 && x < 6 { return false }
            if (y - 12) * (y - 12) + (x - 20) * (x - 20) < 30 { return false }
            return generator.next() % 4 != 0
        }
        let out = try LinearImputation.impute(image, channels: c, height: h, width: w, keep: keep)
        let weights: [(Int, Int, Double)] = [(1, 1, 1.0 / 12), (0, 1, 1.0 / 6), (-1, 1, 1.0 / 12), (1, -1, 1.0 / 12),
                                             (0, -1, 1.0 / 6), (-1, -1, 1.0 / 12), (1, 0, 1.0 / 6), (-1, 0, 1.0 / 6)]
        var worst = 0.0
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let p = y * w + x
                    if keep[p] { XCTAssertEqual(out[ch * h * w + p], image[ch * h * w + p]); continue }
                    var sum = 0.0, total = 0.0
                    for (dy, dx, weight) in weights where y + dy >= 0 && y + dy < h && x + dx >= 0 && x + dx < w {
                        sum += weight * Double(out[ch * h * w + (y + dy) * w + x + dx])
                        total += weight
                    }
                    worst = max(worst, abs(sum / total - Double(out[ch * h * w + p])))
                }
            }
        }
        XCTAssertLessThan(worst, 1e-5)
        let constant = try LinearImputation.impute([Float](repeating: 0.75, count: h * w), channels: 1, height: h, width: w, keep: keep)
        XCTAssertLessThan(constant.map { abs(Double($0) - 0.75) }.max() ?? 1, 1e-6)
        XCTAssertThrowsError(try LinearImputation.impute(image, channels: c, height: h, width: w, keep: [Bool](repeating: false, count: h * w)))
    }

    /// The count kept at percentile p is pytorch-grad-cam's on a tie-free map, ceil(p (n - 1) /
    /// 100); ties go by pixel index, so a constant map keeps the first pixels (MoRF and LeRF alike).
    func testKeptPixelsFollowThePercentileAndBreakTiesByIndex() {
        let n = 50
        let values = (0..<n).map { Float(($0 * 37) % n) }[...]
        for p in [1, 10, 33, 50, 98, 99] {
            let count = Int((Double(p) * Double(n - 1) / 100).rounded(.up))
            let morf = ROAD.kept(values, percentile: p, order: .mostRelevantFirst)
            let lerf = ROAD.kept(values, percentile: p, order: .leastRelevantFirst)
            XCTAssertEqual(morf.filter { $0 }.count, count, "p \(p)")
            XCTAssertEqual(lerf.filter { $0 }.count, count, "p \(p)")
            // MoRF keeps the lowest values, LeRF the highest.
            XCTAssertEqual(Set(values.indices.filter { morf[$0] }.map { values[$0] }), Set((0..<count).map(Float.init)))
            XCTAssertEqual(Set(values.indices.filter { lerf[$0] }.map { values[$0] }), Set(((n - count)..<n).map(Float.init)))
        }
        let constant = [Float](repeating: 0, count: n)[...]
        XCTAssertEqual(ROAD.kept(constant, percentile: 20, order: .mostRelevantFirst), (0..<n).map { $0 < 10 })
        XCTAssertEqual(ROAD.kept(constant, percentile: 20, order: .leastRelevantFirst), (0..<n).map { $0 < 10 })
    }

    /// With noise, run r of image b adds `Tensor.gaussian([C, H, W], std, seed + 1000003 b + r)` at
    /// the removed pixels only: the scores are those of images built that way by hand.
    func testNoiseIsTheSeededStreamAtTheRemovedPixels() throws {
        let backend = try Backends.make(.cpu)
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
        let x = try images, maps = try roadMaps(1)
        let road = ROAD(percentiles: [25, 60], noise: 0.3, score: .logit, seed: 11)
        let r = try road.evaluate(model: model, images: x, maps: maps, target: .perImage([3, 5]))
        let noiseless = try ROAD(percentiles: [25, 60], noise: 0, score: .logit, seed: 11).evaluate(model: model, images: x, maps: maps, target: .perImage([3, 5]))
        let pixels = 64 * 64
        for b in 0..<2 {
            let image = try ExplainedModel.image(x, b)
            let clean = try model.logits(try backend.upload(image)).scalars[b == 0 ? 3 : 5]
            var changes: [Double] = []
            for (r, (p, order)) in [(25, ROAD.Order.mostRelevantFirst), (60, .mostRelevantFirst), (25, .leastRelevantFirst), (60, .leastRelevantFirst)].enumerated() {
                let keep = ROAD.kept(maps.scalars[(b * pixels)..<((b + 1) * pixels)], percentile: p, order: order)
                var imputed = try LinearImputation.impute(image.scalars, channels: 3, height: 64, width: 64, keep: keep)
                let z = Tensor.gaussian(Shape([3, 64, 64]), std: 0.3, seed: 11 &+ 1_000_003 &* UInt64(b) &+ UInt64(r)).scalars
                for c in 0..<3 { for q in 0..<pixels where !keep[q] { imputed[c * pixels + q] += z[c * pixels + q] } }
                let logit = try model.logits(try backend.upload(Tensor(unchecked: Shape([1, 3, 64, 64]), imputed))).scalars[b == 0 ? 3 : 5]
                changes.append(Double(logit) - Double(clean))
            }
            XCTAssertEqual(r.morf.scores[b], (changes[0] + changes[1]) / 2, accuracy: 1e-4)
            XCTAssertEqual(r.lerf.scores[b], (changes[2] + changes[3]) / 2, accuracy: 1e-4)
            XCTAssertNotEqual(r.morf.scores[b], noiseless.morf.scores[b], "the noise changes the scores")
        }
        XCTAssertEqual(r.morf.settings["noise"], "0.3")
    }

    func testConfidenceMetricsMatchPytorchGradCam() throws {
        let m = try roadManifest()
        let confidence = try XCTUnwrap(m["confidence"] as? [String: Any])
        let targets = try XCTUnwrap(m["targets"] as? [Int])
        let clean = try XCTUnwrap(confidence["clean_probability"] as? [Double])
        let signed = try NPY.read(roadFolder + "/signed.npy")
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            var pairs: [(Double, Double)] = []
            for (name, maps) in [("uniform", try roadMaps(0)), ("smooth", try roadMaps(1)), ("signed", signed)] {
                let expected = try XCTUnwrap(confidence[name] as? [String: [Double]])
                // Any affine change of the map with a positive scale is the same map once scaled.
                let shifted = Tensor(unchecked: maps.shape, maps.scalars.map { 3 * $0 - 1 })
                for given in [maps, shifted] {
                    let r = try ConfidenceChange().evaluate(model: model, images: try images, maps: given, target: .perImage(targets))
                    for b in 0..<2 {
                        let drop = try XCTUnwrap(expected["drop_in_confidence"])[b] / clean[b]
                        XCTAssertEqual(r.drop.scores[b], drop, accuracy: 1e-5, "\(label) \(name) image \(b)")
                        XCTAssertEqual(r.increase.scores[b], try XCTUnwrap(expected["increase_in_confidence"])[b], "\(label) \(name) image \(b)")
                        pairs.append((r.drop.scores[b], drop))
                    }
                }
            }
            // Classes whose probability rises on the image times the smooth map: no drop, an increase.
            let rising = try XCTUnwrap(confidence["rising"] as? [String: Any])
            let r = try ConfidenceChange().evaluate(model: model, images: try images, maps: try roadMaps(1), target: .perImage(try XCTUnwrap(rising["targets"] as? [Int])))
            XCTAssertEqual(r.drop.scores, try XCTUnwrap(rising["drop_in_confidence"] as? [Double]))
            XCTAssertEqual(r.increase.scores, try XCTUnwrap(rising["increase_in_confidence"] as? [Double]))
            XCTAssertEqual(r.drop.direction, .lowerIsBetter)
            XCTAssertEqual(r.increase.direction, .higherIsBetter)
            agreement("Average Drop vs pytorch-grad-cam's DropInConfidence / Y (\(label))", pairs)
        }
    }

    /// Coherency, ADCC and ARCC from the registry (the method, Grad-CAM at layer2, re-explaining)
    /// against pytorch-grad-cam's Coherency and ARCC (its ROAD noiseless, percentiles 20 to 80, on
    /// logits) with its GradCAM as the base method, on its own Grad-CAM maps; ADCC from the same
    /// parts and its DropInConfidence.
    func testCoherencyADCCAndARCCMatchPytorchGradCam() throws {
        let m = try roadManifest()
        let expected = try XCTUnwrap(m["arcc"] as? [String: Any])
        let targets = try XCTUnwrap(m["targets"] as? [Int])
        let models = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/models/manifest.json"))) as? [String: Any])
        let layer = try XCTUnwrap((((models["models"] as? [String: Any])?["small_resnet"] as? [String: Any])?["tap_values"] as? [String])?[1])
        var method = MethodConfiguration()
        method.layer = layer
        var knobs = MetricConfiguration()
        knobs.roadPercentiles = "20,40,60,80"
        knobs.roadNoise = 0
        knobs.roadScore = ROAD.Score.logit.rawValue
        // pytorch-grad-cam's rule for the pixels tied at a percentile: its upsampled Grad-CAM maps hold
        // ties (3293 values among 4096 pixels), and at 20 % one of them decides image 1's ROAD. With
        // xai's default rule (ties by index) its ARCC is 1.5e-3 from pytorch-grad-cam's.
        knobs.roadTies = ROAD.Ties.threshold.rawValue
        for (label, backend) in TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            let session = try Session(source: modelPath, model: model)
            let input = MetricInput(session: session, images: try images, maps: try NPY.read(roadFolder + "/arcc_maps.npy"), targets: targets,
                                    method: "gradcam", methodConfiguration: method)
            let outcomes = try MetricRegistry.evaluate(["coherency", "adcc", "arcc"], input: input, configuration: knobs)
            var pairs: [(Double, Double)] = []
            for (name, outcome) in outcomes {
                let reference = try XCTUnwrap(expected[name] as? [Double], name)
                XCTAssertEqual(outcome.result.direction, .higherIsBetter)
                for b in 0..<2 {
                    XCTAssertEqual(outcome.result.scores[b], reference[b], accuracy: 1e-5, "\(label) \(name) image \(b)")
                    pairs.append((outcome.result.scores[b], reference[b]))
                }
            }
            agreement("coherency, ADCC and ARCC vs pytorch-grad-cam (\(label))", pairs)
            var byIndex = knobs
            byIndex.roadTies = ROAD.Ties.index.rawValue
            let arcc = try MetricRegistry.evaluate(["arcc"], input: input, configuration: byIndex)[0].outcome.result.scores
            XCTAssertEqual(arcc[1], try XCTUnwrap(expected["arcc"] as? [Double])[1], accuracy: 3e-3)
            XCTAssertGreaterThan(abs(arcc[1] - (try XCTUnwrap(expected["arcc"] as? [Double])[1])), 1e-4, "the tie at 20 % decides")
        }
    }

    /// A re-explanation clipped to nothing (a constant map) correlates 0 with the map, as in
    /// pytorch-grad-cam's batch_pearson_coherency: coherency 0.5, not NaN, and the image stays in
    /// the mean; a re-explanation equal to the map gives 1.
    func testCoherencyOfAConstantReexplanationIsOneHalf() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: try Backends.make(.cpu))
        let maps = try roadMaps(1)
        let flat = try Coherency().evaluate(model: model, images: try images, maps: maps) { _, _ in Tensor(shape: [1, 64, 64]) }
        XCTAssertEqual(flat.coherency.scores, [0.5, 0.5])
        XCTAssertEqual(flat.coherency.count, 2)
        var call = 0
        let same = try Coherency().evaluate(model: model, images: try images, maps: maps) { _, _ in
            defer { call += 1 }
            return try ExplainedModel.image(maps, call)
        }
        // 1 but for the 1e-8 in the denominator.
        for score in same.coherency.scores { XCTAssertEqual(score, 1, accuracy: 1e-6) }
    }

    /// pytorch-grad-cam's rule keeps the pixels strictly below the percentile (numpy's linear
    /// interpolation), ties included in what goes; where every pixel ties with the threshold none
    /// stays and ROAD is NaN for that image, not an error.
    func testThresholdRuleFollowsNumpysPercentile() throws {
        let values: [Float] = [0, 0, 0, 0.25, 0.5, 0.5, 0.75, 1, 0.9, 0.1]
        let sorted = values.sorted()
        for p in [10, 20, 33, 50, 75, 90] {
            // numpy: position p/100 (n - 1), linear between the neighbours.
            let position = Double(p) / 100 * Double(values.count - 1)
            let lo = Int(position), t = position - Double(lo)
            let threshold = Double(sorted[lo]) + (Double(sorted[min(lo + 1, values.count - 1)]) - Double(sorted[lo])) * t
            XCTAssertEqual(ROAD.keptBelowThreshold(values[...], percentile: p, order: .mostRelevantFirst), values.map { Double($0) < threshold - 1e-7 }, "p \(p)")
        }
        // Three zeros of ten: at 20 % the threshold is 0 and MoRF keeps nothing.
        XCTAssertFalse(ROAD.keptBelowThreshold(values[...], percentile: 20, order: .mostRelevantFirst).contains(true))
        let backend = try Backends.make(.cpu)
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
        var zeros = try roadMaps(1).scalars
        for q in 0..<(zeros.count / 2) where q % 3 != 0 { zeros[q] = 0 }  // a third of image 0's pixels 0 and more
        let maps = Tensor(unchecked: [2, 64, 64], zeros)
        let r = try ROAD(percentiles: [20, 60], noise: 0, ties: .threshold).evaluate(model: model, images: try images, maps: maps)
        XCTAssertTrue(r.morf.scores[0].isNaN && r.combined.scores[0].isNaN, "\(r.morf.scores)")
        XCTAssertTrue(r.morf.scores[1].isFinite && r.lerf.scores[0].isFinite)
        XCTAssertEqual(r.morf.count, 1)
        let byIndex = try ROAD(percentiles: [20, 60], noise: 0).evaluate(model: model, images: try images, maps: maps)
        XCTAssertTrue(byIndex.morf.scores.allSatisfy(\.isFinite))
    }

    func testROADKnobsAreCheckedByName() throws {
        for (percentiles, noise, knob) in [("0,50", Float(0.01), "roadPercentiles"), ("10,x", 0.01, "roadPercentiles"), ("20,20", 0.01, "roadPercentiles"),
                                           ("", 0.01, "roadPercentiles"), ("10,100", 0.01, "roadPercentiles"), ("10", -1, "roadNoise"), ("10", .nan, "roadNoise")] {
            var c = MetricConfiguration()
            c.roadPercentiles = percentiles
            c.roadNoise = noise
            XCTAssertThrowsError(try MetricRegistry.validate(["road"], configuration: c, pixels: 4096), "\(percentiles) \(noise)") { error in
                XCTAssertTrue("\(error)".contains(knob), "\(error)")
            }
        }
        var c = MetricConfiguration()
        c.roadPercentiles = " 20, 80"
        c.roadScore = ROAD.Score.logit.rawValue
        XCTAssertNoThrow(try MetricRegistry.validate(["road", "road_morf"], configuration: c, pixels: 4096))
        let cost = try MetricRegistry.spec("road").cost(pixels: 4096, configuration: c)
        XCTAssertEqual(cost.evaluations, 5)
    }
}
