import Foundation
import XCTest
import XAI
import XAITestSupport

/// Continuity, non-sensitivity, attribution localisation and deletion with Quantus's "black" fill
/// against Quantus 0.6.0 and onnxruntime (Tools/make_quantus_continuity_fixtures.py), on the CPU
/// and on OpenCL.
final class QuantusContinuityTests: XCTestCase, MetricFixtures {
    var sub: String { folder + "/quantus_continuity" }

    func fixture() throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: sub + "/manifest.json"))) as? [String: Any])
    }

    /// Map set `i` of sparse_maps.npy, `[2, 64, 64]`.
    func sparseMaps(_ i: Int) throws -> Tensor { try maps(i, from: sub + "/sparse_maps.npy") }

    func testContinuityMatchesQuantus() throws {
        let f = try fixture()
        let w = try NPY.read(sub + "/continuity_weights.npy")
        let x = try images
        var pairs: [(Double, Double)] = []
        for c in try XCTUnwrap(f["continuity"] as? [[String: Any]]) {
            let steps = try XCTUnwrap(c["steps"] as? Int), relu = try XCTUnwrap(c["relu"] as? Bool)
            let want = try XCTUnwrap(c["scores"] as? [Double])
            var calls = 0
            let r = try Continuity(steps: steps).evaluate(images: x) { image, _ in
                calls += 1
                return self.explanation(image, w, relu: relu)
            }
            // The shift 0, -64 + k d for d = 129 / steps (28: k = 16; 64: k = 32), is not re-explained.
            let d = 129 / steps
            let skipsZero = 64 % d == 0 && 64 / d <= steps
            XCTAssertEqual(calls, 2 * (steps + 1 - (skipsZero ? 1 : 0)), "explanations, steps \(steps)")
            for b in 0..<2 {
                XCTAssertEqual(r.scores[b], want[b], accuracy: 1e-5 * abs(want[b]), "continuity image \(b), steps \(steps), relu \(relu)")
                pairs.append((r.scores[b], want[b]))
            }
            XCTAssertEqual(r.direction, .lowerIsBetter)
        }
        agreement("continuity vs Quantus 0.6", pairs)
        XCTAssertEqual(pairs.count, 12)
    }

    /// The translation is Quantus's: right for positive shifts, the uncovered columns at the
    /// image's smallest value, nothing of the image left once the shift reaches the width.
    func testContinuityTranslation() throws {
        let image = Tensor(unchecked: [1, 2, 2, 3], [1, 2, 3, 4, 5, 6, -1, 8, 9, 10, 11, 12])
        XCTAssertEqual(Continuity.translated(image, by: 1).scalars, [-1, 1, 2, -1, 4, 5, -1, -1, 8, -1, 10, 11])
        XCTAssertEqual(Continuity.translated(image, by: -2).scalars, [3, -1, -1, 6, -1, -1, 9, -1, -1, 12, -1, -1])
        XCTAssertEqual(Continuity.translated(image, by: 3).scalars, [Float](repeating: -1, count: 12))
        XCTAssertEqual(Continuity.translated(image, by: -4).scalars, [Float](repeating: -1, count: 12))
        XCTAssertEqual(Continuity.translated(image, by: 0).scalars, image.scalars)
        XCTAssertEqual(Continuity(steps: 28).shifts(width: 224).first, -208)
        XCTAssertEqual(Continuity(steps: 28).shifts(width: 224).last, 224)
        XCTAssertEqual(Continuity(steps: 1).shifts(width: 64), [65])
        // d = (2W + 1) / steps: 129 / 43 = 3 (2W / steps would be 2); a step count below 1, never
        // run (validate refuses it) but priced by the registry, counts as one.
        XCTAssertEqual(Continuity(steps: 43).shifts(width: 64).first, -61)
        XCTAssertEqual(Continuity(steps: 0).shifts(width: 64), [65])
        XCTAssertThrowsError(try Continuity(steps: 130).evaluate(images: try images) { image, _ in image }) {
            guard case XAIError.invalidArgument(let p, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, "steps")
        }
        XCTAssertThrowsError(try Continuity(steps: 0).validate())
        // The bounds themselves are taken: one translation (the whole image filled) and 2W + 1.
        XCTAssertNoThrow(try Continuity(steps: 1).validate(width: 64))
        XCTAssertNoThrow(try Continuity(steps: 129).validate(width: 64))
        let x = try ExplainedModel.image(try images, 0)
        let filled = Continuity.translated(x, by: 65)
        XCTAssertEqual(Set(filled.scalars), [x.scalars.min()!])
        let one = try Continuity(steps: 1).evaluate(images: x) { image, _ in image }
        // The "map" is the image itself: ||R(x) - R(filled)||_1 / ||x - filled||_2, computed here.
        // The filled image's R is 1 everywhere (a constant over its own magnitude).
        let largest = x.scalars.map { abs(Double($0)) }.max()!
        let l1 = x.scalars.reduce(0.0) { $0 + abs(abs(Double($1)) / largest - 1) }
        let l2 = x.scalars.reduce(0.0) { $0 + (Double($1) - Double(x.scalars.min()!)) * (Double($1) - Double(x.scalars.min()!)) }.squareRoot()
        XCTAssertEqual(one.scores[0], l1 / (l2 + 1e-9), accuracy: 1e-9 * l1 / l2)
    }

    /// A map that is all zero stays zero (Quantus leaves it unnormalised), so a translation whose
    /// map is not zero scores against zeros; a translation that leaves the image as it was (a
    /// constant image) divides by Quantus's 1e-9; images that are not `[N, C, H, W]` are refused.
    func testContinuityEdgeCases() throws {
        let x = try ExplainedModel.image(try images, 0)
        var calls = 0
        let fromZero = try Continuity(steps: 1).evaluate(images: x) { image, _ in
            calls += 1
            return calls == 1 ? Tensor(unchecked: [1, 64, 64], [Float](repeating: 0, count: 4096)) : Tensor(unchecked: [1, 64, 64], [Float](repeating: -2, count: 4096))
        }
        let filled = Continuity.translated(x, by: 65)
        let l2 = zip(x.scalars, filled.scalars).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }.squareRoot()
        XCTAssertEqual(fromZero.scores[0], 4096 / (l2 + 1e-9), accuracy: 1e-9, "zeros against ones (|-2| / 2)")
        let flat = Tensor(unchecked: [1, 3, 64, 64], [Float](repeating: 0.5, count: 3 * 4096))
        calls = 0
        let still = try Continuity(steps: 1).evaluate(images: flat) { _, _ in
            calls += 1
            var map = [Float](repeating: 1, count: 4096)
            if calls > 1 { map[0] = 0 }
            return Tensor(unchecked: [1, 64, 64], map)
        }
        XCTAssertEqual(still.scores[0], 1 / 1e-9, accuracy: 1e-3, "one value of R moved by 1, over nothing moved but Quantus's 1e-9")
        XCTAssertThrowsError(try Continuity().evaluate(images: Tensor(unchecked: [3, 64, 64], [Float](repeating: 0, count: 3 * 4096))) { image, _ in image }) {
            guard case XAIError.shapeMismatch = $0 else { return XCTFail("\($0)") }
        }
    }

    func testNonSensitivityMatchesQuantusAndTheDefinition() throws {
        let f = try fixture()
        let sets = try XCTUnwrap(f["sets"] as? [String: Int])
        let names = sets.keys.sorted { sets[$0]! < sets[$1]! }
        let x = try images
        var checked = 0
        for (label, backend) in try TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            // PoCL runs the 4,353 forwards per image and map slowly: one epsilon there, all three on the CPU.
            for entry in try XCTUnwrap(f["non_sensitivity"] as? [[String: Any]]).prefix(label == "cpu" ? 3 : 1) {
                let eps = Float(try XCTUnwrap(entry["epsilon"] as? Double))
                let quantus = try XCTUnwrap(entry["quantus"] as? [String: [Int]]), patch4 = try XCTUnwrap(entry["patch4"] as? [String: [Int]])
                for (i, name) in names.enumerated() {
                    let maps = try sparseMaps(i)
                    let pixels = try NonSensitivity(patchSize: 1, epsilon: eps, substrate: .black).evaluate(model: model, images: x, maps: maps)
                    let patches = try NonSensitivity(patchSize: 4, epsilon: eps, substrate: .black).evaluate(model: model, images: x, maps: maps)
                    for b in 0..<2 {
                        XCTAssertEqual(Int((pixels.scores[b] * 4096).rounded()), try XCTUnwrap(quantus[name])[b], "pixels: \(name) image \(b), eps \(eps) on \(label)")
                        XCTAssertEqual(Int((patches.scores[b] * 256).rounded()), try XCTUnwrap(patch4[name])[b], "4x4 patches: \(name) image \(b), eps \(eps) on \(label)")
                        checked += 1
                    }
                    XCTAssertEqual(pixels.settings["features"], "4096")
                    XCTAssertEqual(patches.settings["features"], "256")
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 16)
    }

    /// A patch larger than the image or a negative epsilon is refused, naming the knob; only the
    /// map's magnitudes count (a negated map scores the same); the patches at the edges are cut short.
    func testNonSensitivityKnobsAndPatches() throws {
        let model = try ExplainedModel(graph: try Models.load(modelPath), backend: CPUBackend())
        let x = try images
        let maps = try sparseMaps(0)
        XCTAssertThrowsError(try NonSensitivity(patchSize: 65).evaluate(model: model, images: x, maps: maps)) {
            guard case XAIError.invalidArgument(let p, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, "patchSize")
        }
        XCTAssertThrowsError(try NonSensitivity(epsilon: -1).evaluate(model: model, images: x, maps: maps)) {
            guard case XAIError.invalidArgument(let p, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, "epsilon")
        }
        let a = try NonSensitivity(patchSize: 8).evaluate(model: model, images: x, maps: maps)
        let negated = Tensor(unchecked: maps.shape, maps.scalars.map { -$0 })
        XCTAssertEqual(try NonSensitivity(patchSize: 8).evaluate(model: model, images: x, maps: negated).scores, a.scores)
        // Normalised by the largest magnitude, a negative one included: beside a -1000, values of
        // 1e-3 are 1e-6 of it, below 1e-5, so the map scores as the -1000 alone.
        var values = [Float](repeating: 0, count: 2 * 4096)
        values[4096 + 130] = -1000
        values[130] = -1000
        let alone = Tensor(unchecked: [2, 64, 64], values)
        for i in 0..<(2 * 4096) where values[i] == 0 { values[i] = 1e-3 }
        let faint = Tensor(unchecked: [2, 64, 64], values)
        XCTAssertEqual(try NonSensitivity(patchSize: 16, epsilon: 1e-5).evaluate(model: model, images: x, maps: faint).scores,
                       try NonSensitivity(patchSize: 16, epsilon: 1e-5).evaluate(model: model, images: x, maps: alone).scores)
        // Quantus's defaults, except the patch (Quantus's features are single pixels).
        XCTAssertEqual(NonSensitivity().epsilon, 1e-5)
        // The same default as the registry publishes it (its JSON is made in the facade, so a
        // change to the stored default reaches this test even where the line above was compiled
        // with the old value inlined).
        let knobs = try XCTUnwrap((try JSONSerialization.jsonObject(with: MetricRegistry.json()) as? [String: Any])?["knobs"] as? [[String: Any]])
        let published = try XCTUnwrap(knobs.first { $0["name"] as? String == "nonSensitivityEpsilon" }?["default"] as? Double)
        XCTAssertEqual(published, 1e-5, accuracy: 1e-12)
        XCTAssertEqual(NonSensitivity().patchSize, 8)
        XCTAssertEqual(Continuity().steps, 28)
        // Patches at the edges cut short: 64 = 6 x 10 + 4.
        XCTAssertEqual(NonSensitivity(patchSize: 10).patches(height: 64, width: 64).count, 49)
        XCTAssertEqual(NonSensitivity(patchSize: 10).patches(height: 64, width: 64).last, MaskRect(top: 60, left: 60, height: 4, width: 4))
    }

    func testAttributionLocalisationMatchesQuantus() throws {
        let f = try fixture()
        let sets = try XCTUnwrap(f["sets"] as? [String: Int]).merging(["tied": 1, "peaked": 3]) { a, _ in a }
        let want = try XCTUnwrap(f["attribution_localisation"] as? [String: [Double]])
        let masks = try NPY.read(folder + "/masks.npy")
        var pairs: [(Double, Double)] = []
        for (name, k) in sets {
            let r = try Localisation.attributionLocalisation(images: try images, maps: try maps(k), masks: masks)
            for b in 0..<2 {
                XCTAssertEqual(r.scores[b], try XCTUnwrap(want[name])[b], accuracy: 1e-6, "\(name) image \(b)")
                pairs.append((r.scores[b], try XCTUnwrap(want[name])[b]))
            }
        }
        agreement("attribution_localisation vs Quantus 0.6", pairs)
        XCTAssertEqual(pairs.count, 8)
        // An empty mask: undefined.
        let empty = Tensor(unchecked: masks.shape, [Float](repeating: 0, count: masks.shape.count))
        XCTAssertTrue(try Localisation.attributionLocalisation(images: try images, maps: try maps(0), masks: empty).scores.allSatisfy(\.isNaN))
    }

    func testDeletionWithTheBlackFillIsQuantusPixelFlipping() throws {
        let f = try fixture()
        let sets = try XCTUnwrap(f["sets"] as? [String: Int])
        var pairs: [(Double, Double)] = []
        for (label, backend) in try TestBackends.all() where label == "cpu" || label == "opencl" {
            let model = try ExplainedModel(graph: try Models.load(modelPath), backend: backend)
            for entry in try XCTUnwrap(f["pixel_flipping"] as? [[String: Any]]) {
                let step = try XCTUnwrap(entry["step"] as? Int)
                let curves = try XCTUnwrap(entry["curves"] as? [String: [[Double]]])
                for (name, k) in sets {
                    let r = try PixelCurve(mode: .deletion, step: step, substrate: .black).evaluate(model: model, images: try images, maps: try maps(k))
                    for b in 0..<2 {
                        let got = Array(try XCTUnwrap(r.curves)[b].dropFirst()), want = try XCTUnwrap(curves[name])[b]
                        XCTAssertEqual(got.count, want.count, "\(name) step \(step)")
                        for (g, q) in zip(got, want) {
                            XCTAssertEqual(g, q, accuracy: 2e-5, "\(name) image \(b), step \(step) on \(label)")
                            pairs.append((g, q))
                        }
                    }
                }
            }
        }
        agreement("deletion --substrate black vs Quantus 0.6 PixelFlipping", pairs)
        XCTAssertGreaterThan(pairs.count, 100)
    }
}
