import Foundation
import XAICore
import XAIGraph

/// KernelSHAP (Lundberg and Lee) on superpixels: coalitions weighted by the Shapley kernel, solved
/// by a weighted least-squares fit constrained so that the values add up to `f(x) - f(baseline)`
/// exactly. Like shap's KernelExplainer it enumerates every coalition of the smallest and largest
/// sizes while the budget allows and samples the rest in complementary pairs; a budget of
/// `2^M - 2` or more enumerates everything and returns the exact Shapley values.
public struct KernelSHAP: ModelMethod {
    /// The sample counts KernelSHAP takes.
    public static let sampleRange = 1...10_000_000

    /// How the coalitions of the sizes not fully enumerated are drawn.
    public enum Sampling: String, Sendable, CaseIterable {
        /// In proportion to each size's Shapley-kernel mass, weighted by their draw counts (shap's
        /// KernelExplainer).
        case kernel
        /// Every size alike (the regression's leverage scores, Musco & Witter 2025, "Provably
        /// Accurate Shapley Value Estimation via Leverage Score Sampling"), each draw weighted by its
        /// size's kernel mass over its probability: the middle sizes, which the kernel starves, are
        /// sampled more and weighted less.
        case leverage
    }

    public let name = "kernelshap"
    public let model: ExplainedModel
    /// Model evaluations besides the full image and the baseline (default 1000).
    public var samples: Int
    public var segmentation: Segmentation
    public var seed: UInt64
    /// Stop once the split-half rank correlation reaches this (off: every sample is used).
    public var untilStable: Double?
    public var sampling: Sampling
    /// Whether the fit first takes out a surrogate game with known Shapley values
    /// (``CoalitionSurrogate``: the score's dependence on the coalition's size and each segment's
    /// effect varying with it) and estimates only the rest; false gives shap's plain fit.
    public var controlVariate: Bool
    public var engine: PerturbationEngine

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - samples: coalitions evaluated besides the full image and the baseline (1 to 10,000,000).
    ///   - segmentation: how each image is split into superpixels.
    ///   - seed: the sampled coalitions' seed.
    ///   - perturbationsPerEval: copies per forward batch (default: from the memory budget).
    ///   - untilStable: evaluate the sampled coalitions in rounds (``coalitionRound(samples:)``) and
    ///     stop once the fits on the two halves of the samples so far rank the segments alike
    ///     (Spearman) at least this well. The fit then uses the sampler's state at that point: the
    ///     coalitions drawn so far with their counts so far (the enumerated sizes are the budget's).
    ///   - controlVariate: fit a surrogate game with known Shapley values first (see ``controlVariate``).
    ///   - output: the score read for each copy.
    ///   - progress: called after every batch.
    public init(model: ExplainedModel, samples: Int = 1000, segmentation: Segmentation = .slic(SLIC()), seed: UInt64 = 0,
                perturbationsPerEval: Int? = nil, untilStable: Double? = nil, sampling: Sampling = .kernel, controlVariate: Bool = true,
                output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.sampling = sampling
        self.controlVariate = controlVariate
        self.samples = samples
        self.segmentation = segmentation
        self.seed = seed
        self.untilStable = untilStable
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    /// Coalitions and their kernel weights for `m` players within the budget; `enumerated` counts
    /// the leading rows that come from fully enumerated sizes. The weights sum to 1; per coalition
    /// size they add up to that size's share of the Shapley kernel (exactly for enumerated sizes,
    /// in expectation for sampled ones).
    public func coalitions(players m: Int) -> (rows: [[Bool]], weights: [Double], enumerated: Int) {
        let c = sample(players: m)
        return (c.rows, c.weights(sampled: c.rows.count - c.enumerated), c.enumerated)
    }

    /// The coalitions of ``coalitions(players:)`` with the sampler's history, so that a prefix of
    /// the sampled rows can be weighted as if the sampler had stopped there.
    public struct Coalitions: Sendable {
        /// Enumerated rows first, then the sampled ones in the order they were first drawn.
        public let rows: [[Bool]]
        public let enumerated: Int
        /// The weights of the enumerated rows (their kernel mass per subset).
        let enumeratedWeights: [Double]
        /// The kernel mass left to the sampled sizes.
        let sampledMass: Double
        /// Each draw's row (index among the sampled rows), in draw order; a paired draw hits two.
        let hits: [Int]
        /// For each sampled row, the place in `hits` where it was first drawn.
        let created: [Int]
        /// For each sampled row, its kernel mass over its chance of being drawn (up to a common
        /// factor): 1 for kernel sampling.
        let importance: [Double]

        /// The weights of the enumerated rows and the first `sampled` sampled rows: each sampled row
        /// weighted by its draws before the next row was created, scaled to the sampled mass.
        public func weights(sampled k: Int) -> [Double] {
            let end = k < created.count ? created[k] : hits.count
            var counts = [Double](repeating: 0, count: k)
            for h in hits[..<end] { counts[h] += 1 }
            for i in 0..<k { counts[i] *= importance[i] }
            let drawn = counts.reduce(0, +)
            return enumeratedWeights + counts.map { drawn > 0 ? $0 * sampledMass / drawn : 0 }
        }
    }

    public func sample(players m: Int) -> Coalitions {
        guard m >= 2 else { return Coalitions(rows: [], enumerated: 0, enumeratedWeights: [], sampledMass: 0, hits: [], created: [], importance: []) }
        let sizes = (m - 1 + 1) / 2, pairedSizes = (m - 1) / 2
        var kernel = (1...sizes).map { s in Double(m - 1) / (Double(s) * Double(m - s)) * (s <= pairedSizes ? 2 : 1) }
        let norm = kernel.reduce(0, +)
        kernel = kernel.map { $0 / norm }
        var rows: [[Bool]] = [], weights: [Double] = []
        var left = samples
        var remaining = kernel
        var full = 0
        for s in 1...sizes {
            let paired = s <= pairedSizes
            let subsets = binomial(m, s) * (paired ? 2 : 1)
            let share = remaining[s - 1] / remaining[(s - 1)...].reduce(0, +)
            guard Double(left) * share / subsets >= 1 - 1e-8 else { break }
            full += 1
            left -= Int(subsets)
            let w = kernel[s - 1] / subsets
            forEachSubset(m, s) { members in
                var row = [Bool](repeating: false, count: m)
                for j in members { row[j] = true }
                rows.append(row); weights.append(w)
                if paired { rows.append(row.map { !$0 }); weights.append(w) }
            }
            remaining[s - 1] = 0
        }
        let enumerated = rows.count
        guard full < sizes, left > 0 else {
            return Coalitions(rows: rows, enumerated: enumerated, enumeratedWeights: weights, sampledMass: 0, hits: [], created: [], importance: [])
        }
        // Sample the other sizes in proportion to their kernel mass. A draw of a paired size adds
        // the coalition and its complement (two rows, one count each), so paired sizes are drawn
        // half as often as their mass (as shap does); otherwise they would get twice their share.
        // Leverage sampling draws every size level alike (a paired level's draw adds its two sizes).
        let perDraw = (full..<sizes).map { kernel[$0] / ($0 + 1 <= pairedSizes ? 2 : 1) }
        let rest = sampling == .kernel ? perDraw : perDraw.map { _ in 1.0 }, restTotal = rest.reduce(0, +)
        var rng = SeededGenerator(seed: seed)
        var index: [[Bool]: Int] = [:]
        var sampledRows: [[Bool]] = [], hits: [Int] = [], created: [Int] = [], importance: [Double] = []
        var draws = 0
        while left > 0 && draws < 4 * samples {
            draws += 1
            var u = Double(rng.nextUnitFloat()) * restTotal, k = 0
            while k < rest.count - 1 && u >= rest[k] { u -= rest[k]; k += 1 }
            let s = full + 1 + k
            var order = Array(0..<m)
            for i in 0..<s { order.swapAt(i, i + Int(rng.next() % UInt64(m - i))) }
            var row = [Bool](repeating: false, count: m)
            for j in order[..<s] { row[j] = true }
            for candidate in (s <= pairedSizes ? [row, row.map { !$0 }] : [row]) {
                if let i = index[candidate] { hits.append(i) } else {
                    guard left > 0 else { break }
                    index[candidate] = sampledRows.count
                    created.append(hits.count)
                    hits.append(sampledRows.count)
                    sampledRows.append(candidate)
                    importance.append(perDraw[k] / rest[k])
                    left -= 1
                }
            }
        }
        return Coalitions(rows: rows + sampledRows, enumerated: enumerated, enumeratedWeights: weights,
                          sampledMass: 1 - kernel[..<full].reduce(0, +), hits: hits, created: created, importance: importance)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard Self.sampleRange.contains(samples) else {
            throw XAIError.invalidArgument(parameter: "samples", value: "\(samples)",
                                           reason: "KernelSHAP needs \(Self.sampleRange.lowerBound) to \(Self.sampleRange.upperBound) samples")
        }
        try checkUntilStable(untilStable)
        return try explainSegments(model: model, engine: engine, segmentation: segmentation, input: input, target: target, baseline: baseline) { game in
            let m = game.players
            let ends = try game.values([[Bool](repeating: true, count: m), [Bool](repeating: false, count: m)])
            let (fx, f0) = (ends[0], ends[1])
            guard m >= 2 else {
                return ([fx - f0], ["baseValue": f0, "fullyEnumerated": 1, "halfSplitRankCorrelation": 1, "samplesUsed": 0, "controlVariate": 0])
            }
            let c = sample(players: m)
            let enumerated = c.enumerated, sampled = c.rows.count - enumerated
            var y = try game.values(Array(c.rows[..<enumerated]))
            // The sampled rows in rounds when asked to stop early (all at once otherwise).
            var used = 0, agreement = 1.0, weights = c.weights(sampled: 0)
            repeat {
                let next = untilStable == nil ? sampled : min(sampled, used + coalitionRound(samples: samples))
                y += try game.values(Array(c.rows[(enumerated + used)..<(enumerated + next)]))
                used = next
                weights = c.weights(sampled: used)
                // Settledness: the enumerated rows with each half of the sampled ones.
                guard used >= 4 else { agreement = 1; continue }
                let mid = enumerated + used / 2, end = enumerated + used
                func half(_ r: Range<Int>) -> [Double] {
                    let idx = Array(0..<enumerated) + Array(r)
                    let mass = weights[enumerated...].reduce(0, +), part = r.reduce(0.0) { $0 + weights[$1] }
                    return Self.estimate(idx.map { c.rows[$0] }, idx.map { y[$0] },
                                         idx.map { $0 < enumerated ? weights[$0] : weights[$0] * mass / part }, players: m, full: fx, empty: f0,
                                         controlVariate: controlVariate).values
                }
                agreement = try spearmanCorrelation(half(enumerated..<mid), half(mid..<end))
            } while used < sampled && agreement < (untilStable ?? -.infinity)
            let rows = Array(c.rows[..<(enumerated + used)])
            let phi = Self.estimate(rows, y, weights, players: m, full: fx, empty: f0, controlVariate: controlVariate)
            return (phi.values, ["baseValue": f0, "fullyEnumerated": sampled == 0 ? 1 : 0, "halfSplitRankCorrelation": agreement,
                                 "samplesUsed": Double(enumerated + used), "controlVariate": phi.surrogate ? 1 : 0])
        }
    }

    /// The Shapley values estimated from the scores `y` of `rows` (kernel weights `w`) and of the
    /// full and empty coalitions. With `controlVariate`, a ``CoalitionSurrogate`` is fitted where
    /// the rows suffice (`surrogate` says whether it was), and the result is its exact values plus
    /// ``solve`` on the residual scores; the values still add up to `full - empty` exactly, and
    /// full enumeration still gives the exact Shapley values. `ridge`: the surrogate's
    /// ``CoalitionSurrogate/modulationRidge``.
    public static func estimate(_ rows: [[Bool]], _ y: [Double], _ w: [Double], players m: Int, full: Double, empty: Double,
                                controlVariate: Bool, ridge: Double = CoalitionSurrogate.modulationRidge) -> (values: [Double], surrogate: Bool) {
        guard controlVariate, let g = CoalitionSurrogate(rows: rows, y: y, weights: w, players: m, full: full, empty: empty, ridge: ridge) else {
            return (solve(rows, y, w, players: m, total: full - empty, base: empty), false)
        }
        let residual = solve(rows, zip(y, g.values).map { $0 - $1 }, w, players: m, total: 0, base: 0)
        return (zip(residual, g.shapley).map { $0 + $1 }, true)
    }

    /// Weighted least squares for `phi` with `sum(phi) == total`: the last player's value is
    /// eliminated (`phi_M = total - sum of the others`) and the rest fit by the normal equations.
    public static func solve(_ rows: [[Bool]], _ y: [Double], _ w: [Double], players m: Int, total: Double, base: Double) -> [Double] {
        let k = m - 1
        var gram = [Double](repeating: 0, count: k * k), rhs = [Double](repeating: 0, count: k)
        var x = [Double](repeating: 0, count: k)
        for (i, row) in rows.enumerated() {
            let last = row[m - 1] ? 1.0 : 0.0
            for j in 0..<k { x[j] = (row[j] ? 1 : 0) - last }
            let target = y[i] - base - last * total
            for a in 0..<k where x[a] != 0 {
                rhs[a] += w[i] * x[a] * target
                for b in 0..<k where x[b] != 0 { gram[a * k + b] += w[i] * x[a] * x[b] }
            }
        }
        var phi = solveSymmetric(gram, rhs, size: k)
        phi.append(total - phi.reduce(0, +))
        return phi
    }
}

func binomial(_ n: Int, _ k: Int) -> Double {
    var r = 1.0
    for i in 0..<min(k, n - k) { r = r * Double(n - i) / Double(i + 1) }
    return r.rounded()
}

/// Calls `body` with every `k`-subset of `0..<n` in lexicographic order.
func forEachSubset(_ n: Int, _ k: Int, _ body: ([Int]) -> Void) {
    var c = Array(0..<k)
    while true {
        body(c)
        var i = k - 1
        while i >= 0 && c[i] == n - k + i { i -= 1 }
        if i < 0 { return }
        c[i] += 1
        for j in (i + 1)..<k { c[j] = c[j - 1] + 1 }
    }
}
