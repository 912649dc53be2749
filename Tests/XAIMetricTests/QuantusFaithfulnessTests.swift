import Foundation
import XCTest
import XAI
import XAITestSupport

/// Region perturbation, selectivity, IROF, faithfulness estimate, monotonicity and monotonicity
/// correlation against Quantus 0.6.0 and AIX360's definition
/// (Tools/make_quantus_faithfulness_fixtures.py), on the CPU and on OpenCL; ROC AUC, top-k
/// intersection and effective complexity against Quantus on the maps alone.
final class QuantusFaithfulnessTests: XCTestCase, MetricFixtures {
    func fixture() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/quantus_faithfulness/manifest.json"))) as? [String: Any])
    }

    /// The map sets the fixture used, by name, and the index of each in maps.npy.
    func sets() throws -> [(name: String, index: Int)] {
        try XCTUnwrap(try fixture()["sets"] as? [String: Int]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The CPU and OpenCL models of the fixture; OpenCL runs one map set (`first`).
    func models() throws -> [(label: String, model: ExplainedModel)] {
        try TestBackends.all().filter { $0.0 == "cpu" || $0.0 == "opencl" }.map { ($0.0, try ExplainedModel(graph: try Models.load(modelPath), backend: $0.1)) }
    }

    /// numpy's trapezoid with unit steps (Quantus's `calculate_auc`).
    func trapezoid(_ y: ArraySlice<Double>) -> Double {
        zip(y, y.dropFirst()).reduce(0) { $0 + ($1.0 + $1.1) / 2 }
    }

    func testRegionPerturbationMatchesQuantus() throws {
        let entries = try XCTUnwrap(try fixture()["region_perturbation"] as? [[String: Any]])
        for (label, model) in try models() {
            var pairs: [(Double, Double)] = []
            for entry in entries {
                let patch = try XCTUnwrap(entry["patch"] as? Int), regions = try XCTUnwrap(entry["regions"] as? Int)
                let order = try XCTUnwrap(RegionPerturbation.Order(rawValue: try XCTUnwrap(entry["order"] as? String)))
                let curves = try XCTUnwrap(entry["curves"] as? [String: [[Double]]])
                let metric = RegionPerturbation(patchSize: patch, regions: regions, order: order, perturbationsPerEval: 9)
                for (name, k) in try sets() where label == "cpu" || name == "smooth" {
                    let r = try metric.evaluate(model: model, images: try images, maps: try maps(k))
                    let want = try XCTUnwrap(curves[name]), got = try XCTUnwrap(r.curves)
                    for b in 0..<2 {
                        XCTAssertEqual(got[b].count, want[b].count, "regions evaluated, patch \(patch)")
                        for (g, w) in zip(got[b], want[b]) { XCTAssertEqual(g, w, accuracy: 1e-6, "\(name) image \(b) patch \(patch) \(order) on \(label)") }
                        pairs += zip(got[b], want[b]).map { ($0, $1) }
                        XCTAssertEqual(r.scores[b], want[b].reduce(0, +) / Double(want[b].count + 1), accuracy: 1e-6, "AOPC")
                    }
                    XCTAssertEqual(r.direction, order == .morf ? .higherIsBetter : .lowerIsBetter)
                    XCTAssertEqual(r.metric, order == .morf ? "region_perturbation" : "region_perturbation_lerf")
                }
            }
            agreement("region perturbation curves vs Quantus 0.6 (\(label))", pairs)
        }
    }

    func testSelectivityMatchesQuantus() throws {
        let f = try fixture()
        let entries = try XCTUnwrap(f["selectivity"] as? [[String: Any]]), clean = try XCTUnwrap(f["clean_probability"] as? [Double])
        for (label, model) in try models() {
            var pairs: [(Double, Double)] = []
            for entry in entries {
                let patch = try XCTUnwrap(entry["patch"] as? Int)
                let curves = try XCTUnwrap(entry["curves"] as? [String: [[Double]]])
                for (name, k) in try sets() where label == "cpu" || name == "peaked" {
                    let r = try Selectivity(patchSize: patch).evaluate(model: model, images: try images, maps: try maps(k))
                    let want = try XCTUnwrap(curves[name]), got = try XCTUnwrap(r.curves)
                    for b in 0..<2 {
                        XCTAssertEqual(got[b].count, want[b].count + 1, "the clean image and every patch")
                        XCTAssertEqual(got[b][0], clean[b], accuracy: 1e-6, "the clean image's probability")
                        for (g, w) in zip(got[b].dropFirst(), want[b]) { XCTAssertEqual(g, w, accuracy: 1e-6, "\(name) image \(b) patch \(patch) on \(label)") }
                        pairs += zip(got[b].dropFirst(), want[b]).map { ($0, $1) }
                        // Quantus's AUC and xai's area hold the same curve.
                        XCTAssertEqual(trapezoid(got[b].dropFirst()[...]), trapezoid(want[b][...]), accuracy: 1e-4)
                        XCTAssertEqual(r.scores[b], PixelCurve.area(got[b]), accuracy: 1e-12)
                    }
                }
            }
            agreement("selectivity curves vs Quantus 0.6 (\(label))", pairs)
        }
    }

    func testIROFMatchesQuantus() throws {
        let want = try XCTUnwrap(try fixture()["irof"] as? [String: [Double]])
        let labels = try NPY.read(folder + "/quantus_faithfulness/segments.npy")
        for (label, model) in try models() {
            var pairs: [(Double, Double)] = []
            for (name, k) in try sets() where label == "cpu" || name == "random" {
                let r = try IROF(segmentation: .labels(labels), perturbationsPerEval: 5).evaluate(model: model, images: try images, maps: try maps(k))
                let curves = try XCTUnwrap(r.curves)
                for b in 0..<2 {
                    XCTAssertEqual(curves[b].count, 24, "the clean image and 23 segments")
                    XCTAssertEqual(curves[b][0], 1, "relative to the clean image")
                    // Quantus's area over the curve: S - trapz(y(x_k) / y(x), k = 1...S), unit steps.
                    let quantus = Double(curves[b].count - 1) - trapezoid(curves[b].dropFirst()[...])
                    XCTAssertEqual(quantus, try XCTUnwrap(want[name])[b], accuracy: 1e-5, "\(name) image \(b) on \(label)")
                    pairs.append((quantus, try XCTUnwrap(want[name])[b]))
                    XCTAssertEqual(r.scores[b], 1 - PixelCurve.area(curves[b]), accuracy: 1e-12)
                }
                XCTAssertEqual(r.direction, .higherIsBetter)
            }
            agreement("IROF vs Quantus 0.6 (\(label))", pairs)
        }
    }

    func testFaithfulnessEstimateMatchesQuantus() throws {
        let entries = try XCTUnwrap(try fixture()["faithfulness_estimate"] as? [[String: Any]])
        for (label, model) in try models() {
            var pairs: [(Double, Double)] = []
            for entry in entries {
                let step = try XCTUnwrap(entry["step"] as? Int), scores = try XCTUnwrap(entry["scores"] as? [String: [Double]])
                for (name, k) in try sets() where label == "cpu" || name == "smooth" {
                    let r = try FaithfulnessEstimate(step: step, perturbationsPerEval: 11).evaluate(model: model, images: try images, maps: try maps(k))
                    let want = try XCTUnwrap(scores[name])
                    // Quantus correlates in float32.
                    for b in 0..<2 { XCTAssertEqual(r.scores[b], want[b], accuracy: 1e-5, "\(name) image \(b) step \(step) on \(label)") }
                    pairs += zip(r.scores, want).map { ($0, $1) }
                }
            }
            agreement("faithfulness estimate vs Quantus 0.6 (\(label))", pairs)
        }
    }

    /// Quantus takes only steps that divide the image; with 100 (4096 = 40 * 100 + 96) the last
    /// group is short, so grouping from the top or from the bottom differ. Recomputed here from the
    /// definition: the image with each group set to zero, one forward each.
    func testFaithfulnessEstimateGroupsFromTheTopWhenTheStepDoesNotDivide() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let (logits, targets) = try model.prepare(try images, target: .predicted)
        let got = try FaithfulnessEstimate(step: 100).evaluate(model: model, images: try images, maps: try maps(0))
        for b in 0..<2 {
            let map = Array(try maps(0).scalars[(b * 4096)..<((b + 1) * 4096)])
            let image = Array(try images.scalars[(b * 3 * 4096)..<((b + 1) * 3 * 4096)])
            let order = map.indices.sorted { map[$0] != map[$1] ? map[$0] > map[$1] : $0 < $1 }
            var sums: [Double] = [], drops: [Double] = []
            for start in stride(from: 0, to: 4096, by: 100) {
                let group = order[start..<min(start + 100, 4096)]
                var copy = image
                for p in group { for c in 0..<3 { copy[c * 4096 + p] = 0 } }
                let out = try model.logits(try model.backend.upload(try Tensor(shape: [1, 3, 64, 64], scalars: copy)))
                sums.append(group.reduce(0.0) { $0 + Double(map[$1]) })
                drops.append(Double(logits.scalars[b * 10 + targets[b]]) - Double(out.scalars[targets[b]]))
            }
            XCTAssertEqual(sums.count, 41)
            XCTAssertEqual(got.scores[b], Similarity.pearson(sums, drops), accuracy: 1e-5, "image \(b)")
        }
    }

    /// Monotonicity correlation with a step that does not divide the image (Quantus takes none):
    /// the groups run from the lowest |map| up, so the last one, short, holds the highest.
    /// Recomputed here from the definition, one forward per filled copy.
    func testMonotonicityCorrelationGroupsFromTheBottomWhenTheStepDoesNotDivide() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let (logits, targets) = try model.prepare(try images, target: .predicted)
        let metric = MonotonicityCorrelation(step: 100, samples: 2, seed: 5)
        let got = try metric.evaluate(model: model, images: try images, maps: try maps(0))
        func probability(_ row: ArraySlice<Float>, _ t: Int) -> Double {
            let top = Double(row.max() ?? 0), total = row.reduce(0.0) { $0 + exp(Double($1) - top) }
            return exp(Double(row[row.startIndex + t]) - top) / total
        }
        for b in 0..<2 {
            let map = try maps(0).scalars[(b * 4096)..<((b + 1) * 4096)].map { abs(Double($0)) }
            let image = Array(try images.scalars[(b * 3 * 4096)..<((b + 1) * 3 * 4096)])
            let clean = probability(logits.scalars[(b * 10)..<((b + 1) * 10)], targets[b])
            let order = map.indices.sorted { map[$0] != map[$1] ? map[$0] < map[$1] : $0 < $1 }
            var sums: [Double] = [], effects: [Double] = []
            for start in stride(from: 0, to: 4096, by: 100) {
                let group = order[start..<min(start + 100, 4096)]
                var effect = 0.0
                for s in 0..<2 {
                    var copy = image
                    for p in group { for c in 0..<3 { copy[c * 4096 + p] = metric.fill(image: b, sample: s) } }
                    let out = try model.logits(try model.backend.upload(try Tensor(shape: [1, 3, 64, 64], scalars: copy)))
                    effect += pow(probability(out.scalars[...], targets[b]) - clean, 2) / 2
                }
                sums.append(group.reduce(0.0) { $0 + map[$1] })
                effects.append(effect)
            }
            XCTAssertEqual(sums.count, 41)
            XCTAssertEqual(got.scores[b], Similarity.spearman(sums, effects), accuracy: 1e-9, "image \(b)")
            XCTAssertEqual(got.curves?[b].count, 41)
        }
    }

    func testMonotonicityMatchesAIX360Definition() throws {
        let entries = try XCTUnwrap(try fixture()["monotonicity"] as? [[String: Any]])
        var seen = Set<Double>()
        for (label, model) in try models() {
            var pairs: [(Double, Double)] = []
            for entry in entries {
                let step = try XCTUnwrap(entry["step"] as? Int)
                let curves = try XCTUnwrap(entry["curves"] as? [String: [[Double]]]), scores = try XCTUnwrap(entry["scores"] as? [String: [Double]])
                for (name, k) in try sets() where label == "cpu" || step == 1024 {
                    let r = try Monotonicity(step: step, perturbationsPerEval: 6).evaluate(model: model, images: try images, maps: try maps(k))
                    let got = try XCTUnwrap(r.curves), want = try XCTUnwrap(curves[name])
                    for b in 0..<2 {
                        XCTAssertEqual(got[b].count, 4096 / step)
                        for (g, w) in zip(got[b], want[b]) { XCTAssertEqual(g, w, accuracy: 1e-6, "\(name) image \(b) step \(step) on \(label)") }
                        pairs += zip(got[b], want[b]).map { ($0, $1) }
                        XCTAssertEqual(r.scores[b], try XCTUnwrap(scores[name])[b], "\(name) image \(b) step \(step) on \(label)")
                        seen.insert(r.scores[b])
                    }
                }
            }
            agreement("monotonicity curves vs AIX360's definition (\(label))", pairs)
        }
        XCTAssertEqual(seen, [0, 1], "the fixture holds monotonic and non-monotonic curves")
    }

    /// Monotonicity correlation against Quantus's `MonotonicityCorrelation` given xai's draws, and
    /// each group's effect against onnxruntime.
    func testMonotonicityCorrelationMatchesQuantus() throws {
        let entries = try XCTUnwrap(try fixture()["monotonicity_correlation"] as? [[String: Any]])
        for (label, model) in try models() {
            var effects: [(Double, Double)] = [], scores: [(Double, Double)] = []
            for entry in entries {
                let step = try XCTUnwrap(entry["step"] as? Int), samples = try XCTUnwrap(entry["samples"] as? Int), seed = try XCTUnwrap(entry["seed"] as? Int)
                let metric = MonotonicityCorrelation(step: step, samples: samples, seed: UInt64(seed), perturbationsPerEval: 7)
                let fills = try XCTUnwrap(entry["fills"] as? [[Double]])
                for b in 0..<2 {
                    for s in 0..<samples { XCTAssertEqual(Double(metric.fill(image: b, sample: s)), fills[b][s], accuracy: 1e-7, "the draw the fixture re-made") }
                }
                let want = try XCTUnwrap(entry["scores"] as? [String: [Double]]), curves = try XCTUnwrap(entry["effects"] as? [String: [[Double]]])
                for (name, k) in try sets() where label == "cpu" || name == "smooth" {
                    let r = try metric.evaluate(model: model, images: try images, maps: try maps(k))
                    let got = try XCTUnwrap(r.curves)
                    for b in 0..<2 {
                        let expected = try XCTUnwrap(curves[name])[b]
                        XCTAssertEqual(got[b].count, 4096 / step, "groups")
                        // An effect is a squared change of a float32 probability: an error of 5e-7 in
                        // the probability moves it by about 1e-6 sqrt(effect).
                        for (g, w) in zip(got[b], expected) { XCTAssertEqual(g, w, accuracy: 1e-6 * w.squareRoot() + 1e-12, "\(name) image \(b) step \(step) on \(label)") }
                        effects += zip(got[b], expected).map { ($0, $1) }
                        XCTAssertEqual(r.scores[b], try XCTUnwrap(want[name])[b], accuracy: 1e-9, "\(name) image \(b) step \(step) on \(label)")
                        scores.append((r.scores[b], try XCTUnwrap(want[name])[b]))
                    }
                    XCTAssertEqual(r.direction, .higherIsBetter)
                    XCTAssertEqual(r.settings["samples"], "\(samples)")
                }
            }
            agreement("monotonicity correlation effects vs onnxruntime (\(label))", effects)
            agreement("monotonicity correlation vs Quantus 0.6 (\(label))", scores)
        }
        XCTAssertThrowsError(try MonotonicityCorrelation(step: 2048).resolvedStep(pixels: 4096), "two groups cannot be correlated")
        XCTAssertThrowsError(try MonotonicityCorrelation(samples: 0).resolvedStep(pixels: 4096))
    }

    func testROCAUCTopKAndEffectiveComplexityMatchQuantus() throws {
        let spec = try XCTUnwrap(try fixture()["map_free"] as? [String: Any])
        let auc = try XCTUnwrap(spec["roc_auc"] as? [String: [Double]])
        let tki = try XCTUnwrap(spec["top_k_intersection"] as? [String: [String: [Double]]])
        let effective = try XCTUnwrap(spec["effective_complexity"] as? [String: [String: [Double]]])
        let masks = try NPY.read(folder + "/masks.npy")
        for (name, k) in try sets() + [("tied", 1)] {
            let r = try Localisation.rocAUC(images: try images, maps: try maps(k), masks: masks)
            for b in 0..<2 { XCTAssertEqual(r.scores[b], try XCTUnwrap(auc[name])[b], accuracy: 1e-12, "AUC, \(name) image \(b)") }
            for (eps, want) in try XCTUnwrap(effective[name]) {
                XCTAssertEqual(try EffectiveComplexity(epsilon: try XCTUnwrap(Double(eps))).evaluate(images: try images, maps: try maps(k)).scores, want,
                               "effective complexity, \(name) epsilon \(eps)")
            }
            guard name != "tied" else { continue }
            for (count, want) in try XCTUnwrap(tki[name]) {
                let got = try Localisation.topKIntersection(images: try images, maps: try maps(k), masks: masks, k: Int(count)).scores
                // numpy's mean of the hits and xai's count / k differ in the last bit.
                for b in 0..<2 { XCTAssertEqual(got[b], want[b], accuracy: 1e-15, "top-k intersection, \(name) k \(count) image \(b)") }
            }
        }
        // The mask itself detects the mask perfectly, its negation never; a mask over the whole image has no ROC curve.
        XCTAssertEqual(try Localisation.rocAUC(images: try images, maps: masks, masks: masks).scores, [1, 1])
        XCTAssertEqual(try Localisation.rocAUC(images: try images, maps: try Tensor(shape: [2, 64, 64], scalars: masks.scalars.map { -$0 }), masks: masks).scores, [0, 0])
        XCTAssertTrue(try Localisation.rocAUC(images: try images, maps: try maps(0), masks: try Tensor(shape: [2, 64, 64], scalars: [Float](repeating: 1, count: 8192)))
                        .scores.allSatisfy(\.isNaN))
        XCTAssertEqual(try Localisation.topKIntersection(images: try images, maps: try maps(0), masks: masks).settings["k"], "82", "1000 at 224x224, scaled to 64x64")
        for k in [0, 4097] {
            XCTAssertThrowsError(try Localisation.topKIntersection(images: try images, maps: try maps(0), masks: masks, k: k)) { error in
                guard case XAIError.invalidArgument(let parameter, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(parameter, "k")
            }
        }
        XCTAssertEqual(try EffectiveComplexity().evaluate(images: try images, maps: try Tensor(shape: [2, 64, 64], scalars: [Float](repeating: 0, count: 8192))).scores, [0, 0])
        XCTAssertThrowsError(try EffectiveComplexity(epsilon: -1).evaluate(images: try images, maps: try maps(0)))
    }

    func testPatchGridPadsAsQuantus() throws {
        // 64 = 12 * 5 + 4: Quantus pads one column and row, after (floor(1/2) = 0 before).
        let five = try PatchGrid(size: 5, height: 64, width: 64)
        XCTAssertEqual([five.rows, five.columns, five.count], [13, 13, 169])
        XCTAssertEqual(five.labels[0], 0)
        XCTAssertEqual(five.labels[63], 12, "the last column: patch 12, one pixel short")
        XCTAssertEqual(five.labels[5 * 64], 13)
        // 64 = 10 * 6 + 4: two rows of padding, one each side, so the first patch is 5 pixels tall;
        // 68 = 11 * 6 + 2: four columns, two each side, so the first patch is 4 pixels wide.
        let six = try PatchGrid(size: 6, height: 64, width: 68)
        XCTAssertEqual([six.rows, six.columns], [11, 12])
        XCTAssertEqual(six.labels[3], 0)
        XCTAssertEqual(six.labels[4], 1, "two columns of padding before")
        XCTAssertEqual(six.labels[5 * 68], 12, "row 5 is the second patch row")
        XCTAssertEqual(six.labels[4 * 68], 0)
        let map = (0..<(64 * 68)).map { Float($0 % 7) - 2.5 }
        let sums = six.sums(map[...])
        XCTAssertEqual(sums.reduce(0, +), map.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-9)
        XCTAssertEqual(sums[0], (0..<5).reduce(0.0) { s, y in s + (0..<4).reduce(0.0) { $0 + Double(map[y * 68 + $1]) } }, accuracy: 1e-12)
        for size in [0, 65] {
            XCTAssertThrowsError(try PatchGrid(size: size, height: 64, width: 80)) { error in
                guard case XAIError.invalidArgument(let parameter, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(parameter, "patchSize")
            }
        }
    }

    func testKnobsAreCheckedAndNamed() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let cases: [(String, () throws -> MetricResult)] = [
            ("regions", { try RegionPerturbation(regions: 0).evaluate(model: model, images: try self.images, maps: try self.maps(0)) }),
            ("patchSize", { try Selectivity(patchSize: 65).evaluate(model: model, images: try self.images, maps: try self.maps(0)) }),
            ("step", { try FaithfulnessEstimate(step: 2048).evaluate(model: model, images: try self.images, maps: try self.maps(0)) }),
            ("step", { try Monotonicity(step: 0).evaluate(model: model, images: try self.images, maps: try self.maps(0)) }),
            ("step", { try Monotonicity(step: 4096).evaluate(model: model, images: try self.images, maps: try self.maps(0)) }),
        ]
        for (parameter, run) in cases {
            XCTAssertThrowsError(try run()) { error in
                guard case XAIError.invalidArgument(let p, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(p, parameter)
            }
        }
        var values = try maps(0).scalars
        values[7] = .nan
        let nan = try Tensor(shape: [2, 64, 64], scalars: values)
        XCTAssertThrowsError(try IROF(segmentation: .grid(rows: 4, columns: 4)).evaluate(model: model, images: try images, maps: nan)) { error in
            guard case XAIError.nonFinite = error else { return XCTFail("\(error)") }
        }
        XCTAssertNoThrow(try FaithfulnessEstimate(step: 1365).resolvedStep(pixels: 4096), "three groups, the last one short")
        // The registry refuses knobs that cannot fit the image before any work, naming the knob.
        var c = MetricConfiguration()
        c.patchSize = 65
        c.topK = 4097
        for (metric, knob) in [("region_perturbation", "patchSize"), ("selectivity", "patchSize"), ("top_k_intersection", "topK")] {
            XCTAssertThrowsError(try MetricRegistry.validate([metric], configuration: c, pixels: 4096)) { error in
                guard case XAIError.invalidArgument(let p, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(p, knob, metric)
            }
        }
        c.patchSize = Int.max
        XCTAssertEqual(try MetricRegistry.spec("selectivity").cost(pixels: 4096, configuration: c).evaluations, 2, "a huge patch: one patch, no overflow")
        c.patchSize = 5
        XCTAssertEqual(try MetricRegistry.spec("selectivity").cost(pixels: 4096, configuration: c).evaluations, 170, "13 x 13 patches at 64x64, and the clean image")
    }

    /// With every patch removed (regions = patches) both orders end at the same image, so their last
    /// drops agree; their first differ (LeRF removes first the patch MoRF removes last).
    func testMoRFAndLeRFMeetWhenEveryPatchIsGone() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let morf = try RegionPerturbation(patchSize: 16, regions: 16).evaluate(model: model, images: try images, maps: try maps(2))
        let lerf = try RegionPerturbation(patchSize: 16, regions: 16, order: .lerf).evaluate(model: model, images: try images, maps: try maps(2))
        for b in 0..<2 {
            XCTAssertEqual(try XCTUnwrap(morf.curves)[b].last!, try XCTUnwrap(lerf.curves)[b].last!, accuracy: 1e-7)
            XCTAssertNotEqual(try XCTUnwrap(morf.curves)[b][0], try XCTUnwrap(lerf.curves)[b][0])
        }
    }

    /// With every patch removed the copy is the substrate itself: zeros, each channel's mean over
    /// the image, the RISE blur, or the image's smallest value, so the last drop is y(image) - y(substrate), computed here apart.
    func testEveryPatchRemovedLeavesTheSubstrate() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let (logits, targets) = try model.prepare(try images, target: .predicted)
        for substrate in PixelCurve.Substrate.allCases {
            let r = try RegionPerturbation(patchSize: 16, regions: 16, substrate: substrate).evaluate(model: model, images: try images, maps: try maps(2))
            for b in 0..<2 {
                let image = try ExplainedModel.image(try images, b)
                var start: [Float]
                switch substrate {
                case .zero: start = [Float](repeating: 0, count: image.scalars.count)
                case .mean: start = (0..<3).flatMap { c in
                    [Float](repeating: Float(image.scalars[(c * 4096)..<((c + 1) * 4096)].reduce(0.0) { $0 + Double($1) } / 4096), count: 4096)
                }
                case .blur: start = try PixelCurve.blur(image).scalars
                case .black: start = [Float](repeating: image.scalars.min()!, count: image.scalars.count)
                }
                let after = try model.logits(try model.backend.upload(try Tensor(shape: [1, 3, 64, 64], scalars: start)))
                let y = ExplainedModel.probabilities(logits.scalars[(b * 10)..<((b + 1) * 10)])[targets[b]]
                let yEnd = ExplainedModel.probabilities(after.scalars)[targets[b]]
                XCTAssertEqual(try XCTUnwrap(r.curves)[b].last!, y - yEnd, accuracy: 1e-6, "\(substrate), image \(b)")
            }
        }
    }
}
