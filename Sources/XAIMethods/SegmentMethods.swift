import Foundation
import XAICore
import XAIGraph

/// One image's superpixels on the device, and the scores of coalitions of them (a coalition keeps
/// its segments and shows the baseline elsewhere).
struct CoalitionGame {
    let engine: PerturbationEngine
    let segments: SegmentMap
    let labels: DeviceArray
    let image: DeviceArray
    let baseline: DeviceArray
    let target: Int

    init(engine: PerturbationEngine, segments: SegmentMap, image: Tensor, baseline: Tensor, target: Int) throws {
        let be = engine.model.backend
        self.engine = engine
        self.segments = segments
        labels = try be.upload(segments.tensor)
        self.image = try be.upload(image)
        self.baseline = try be.upload(baseline)
        self.target = target
    }

    var players: Int { segments.count }

    /// The score of each coalition, `rows[n][s]` true when segment `s` is kept.
    func values(_ rows: [[Bool]]) throws -> [Double] {
        try engine.evaluate(image: image, baseline: baseline, target: target, count: rows.count) { range in
            MaskSpec.segments(labels: labels, rows: rows[range], segmentCount: players)
        }
    }

    /// A per-pixel map from per-segment values.
    func paint(_ values: [Double]) -> [Float] { segments.labels.map { Float(values[Int($0)]) } }
}

/// Runs `body` on each image of a batch with its segments, baseline and target, and assembles the
/// maps, per-segment values (`raw`, `[N, max segments]`, zero-padded) and label maps.
func explainSegments(model: ExplainedModel, engine: PerturbationEngine, segmentation: Segmentation, input: Tensor, target: Target,
                     baseline: Baseline, body: (CoalitionGame) throws -> (values: [Double], diagnostics: [String: Double])) throws -> Attribution {
    let be = model.backend
    let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
    let logits = try model.logits(try be.upload(input))
    let targets = try model.resolve(target, logits: logits)
    var maps: [Float] = [], labels: [Float] = [], values: [[Double]] = []
    var diagnostics: [String: [Double]] = [:]
    for b in 0..<n {
        let xb = try ExplainedModel.image(input, b)
        let segments = try segmentation.segment(xb, index: b)
        let game = try CoalitionGame(engine: engine, segments: segments, image: xb, baseline: try model.baselineTensor(baseline, for: xb), target: targets[b])
        let (v, d) = try body(game)
        maps += game.paint(v)
        labels += segments.labels.map(Float.init)
        values.append(v)
        diagnostics["segmentCount", default: []].append(Double(segments.count))
        for (key, value) in d { diagnostics[key, default: []].append(value) }
    }
    let width2 = values.map(\.count).max() ?? 0
    let raw = Tensor(unchecked: [n, width2], values.flatMap { $0.map(Float.init) + [Float](repeating: 0, count: width2 - $0.count) })
    return Attribution(map: Tensor(unchecked: [n, height, width], maps), raw: raw, targets: targets, scores: scores(logits, targets),
                       diagnostics: diagnostics, segments: Tensor(unchecked: [n, height, width], labels))
}

// MARK: - LIME

/// How LIME picks the segments its local linear model uses (lime's `feature_selection`).
public enum FeatureSelection: String, Sendable, CaseIterable {
    /// Forward selection when at most 6 features are wanted, highest weights otherwise.
    case auto
    /// Every segment.
    case none
    /// The largest |coefficients| of a ridge fit (alpha 0.01) on every segment.
    case highestWeights = "highest_weights"
    /// Greedily adds the segment that most raises the weighted R^2 of an unregularised fit.
    case forwardSelection = "forward_selection"
}

/// LIME (Ribeiro et al.) on superpixels, as lime's image explainer does it: random on/off
/// coalitions of segments (the first sample keeps every segment), weighted by an exponential kernel
/// on their cosine distance to the full image, explained by a weighted ridge regression. `raw`
/// holds the per-segment coefficients; diagnostics the intercept, the local fit's weighted R^2 and
/// how well two halves of the samples agree.
public struct LIME: AttributionMethod, ModelBacked {
    public let name = "lime"
    public let model: ExplainedModel
    /// Perturbed samples, the unperturbed image included (default 1000).
    public var samples: Int
    /// Width of the exponential kernel on cosine distance (lime's default 0.25).
    public var kernelWidth: Double
    public var featureSelection: FeatureSelection
    /// Segments in the explanation (default: all).
    public var features: Int?
    /// Ridge penalty of the final fit (lime's default 1).
    public var ridgeAlpha: Double
    public var segmentation: Segmentation
    public var seed: UInt64
    public var engine: PerturbationEngine

    public init(model: ExplainedModel, samples: Int = 1000, kernelWidth: Double = 0.25, featureSelection: FeatureSelection = .auto,
                features: Int? = nil, ridgeAlpha: Double = 1, segmentation: Segmentation = .slic(SLIC()), seed: UInt64 = 0,
                perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.samples = samples
        self.kernelWidth = kernelWidth
        self.featureSelection = featureSelection
        self.features = features
        self.ridgeAlpha = ridgeAlpha
        self.segmentation = segmentation
        self.seed = seed
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard samples >= 4 else { throw XAIError.invalidArgument(op: "--samples", message: "LIME needs at least 4 samples, got \(samples)") }
        guard kernelWidth > 0 else { throw XAIError.invalidArgument(op: "--kernel-width", message: "must be positive, got \(kernelWidth)") }
        return try explainSegments(model: model, engine: engine, segmentation: segmentation, input: input, target: target, baseline: baseline) { game in
            let m = game.players
            var rng = SeededGenerator(seed: seed)
            let rows: [[Bool]] = [[Bool](repeating: true, count: m)] + (1..<samples).map { _ in (0..<m).map { _ in rng.next() & 1 == 1 } }
            let y = try game.values(rows)
            let weights = rows.map { row -> Double in
                let kept = Double(row.lazy.filter { $0 }.count)
                let distance = kept == 0 ? 1 : 1 - kept / (kept * Double(m)).squareRoot()
                return exp(-distance * distance / (kernelWidth * kernelWidth)).squareRoot()
            }
            let chosen = try select(rows, y, weights, players: m)
            let fit = weightedRidge(rows, y, weights, columns: chosen, alpha: ridgeAlpha)
            var coefficients = [Double](repeating: 0, count: m)
            for (k, j) in chosen.enumerated() { coefficients[j] = fit.coefficients[k] }
            // Settledness: the same fit on each half of the samples.
            let half = samples / 2
            let a = weightedRidge(Array(rows[..<half]), Array(y[..<half]), Array(weights[..<half]), columns: chosen, alpha: ridgeAlpha)
            let b = weightedRidge(Array(rows[half...]), Array(y[half...]), Array(weights[half...]), columns: chosen, alpha: ridgeAlpha)
            return (coefficients, ["intercept": fit.intercept, "r2": fit.r2,
                                   "halfSplitRankCorrelation": spearmanCorrelation(a.coefficients, b.coefficients)])
        }
    }

    /// The segments the final fit uses.
    func select(_ rows: [[Bool]], _ y: [Double], _ w: [Double], players m: Int) throws -> [Int] {
        let k = features ?? m
        guard k >= 1 else { throw XAIError.invalidArgument(op: "--features", message: "LIME needs at least one feature, got \(k)") }
        if k >= m { return Array(0..<m) }
        switch featureSelection == .auto ? (k <= 6 ? .forwardSelection : .highestWeights) : featureSelection {
        case .none, .auto: return Array(0..<m)
        case .highestWeights:
            let c = weightedRidge(rows, y, w, columns: Array(0..<m), alpha: 0.01).coefficients
            return Array((0..<m).sorted { abs(c[$0]) > abs(c[$1]) || (abs(c[$0]) == abs(c[$1]) && $0 < $1) }.prefix(k)).sorted()
        case .forwardSelection:
            var chosen: [Int] = []
            for _ in 0..<k {
                var best = -Double.infinity, bestFeature = -1
                for j in 0..<m where !chosen.contains(j) {
                    let r2 = weightedRidge(rows, y, w, columns: chosen + [j], alpha: 0).r2
                    if r2 > best { best = r2; bestFeature = j }
                }
                chosen.append(bestFeature)
            }
            return chosen.sorted()
        }
    }
}

/// Weighted ridge regression of `y` on the `columns` of binary `rows`, intercept unpenalised
/// (scikit-learn's Ridge with sample weights), with the weighted R^2 of the fit.
func weightedRidge(_ rows: [[Bool]], _ y: [Double], _ w: [Double], columns: [Int], alpha: Double) -> (coefficients: [Double], intercept: Double, r2: Double) {
    let k = columns.count, n = rows.count
    let total = w.reduce(0, +)
    var mx = [Double](repeating: 0, count: k)
    var my = 0.0
    for i in 0..<n {
        my += w[i] * y[i]
        for (a, j) in columns.enumerated() where rows[i][j] { mx[a] += w[i] }
    }
    my /= total
    for a in 0..<k { mx[a] /= total }
    var gram = [Double](repeating: 0, count: k * k), rhs = [Double](repeating: 0, count: k)
    var centred = [Double](repeating: 0, count: k)
    for i in 0..<n {
        for (a, j) in columns.enumerated() { centred[a] = (rows[i][j] ? 1 : 0) - mx[a] }
        let dy = y[i] - my
        for a in 0..<k {
            let wa = w[i] * centred[a]
            rhs[a] += wa * dy
            for b in a..<k { gram[a * k + b] += wa * centred[b] }
        }
    }
    for a in 0..<k {
        gram[a * k + a] += alpha
        for b in 0..<a { gram[a * k + b] = gram[b * k + a] }
    }
    let c = solveSymmetric(gram, rhs, size: k)
    let intercept = my - zip(mx, c).reduce(0) { $0 + $1.0 * $1.1 }
    var residual = 0.0, spread = 0.0
    for i in 0..<n {
        var prediction = intercept
        for (a, j) in columns.enumerated() where rows[i][j] { prediction += c[a] }
        residual += w[i] * (y[i] - prediction) * (y[i] - prediction)
        spread += w[i] * (y[i] - my) * (y[i] - my)
    }
    return (c, intercept, spread > 0 ? 1 - residual / spread : 1)
}

/// Solves the symmetric positive semi-definite system `a x = b` by Cholesky; a singular system
/// (too few samples for the features) gets the smallest ridge that makes it solvable, which picks
/// the minimum-norm-like solution instead of failing.
func solveSymmetric(_ a: [Double], _ b: [Double], size n: Int) -> [Double] {
    if n == 0 { return [] }
    let trace = (0..<n).reduce(0.0) { $0 + abs(a[$1 * n + $1]) }
    var jitter = 0.0
    while true {
        var l = [Double](repeating: 0, count: n * n)
        var ok = true
        outer: for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j] + (i == j ? jitter : 0)
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    if s <= 1e-12 * max(trace, 1e-300) { ok = false; break outer }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        if ok {
            var z = b
            for i in 0..<n {
                for k in 0..<i { z[i] -= l[i * n + k] * z[k] }
                z[i] /= l[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {
                for k in (i + 1)..<n { z[i] -= l[k * n + i] * z[k] }
                z[i] /= l[i * n + i]
            }
            return z
        }
        jitter = jitter == 0 ? 1e-10 * max(trace / Double(n), 1e-300) : jitter * 10
    }
}

// MARK: - KernelSHAP

/// KernelSHAP (Lundberg and Lee) on superpixels: coalitions weighted by the Shapley kernel, solved
/// by a weighted least-squares fit constrained so that the values add up to `f(x) - f(baseline)`
/// exactly. Like shap's KernelExplainer it enumerates every coalition of the smallest and largest
/// sizes while the budget allows and samples the rest in complementary pairs; a budget of
/// `2^M - 2` or more enumerates everything and returns the exact Shapley values.
public struct KernelSHAP: AttributionMethod, ModelBacked {
    public let name = "kernelshap"
    public let model: ExplainedModel
    /// Model evaluations besides the full image and the baseline (default 1000).
    public var samples: Int
    public var segmentation: Segmentation
    public var seed: UInt64
    public var engine: PerturbationEngine

    public init(model: ExplainedModel, samples: Int = 1000, segmentation: Segmentation = .slic(SLIC()), seed: UInt64 = 0,
                perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.samples = samples
        self.segmentation = segmentation
        self.seed = seed
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    /// Coalitions and their kernel weights for `m` players within the budget; `enumerated` counts
    /// the leading rows that come from fully enumerated sizes.
    func coalitions(players m: Int) -> (rows: [[Bool]], weights: [Double], enumerated: Int) {
        guard m >= 2 else { return ([], [], 0) }
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
        guard full < sizes, left > 0 else { return (rows, weights, enumerated) }
        // Sample the other sizes in proportion to their kernel mass, each with its complement.
        let rest = Array(kernel[full...]), restTotal = rest.reduce(0, +)
        var rng = SeededGenerator(seed: seed)
        var index: [[Bool]: Int] = [:]
        var sampledWeights: [Double] = [], sampledRows: [[Bool]] = []
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
                if let i = index[candidate] { sampledWeights[i] += 1 } else {
                    guard left > 0 else { break }
                    index[candidate] = sampledRows.count
                    sampledRows.append(candidate); sampledWeights.append(1)
                    left -= 1
                }
            }
        }
        let mass = 1 - kernel[..<full].reduce(0, +), drawn = sampledWeights.reduce(0, +)
        rows += sampledRows
        weights += sampledWeights.map { $0 * mass / drawn }
        return (rows, weights, enumerated)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        guard samples >= 1 else { throw XAIError.invalidArgument(op: "--samples", message: "KernelSHAP needs at least one sample, got \(samples)") }
        return try explainSegments(model: model, engine: engine, segmentation: segmentation, input: input, target: target, baseline: baseline) { game in
            let m = game.players
            let ends = try game.values([[Bool](repeating: true, count: m), [Bool](repeating: false, count: m)])
            let (fx, f0) = (ends[0], ends[1])
            guard m >= 2 else { return ([fx - f0], ["baseValue": f0, "halfSplitRankCorrelation": 1]) }
            let (rows, weights, enumerated) = coalitions(players: m)
            let y = try game.values(rows)
            let phi = Self.solve(rows, y, weights, players: m, total: fx - f0, base: f0)
            // Settledness: the enumerated rows with each half of the sampled ones.
            var agreement = 1.0
            let sampled = rows.count - enumerated
            if sampled >= 4 {
                let mid = enumerated + sampled / 2
                func half(_ r: Range<Int>) -> [Double] {
                    let idx = Array(0..<enumerated) + Array(r)
                    let mass = weights[enumerated...].reduce(0, +), part = r.reduce(0.0) { $0 + weights[$1] }
                    return Self.solve(idx.map { rows[$0] }, idx.map { y[$0] },
                                      idx.map { $0 < enumerated ? weights[$0] : weights[$0] * mass / part }, players: m, total: fx - f0, base: f0)
                }
                agreement = spearmanCorrelation(half(enumerated..<mid), half(mid..<rows.count))
            }
            return (phi, ["baseValue": f0, "fullyEnumerated": sampled == 0 ? 1 : 0, "halfSplitRankCorrelation": agreement])
        }
    }

    /// Weighted least squares for `phi` with `sum(phi) == total`: the last player's value is
    /// eliminated (`phi_M = total - sum of the others`) and the rest fit by the normal equations.
    static func solve(_ rows: [[Bool]], _ y: [Double], _ w: [Double], players m: Int, total: Double, base: Double) -> [Double] {
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

/// Exact Shapley values of the segments by evaluating all `2^M` coalitions (at most 16 segments):
/// `phi_i = sum over S without i of |S|! (M - |S| - 1)! / M! (v(S + i) - v(S))`. The oracle the
/// KernelSHAP tests compare with; usable on its own for coarse segmentations.
public struct ExactShapley: AttributionMethod, ModelBacked {
    public let name = "shapley"
    public let model: ExplainedModel
    public var segmentation: Segmentation
    public var engine: PerturbationEngine
    public static let maximumPlayers = 16

    public init(model: ExplainedModel, segmentation: Segmentation, perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit,
                progress: PerturbationProgress? = nil) {
        self.model = model
        self.segmentation = segmentation
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        try explainSegments(model: model, engine: engine, segmentation: segmentation, input: input, target: target, baseline: baseline) { game in
            let m = game.players
            guard m <= Self.maximumPlayers else {
                throw XAIError.invalidArgument(op: "--segments", message: "exact Shapley values need at most \(Self.maximumPlayers) segments, got \(m); use kernelshap")
            }
            let all = 1 << m
            let v = try game.values((0..<all).map { s in (0..<m).map { s >> $0 & 1 == 1 } })
            var factorial = [1.0]
            for i in 1...m { factorial.append(factorial[i - 1] * Double(i)) }
            var phi = [Double](repeating: 0, count: m)
            for s in 0..<all {
                let size = s.nonzeroBitCount
                guard size < m else { continue }
                let weight = factorial[size] * factorial[m - size - 1] / factorial[m]
                for i in 0..<m where s >> i & 1 == 0 { phi[i] += weight * (v[s | 1 << i] - v[s]) }
            }
            return (phi, ["baseValue": v[0]])
        }
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
