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
    let (n, height, width) = (input.shape[0], input.shape[2], input.shape[3])
    let (logits, targets) = try model.prepare(input, target: target)
    var maps: [Float] = [], labels: [Float] = [], values: [[Double]] = []
    var diagnostics: [String: [Double]] = [:]
    for b in 0..<n {
        let (xb, baseTensor) = try model.imageAndBaseline(input, b, baseline)
        let segments = try segmentation.segment(xb, index: b)
        let game = try CoalitionGame(engine: engine, segments: segments, image: xb, baseline: baseTensor, target: targets[b])
        let (v, d) = try body(game)
        maps += game.paint(v)
        labels += segments.labels.map(Float.init)
        values.append(v)
        diagnostics["segmentCount", default: []].append(Double(segments.count))
        for (key, value) in d { diagnostics[key, default: []].append(value) }
    }
    let mostSegments = values.map(\.count).max() ?? 0
    let raw = Tensor(unchecked: [n, mostSegments], values.flatMap { $0.map(Float.init) + [Float](repeating: 0, count: mostSegments - $0.count) })
    return Attribution(map: Tensor(unchecked: [n, height, width], maps), raw: raw, targets: targets, scores: ExplainedModel.scores(logits, targets),
                       diagnostics: diagnostics, segments: Tensor(unchecked: [n, height, width], labels))
}
