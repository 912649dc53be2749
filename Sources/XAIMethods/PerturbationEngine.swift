import Foundation
import XAICore
import XAIGraph

/// Which number a perturbation method reads off the model for each perturbed copy.
public enum ScoreOutput: String, Sendable, CaseIterable {
    /// The target class's logit (Captum's default for a model that returns logits).
    case logit
    /// The target class's softmax probability (RISE's choice).
    case probability
}

/// Called as perturbation work proceeds with (perturbed copies evaluated, copies in all) for the
/// current image; the CLI draws its progress bar from it. Throwing (``XAIError/cancelled(operation:)``
/// for instance) stops the method with that error: how the C ABI's callback cancels.
public typealias PerturbationProgress = @Sendable (_ done: Int, _ total: Int) throws -> Void

/// Runs many perturbed copies of one image through the model as large device batches. Each batch
/// is described compactly (segment bit vectors, rectangles or low-resolution grids, see
/// ``MaskSpec``); the backend builds the full-resolution copies on the device, so nothing per sample
/// crosses the host boundary but the description and the target score.
public struct PerturbationEngine: Sendable {
    public let model: ExplainedModel
    /// Perturbed copies per forward batch; by default as many as fit a quarter of the backend's
    /// memory budget, on the CPU at most ``defaultBatchLimit``. Results do not depend on it.
    public var perturbationsPerEval: Int?
    public var output: ScoreOutput
    public var progress: PerturbationProgress?

    /// - Parameters:
    ///   - model: the model the perturbed copies run through.
    ///   - perturbationsPerEval: copies per forward batch (default: from the memory budget; a
    ///     requested size beyond the budget is refused when a method runs).
    ///   - output: the score read for each copy.
    ///   - progress: called after every batch with (copies done, copies in all).
    public init(model: ExplainedModel, perturbationsPerEval: Int? = nil, output: ScoreOutput = .logit, progress: PerturbationProgress? = nil) {
        self.model = model
        self.perturbationsPerEval = perturbationsPerEval
        self.output = output
        self.progress = progress
    }

    /// The default batch's upper bound on the CPU. Measured on ResNet-50 (2-core Zen 4, oneDNN): a
    /// forward costs 52 ms per image at batch 8, 46 at 16, 36 at 32 and 35 at 64, so larger batches
    /// stop paying past 64, while progress gets coarser and memory grows. GPUs are bounded by the
    /// memory budget alone: on an H200, capping at 64 made occlusion 18 % slower (per-batch costs).
    public static let defaultBatchLimit = 64

    /// Copies per forward batch for images of `shape` `[1, C, H, W]`.
    public func batchSize(for shape: Shape) throws -> Int {
        // The forward's peak live activations, doubled for backend slack (channel-blocked layouts
        // pad channels, convolution workspaces), plus the composited copy itself.
        let perCopy = try model.bytesPerImageForForward() * 2 + shape.count * 4
        return try model.batchSize(requested: perturbationsPerEval, bytesPerItem: perCopy, cap: model.backend.device == .cpu ? Self.defaultBatchLimit : Int.max,
                                   parameter: "batch")
    }

    /// The score of `target` in each row of the batch's logits, `[rows]` on the device. A
    /// probability is the column of the rows' softmax, taken on the device in float32 like every
    /// other score of the copies, so a method that subtracts scores (occlusion's clean minus
    /// occluded) takes both through this one path.
    func scoreColumn(_ logits: DeviceArray, target: Int) throws -> DeviceArray {
        let be = model.backend
        let rows = logits.shape.rank == 0 ? 1 : logits.shape[0], classes = logits.shape.count / max(rows, 1)
        try Self.check(target, classes: classes)
        var values = try logits.reshaped([rows, classes])
        if output == .probability { values = try be.softmax(values, axis: 1, log: false) }
        return try be.slice(values, starts: [0, target], sizes: [rows, 1]).reshaped([rows])
    }

    /// The score of `target` in each row of the batch's logits on the device: only that column
    /// comes back (4 bytes a copy instead of 4 per class).
    func scores(_ logits: DeviceArray, target: Int) throws -> [Double] {
        try model.backend.download(try scoreColumn(logits, target: target)).scalars.map(Double.init)
    }

    /// The score of each image's target from the clean logits (`[N, classes]` on the host), equal
    /// to what ``scores(_:target:)`` reads off a copy: a logit is read here (a slice is exact), a
    /// probability goes through the device's softmax, as the copies' do.
    func scores(_ logits: Tensor, targets: [Int]) throws -> [Double] {
        let classes = logits.shape.count / max(logits.shape[0], 1)
        return try targets.enumerated().map { b, target in
            try Self.check(target, classes: classes)
            let row = Array(logits.scalars[(b * classes)..<((b + 1) * classes)])
            guard output == .probability else { return Double(row[target]) }
            return try scores(try model.backend.upload(try Tensor(shape: [1, classes], scalars: row)), target: target)[0]
        }
    }

    private static func check(_ target: Int, classes: Int) throws {
        guard (0..<classes).contains(target) else {
            throw XAIError.invalidArgument(parameter: "target", value: "\(target)", reason: "outside the model's \(classes) outputs")
        }
    }

    /// Evaluates `count` perturbed copies of `image` (`[1, C, H, W]` on the device) against
    /// `baseline`, `describe(range)` giving the masks of the copies in `range`. Returns every
    /// copy's score.
    @discardableResult
    public func evaluate(image: DeviceArray, baseline: DeviceArray, target: Int, count: Int,
                         describe: (Range<Int>) throws -> MaskSpec) throws -> [Double] {
        try inBatches(count: count, imageShape: image.shape, target: target) { range in
            (try logits(image: image, baseline: baseline, range, describe), { _ in })
        }
    }

    /// Evaluates `count` perturbed copies as ``evaluate(image:baseline:target:count:describe:)``
    /// does, but leaves their scores on the device, `[count]` in the copies' order, for a method
    /// that reduces them there (RISE's weighted mask sums): no score crosses to the host. The host
    /// still waits for each batch, so progress counts finished copies and a failed batch is
    /// reported as that batch's.
    public func evaluateOnDevice(image: DeviceArray, baseline: DeviceArray, target: Int, count: Int,
                                 describe: (Range<Int>) throws -> MaskSpec) throws -> DeviceArray {
        let be = model.backend
        var columns: [DeviceArray] = []
        try runBatches(count: count, imageShape: image.shape) { range in
            let logits = try logits(image: image, baseline: baseline, range, describe)
            let column = try scoreColumn(logits, target: target)
            guard column.shape.count == range.count else {
                throw XAIError.shapeMismatch(op: "perturbation scores", expected: "\(range.count) rows of logits", got: [logits.shape])
            }
            try be.synchronize()
            return { columns.append(column) }
        }
        return try be.concat(columns, axis: 0)
    }

    /// The logits of the copies in `range`, composited on the device from their masks' description.
    private func logits(image: DeviceArray, baseline: DeviceArray, _ range: Range<Int>, _ describe: (Range<Int>) throws -> MaskSpec) throws -> DeviceArray {
        let spec = try describe(range)
        guard spec.sampleCount == range.count else {
            throw XAIError.invalidArgument(parameter: "masks", value: "\(spec.sampleCount)", reason: "masks described for \(range.count) perturbed copies")
        }
        return try model.outputs(try model.backend.composite(image: image, baseline: baseline, masks: spec))
    }

    /// Scores `count` copies of an image shaped `imageShape` in batches of ``batchSize(for:)``,
    /// reporting progress after each: `run(range)` gives the logits of the copies in `range` (on
    /// the device: only their scores come back) and what to do with those scores once read.
    /// A batch the device runs out of memory for is halved and run again, and the smaller size
    /// kept (as ``ExplainedModel/inBatches(_:of:_:)``); `run` must therefore depend on its range
    /// alone, and only `then`, called once per finished batch, may add to anything.
    func inBatches(count: Int, imageShape: Shape, target: Int,
                   _ run: (Range<Int>) throws -> (logits: DeviceArray, then: ([Double]) throws -> Void)) throws -> [Double] {
        var result: [Double] = []
        result.reserveCapacity(count)
        try runBatches(count: count, imageShape: imageShape) { range in
            let out = try run(range)
            let s = try scores(out.logits, target: target)
            guard s.count == range.count else {
                throw XAIError.shapeMismatch(op: "perturbation scores", expected: "\(range.count) rows of logits", got: [out.logits.shape])
            }
            return {
                try out.then(s)
                result += s
            }
        }
        return result
    }

    /// The batching under both: `run(range)` does a batch's work and returns what to keep of it,
    /// called once the batch is known to have fit (an out-of-memory error halves the batch and
    /// runs `run` again on the smaller range), then progress is reported.
    private func runBatches(count: Int, imageShape: Shape, _ run: (Range<Int>) throws -> () throws -> Void) throws {
        var chunk = try batchSize(for: imageShape)
        var start = 0
        while start < count {
            let range = start..<min(start + chunk, count)
            let keep: () throws -> Void
            do {
                keep = try run(range)
            } catch XAIError.outOfMemory where range.count > 1 {
                chunk = (range.count + 1) / 2
                continue
            }
            try keep()
            start = range.upperBound
            try progress?(start, count)
        }
    }
}

extension MaskSpec {
    /// Segment masks from rows of keep flags (`rows[n][s]` true keeps segment `s` in copy `n`).
    public static func segments(labels: DeviceArray, rows: ArraySlice<[Bool]>, segmentCount: Int) -> MaskSpec {
        let words = (segmentCount + 31) / 32
        var bits = [UInt32](repeating: 0, count: rows.count * words)
        for (n, row) in rows.enumerated() {
            for (s, keep) in row.enumerated() where keep { bits[n * words + s / 32] |= 1 << UInt32(s % 32) }
        }
        return .segments(labels: labels, keep: bits, wordsPerSample: words)
    }
}

extension PerturbationEngine {
    /// The scores of copies of `image` (`[1, C, H, W]` on the device) with each of `rects` alone
    /// replaced by `baseline`, computed incrementally from the clean image's activations (only
    /// what each rectangle reaches runs again: ``Executor/forward(copiesOf:patches:at:plan:)``),
    /// and the fraction of the full passes' convolution work that ran. An empty rectangle gives
    /// the clean image's score. Occlusion and non-sensitivity.
    public func scoresWithRectanglesRemoved(image: DeviceArray, baseline: DeviceArray, rects: [MaskRect], target: Int) throws -> (scores: [Double], work: Double) {
        let be = model.backend
        let clean = try model.executor.forward(image, forBackward: true)
        let (height, width) = (image.shape[2], image.shape[3])
        // One window size for all copies: windows clipped at the image's edge are widened inward
        // (the extra pixels are the image's own, so they change nothing).
        let (wh, ww) = (rects.map(\.height).max() ?? 1, rects.map(\.width).max() ?? 1)
        let all = WindowSet(tops: rects.map { min($0.top, height - wh) }, lefts: rects.map { min($0.left, width - ww) }, height: wh, width: ww)
        let plan = try model.executor.incrementalPlan(clean: clean, windows: all)
        var (ran, full) = (0, 0)
        let scores = try inBatches(count: rects.count, imageShape: image.shape, target: target) { range in
            let windows = WindowSet(tops: Array(all.tops[range]), lefts: Array(all.lefts[range]), height: wh, width: ww)
            let copies = try be.composite(image: image, baseline: baseline, masks: .rectangles(Array(rects[range])))
            let pass = try model.executor.forward(copiesOf: clean, patches: try be.cut(copies, windows: windows), at: windows, plan: plan)
            guard let logits = pass.outputs[model.outputName] else {
                throw XAIError.invalidArgument(parameter: "output", value: model.outputName, reason: "not an output of the graph")
            }
            // Counted once the batch's scores are in: a batch retried smaller is not counted twice.
            return (logits, { _ in (ran, full) = (ran + pass.convolutionMACs, full + pass.fullConvolutionMACs) })
        }
        return (scores, full > 0 ? Double(ran) / Double(full) : 1)
    }
}
