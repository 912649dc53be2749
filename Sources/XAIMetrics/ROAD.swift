import CCHOLMOD
import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022, "A Consistent
/// and Efficient Evaluation Strategy for Attribution Methods"), as pytorch-grad-cam's
/// `ROADMostRelevantFirstAverage`, `ROADLeastRelevantFirstAverage` and `ROADCombined`.
///
/// Deletion replaces removed pixels by a constant, and the model then answers to the shape of the
/// hole as much as to the pixels lost; ROAD fills each removed pixel from its neighbours instead
/// (``LinearImputation``), so the hole carries no shape to read. At each percentile `p`, MoRF
/// removes the pixels above the map's `p`-th percentile (the most relevant `100 - p` %) and LeRF
/// those below its `(100 - p)`-th (the least relevant); each scores the target on the imputed
/// image minus on the image, averaged over the percentiles. `road_morf` is lower-is-better (a
/// faithful map loses most when its top pixels go), `road_lerf` higher-is-better, and `road` is
/// pytorch-grad-cam's combination `(LeRF - MoRF) / 2`, higher-is-better.
///
/// What is removed, stated: pytorch-grad-cam keeps the pixels strictly below `np.percentile(map,
/// p)`, so of `n` tie-free pixels it keeps `ceil(p (n - 1) / 100)`. xai keeps exactly that many,
/// the lowest (MoRF) or the highest (LeRF) by value, ties by pixel index. The two agree on every
/// map without ties (up to rounding); on ties pytorch-grad-cam removes every pixel tied at the threshold (a ReLU'd
/// CAM whose zeros pass the percentile loses all its pixels, and its system becomes singular).
///
/// The noise pytorch-grad-cam adds to the imputed pixels (`0.01 * randn`, torch's global stream)
/// is xai's own here: run `r` of image `b` (MoRF percentiles first, then LeRF's) adds
/// `Tensor.gaussian([C, H, W], std: noise, seed: seed &+ 1_000_003 * b &+ r)` at the removed pixels.
public struct ROAD: Sendable {
    /// pytorch-grad-cam's percentiles.
    public static let defaultPercentiles = [10, 20, 30, 40, 50, 60, 70, 80, 90]

    /// The score of the target each image is judged by.
    public enum Score: String, Sendable, CaseIterable {
        case probability, logit
    }

    /// Which pixels a run removes.
    public enum Order: Sendable {
        case mostRelevantFirst, leastRelevantFirst
    }

    /// What happens to pixels tied with the percentile.
    public enum Ties: String, Sendable, CaseIterable {
        /// Exactly as many pixels kept as a map without ties keeps, ties by pixel index (the default:
        /// defined on every map).
        case index
        /// pytorch-grad-cam's rule: every pixel below `np.percentile(map, p)` kept (for LeRF, below
        /// the percentile of `1 - map`), so every pixel tied at the threshold goes. Where that
        /// removes them all (a ReLU'd CAM whose zeros pass the percentile) nothing is left to impute
        /// from, and the image's score is NaN (pytorch-grad-cam's system is singular there).
        case threshold
    }

    public var percentiles: [Int]
    /// Standard deviation of the noise added to the imputed values, in input units.
    public var noise: Float
    public var score: Score
    public var seed: UInt64
    public var ties: Ties

    public init(percentiles: [Int] = ROAD.defaultPercentiles, noise: Float = 0.01, score: Score = .probability, seed: UInt64 = 0, ties: Ties = .index) {
        self.ties = ties
        self.percentiles = percentiles
        self.noise = noise
        self.score = score
        self.seed = seed
    }

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`percentiles`, `noise`).
    public func validate() throws {
        guard !percentiles.isEmpty, percentiles.allSatisfy({ (1...99).contains($0) }), Set(percentiles).count == percentiles.count else {
            throw XAIError.invalidArgument(parameter: "percentiles", value: percentiles.map(String.init).joined(separator: ","),
                                           reason: "must be distinct whole percentiles between 1 and 99")
        }
        guard noise.isFinite, noise >= 0 else {
            throw XAIError.invalidArgument(parameter: "noise", value: "\(noise)", reason: "must be a number of 0 or more")
        }
    }

    /// Parses a comma-separated list of percentiles ("10,20,30").
    public static func percentiles(parsing text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Int($0) }
        guard values.count == parts.count else {
            throw XAIError.invalidArgument(parameter: "percentiles", value: text, reason: "must be whole numbers separated by commas, e.g. 10,20,30")
        }
        return values
    }

    /// The pixels kept at `percentile` of `values`: `ceil(percentile (n - 1) / 100)` of them, the
    /// lowest values for MoRF, the highest for LeRF, ties by pixel index.
    public static func kept(_ values: ArraySlice<Float>, percentile: Int, order: Order) -> [Bool] {
        kept(ranking(values, order), percentile: percentile)
    }

    /// The pixels in the order they are kept: ascending values for MoRF, descending for LeRF, ties
    /// by pixel index.
    static func ranking(_ values: ArraySlice<Float>, _ order: Order) -> [Int] {
        let base = values.startIndex
        return values.indices.sorted { a, b in
            guard values[a] != values[b] else { return a < b }
            return order == .mostRelevantFirst ? values[a] < values[b] : values[a] > values[b]
        }.map { $0 - base }
    }

    /// pytorch-grad-cam's kept pixels: those of `values` (for LeRF `1 - values`, in float32) strictly
    /// below their `percentile`-th percentile, numpy's linear interpolation (`_lerp`) in float32.
    public static func keptBelowThreshold(_ values: ArraySlice<Float>, percentile: Int, order: Order) -> [Bool] {
        let v = order == .mostRelevantFirst ? Array(values) : values.map { 1 - $0 }
        let sorted = v.sorted()
        guard let last = sorted.indices.last else { return [] }
        let position = Double(min(max(percentile, 0), 100)) / 100 * Double(last)
        let below = min(Int(position.rounded(.down)), last), above = min(below + 1, last)
        // numpy's _lerp with its float64 weight, the threshold then compared in float32 as torch compares it.
        let (a, b, t) = (Double(sorted[below]), Double(sorted[above]), position - Double(below))
        let threshold = Float(t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t)
        return v.map { $0 < threshold }
    }

    static func kept(_ ranking: [Int], percentile: Int) -> [Bool] {
        let count = (min(max(percentile, 0), 100) * (ranking.count - 1) + 99) / 100
        var keep = [Bool](repeating: false, count: ranking.count)
        for index in ranking.prefix(count) { keep[index] = true }
        return keep
    }

    /// The MoRF, LeRF and combined scores of `maps` (`[N, H, W]`) for `images` and `target`.
    /// - Throws: ``XAIError/shapeMismatch(op:expected:got:)`` for maps that do not match the images,
    ///   ``XAIError/nonFinite(what:count:)`` for maps with NaN or infinities,
    ///   ``XAIError/invalidArgument(parameter:value:reason:)`` for bad knobs or targets.
    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> (morf: MetricResult, lerf: MetricResult, combined: MetricResult) {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "road")
        try validate()
        try images.requireFinite("road: image")
        let pixels = h * w
        guard pixels >= 2 else { throw XAIError.shapeMismatch(op: "road", expected: "images of 2 pixels or more", got: [images.shape]) }
        let channels = images.shape[1]
        let (logits, targets) = try model.prepare(images, target: target)
        let classes = logits.shape.count / n
        let runs = percentiles.map { ($0, Order.mostRelevantFirst) } + percentiles.map { ($0, Order.leastRelevantFirst) }
        let chunk = try PerturbationEngine(model: model).batchSize(for: Shape([1, channels, h, w]))
        var morf: [Double] = [], lerf: [Double] = []
        var done = 0
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let map = mapValues(maps, b, pixels: pixels)
            let rankings = ties == .threshold ? [:]
                : [Order.mostRelevantFirst: Self.ranking(map, .mostRelevantFirst), .leastRelevantFirst: Self.ranking(map, .leastRelevantFirst)]
            let clean = Self.value(logits.scalars[(b * classes)..<((b + 1) * classes)], targets[b], score)
            var changes: [Double] = []
            var start = 0
            while start < runs.count {
                let range = start..<min(start + chunk, runs.count)
                // The imputations are independent sparse solves: one per worker thread.
                var imputed = [Result<[Float], Error>](repeating: .success([]), count: range.count)
                imputed.withUnsafeMutableBufferPointer { slots in
                    concurrentForEach(range.count) { k in
                        let r = range.lowerBound + k
                        let keep = ties == .index ? Self.kept(rankings[runs[r].1] ?? [], percentile: runs[r].0)
                            : Self.keptBelowThreshold(map, percentile: runs[r].0, order: runs[r].1)
                        // Nothing kept (pytorch-grad-cam's rule on ties): no image to score, the image's ROAD is NaN.
                        guard keep.contains(true) else { return }
                        slots[k] = Result { try impute(image.scalars, channels: channels, height: h, width: w, keep: keep, image: b, run: r) }
                    }
                }
                var batch: [Float] = []
                batch.reserveCapacity(range.count * channels * pixels)
                // A run with nothing kept runs its image unimputed and scores NaN.
                for result in imputed { let x = try result.get(); batch += x.isEmpty ? image.scalars : x }
                let out = try model.logits(try model.backend.upload(Tensor(unchecked: Shape([range.count, channels, h, w]), batch)))
                for k in 0..<range.count {
                    let scored = (try? imputed[k].get().isEmpty) == false
                    changes.append(scored ? Self.value(out.scalars[(k * classes)..<((k + 1) * classes)], targets[b], score) - clean : .nan)
                }
                done += range.count
                try progress?(done, n * runs.count)
                start = range.upperBound
            }
            let p = percentiles.count
            morf.append(changes[0..<p].reduce(0, +) / Double(p))
            lerf.append(changes[p..<(2 * p)].reduce(0, +) / Double(p))
        }
        let settings = ["percentiles": percentiles.map(String.init).joined(separator: ","), "noise": "\(noise)", "seed": "\(seed)",
                        "score": score == .probability ? "softmax probability of the target" : "logit of the target",
                        "imputation": "noisy linear (each removed pixel the weighted mean of its 8 neighbours, 1/6 across, 1/12 diagonally)",
                        "removed": ties == .index ? "all but ceil(p (n - 1) / 100) pixels at percentile p, ties by pixel index"
                            : "every pixel not below the p-th percentile (of 1 - map for LeRF), as pytorch-grad-cam"]
        func result(_ name: String, _ direction: MetricDirection, _ scores: [Double], _ definition: String) -> MetricResult {
            MetricResult(metric: name, direction: direction, scores: scores, settings: settings.merging(["definition": definition]) { $1 })
        }
        return (result("road_morf", .lowerIsBetter, morf, "mean over p of score(most relevant removed) - score(image)"),
                result("road_lerf", .higherIsBetter, lerf, "mean over p of score(least relevant removed) - score(image)"),
                result("road", .higherIsBetter, zip(lerf, morf).map { ($0 - $1) / 2 }, "(road_lerf - road_morf) / 2 (pytorch-grad-cam's ROADCombined)"))
    }

    /// `image` with the pixels where `keep` is false imputed, and run `run`'s noise of image `b` added there.
    func impute(_ image: [Float], channels: Int, height h: Int, width w: Int, keep: [Bool], image b: Int, run: Int) throws -> [Float] {
        var imputed = try LinearImputation.impute(image, channels: channels, height: h, width: w, keep: keep)
        guard noise > 0 else { return imputed }
        let pixels = h * w
        let z = Tensor.gaussian(Shape([channels, h, w]), std: noise, seed: copySeed(seed, image: b, copy: run)).scalars
        for c in 0..<channels { for p in 0..<pixels where !keep[p] { imputed[c * pixels + p] += z[c * pixels + p] } }
        return imputed
    }

    /// The target's logit, or its softmax probability, from one row of logits.
    static func value(_ row: ArraySlice<Float>, _ target: Int, _ score: Score) -> Double {
        score == .probability ? ExplainedModel.probabilities(row)[target] : Double(row[row.startIndex + target])
    }
}

/// The ROAD authors' noisy linear imputation without its noise: every removed pixel takes the
/// weighted mean of its 8 neighbours (1/6 across, 1/12 diagonally; neighbours outside the image
/// dropped), known neighbours giving their values, removed ones their unknowns. That is one
/// sparse system per image, the same for every channel: `M x = r` with `M[i][i]` the sum of pixel
/// i's neighbour weights inside the image, `M[i][j] = -w(i, j)` for removed neighbours, and `r[i]`
/// the weighted sum of its known neighbours. `M` is symmetric (the weights are), and positive
/// definite as long as one pixel is known (every group of connected removed pixels then borders a
/// known one), so CHOLMOD's sparse Cholesky factorisation solves it, in float64.
public enum LinearImputation {
    static let neighbours: [(dy: Int, dx: Int, weight: Double)] = [
        (1, 1, 1.0 / 12), (0, 1, 1.0 / 6), (-1, 1, 1.0 / 12), (1, -1, 1.0 / 12),
        (0, -1, 1.0 / 6), (-1, -1, 1.0 / 12), (1, 0, 1.0 / 6), (-1, 0, 1.0 / 6),
    ]

    /// `image` (`[C, H, W]` values) with the pixels where `keep` is false imputed.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` when no pixel is kept,
    ///   ``XAIError/unsupported(op:reason:)`` when the solver fails.
    public static func impute(_ image: [Float], channels: Int, height h: Int, width w: Int, keep: [Bool]) throws -> [Float] {
        let pixels = h * w
        guard keep.count == pixels, image.count == channels * pixels else {
            throw XAIError.shapeMismatch(op: "road imputation", expected: "\(channels) x \(pixels) values and \(pixels) flags",
                                         got: [Shape([image.count]), Shape([keep.count])])
        }
        var unknown = [Int](repeating: -1, count: pixels)
        var removed: [Int] = []
        for p in 0..<pixels where !keep[p] {
            unknown[p] = removed.count
            removed.append(p)
        }
        guard !removed.isEmpty else { return image }
        guard removed.count < pixels else {
            throw XAIError.invalidArgument(parameter: "percentiles", value: "", reason: "every pixel removed: nothing to impute from")
        }
        let m = removed.count
        var rows: [Int32] = [], columns: [Int32] = [], values: [Double] = []
        var rhs = [Double](repeating: 0, count: m * channels)  // column-major: channel c is rhs[c*m ..< (c+1)*m]
        for (i, p) in removed.enumerated() {
            let (y, x) = (p / w, p % w)
            var diagonal = 0.0
            for (dy, dx, weight) in neighbours {
                let (ny, nx) = (y + dy, x + dx)
                guard ny >= 0, ny < h, nx >= 0, nx < w else { continue }
                diagonal += weight
                let q = ny * w + nx
                let j = unknown[q]
                if j > i {  // a removed neighbour, in the upper triangle: CHOLMOD reads a symmetric matrix from it
                    rows.append(Int32(i)); columns.append(Int32(j)); values.append(-weight)
                } else if j < 0 {
                    for c in 0..<channels { rhs[c * m + i] += weight * Double(image[c * pixels + q]) }
                }
            }
            rows.append(Int32(i)); columns.append(Int32(i)); values.append(diagonal)
        }
        let solution = try CholeskySolver.solve(order: m, rows: rows, columns: columns, values: values, rhs: rhs, columns: channels)
        var out = image
        for c in 0..<channels {
            for (i, p) in removed.enumerated() { out[c * pixels + p] = Float(solution[c * m + i]) }
        }
        return out
    }
}

/// A symmetric positive definite sparse system solved by CHOLMOD (one `cholmod_common` per call).
enum CholeskySolver {
    /// Solves `A X = B` for `A` of order `order` given by its upper triangle as triplets and `B`
    /// column-major with `columns` columns.
    static func solve(order: Int, rows: [Int32], columns: [Int32], values: [Double], rhs: [Double], columns right: Int) throws -> [Double] {
        var common = cholmod_common()
        guard cholmod_start(&common) != 0 else { throw XAIError.unsupported(op: "road imputation", reason: "CHOLMOD did not start") }
        defer { cholmod_finish(&common) }
        common.print = 0  // errors come back as XAIError, not on stderr
        func failure(_ step: String) -> XAIError {
            XAIError.unsupported(op: "road imputation", reason: "CHOLMOD's \(step) failed (status \(common.status))")
        }
        guard let triplet = cholmod_allocate_triplet(order, order, values.count, 1, Int32(CHOLMOD_REAL), &common) else { throw failure("allocation") }
        var t: UnsafeMutablePointer<cholmod_triplet>? = triplet
        defer { cholmod_free_triplet(&t, &common) }
        copy(rows, to: triplet.pointee.i)
        copy(columns, to: triplet.pointee.j)
        copy(values, to: triplet.pointee.x)
        triplet.pointee.nnz = values.count
        var a = cholmod_triplet_to_sparse(triplet, values.count, &common)
        defer { cholmod_free_sparse(&a, &common) }
        guard let matrix = a else { throw failure("conversion") }
        // AMD, alone: METIS's nested dissection halves the flops on these grids but took longer to
        // order than AMD's whole factorisation (224x224, 90 % removed), and CHOLMOD's default would
        // try it where AMD's fill looks poor.
        common.nmethods = 1
        common.method.0.ordering = Int32(CHOLMOD_AMD)
        var l = cholmod_analyze(matrix, &common)
        defer { cholmod_free_factor(&l, &common) }
        guard let factor = l else { throw failure("analysis") }
        guard cholmod_factorize(matrix, factor, &common) != 0, common.status == CHOLMOD_OK else { throw failure("factorisation") }
        var b = cholmod_allocate_dense(order, right, order, Int32(CHOLMOD_REAL), &common)
        defer { cholmod_free_dense(&b, &common) }
        guard let dense = b else { throw failure("allocation") }
        copy(rhs, to: dense.pointee.x)
        var x = cholmod_solve(Int32(CHOLMOD_A), factor, dense, &common)
        defer { cholmod_free_dense(&x, &common) }
        guard let solution = x, common.status == CHOLMOD_OK else { throw failure("solve") }
        let data = solution.pointee.x.assumingMemoryBound(to: Double.self)
        return Array(UnsafeBufferPointer(start: data, count: order * right))
    }

    private static func copy<T>(_ array: [T], to destination: UnsafeMutableRawPointer?) {
        guard let destination else { return }
        array.withUnsafeBufferPointer { source in
            guard let base = source.baseAddress else { return }
            destination.copyMemory(from: base, byteCount: source.count * MemoryLayout<T>.stride)
        }
    }
}
