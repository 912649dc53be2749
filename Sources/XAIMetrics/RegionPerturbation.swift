import Foundation
import XAICore
import XAIGraph
import XAIMethods

/// The grid of square patches Quantus 0.6 lays over an image (`utils.get_block_indices` on the
/// input padded to a multiple of the patch size, the padding split in two with the odd row or
/// column after): patch `(i, j)` covers rows `i * size - top ..< (i + 1) * size - top` and the
/// matching columns, clipped to the image, with `top = floor(((size - H % size) % size) / 2)`.
/// A patch spans every channel, and its score is the map's sum over it (Quantus sums the map
/// broadcast over the channels: the same order).
public struct PatchGrid: Sendable, Equatable {
    public let size: Int, height: Int, width: Int
    public let rows: Int, columns: Int
    let top: Int, left: Int
    /// The patch of each pixel, row by row.
    public let labels: [Int]

    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`patchSize`) for a size
    ///   below 1 or above the image's shorter side.
    public init(size: Int, height: Int, width: Int) throws {
        guard size >= 1, size <= min(height, width) else {
            throw XAIError.invalidArgument(parameter: "patchSize", value: "\(size)", reason: "must be between 1 and the image's shorter side, \(min(height, width)) pixels")
        }
        self.size = size
        self.height = height
        self.width = width
        rows = (height + size - 1) / size
        columns = (width + size - 1) / size
        let top = ((size - height % size) % size) / 2, left = ((size - width % size) % size) / 2
        let columns = self.columns
        self.top = top
        self.left = left
        labels = (0..<(height * width)).map { p in ((p / width + top) / size) * columns + (p % width + left) / size }
    }

    public var count: Int { rows * columns }

    /// The map's sum over each patch, in float64.
    public func sums(_ map: ArraySlice<Float>) -> [Double] {
        var sums = [Double](repeating: 0, count: count)
        for (p, label) in labels.enumerated() { sums[label] += Double(map[map.startIndex + p]) }
        return sums
    }
}

/// Each pixel's place in an order of its segments: segment `s` of `labels` comes at place
/// `order[s]`, so the copies that remove the first `k` places remove whole segments.
func pixelPlaces(labels: [Int], segmentPlaces: [Float]) -> [Float] {
    labels.map { segmentPlaces[$0] }
}

/// Region perturbation (Samek, Binder, Montavon, Lapuschkin & Müller 2017, "Evaluating the
/// visualization of what a deep neural network has learned", IEEE TNNLS), as Quantus 0.6's
/// `RegionPerturbation`: the image is cut into `patchSize` squares (``PatchGrid``), ordered by the
/// map's sum over each, most relevant first (`morf`) or least relevant first (`lerf`), ties by
/// patch index; the first `regions` are replaced by the substrate one more at a time, and the
/// curve is the drop of the target's softmax probability, `y(x) - y(x_k)` for k = 1...regions
/// (Quantus's curve). The score is the paper's AOPC, the curve's sum over `regions + 1` (the
/// k = 0 term is 0); Quantus's `get_auc_score` is the curve's trapezoid with unit steps, which the
/// returned curves give. With MoRF a steeper drop is better (higher); with LeRF a flatter one
/// (lower). The paper filled each region with uniform noise; Quantus's default substrate is the
/// image's minimum ("black"); xai's is zero, the dataset's mean colour after the usual
/// normalisation, as deletion's.
public struct RegionPerturbation: Sendable {
    public enum Order: String, Sendable, CaseIterable {
        case morf, lerf
    }

    /// The region counts it takes.
    public static let regionRange = 1...1_000_000
    public var patchSize: Int
    public var regions: Int
    public var order: Order
    public var substrate: PixelCurve.Substrate
    public var perturbationsPerEval: Int?

    public init(patchSize: Int = 8, regions: Int = 100, order: Order = .morf, substrate: PixelCurve.Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.patchSize = patchSize
        self.regions = regions
        self.order = order
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    public var name: String { order == .morf ? "region_perturbation" : "region_perturbation_lerf" }

    /// The grid for images of `height x width`, after checking the knobs.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`patchSize`, `regions`).
    public func grid(height: Int, width: Int) throws -> PatchGrid {
        guard Self.regionRange.contains(regions) else {
            throw XAIError.invalidArgument(parameter: "regions", value: "\(regions)",
                                           reason: "must be between \(Self.regionRange.lowerBound) and \(Self.regionRange.upperBound)")
        }
        return try PatchGrid(size: patchSize, height: height, width: width)
    }

    /// Evaluations per image: the clean image and one per region (at most the grid's patches).
    public func evaluations(height: Int, width: Int) throws -> Int { min(regions, try grid(height: height, width: width).count) + 1 }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: name)
        let grid = try grid(height: h, width: w)
        let steps = min(regions, grid.count)
        let labels = grid.labels
        let (_, targets) = try model.prepare(images, target: target)
        var curves: [[Double]] = [], scores: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let places = pixelPlaces(labels: labels, segmentPlaces: PixelCurve.ranks(grid.sums(mapValues(maps, b, pixels: h * w)), descending: order == .morf))
            let y = try PixelCurve.removalScores(model: model, image: image, start: try substrate.tensor(for: image, model: model), places: places,
                                                 counts: Array(0...steps), firstKept: false, target: targets[b], output: .probability,
                                                 perturbationsPerEval: perturbationsPerEval, progress: progress)
            let drops = y.dropFirst().map { y[0] - $0 }
            curves.append(drops)
            scores.append(drops.reduce(0, +) / Double(steps + 1))
        }
        return MetricResult(metric: name, direction: order == .morf ? .higherIsBetter : .lowerIsBetter, scores: scores,
                            settings: ["patch": "\(patchSize)x\(patchSize), every channel (\(grid.rows)x\(grid.columns) patches)", "regions": "\(steps)",
                                       "order": order == .morf ? "most relevant first (map's sum over the patch, ties by patch index)"
                                           : "least relevant first (map's sum over the patch, ties by patch index)",
                                       "substrate": substrate.rawValue, "score": "softmax probability of the target",
                                       "curve": "y(x) - y(x_k), k = 1...regions (Quantus's)", "definition": "AOPC: sum of the curve / (regions + 1)"],
                            curves: curves)
    }
}

/// Selectivity (Montavon, Samek & Müller 2018, "Methods for interpreting and understanding deep
/// neural networks", Digital Signal Processing), as Quantus 0.6's `Selectivity`: every patch of
/// the ``PatchGrid`` is removed in turn, most relevant first (ties by patch index), and the
/// target's softmax probability is read after each; a map that finds what the model needs makes it
/// fall fast. The curve holds the clean image's probability first, then one per patch; the score
/// is its area by the trapezoid rule over [0, 1] (deletion's `area`), lower is better. Quantus's
/// `get_auc_score` is the trapezoid of the curve without its first point, with unit steps.
public struct Selectivity: Sendable {
    public var patchSize: Int
    public var substrate: PixelCurve.Substrate
    public var perturbationsPerEval: Int?

    public init(patchSize: Int = 8, substrate: PixelCurve.Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.patchSize = patchSize
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "selectivity")
        let grid = try PatchGrid(size: patchSize, height: h, width: w)
        let labels = grid.labels
        let (_, targets) = try model.prepare(images, target: target)
        var curves: [[Double]] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let places = pixelPlaces(labels: labels, segmentPlaces: PixelCurve.ranks(grid.sums(mapValues(maps, b, pixels: h * w)), descending: true))
            curves.append(try PixelCurve.removalScores(model: model, image: image, start: try substrate.tensor(for: image, model: model), places: places,
                                                       counts: Array(0...grid.count), firstKept: false, target: targets[b], output: .probability,
                                                       perturbationsPerEval: perturbationsPerEval, progress: progress))
        }
        return MetricResult(metric: "selectivity", direction: .lowerIsBetter, scores: curves.map(PixelCurve.area),
                            settings: ["patch": "\(patchSize)x\(patchSize), every channel (\(grid.rows)x\(grid.columns) patches, all removed)",
                                       "order": "most relevant first (map's sum over the patch, ties by patch index)", "substrate": substrate.rawValue,
                                       "score": "softmax probability of the target", "curve": "the clean image, then after each patch",
                                       "area": "trapezoid over [0, 1]"],
                            curves: curves)
    }
}

/// IROF, Iterative Removal Of Features (Rieger & Hansen 2020, "IROF: a low resource evaluation
/// metric for explanation methods"), as Quantus 0.6's `IROF`: the image's superpixels are ordered
/// by the map's mean over each, highest first (ties by segment index), and removed one more at a
/// time; the curve is the target's softmax probability relative to the clean image's, `y(x_k) /
/// y(x)`, for k = 0 (1) to every segment. The score is the area over that curve on [0, 1],
/// `1 - area` (deletion's trapezoid), higher is better. Quantus's value is `S - trapz(curve[1:])`
/// with unit steps, S the segment count, which the returned curves give. Quantus segments with
/// scikit-image's SLIC at its defaults and fills with the mean of the partly removed image; xai
/// takes the superpixels the method's knobs name (SLIC by default, as LIME's) and the substrate.
public struct IROF: Sendable {
    public var segmentation: Segmentation
    public var substrate: PixelCurve.Substrate
    public var perturbationsPerEval: Int?

    public init(segmentation: Segmentation, substrate: PixelCurve.Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.segmentation = segmentation
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    /// Each segment's mean of the map, in float64.
    static func segmentMeans(_ map: ArraySlice<Float>, _ segments: SegmentMap) -> [Double] {
        var sums = [Double](repeating: 0, count: segments.count)
        for (p, label) in segments.labels.enumerated() { sums[Int(label)] += Double(map[map.startIndex + p]) }
        return zip(sums, segments.sizes).map { $0 / Double(max($1, 1)) }
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "irof")
        let (_, targets) = try model.prepare(images, target: target)
        var curves: [[Double]] = [], counts: [Int] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let segments = try segmentation.segment(image, index: b)
            guard segments.height == h, segments.width == w else {
                throw XAIError.shapeMismatch(op: "irof", expected: "superpixels \(h)x\(w)", got: [Shape([segments.height, segments.width])])
            }
            let places = pixelPlaces(labels: segments.labels.map(Int.init),
                                     segmentPlaces: PixelCurve.ranks(Self.segmentMeans(mapValues(maps, b, pixels: h * w), segments), descending: true))
            let y = try PixelCurve.removalScores(model: model, image: image, start: try substrate.tensor(for: image, model: model), places: places,
                                                 counts: Array(0...segments.count), firstKept: false, target: targets[b], output: .probability,
                                                 perturbationsPerEval: perturbationsPerEval, progress: progress)
            curves.append(y.map { y[0] > 0 ? $0 / y[0] : .nan })
            counts.append(segments.count)
        }
        return MetricResult(metric: "irof", direction: .higherIsBetter, scores: curves.map { 1 - PixelCurve.area($0) },
                            settings: ["segments": counts.map(String.init).joined(separator: ","), "order": "highest mean of the map first, ties by segment index",
                                       "substrate": substrate.rawValue, "score": "softmax probability of the target over the clean image's",
                                       "curve": "y(x_k) / y(x), k = 0...segments", "definition": "1 - trapezoid area over [0, 1] (area over the curve)"],
                            curves: curves)
    }
}

/// Faithfulness estimate (Alvarez-Melis & Jaakkola 2018, "Towards robust interpretability with
/// self-explaining neural networks", NeurIPS), as Quantus 0.6's `FaithfulnessEstimate`: the pixels
/// are ordered by the map, highest first (ties by index), and cut into consecutive groups of
/// `step`; each group alone is replaced by the substrate (the others stay), and the score is the
/// Pearson correlation of the groups' map sums with the drops of the target's logit they cause.
/// Higher is better. Quantus's groups are of input elements (a channel of a pixel), one by default
/// and a step that divides the input; xai's of whole pixels, deletion's step by default (about 224
/// groups), and a step that does not divide the image leaves the last group short. Three groups at
/// least: two would always correlate +-1.
public struct FaithfulnessEstimate: Sendable {
    public var step: Int?
    public var substrate: PixelCurve.Substrate
    public var perturbationsPerEval: Int?

    public init(step: Int? = nil, substrate: PixelCurve.Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.step = step
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    /// The group size for `pixels` pixels (deletion's step); a correlation needs three groups.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`step`).
    public func resolvedStep(pixels: Int) throws -> Int {
        try PixelCurve.step(step, pixels: pixels, atLeast: 3, "faithfulness_estimate correlates three or more groups")
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "faithfulness_estimate")
        let pixels = h * w
        let step = try resolvedStep(pixels: pixels)
        let groups = (pixels + step - 1) / step
        let (_, targets) = try model.prepare(images, target: target)
        let engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: .logit, progress: progress)
        let be = model.backend
        var scores: [Double] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let (group, sums) = PixelCurve.groups(mapValues(maps, b, pixels: pixels).map(Double.init), step: step, descending: true)
            let labels = try be.upload(Tensor(unchecked: Shape([h, w]), group.map(Float.init)))
            // Copy 0 is the clean image; copy g + 1 removes group g alone.
            let y = try engine.evaluate(image: try be.upload(image), baseline: try be.upload(try substrate.tensor(for: image, model: model)),
                                        target: targets[b], count: groups + 1) { range in
                .segments(labels: labels, rows: range.map { copy in (0..<groups).map { $0 != copy - 1 } }[...], segmentCount: groups)
            }
            scores.append(Similarity.pearson(sums, y.dropFirst().map { y[0] - $0 }))
        }
        return MetricResult(metric: "faithfulness_estimate", direction: .higherIsBetter, scores: scores,
                            settings: ["step": "\(step)", "groups": "\(groups)", "order": "descending map value, ties by pixel index",
                                       "substrate": substrate.rawValue, "score": "logit of the target",
                                       "definition": "Pearson(map's sum over each group, the logit drop when that group alone is removed)"])
    }
}

/// Monotonicity (Arya et al. 2019, "One explanation does not fit all", the AIX360 toolkit's
/// `monotonicity_metric`): starting from the substrate, the image's pixels are put back in order of
/// increasing map value (ties by index), `step` at a time, and the target's softmax probability is
/// read after each; the score is 1 where it never falls, else 0 (its mean over images is the share
/// of monotonic maps). Higher is better. The map is used as it is (AIX360's coefficients; Quantus
/// takes |map| by default). AIX360 puts back one feature at a time; xai's default step is
/// deletion's (about 224 steps), and a coarser step can miss a dip, so scores are comparable only
/// at the same step. Two steps at least: one alone never falls. Quantus 0.6's `Monotonicity` is
/// not a reference: its loop replaces the baseline's values by the baseline, so it never puts the
/// image back and scores 1 for any map.
public struct Monotonicity: Sendable {
    public var step: Int?
    public var substrate: PixelCurve.Substrate
    public var perturbationsPerEval: Int?

    public init(step: Int? = nil, substrate: PixelCurve.Substrate = .zero, perturbationsPerEval: Int? = nil) {
        self.step = step
        self.substrate = substrate
        self.perturbationsPerEval = perturbationsPerEval
    }

    /// The pixels put back per step for `pixels` pixels (deletion's step); two steps at least.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`step`).
    public func resolvedStep(pixels: Int) throws -> Int {
        try PixelCurve.step(step, pixels: pixels, atLeast: 2, "monotonicity compares two or more steps")
    }

    public func evaluate(model: ExplainedModel, images: Tensor, maps: Tensor, target: Target = .predicted,
                         progress: PerturbationProgress? = nil) throws -> MetricResult {
        let (n, h, w) = try checkMaps(maps, for: images, metric: "monotonicity")
        let pixels = h * w
        let step = try resolvedStep(pixels: pixels)
        let counts = (1...((pixels + step - 1) / step)).map { min($0 * step, pixels) }
        let (_, targets) = try model.prepare(images, target: target)
        var curves: [[Double]] = []
        for b in 0..<n {
            let image = try ExplainedModel.image(images, b)
            let places = PixelCurve.ranks(mapValues(maps, b, pixels: pixels).map(Double.init), descending: false)
            curves.append(try PixelCurve.removalScores(model: model, image: image, start: try substrate.tensor(for: image, model: model), places: places,
                                                       counts: counts, firstKept: true, target: targets[b], output: .probability,
                                                       perturbationsPerEval: perturbationsPerEval, progress: progress))
        }
        let scores = curves.map { c in zip(c, c.dropFirst()).allSatisfy { $1 >= $0 } ? 1.0 : 0.0 }
        return MetricResult(metric: "monotonicity", direction: .higherIsBetter, scores: scores,
                            settings: ["step": "\(step)", "order": "ascending map value, ties by pixel index", "start": substrate.rawValue,
                                       "score": "softmax probability of the target", "curve": "after each step of pixels put back",
                                       "definition": "1 where the curve never falls, else 0"],
                            curves: curves)
    }
}
