import Foundation
import XAICore
import XAIGraph

/// RISE (Petsiuk et al.): random low-resolution binary grids, bilinearly upsampled with random
/// shifts, mask the image; the map is the score-weighted mean of the masks, `sum_i f(x * M_i) M_i /
/// (N p)`. The grids are drawn and the masks built on the device (``RandomGrids``), and the weighted
/// sum is one GEMM per block of masks, so neither grids nor masks cross to or from the host.
public struct RISE: ModelMethod {
    /// The mask counts RISE takes.
    public static let maskRange = 2...10_000_000
    /// Masks per block of the weighted sum (fixed, so the sum does not depend on the forward batch).
    static let accumulationBlock = 64

    public let name = "rise"
    public let model: ExplainedModel
    /// Number of masks (default 4000).
    public var masks: Int
    /// Cells per side of the random grid (default 7).
    public var gridSize: Int
    /// Probability that a cell keeps the image (default 0.5).
    public var keepProbability: Double
    public var seed: UInt64
    public var engine: PerturbationEngine

    /// - Parameters:
    ///   - model: the model to explain.
    ///   - masks: random masks (2 to 10,000,000).
    ///   - gridSize: cells per side of each random grid (1 to the image side).
    ///   - keepProbability: chance that a cell keeps the image, in (0, 1].
    ///   - seed: the masks' seed.
    ///   - perturbationsPerEval: masked copies per forward batch (default: from the memory budget).
    ///   - output: the score read for each copy (the paper's probability by default).
    ///   - progress: called after every batch.
    public init(model: ExplainedModel, masks: Int = 4000, gridSize: Int = 7, keepProbability: Double = 0.5, seed: UInt64 = 0,
                perturbationsPerEval: Int? = nil, output: ScoreOutput = .probability, progress: PerturbationProgress? = nil) {
        self.model = model
        self.masks = masks
        self.gridSize = gridSize
        self.keepProbability = keepProbability
        self.seed = seed
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    /// Every mask's grid and shift (`s x s` cells, each keeping the image with the keep
    /// probability, of `ceil(size / s)` pixels, upsampled to `s + 1` cells and cropped at a random
    /// offset within one cell) for an `height x width` image, as a description: the counter-based
    /// generator draws mask `m`'s from `(seed, m)` alone (``RandomGrids``), on the device where the
    /// masks are built, so no grid crosses to it.
    public func maskSpec(height: Int, width: Int) throws -> MaskSpec {
        .randomGrids(try grids(height: height, width: width))
    }

    func grids(height: Int, width: Int) throws -> RandomGrids {
        guard Self.maskRange.contains(masks) else {
            throw XAIError.invalidArgument(parameter: "masks", value: "\(masks)",
                                           reason: "RISE needs \(Self.maskRange.lowerBound) to \(Self.maskRange.upperBound) masks")
        }
        guard gridSize >= 1, gridSize <= min(height, width) else {
            throw XAIError.invalidArgument(parameter: "gridSize", value: "\(gridSize)", reason: "must be between 1 and the image side \(min(height, width))")
        }
        guard keepProbability > 0, keepProbability <= 1 else {
            throw XAIError.invalidArgument(parameter: "keepProbability", value: "\(keepProbability)", reason: "must be in (0, 1]")
        }
        let s = gridSize
        let cellH = (height + s - 1) / s, cellW = (width + s - 1) / s
        return RandomGrids(seed: seed, first: 0, count: masks, gridH: s, gridW: s, keepProbability: keepProbability, cellH: cellH, cellW: cellW,
                           upsampledH: (s + 1) * cellH, upsampledW: (s + 1) * cellW)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (logits, targets) = try model.prepare(input, target: target)
        let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        let plane = height * width
        let grids = try grids(height: height, width: width)
        let half = masks / 2
        var maps: [Float] = [], agreement: [Double] = []
        for b in 0..<n {
            let (xb, baseTensor) = try model.imageAndBaseline(input, b, baseline)
            let image = try be.upload(xb), base = try be.upload(baseTensor)
            let describe = { (range: Range<Int>) -> MaskSpec in .randomGrids(grids.slice(range)) }
            // Each mask's score stays on the device, where the score-weighted mask sums of the two
            // halves of the masks are taken in blocks of a fixed size (the masks built again per
            // block), each block's GEMM adding the sum so far as its bias: the same additions in
            // the same order whatever the forward batches were, so the map does not depend on them.
            let scores = try engine.evaluateOnDevice(image: image, baseline: base, target: targets[b], count: masks, describe: describe)
            var halves: [[Double]] = []
            for part in [0..<half, half..<masks] {
                var sum: DeviceArray?
                for start in stride(from: part.lowerBound, to: part.upperBound, by: Self.accumulationBlock) {
                    let range = start..<min(start + Self.accumulationBlock, part.upperBound)
                    let m = try be.masks(describe(range), height: height, width: width).reshaped([range.count, plane])
                    let w = try be.slice(scores, starts: [range.lowerBound], sizes: [range.count]).reshaped([1, range.count])
                    sum = try be.gemm(w, m, transposeA: false, transposeB: false, alpha: 1, bias: sum, activation: .identity)
                }
                // Each half holds a mask at least (masks >= 2); an empty one would add nothing.
                let p = keepProbability
                halves.append(try sum.map { try be.download($0).scalars.map { Double($0) / (Double(part.count) * p) } } ?? Array(repeating: 0, count: plane))
            }
            let (first, second) = (halves[0], halves[1])
            maps += (0..<plane).map { Float((first[$0] * Double(half) + second[$0] * Double(masks - half)) / Double(masks)) }
            agreement.append(try spearmanCorrelation(first, second))
        }
        return Attribution(map: Tensor(unchecked: [n, height, width], maps), raw: nil, targets: targets, scores: ExplainedModel.scores(logits, targets),
                           diagnostics: ["halfSplitRankCorrelation": agreement])
    }
}
