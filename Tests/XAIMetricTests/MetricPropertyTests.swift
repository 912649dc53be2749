import Foundation
import XCTest
import XAI
import XAITestSupport

/// The map-only metrics' definitions as properties, on seeded random *signed* maps and random masks
/// (the reference tests feed mostly non-negative maps): each metric's score must not move under the
/// transformations its definition ignores, and must stay in its range.
final class MetricPropertyTests: XCTestCase {
    /// Contracts of the small helpers the model-level properties do not reach: the pointing game's
    /// default tolerance follows the shorter side of a non-square input; one defined score has no
    /// standard error and several have the sample one; a one-stage randomisation cascade
    /// randomises the top layer whatever stage it is asked for.
    func testContractsOfTheSmallHelpers() throws {
        // 112 x 448: 15 px at 224 scaled to the shorter side is 8 px (the longer side would give 30).
        let (h, w) = (112, 448)
        let images = Tensor(unchecked: [1, 3, h, w], (0..<(3 * h * w)).map { Float($0 % 7) / 7 + 0.1 })
        var map = [Float](repeating: 0, count: h * w)
        map[50 * w + 100] = 1
        let maps = Tensor(unchecked: [1, h, w], map)
        func game(maskAt x: Int) throws -> MetricResult {
            var mask = [Float](repeating: 0, count: h * w)
            mask[50 * w + x] = 1
            return try Localisation.pointingGame(images: images, maps: maps, masks: Tensor(unchecked: [1, h, w], mask))
        }
        XCTAssertEqual(try game(maskAt: 120).settings["tolerance"], "8 px")
        XCTAssertEqual(try game(maskAt: 120).scores, [0], "20 px from the peak: outside 8 px")
        XCTAssertEqual(try game(maskAt: 108).scores, [1], "8 px from the peak: inside")
        // Means and standard errors over the defined scores.
        let one = MetricResult(metric: "m", direction: .higherIsBetter, scores: [2, .nan], settings: [:])
        XCTAssertEqual(one.count, 1)
        XCTAssertEqual(one.mean, 2)
        XCTAssertTrue(one.standardError.isNaN, "one score: no standard error")
        let three = MetricResult(metric: "m", direction: .higherIsBetter, scores: [1, .infinity, 2, 4], settings: [:])
        XCTAssertEqual(three.count, 3)
        XCTAssertEqual(three.mean, 7.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(three.standardError, (7.0 / 9).squareRoot(), accuracy: 1e-12, "the sample variance 7/3 over n = 3")
        // One stage: the top layer, for any stage asked.
        let single = ModelRandomisation(steps: 1)
        XCTAssertEqual((0..<3).map { single.cut(stage: $0, layers: 5) }, [1, 1, 1])
        XCTAssertEqual(ModelRandomisation(steps: 1).cut(stage: 2, layers: 0), 0)
    }

    let (n, h, w) = (6, 12, 10)

    /// Random signed maps `[n, h, w]`, a random mask per image (about a third of the pixels,
    /// never empty) and the images the metrics take for their shape.
    func sample(_ seed: UInt64) -> (images: Tensor, maps: Tensor, masks: Tensor) {
        let maps = Tensor.uniform([n, h, w], in: -1...1, seed: seed)
        var masks = Tensor.uniform([n, h, w], in: 0...1, seed: seed &+ 1)
        masks.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = p[i] < 0.33 ? 1 : 0 }
            for b in 0..<n { p[b * h * w] = 1 }
        }
        return (Tensor.uniform([n, 3, h, w], seed: seed &+ 2), maps, masks)
    }

    /// `t` with every value through `f`.
    func mapped(_ t: Tensor, _ f: (Float) -> Float) -> Tensor { Tensor(unchecked: t.shape, t.scalars.map(f)) }

    /// `t` with each image's pixels reordered by the same seeded permutation.
    func permuted(_ t: Tensor, _ order: [Int]) -> Tensor {
        let per = h * w
        var out = t.scalars
        for b in 0..<n {
            for (to, from) in order.enumerated() { out[b * per + to] = t.scalars[b * per + from] }
        }
        return Tensor(unchecked: t.shape, out)
    }

    func order(_ seed: UInt64) -> [Int] {
        var g = SeededGenerator(seed: seed)
        return Array(0..<(h * w)).shuffled(using: &g)
    }

    func assertClose(_ a: [Double], _ b: [Double], _ tolerance: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x, y, accuracy: tolerance * max(1, abs(y)), what, file: file, line: line)
        }
    }

    /// Sparseness (Gini of |map|) and complexity (entropy of |map| / sum |map|) read only the
    /// magnitudes' distribution: negation, positive scaling and pixel order leave them; sparseness
    /// stays in [0, 1], complexity in [0, log(pixels)].
    func testSparsenessAndComplexityIgnoreSignScaleAndOrder() throws {
        for seed: UInt64 in [3, 17, 91] {
            let (images, maps, _) = sample(seed)
            let p = order(seed &+ 5)
            for (name, score) in [("sparseness", { (m: Tensor) in try Sparseness().evaluate(images: images, maps: m).scores }),
                                  ("complexity", { (m: Tensor) in try Complexity().evaluate(images: images, maps: m).scores })] {
                let base = try score(maps)
                // The 1e-7 Quantus adds to each |a| is not scaled with the map: 1e-6 relative.
                assertClose(try score(mapped(maps, { 3 * $0 })), base, 1e-6, "\(name): scaled by 3 (seed \(seed))")
                assertClose(try score(mapped(maps, { -$0 })), base, 1e-12, "\(name): negated (seed \(seed))")
                assertClose(try score(permuted(maps, p)), base, 1e-12, "\(name): pixels permuted (seed \(seed))")
                let upper = name == "sparseness" ? 1.0 : log(Double(h * w))
                for s in base { XCTAssertTrue(s >= 0 && s <= upper, "\(name) \(s) outside [0, \(upper)]") }
            }
        }
    }

    /// The pointing game looks at where the maximum is, relevance rank at the order of the
    /// values, relevance mass at the positive part only: positive scaling and adding a constant
    /// leave the first two, clipping the negative part leaves the third, and moving map and mask
    /// pixels together leaves rank and mass (the pointing game's tolerance is spatial: tested at 0).
    func testLocalisationMetricsFollowTheirDefinitions() throws {
        for seed: UInt64 in [5, 23, 77] {
            let (images, maps, masks) = sample(seed)
            let p = order(seed &+ 9)
            let game = { (m: Tensor, k: Tensor) in try Localisation.pointingGame(images: images, maps: m, masks: k, tolerance: 0).scores }
            let mass = { (m: Tensor, k: Tensor) in try Localisation.relevanceMass(images: images, maps: m, masks: k).scores }
            let rank = { (m: Tensor, k: Tensor) in try Localisation.relevanceRank(images: images, maps: m, masks: k).scores }
            for (name, score) in [("pointing_game", game), ("relevance_rank", rank)] {
                let base = try score(maps, masks)
                assertClose(try score(mapped(maps, { 2.5 * $0 }), masks), base, 0, "\(name): scaled (seed \(seed))")
                assertClose(try score(mapped(maps, { $0 + 0.75 }), masks), base, 0, "\(name): shifted (seed \(seed))")
                assertClose(try score(permuted(maps, p), permuted(masks, p)), base, 0, "\(name): map and mask permuted together (seed \(seed))")
                for s in base { XCTAssertTrue(s >= 0 && s <= 1, "\(name) \(s) outside [0, 1]") }
            }
            let base = try mass(maps, masks)
            assertClose(try mass(mapped(maps, { max($0, 0) }), masks), base, 1e-12, "relevance_mass: negative part clipped (seed \(seed))")
            assertClose(try mass(mapped(maps, { 4 * $0 }), masks), base, 1e-6, "relevance_mass: scaled (seed \(seed))")
            assertClose(try mass(permuted(maps, p), permuted(masks, p)), base, 1e-12, "relevance_mass: map and mask permuted together (seed \(seed))")
            for s in base { XCTAssertTrue(s >= 0 && s <= 1, "relevance_mass \(s) outside [0, 1]") }
            // Negating a signed map swaps its positive and negative parts: the mass changes.
            XCTAssertNotEqual(try mass(mapped(maps, { -$0 }), masks), base, "relevance_mass must read the sign")
        }
    }

    // MARK: Metrics that run the model

    /// A small random CNN on `[n, 3, h, w]` images: conv 3x3 -> tanh -> global pool -> linear (4 classes).
    func smallModel() throws -> ExplainedModel {
        let nodes = [
            Node(name: "conv", op: .conv(Conv2DParams(padding: 1), activation: .identity, autoPad: .explicit), inputs: ["input", "w", "b"], outputs: ["c"]),
            Node(name: "act", op: .unary(.tanh), inputs: ["c"], outputs: ["a"]),
            Node(name: "pool", op: .globalAveragePool, inputs: ["a"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", op: .gemm(transA: false, transB: true, alpha: 1, beta: 1, activation: .identity), inputs: ["f", "fw", "fb"], outputs: ["logits"]),
        ]
        let graph = Graph(name: "small", inputs: [ValueInfo(name: "input", shape: [nil, 3, h, w])], outputs: [ValueInfo(name: "logits", shape: [nil, 4])],
                          initializers: ["w": .uniform([5, 3, 3, 3], seed: 61), "b": .uniform([5], seed: 62),
                                         "fw": .uniform([4, 5], in: -3...3, seed: 63), "fb": .uniform([4], seed: 64)], nodes: nodes)
        return try ExplainedModel(graph: graph, backend: CPUBackend())
    }

    /// Deletion and insertion read the map only through its pixel order (descending, ties by
    /// index): scaling, shifting and any strictly increasing function give the same curves, bit
    /// for bit; negation reverses the order and changes them.
    func testPixelCurvesReadOnlyTheOrder() throws {
        let model = try smallModel()
        for seed: UInt64 in [5, 29] {
            let (images, maps, _) = sample(seed)
            for mode in PixelCurve.Mode.allCases {
                for substrate in mode == .deletion ? PixelCurve.Substrate.allCases : [.zero] {
                    let metric = PixelCurve(mode: mode, step: 7, substrate: substrate)
                    let what = "\(mode) over \(substrate) (seed \(seed))"
                    let base = try metric.evaluate(model: model, images: images, maps: maps)
                    for (how, f) in [("scaled", { (v: Float) in 3 * v }), ("shifted", { $0 + 2 }), ("cubed", { $0 * $0 * $0 }), ("tanh", { tanh($0) })] {
                        let other = try metric.evaluate(model: model, images: images, maps: mapped(maps, f))
                        XCTAssertEqual(other.curves, base.curves, "\(what): \(how)")
                        XCTAssertEqual(other.scores, base.scores, "\(what): \(how)")
                    }
                    XCTAssertNotEqual(try metric.evaluate(model: model, images: images, maps: mapped(maps, { -$0 })).scores, base.scores,
                                      "\(what): negation must change the order")
                    for s in base.scores { XCTAssertTrue(s >= 0 && s <= 1, "\(what): area \(s) outside [0, 1]") }
                }
            }
        }
    }

    /// Faithfulness correlation is Pearson's r between the map's sums over fixed-size subsets and
    /// the logit drops: a positive scale and a shift (the same for every subset) leave it, and
    /// negating the map negates it.
    func testFaithfulnessCorrelationFollowsTheMapsSignOnly() throws {
        let model = try smallModel()
        let (images, maps, _) = sample(11)
        let metric = FaithfulnessCorrelation(runs: 12, subsetSize: 9, seed: 4)
        let base = try metric.evaluate(model: model, images: images, maps: maps).scores
        assertClose(try metric.evaluate(model: model, images: images, maps: mapped(maps, { 2.5 * $0 + 0.5 })).scores, base, 1e-5,
                    "faithfulness correlation: scaled and shifted")
        assertClose(try metric.evaluate(model: model, images: images, maps: mapped(maps, { -$0 })).scores, base.map { -$0 }, 1e-5,
                    "faithfulness correlation: negated")
        for s in base { XCTAssertTrue(s >= -1 && s <= 1, "correlation \(s) outside [-1, 1]") }
    }

    /// Infidelity fits the map's scale (beta) before comparing: any non-zero scale, negative ones
    /// included, leaves it; a shift does not.
    func testInfidelityIgnoresTheMapsScale() throws {
        let model = try smallModel()
        let (images, maps, _) = sample(23)
        let metric = Infidelity(sigma: 0.2, samples: 6, seed: 9)
        let base = try metric.evaluate(model: model, images: images, maps: maps).scores
        for c: Float in [4, -0.5] {
            assertClose(try metric.evaluate(model: model, images: images, maps: mapped(maps, { c * $0 })).scores, base, 1e-4, "infidelity: scaled by \(c)")
        }
        XCTAssertNotEqual(try metric.evaluate(model: model, images: images, maps: mapped(maps, { $0 + 1 })).scores, base, "infidelity must read a shift")
        for s in base { XCTAssertGreaterThanOrEqual(s, 0, "infidelity is a mean square") }
    }
}
