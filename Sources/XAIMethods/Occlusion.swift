import Foundation
import XAICore
import XAIGraph

/// Occlusion (Zeiler and Fergus) with Captum's semantics: a window slides over the image with a
/// stride (the last window in each direction is clipped to the image, so every pixel is covered);
/// each pixel gets the mean, over the windows that cover it, of `f(x) - f(x with the window
/// replaced by the baseline)`. The windows run as device batches built from rectangles.
public struct Occlusion: AttributionMethod, ModelBacked {
    public let name = "occlusion"
    public let model: ExplainedModel
    /// Window height and width in pixels (default 16 x 16); it spans every channel.
    public var window: (height: Int, width: Int)
    /// Window step (default 8 x 8).
    public var stride: (height: Int, width: Int)
    public var engine: PerturbationEngine

    public init(model: ExplainedModel, window: (height: Int, width: Int) = (16, 16), stride: (height: Int, width: Int) = (8, 8),
                perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.window = window
        self.stride = stride
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    /// The clipped windows for an `height x width` image, row by row.
    public func windows(height: Int, width: Int) throws -> [MaskRect] {
        guard window.height >= 1, window.width >= 1, window.height <= height, window.width <= width else {
            throw XAIError.invalidArgument(op: "--window", message: "occlusion window \(window.height)x\(window.width) does not fit a \(height)x\(width) image")
        }
        guard stride.height >= 1, stride.width >= 1 else {
            throw XAIError.invalidArgument(op: "--stride", message: "occlusion stride \(stride.height)x\(stride.width) must be positive")
        }
        func starts(_ size: Int, _ win: Int, _ step: Int) -> [Int] {
            // Captum's count; with a stride above the window the last start can fall outside the
            // image, and that window would cover nothing.
            let count = (size - win + step - 1) / step + 1
            return (0..<count).map { $0 * step }.filter { $0 < size }
        }
        return starts(height, window.height, stride.height).flatMap { top in
            starts(width, window.width, stride.width).map { left in
                MaskRect(top: top, left: left, height: min(window.height, height - top), width: min(window.width, width - left))
            }
        }
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        let rects = try windows(height: height, width: width)
        let logits = try model.logits(try be.upload(input))
        let targets = try model.resolve(target, logits: logits)
        let clean = engine.scores(logits, targets: targets)
        var maps = [Float](repeating: 0, count: n * height * width)
        for b in 0..<n {
            let xb = try ExplainedModel.image(input, b)
            let image = try be.upload(xb), base = try be.upload(try model.baselineTensor(baseline, for: xb))
            let occluded = try engine.evaluate(image: image, baseline: base, target: targets[b], count: rects.count) { .rectangles(Array(rects[$0])) }
            var total = [Double](repeating: 0, count: height * width), covered = [Double](repeating: 0, count: height * width)
            for (r, s) in zip(rects, occluded) {
                let change = clean[b] - s
                for y in r.top..<(r.top + r.height) {
                    for x in r.left..<(r.left + r.width) {
                        total[y * width + x] += change
                        covered[y * width + x] += 1
                    }
                }
            }
            for p in 0..<(height * width) { maps[b * height * width + p] = Float(total[p] / covered[p]) }
        }
        return Attribution(map: Tensor(unchecked: [n, height, width], maps), raw: nil, targets: targets, scores: scores(logits, targets))
    }
}

/// RISE (Petsiuk et al.): random low-resolution binary grids, bilinearly upsampled with random
/// shifts, mask the image; the map is the score-weighted mean of the masks, `sum_i f(x * M_i) M_i /
/// (N p)`. Masks are built on the device from the grids, and the weighted sum is one GEMM per batch,
/// so no full-resolution mask ever reaches the host.
public struct RISE: AttributionMethod, ModelBacked {
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

    public init(model: ExplainedModel, masks: Int = 4000, gridSize: Int = 7, keepProbability: Double = 0.5, seed: UInt64 = 0,
                perturbationsPerEval: Int? = nil, output: ScoreOutput = .probability, progress: PerturbationProgress? = nil) {
        self.model = model
        self.masks = masks
        self.gridSize = gridSize
        self.keepProbability = keepProbability
        self.seed = seed
        engine = PerturbationEngine(model: model, perturbationsPerEval: perturbationsPerEval, output: output, progress: progress)
    }

    /// The grids (`[masks, s, s]`, 0 or 1) and shifts of every mask for an `height x width` image:
    /// cells of `ceil(size / s)` pixels, upsampled to `(s + 1)` cells and cropped at a random offset
    /// within one cell.
    public func maskSpec(height: Int, width: Int) throws -> MaskSpec {
        let g = try grids(height: height, width: width)
        return .grids(cells: g.cells, gridH: gridSize, gridW: gridSize, upsampledH: g.upsampled.0, upsampledW: g.upsampled.1, shifts: g.shifts)
    }

    func grids(height: Int, width: Int) throws -> (cells: [Float], upsampled: (Int, Int), shifts: [(Int, Int)]) {
        guard masks >= 2 else { throw XAIError.invalidArgument(op: "--masks", message: "RISE needs at least 2 masks, got \(masks)") }
        guard gridSize >= 1, gridSize <= min(height, width) else {
            throw XAIError.invalidArgument(op: "--grid", message: "RISE grid \(gridSize) must be between 1 and the image side \(min(height, width))")
        }
        guard keepProbability > 0, keepProbability <= 1 else {
            throw XAIError.invalidArgument(op: "--keep", message: "RISE keep probability must be in (0, 1], got \(keepProbability)")
        }
        let s = gridSize
        let cellH = (height + s - 1) / s, cellW = (width + s - 1) / s
        var rng = SeededGenerator(seed: seed)
        var cells = [Float](repeating: 0, count: masks * s * s)
        var shifts: [(Int, Int)] = []
        shifts.reserveCapacity(masks)
        for m in 0..<masks {
            for c in 0..<(s * s) where Double(rng.nextUnitFloat()) < keepProbability { cells[m * s * s + c] = 1 }
            shifts.append((Int(rng.next() % UInt64(cellH)), Int(rng.next() % UInt64(cellW))))
        }
        return (cells, ((s + 1) * cellH, (s + 1) * cellW), shifts)
    }

    public func attribute(_ input: Tensor, target: Target, baseline: Baseline) throws -> Attribution {
        let be = model.backend
        let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
        let plane = height * width
        let (cells, (uh, uw), shifts) = try grids(height: height, width: width)
        let (gh, gw) = (gridSize, gridSize)
        let logits = try model.logits(try be.upload(input))
        let targets = try model.resolve(target, logits: logits)
        let half = masks / 2
        var maps: [Float] = [], agreement: [Double] = []
        for b in 0..<n {
            let xb = try ExplainedModel.image(input, b)
            let image = try be.upload(xb), base = try be.upload(try model.baselineTensor(baseline, for: xb))
            // Score-weighted mask sums of the two halves of the masks, accumulated on the device.
            var sums: [DeviceArray?] = [nil, nil]
            try engine.evaluate(image: image, baseline: base, target: targets[b], count: masks, describe: { range in
                .grids(cells: Array(cells[(range.lowerBound * gh * gw)..<(range.upperBound * gh * gw)]), gridH: gh, gridW: gw,
                       upsampledH: uh, upsampledW: uw, shifts: Array(shifts[range]))
            }, visit: { range, spec, scores in
                let m = try be.masks(spec, height: height, width: width).reshaped([range.count, plane])
                for h in 0..<2 {
                    let w = range.enumerated().map { k, i in (i < half) == (h == 0) ? Float(scores[k]) : 0 }
                    guard w.contains(where: { $0 != 0 }) else { continue }
                    let part = try be.gemm(try be.upload(try Tensor(shape: [1, range.count], scalars: w)), m, transposeA: false, transposeB: false,
                                           alpha: 1, bias: nil, activation: .identity)
                    sums[h] = try sums[h].map { try be.binary(.add, $0, part) } ?? part
                }
            })
            let p = keepProbability
            let first = try be.download(sums[0]!).scalars.map { Double($0) / (Double(half) * p) }
            let second = try be.download(sums[1]!).scalars.map { Double($0) / (Double(masks - half) * p) }
            maps += (0..<plane).map { Float((first[$0] * Double(half) + second[$0] * Double(masks - half)) / Double(masks)) }
            agreement.append(spearmanCorrelation(first, second))
        }
        return Attribution(map: Tensor(unchecked: [n, height, width], maps), raw: nil, targets: targets, scores: scores(logits, targets),
                           diagnostics: ["halfSplitRankCorrelation": agreement])
    }
}
